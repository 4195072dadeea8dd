// `smtpq status ID`: the status record of one message (GET /v1/messages/{id}), as JSON or a short summary.
import type { Command } from 'commander';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { ApiClient } from './api-client.ts';
import { reportError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

export function register(program: Command): void {
  program
    .command('status')
    .description("show a message's status and each recipient's outcome")
    .argument('<id>', 'message id (from submit)')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .option('--json', 'print the whole status record as JSON')
    .action(async (id: string, options: { api?: string; json?: boolean }) => {
      try {
        const record = await new ApiClient({ api: options.api }).status<StatusRecord>(id);
        console.log(options.json ? safeJson(record, 2) : describeStatus(record));
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

export function describeStatus(record: StatusRecord): string {
  const lines = [
    `${safe(record.id)}  ${record.state}  attempts ${record.attempts}${record.nextAttemptAt ? `  next ${record.nextAttemptAt}` : ''}`,
  ];
  if (record.subject !== undefined) lines.push(`  subject  ${safe(record.subject)}`);
  if (record.error) lines.push(`  error    ${safe(record.error)}`);
  for (const r of record.recipients) {
    const reply = r.reply ? `  ${r.reply.code} ${r.reply.lines.join(' ')}` : r.error ? `  ${r.error}` : '';
    lines.push(`  ${r.kind.padEnd(3)} ${safe(r.address)}  ${r.state}${safe(reply)}`);
  }
  return lines.join('\n');
}

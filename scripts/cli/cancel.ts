// `smtpq cancel ID`: POST /v1/messages/{id}/cancel — a queued, scheduled or deferred message is cancelled.
import type { Command } from 'commander';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { ApiClient, ApiError } from './api-client.ts';
import { EXIT } from './send-report.ts';
import { reportError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

export function register(program: Command): void {
  program
    .command('cancel')
    .description('cancel a queued, scheduled or deferred message')
    .argument('<id>', 'message id')
    .option('--json', 'print the cancelled status record as JSON')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .action(async (id: string, options: { api?: string; json?: boolean }) => {
      try {
        const record = await new ApiClient({ api: options.api }).cancel<StatusRecord>(id);
        if (options.json) {
          console.log(safeJson(record, 2));
          return;
        }
        const cancelled = record.recipients
          .filter((r) => r.state === 'cancelled')
          .map((r) => safe(r.address));
        console.log(
          `${record.id}  ${record.state}  (${cancelled.length} recipients cancelled: ${cancelled.join(', ')})`,
        );
      } catch (error) {
        if (error instanceof ApiError && error.status === 409) {
          // Refused for good: the message is final or being sent.
          console.error(`smtpq: not cancellable: ${safe(error.message)}`);
          process.exitCode = EXIT.unavailable;
          return;
        }
        process.exitCode = reportError(error);
      }
    });
}

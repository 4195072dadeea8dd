// `smtpq list`: the messages, newest first (GET /v1/messages), as a table or JSON; --all follows the cursor.
import type { Command } from 'commander';
import type { MessageSummary } from '../../functions/api/list.ts';
import { ApiClient } from './api-client.ts';
import { reportError, UsageError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

interface ListOptions {
  api?: string;
  state?: string;
  tag?: string;
  since?: string;
  until?: string;
  limit?: string;
  cursor?: string;
  all?: boolean;
  json?: boolean;
}

interface Page {
  data: MessageSummary[];
  nextCursor: string | null;
}

export function register(program: Command): void {
  program
    .command('list')
    .description('list messages, newest first')
    .option(
      '--state <state>',
      'queued, scheduled, sending, deferred, sent, partially_sent, failed or cancelled',
    )
    .option('--tag <key:value>', 'only messages with this tag')
    .option('--since <time>', 'created at or after (RFC 3339)')
    .option('--until <time>', 'created at or before (RFC 3339)')
    .option('--limit <n>', 'messages per page, 1-100', '20')
    .option('--cursor <cursor>', 'continue from a previous page')
    .option('--all', 'follow the cursor to the last page')
    .option('--json', 'print the API answer as JSON')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .action(async (options: ListOptions) => {
      try {
        await list(options);
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

async function list(options: ListOptions): Promise<void> {
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new UsageError('--limit must be a whole number from 1 to 100');
  if (options.tag !== undefined && !options.tag.includes(':'))
    throw new UsageError('--tag must be key:value');
  const client = new ApiClient({ api: options.api });
  const query: Record<string, string> = { limit: String(limit) };
  for (const name of ['state', 'tag', 'since', 'until'] as const)
    if (options[name] !== undefined) query[name] = options[name]!;
  const data: MessageSummary[] = [];
  let cursor = options.cursor ?? null;
  do {
    const page = await client.list<Page>({ ...query, ...(cursor ? { cursor } : {}) });
    data.push(...page.data);
    cursor = page.nextCursor;
    if (!options.all) break;
  } while (cursor);
  if (options.json) {
    console.log(safeJson(options.all ? { data, nextCursor: null } : { data, nextCursor: cursor }, 2));
    return;
  }
  if (data.length === 0) console.log('no messages');
  for (const m of data) console.log(row(m));
  if (cursor)
    console.log(`more: smtpq list --cursor ${cursor}${options.state ? ` --state ${options.state}` : ''}`);
}

function row(m: MessageSummary): string {
  const counts = Object.entries(m.recipients)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
  const when = m.sendAt ? `${m.createdAt}  sendAt ${m.sendAt}` : m.createdAt;
  return `${m.id}  ${m.state.padEnd(14)}  ${when}  ${counts}  ${safe(m.subject ?? '(no subject)')}`;
}

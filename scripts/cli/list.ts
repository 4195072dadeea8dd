// `smtpq list`: the messages, newest first (GET /v1/messages), as a table or JSON; --all follows the cursor.
// Every option is checked before the first request (a usage error, exit 64); what only the API can judge (a
// cursor it did not hand out) comes back as its 400 with the issues, printed.
import type { Command } from 'commander';
import type { MessageSummary } from '../../functions/api/list.ts';
import type { MessageState } from '../../lib/delivery/ports.ts';
import { ApiClient, ApiError } from './api-client.ts';
import { reportError, UsageError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';
import { isRfc3339, RFC3339_EXAMPLE } from './time.ts';

interface ListOptions {
  api?: string;
  state?: string;
  tag?: string;
  since?: string;
  until?: string;
  limit: string;
  cursor?: string;
  all?: boolean;
  json?: boolean;
}

interface Page {
  data: MessageSummary[];
  nextCursor: string | null;
}

/** What GET /v1/messages?state= takes (functions/api/list.ts). */
export const LIST_STATES = [
  'queued',
  'scheduled',
  'sending',
  'deferred',
  'sent',
  'partially_sent',
  'failed',
  'cancelled',
] as const satisfies readonly MessageState[];

const DEFAULT_LIMIT = '20';
/** A tag key as the API takes it (functions/api/list.ts). */
const TAG_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
/** --all stops after this many pages: a cursor that never ends is the API's bug, not a reason to spin. */
const MAX_PAGES = 10_000;

export function register(program: Command): void {
  program
    .command('list')
    .description('list messages, newest first, with their recipients counted')
    .option('--state <state>', `only messages in this state: ${LIST_STATES.join(', ')}`)
    .option('--tag <key:value>', 'only messages with this tag (key=value works too, as submit takes it)')
    .option('--since <time>', `created at or after this time (RFC 3339, e.g. ${RFC3339_EXAMPLE})`)
    .option('--until <time>', 'created at or before this time (RFC 3339)')
    .option('--limit <n>', 'messages per page, 1-100', DEFAULT_LIMIT)
    .option('--cursor <cursor>', 'continue after a previous page (the cursor it printed)')
    .option('--all', 'follow the cursor to the last page')
    .option('--json', 'print the API answer as JSON (with --all: every page in one "data" array)')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .addHelpText(
      'after',
      '\nOne line per message: id, state, created, "sendAt …" when scheduled, recipients counted by state\n' +
        '("2 delivered, 1 failed"), subject. When there is more, the last line is the command for the next page.',
    )
    .action(async (options: ListOptions) => {
      try {
        await list(options);
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

interface Query {
  state?: string;
  tag?: string;
  since?: string;
  until?: string;
  limit: string;
}

/** The options as query parameters, or a UsageError naming the first bad one. */
export function listQuery(options: Omit<ListOptions, 'api' | 'all' | 'json' | 'cursor'>): Query {
  const query: Query = { limit: options.limit };
  if (!/^\d{1,3}$/.test(options.limit) || Number(options.limit) < 1 || Number(options.limit) > 100)
    throw new UsageError(`--limit ${options.limit}: must be a whole number from 1 to 100`);
  query.limit = String(Number(options.limit));
  if (options.state !== undefined) {
    if (!(LIST_STATES as readonly string[]).includes(options.state))
      throw new UsageError(`--state ${options.state}: must be one of ${LIST_STATES.join(', ')}`);
    query.state = options.state;
  }
  if (options.tag !== undefined) {
    // key:value as the API takes it; key=value as `smtpq submit --tag` writes it. The key has neither.
    const at = options.tag.search(/[:=]/);
    const key = at < 0 ? '' : options.tag.slice(0, at);
    if (!TAG_KEY.test(key))
      throw new UsageError(
        `--tag ${options.tag}: must be key:value (the key 1-64 of A-Z a-z 0-9 _ . -), e.g. --tag order:1234`,
      );
    query.tag = `${key}:${options.tag.slice(at + 1)}`;
  }
  for (const name of ['since', 'until'] as const) {
    const value = options[name];
    if (value === undefined) continue;
    if (!isRfc3339(value))
      throw new UsageError(`--${name} ${value}: must be an RFC 3339 time, e.g. ${RFC3339_EXAMPLE}`);
    query[name] = value;
  }
  if (query.since && query.until && Date.parse(query.since) > Date.parse(query.until))
    throw new UsageError('--until must not be before --since');
  return query;
}

async function list(options: ListOptions): Promise<void> {
  const query = listQuery(options);
  if (options.cursor !== undefined && options.cursor.trim() === '')
    throw new UsageError('--cursor must not be empty');
  const client = new ApiClient({ api: options.api });
  const data: MessageSummary[] = [];
  let cursor: string | null = options.cursor ?? null;
  let printed = 0;
  const seen = new Set<string>();
  for (let pages = 0; ; pages++) {
    const page = await client.list<Page>({ ...query, ...(cursor ? { cursor } : {}) });
    if (!Array.isArray(page?.data))
      throw new ApiError(200, 'invalid_response', 'the API answered without a "data" list');
    cursor = page.nextCursor ?? null;
    if (options.json) data.push(...page.data);
    else {
      // A table page by page, so --all shows the first lines at once.
      for (const line of table(page.data)) console.log(line);
      printed += page.data.length;
    }
    if (!options.all || !cursor) break;
    if (seen.has(cursor) || pages + 1 >= MAX_PAGES)
      throw new ApiError(200, 'invalid_response', `the API handed out the cursor ${cursor} again`);
    seen.add(cursor);
  }
  if (options.json) {
    console.log(safeJson({ data, nextCursor: cursor }, 2));
    return;
  }
  if (printed === 0) console.log(cursor ? 'no messages on this page' : 'no messages');
  if (cursor) console.log(`more: ${nextCommand(options, query, cursor)}`);
}

/** The rows of one page, in columns: id, state, created, sendAt, recipients counted, subject. */
export function table(messages: readonly MessageSummary[]): string[] {
  const rows = messages.map((m) => ({
    id: safe(m.id),
    state: safe(m.state),
    createdAt: safe(m.createdAt),
    sendAt: m.sendAt ? `sendAt ${safe(m.sendAt)}` : '',
    counts: counts(m.recipients),
    subject: m.subject === undefined ? '(no subject)' : safe(m.subject),
  }));
  const width = (key: 'state' | 'sendAt' | 'counts') => Math.max(0, ...rows.map((r) => r[key].length));
  const widths = { state: width('state'), sendAt: width('sendAt'), counts: width('counts') };
  return rows.map((r) =>
    [
      r.id,
      r.state.padEnd(widths.state),
      r.createdAt,
      ...(widths.sendAt > 0 ? [r.sendAt.padEnd(widths.sendAt)] : []),
      r.counts.padEnd(widths.counts),
      r.subject,
    ].join('  '),
  );
}

/** "2 delivered, 1 failed": the recipients by state, the states with none left out. */
export function counts(recipients: MessageSummary['recipients'] | undefined): string {
  const parts = Object.entries(recipients ?? {})
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .map(([state, n]) => `${n} ${safe(state)}`);
  return parts.length > 0 ? parts.join(', ') : 'no recipients';
}

/** The command that prints the next page: the same filters (a cursor is a position, not a query). */
function nextCommand(options: ListOptions, query: Query, cursor: string): string {
  const args = ['smtpq', 'list', '--cursor', cursor];
  for (const name of ['state', 'tag', 'since', 'until'] as const)
    if (query[name] !== undefined) args.push(`--${name}`, query[name]!);
  if (query.limit !== DEFAULT_LIMIT) args.push('--limit', query.limit);
  if (options.api !== undefined) args.push('--api', options.api);
  return args.map(shellQuote).join(' ');
}

/** A word as a POSIX shell reads it back: as it is when plain, else in single quotes. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${safe(word).replace(/'/g, `'\\''`)}'`;
}

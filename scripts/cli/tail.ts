// `smtpq tail`: follows the status of recent messages and prints each change (state, or a recipient's outcome).
// Which messages: the ids given; else, against `npm run dev`, the dev inbox's list (everything submitted);
// else the ids this machine submitted (history.ts), since the deployed API has no list route.
import type { Command } from 'commander';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { ApiClient, ApiError, isLocalApi } from './api-client.ts';
import { recentHistory } from './history.ts';
import { reportError, UsageError } from './submit.ts';
import { safe } from './terminal.ts';

interface TailOptions {
  api?: string;
  interval: string;
  limit: string;
}

export function register(program: Command): void {
  program
    .command('tail')
    .description('print status changes of recent messages as they happen (Ctrl-C to stop)')
    .argument('[ids...]', 'message ids to follow (default: recent messages)')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .option('--interval <seconds>', 'poll interval', '2')
    .option('--limit <n>', 'how many recent messages to follow', '20')
    .action(async (ids: string[], options: TailOptions) => {
      try {
        await tail(ids, options);
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

/** One line per thing that can change: the message state and each recipient's state. */
function fingerprint(record: StatusRecord): Map<string, string> {
  const parts = new Map<string, string>([['', `${record.state} (attempt ${record.attempts})`]]);
  for (const r of record.recipients) {
    const reply = r.reply ? ` ${r.reply.code} ${r.reply.lines.join(' ')}` : r.error ? ` ${r.error}` : '';
    parts.set(r.address, `${r.state}${reply}`);
  }
  return parts;
}

async function tail(ids: string[], options: TailOptions): Promise<void> {
  const interval = Number(options.interval);
  const limit = Number(options.limit);
  if (!(interval >= 0.2)) throw new UsageError('--interval must be at least 0.2 seconds');
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a whole number from 1');
  const client = new ApiClient({ api: options.api });
  const seen = new Map<string, Map<string, string>>();
  let stop = false;
  process.once('SIGINT', () => {
    stop = true;
  });
  while (!stop) {
    for (const id of await following(client, ids, limit)) {
      let record: StatusRecord;
      try {
        record = await client.status<StatusRecord>(id);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) continue;
        throw error;
      }
      const before = seen.get(id);
      const now = fingerprint(record);
      for (const [part, value] of now) {
        if (before?.get(part) === value) continue;
        const what = part === '' ? `${record.subject ?? '(no subject)'}: ${value}` : `${part}: ${value}`;
        console.log(`${new Date().toISOString()}  ${safe(id)}  ${safe(what)}`);
      }
      seen.set(id, now);
    }
    await new Promise((resolve) => setTimeout(resolve, interval * 1000));
  }
}

async function following(client: ApiClient, ids: string[], limit: number): Promise<string[]> {
  if (ids.length > 0) return ids;
  if (isLocalApi(client.base)) {
    try {
      const list = await client.getJson<{ messages: Array<{ id: string }> }>('/_inbox/api/messages');
      return list.messages.slice(0, limit).map((m) => m.id);
    } catch (error) {
      // Not the dev stack (another local server): fall back to the history.
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
  }
  return recentHistory(limit);
}

// `smtpq cancel ID`: POST /v1/messages/{id}/cancel — a queued, scheduled or deferred message is cancelled (its
// recipients not yet delivered become `cancelled`). A message that is final or being sent is refused: 409,
// printed as "not cancellable: it is <state>", exit 69 (EX_UNAVAILABLE: refused for good, as for any other
// refused request); no such message: 404, exit 69 too.
import type { Command } from 'commander';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { ApiClient, ApiError } from './api-client.ts';
import { EXIT } from './send-report.ts';
import { reportError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

export function register(program: Command): void {
  program
    .command('cancel')
    .description('cancel a queued, scheduled or deferred message (exit 69 when it is final or being sent)')
    .argument('<id>', 'message id')
    .option('--json', 'print the cancelled message (the status record, as GET /v1/messages/{id}) as JSON')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .action(async (id: string, options: { api?: string; json?: boolean }) => {
      try {
        const record = await new ApiClient({ api: options.api }).cancel<StatusRecord>(id);
        console.log(options.json ? safeJson(record, 2) : describeCancelled(record));
      } catch (error) {
        if (error instanceof ApiError && error.status === 409 && error.code === 'not_cancellable') {
          console.error(`smtpq: ${safe(id)} not cancellable: ${notCancellableReason(error)}`);
          process.exitCode = EXIT.unavailable;
          return;
        }
        if (error instanceof ApiError && error.status === 404) {
          console.error(`smtpq: not found: no message ${safe(id)} (or not one of yours)`);
          process.exitCode = EXIT.unavailable;
          return;
        }
        process.exitCode = reportError(error);
      }
    });
}

/** The new state, then the recipients this cancel stopped. */
export function describeCancelled(record: StatusRecord): string {
  const cancelled = (record.recipients ?? [])
    .filter((r) => r.state === 'cancelled')
    .map((r) => safe(r.address));
  return `${safe(record.id)}  ${safe(record.state)}  (${cancelled.length} recipients cancelled: ${cancelled.join(', ')})`;
}

/** "it is sent", "it is being sent": the API's reason, else the state its answer names. */
function notCancellableReason(error: ApiError): string {
  const why = /cannot be cancelled: (.+)$/.exec(error.message)?.[1];
  if (why) return safe(why);
  const state = error.body?.state;
  return typeof state === 'string' ? `it is ${safe(state)}` : safe(error.message);
}

// POST /v1/messages/{id}/cancel: a message that is queued, scheduled or deferred is cancelled — the
// recipients not yet delivered become `cancelled` — by a conditional write on the version read, so a worker
// that claims it at the same moment either loses its claim (and sees the cancel) or wins it first, and then
// the message is being sent: 409 not_cancellable, with its state.
import { cancel, isCancellable } from '../../lib/delivery/ledger.ts';
import { VersionConflictError } from '../../lib/delivery/ports.ts';
import type { Caller } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { isMessageId } from './ids.ts';
import { type ApiResponse, json, problem } from './responses.ts';
import { invalidId, readable, statusView } from './status.ts';

/** A cancel that loses a race with a worker's write reads the record again this many times. */
const CANCEL_TRIES = 3;

export async function handleCancel(
  id: string,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  if (!isMessageId(id)) return invalidId(id);
  for (let attempt = 1; ; attempt++) {
    const found = await readable(id, caller, deps);
    if (!found) return problem('not_found', `no message with id ${id}`);
    const now = deps.now?.() ?? new Date();
    const record = found.value;
    if (!isCancellable(record, now)) {
      const why = record.state === 'sending' || record.lease ? 'it is being sent' : `it is ${record.state}`;
      return problem('not_cancellable', `message ${id} cannot be cancelled: ${why}`, {
        state: record.state,
      });
    }
    try {
      const cancelled = await deps.status.update(cancel(record, now), found.version);
      deps.logger.info('message cancelled', { messageId: id, was: record.state });
      return json(200, statusView(cancelled.value));
    } catch (error) {
      if (!(error instanceof VersionConflictError) || attempt === CANCEL_TRIES) throw error;
    }
  }
}

// A request whose status record was written but which never reached the queue: its ledger says failed with
// the reason, so a status look-up never shows `queued` for a message nothing will deliver.
import { failMessage } from '../../lib/delivery/ledger.ts';
import type { StatusRecord, Versioned } from '../../lib/delivery/ports.ts';
import type { ApiDeps } from './deps.ts';

export async function markNotEnqueued(
  deps: ApiDeps,
  stored: Versioned<StatusRecord>,
  reason: string,
): Promise<void> {
  const record = failMessage(stored.value, `not enqueued: ${reason}`, deps.now?.() ?? new Date());
  try {
    await deps.status.update(record, stored.version);
  } catch (failure) {
    // The client learns of the failure from the response; the log carries the ledger problem.
    deps.logger.error('could not mark a message that was not enqueued as failed', {
      messageId: record.id,
      error: failure,
    });
  }
}

// The submit-time check of the suppression list: recipients on it are marked `suppressed` in the initial
// status record, never queued for; a message left with nobody to send to is final (`failed`) at once, and
// goes on no queue. The worker checks again before each attempt, so a list that cannot be read here is
// logged and the message queued as it is.
import { suppress } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { ApiDeps } from './deps.ts';

/** Applies the list to each record (replaced in place; one read for all). */
export async function applySuppressions(
  deps: Pick<ApiDeps, 'suppressions' | 'logger'>,
  accepted: { record: StatusRecord }[],
  now: Date,
): Promise<void> {
  const addresses = [...new Set(accepted.flatMap((a) => a.record.recipients.map((r) => r.address)))];
  if (addresses.length === 0) return;
  let matches: Awaited<ReturnType<ApiDeps['suppressions']['matching']>>;
  try {
    matches = await deps.suppressions.matching(addresses);
  } catch (error) {
    deps.logger.warn('suppression list not read; the worker checks it before sending', { error });
    return;
  }
  for (const item of accepted) item.record = suppress(item.record, matches, now);
}

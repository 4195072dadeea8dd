// DynamoDB's batch calls, sliced to their limits and asked again for what DynamoDB left unprocessed.

/** BatchGetItem takes at most 100 keys per call. */
export const BATCH_GET_LIMIT = 100;
/** BatchWriteItem takes at most 25 puts per call. */
export const BATCH_WRITE_LIMIT = 25;
/** Rounds of re-asking for the keys DynamoDB left unprocessed (throttling) before giving up. */
const UNPROCESSED_ROUNDS = 5;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `items` in slices of at most `size` (a batch call's limit). */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * A batch call made again for what DynamoDB left unprocessed (throttling), with a growing pause, until
 * nothing is left; gives up after UNPROCESSED_ROUNDS rounds.
 */
export async function inRounds<T>(
  items: T[],
  what: string,
  call: (pending: T[]) => Promise<T[]>,
): Promise<void> {
  let pending = items;
  for (let round = 0; pending.length > 0; round++) {
    if (round === UNPROCESSED_ROUNDS)
      throw new Error(`DynamoDB left ${pending.length} ${what} unprocessed after ${round} rounds`);
    if (round > 0) await pause(50 * 2 ** round);
    pending = await call(pending);
  }
}

// Counting round trips from what the delay proxy saw.
//
// A client on the far side of a 20 ms RTT link only stops writing for 20 ms or more when it waits for a
// reply: local work between two writes takes well under a millisecond or two. So every run of client
// chunks that starts after a silence of at least `gapMs` is one wait for the server — one round trip
// the client paid. Pipelining merges commands into one such burst; CHUNKING with several BDAT
// transactions in flight lets the bursts run into each other.
import type { ChunkEvent } from './delay-proxy.ts';

/** Client bursts that begin inside [from, to] (epoch ms): the waits of the measured phase. */
export function countClientBursts(
  events: readonly ChunkEvent[],
  from: number,
  to: number,
  gapMs: number,
): number {
  let bursts = 0;
  let lastClientChunk = Number.NEGATIVE_INFINITY;
  for (const event of events) {
    if (event.from !== 'client') continue;
    const startsBurst = event.at - lastClientChunk >= gapMs;
    lastClientChunk = event.at;
    if (startsBurst && event.at >= from && event.at <= to) bursts++;
  }
  return bursts;
}

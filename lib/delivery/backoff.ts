// The queue's retry schedule: when a deferred message is tried again, and when it is given up.
// Exponential with jitter, capped (RFC 5321 §4.5.4.1: retry after at least 30 minutes, give up after
// 4-5 days; Postfix minimal_backoff_time / maximal_backoff_time / maximal_queue_lifetime).

/** The queue's retry budget (the worker's config supplies it; the domain does not depend on config). */
export interface RetrySettings {
  baseSeconds: number;
  maxSeconds: number;
  maxAgeSeconds: number;
  maxAttempts: number;
}

/** SQS cannot hide a message for longer than 12 hours (ChangeMessageVisibility). */
export const MAX_VISIBILITY_SECONDS = 43_200;

/**
 * The longest deferral the worker asks for. SQS counts the 12 hours from the receive, and refuses (rather
 * than trims) a visibility beyond the time left; the worker sets it at the end of its invocation, up to
 * Lambda's 15-minute maximum run plus the event source's 5-minute maximum batching window after the
 * receive. A refused change would leave the record to the queue's own (short) visibility timeout.
 */
export const MAX_DEFERRAL_SECONDS = MAX_VISIBILITY_SECONDS - 15 * 60 - 5 * 60;

/**
 * Seconds to wait after attempt `attempt` (1-based). The ceiling doubles with each attempt,
 * starting at `baseSeconds` and capped at `maxSeconds` (and MAX_DEFERRAL_SECONDS); the wait is drawn from the upper half of the
 * ceiling ("equal jitter"), so retries of a batch spread out but never fall back to zero.
 */
export function backoffSeconds(
  attempt: number,
  retry: RetrySettings,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  const ceiling = Math.min(retry.maxSeconds, retry.baseSeconds * 2 ** exponent, MAX_DEFERRAL_SECONDS);
  const jittered = ceiling / 2 + (ceiling / 2) * random();
  return Math.min(Math.ceil(jittered), MAX_DEFERRAL_SECONDS);
}

export type RetryDecision = { retry: true; delaySeconds: number } | { retry: false; reason: string };

/**
 * After a deferred attempt: retry later, or give up because the message reached the attempt limit or its
 * maximum age. The wait never carries the next attempt past the maximum age.
 */
export function decideRetry(
  attempt: number,
  createdAt: Date,
  now: Date,
  retry: RetrySettings,
  random: () => number = Math.random,
): RetryDecision {
  if (attempt >= retry.maxAttempts) {
    return { retry: false, reason: `gave up after ${attempt} attempts (limit ${retry.maxAttempts})` };
  }
  const ageSeconds = (now.getTime() - createdAt.getTime()) / 1000;
  const leftSeconds = retry.maxAgeSeconds - ageSeconds;
  if (leftSeconds <= 0) {
    return {
      retry: false,
      reason: `gave up after ${Math.floor(ageSeconds)} s in the queue (limit ${retry.maxAgeSeconds} s)`,
    };
  }
  const delaySeconds = Math.min(backoffSeconds(attempt, retry, random), Math.ceil(leftSeconds));
  return { retry: true, delaySeconds };
}

// The relay-wide rate limit and throttling pause (DESIGN "Retry policy", issue 7 §3), as pure functions of a
// small shared state, plus the port every worker uses to reach that state (lib/aws/relay-gate.ts keeps it in
// the ledger table). Modelled on KumoMTA's traffic shaping: a rate per relay, and a suspension when the
// relay's replies say it is throttling us (lib/delivery/throttle.ts decides which replies those are).
//
// The rate is a GCRA (generic cell rate algorithm, ITU-T I.371; the "virtual scheduling" form): the state is
// one number, the theoretical arrival time `tatMs` of the next permit if permits were spaced exactly one
// interval T = 1000 / rate apart. Taking n permits at time t moves it to max(tat, t) + n·T, and is allowed
// while that is no more than burst·T ahead of t. So an idle relay lends `burst` permits at once, and over any
// window of W ms at most burst + W·rate/1000 are granted (≤ rate + burst per second), whatever the pattern
// of requests. One number, one conditional write per grant: cheaper to share than a token count plus a
// refill time, and exactly equivalent to a token bucket of depth `burst`.
//
// The pause: a throttling reply sets `pausedUntilMs` for every worker, for base·2^level (capped), and raises
// the level, so a relay that throttles again right after a pause waits longer each time. The pause ends by
// time alone; the level goes back to 0 only when a batch got through after the pause (`recovered`).

/** The shared state of one relay. */
export interface RelayState {
  /** GCRA theoretical arrival time, epoch ms (may be fractional). 0 or in the past: the full burst is free. */
  tatMs: number;
  /** Epoch ms until which no worker may send; in the past (or 0): not paused. */
  pausedUntilMs: number;
  /** Pauses in a row without a recovery in between; the next pause lasts pauseBaseMs·2^pauseLevel. */
  pauseLevel: number;
  /** What caused the current (or last) pause, for display: e.g. the relay's reply. */
  pauseReason?: string;
}

export interface RelayLimitSettings {
  /** Permits (messages) per second across every worker; undefined: unlimited (only pauses apply). */
  ratePerSecond?: number;
  /** Permits available at once after an idle period; default max(1, ceil(ratePerSecond)). */
  burst: number;
  /** The first pause, ms; default 5,000. */
  pauseBaseMs: number;
  /** The longest pause, ms; default 300,000. */
  pauseMaxMs: number;
}

export interface AcquireResult {
  /** Permits to use now, 0 ≤ granted ≤ wanted. */
  granted: number;
  /** With granted 0: ms until asking again can succeed (the pause's end, or the next permit). 0 otherwise. */
  retryAfterMs: number;
  /** The pause's end while the relay is paused. */
  pausedUntil?: Date;
}

export interface RelayStatus {
  pausedUntil?: Date;
  pauseLevel: number;
  reason?: string;
}

/** The port: the relay's limit and pause, shared by every worker. */
export interface RelayGate {
  /** Up to `wanted` permits to send now. granted 0 → retryAfterMs says when to ask again (pause end or next token). */
  acquire(wanted: number, now?: Date): Promise<AcquireResult>;
  /** A throttling reply was seen: pause the relay for every worker, for a growing interval. Returns the pause's end. */
  pause(reason: string, now?: Date): Promise<Date>;
  /** A batch went through without throttling after a pause: the pause level goes back to 0 (no write when already 0). */
  recovered(now?: Date): Promise<void>;
  /** The current pause, if any (the worker's first look, and npm run dev's inbox). */
  status(now?: Date): Promise<RelayStatus>;
  /** The most permits the limit can give out within `ms` (burst + rate × ms); Infinity without a limit.
   *  A worker claims no more messages than this, so what it claims it can send. */
  permitsWithin(ms: number): number;
}

/** See RelayGate.permitsWithin. */
export function permitsWithin(settings: RelayLimitSettings, ms: number): number {
  if (settings.ratePerSecond === undefined) return Number.POSITIVE_INFINITY;
  return settings.burst + Math.floor((settings.ratePerSecond * Math.max(0, ms)) / 1000);
}

export const DEFAULT_PAUSE_BASE_MS = 5_000;
export const DEFAULT_PAUSE_MAX_MS = 300_000;

/**
 * Fills in the defaults and checks every value once, up front, with a message that names it. `burst` defaults
 * to one second's worth of permits (at least 1), so a relay limited to 0.5/s still lets one message through.
 */
export function relayLimitSettings(options: Partial<RelayLimitSettings> = {}): RelayLimitSettings {
  const { ratePerSecond } = options;
  if (ratePerSecond !== undefined && !(Number.isFinite(ratePerSecond) && ratePerSecond > 0)) {
    throw new RangeError(
      `ratePerSecond must be a positive number or undefined (unlimited), got ${ratePerSecond}`,
    );
  }
  const burst = options.burst ?? (ratePerSecond === undefined ? 1 : Math.max(1, Math.ceil(ratePerSecond)));
  if (!(Number.isInteger(burst) && burst >= 1)) {
    throw new RangeError(`burst must be an integer ≥ 1, got ${burst}`);
  }
  const pauseBaseMs = options.pauseBaseMs ?? DEFAULT_PAUSE_BASE_MS;
  if (!(Number.isFinite(pauseBaseMs) && pauseBaseMs > 0)) {
    throw new RangeError(`pauseBaseMs must be a positive number of milliseconds, got ${pauseBaseMs}`);
  }
  const pauseMaxMs = options.pauseMaxMs ?? Math.max(DEFAULT_PAUSE_MAX_MS, pauseBaseMs);
  if (!(Number.isFinite(pauseMaxMs) && pauseMaxMs >= pauseBaseMs)) {
    throw new RangeError(`pauseMaxMs must be a number ≥ pauseBaseMs (${pauseBaseMs}), got ${pauseMaxMs}`);
  }
  return { ...(ratePerSecond === undefined ? {} : { ratePerSecond }), burst, pauseBaseMs, pauseMaxMs };
}

/** A relay nobody has written yet: not paused, the full burst available. */
export function initialRelayState(): RelayState {
  return { tatMs: 0, pausedUntilMs: 0, pauseLevel: 0 };
}

/**
 * Float slack for the GCRA comparisons: T = 1000/3 is not exact, and three permits at T each must still fit
 * a burst of 3. A microsecond is far below anything a clock or a relay can tell apart.
 */
const EPSILON_MS = 1e-3;

/**
 * Takes up to `wanted` permits at `nowMs`. Returns the state to store (the same object when nothing changed:
 * granted 0, or no rate limit, so the caller knows no write is needed) and what to tell the worker.
 */
export function takePermits(
  state: RelayState,
  wanted: number,
  nowMs: number,
  settings: RelayLimitSettings,
): { state: RelayState } & AcquireResult {
  if (nowMs < state.pausedUntilMs) {
    return {
      state,
      granted: 0,
      retryAfterMs: Math.ceil(state.pausedUntilMs - nowMs),
      pausedUntil: new Date(state.pausedUntilMs),
    };
  }
  const want = Number.isNaN(wanted) ? 0 : Math.max(0, Math.floor(wanted));
  if (want === 0) return { state, granted: 0, retryAfterMs: 0 };
  const rate = settings.ratePerSecond;
  if (rate === undefined) return { state, granted: want, retryAfterMs: 0 };

  const interval = 1000 / rate;
  const tolerance = settings.burst * interval;
  const start = Math.max(state.tatMs, nowMs);
  // Permits that fit: the largest n with start + n·T − now ≤ burst·T.
  const room = Math.floor((nowMs + tolerance - start + EPSILON_MS) / interval);
  const granted = Math.min(want, Math.max(0, room));
  if (granted === 0) {
    // The next permit fits once now' ≥ tat + T − burst·T.
    const retryAfterMs = Math.max(1, Math.ceil(start + interval - tolerance - nowMs));
    return { state, granted: 0, retryAfterMs };
  }
  return { state: { ...state, tatMs: start + granted * interval }, granted, retryAfterMs: 0 };
}

/** How long pause number `level + 1` lasts: pauseBaseMs·2^level, at most pauseMaxMs. */
export function pauseDurationMs(
  level: number,
  settings: Pick<RelayLimitSettings, 'pauseBaseMs' | 'pauseMaxMs'>,
) {
  // 2^level overflows to Infinity for absurd levels; min() still caps it.
  return Math.min(settings.pauseMaxMs, settings.pauseBaseMs * 2 ** Math.max(0, level));
}

/**
 * A throttling reply at `nowMs`. When the relay is not paused, a new pause starts: it lasts
 * pauseDurationMs(level) and the level rises by one. When it is already paused the reply belongs to the same
 * episode — every worker that was mid-batch when the relay started refusing sees its own 421 — so nothing
 * changes (the same object is returned: no write): a hundred workers hitting one wall together must not
 * raise the level a hundred times and jump straight to the cap, and a pause is never shortened. The level
 * still grows when the relay throttles again after a pause has ended and before `recoverFromPause`.
 */
export function startPause(
  state: RelayState,
  reason: string,
  nowMs: number,
  settings: Pick<RelayLimitSettings, 'pauseBaseMs' | 'pauseMaxMs'>,
): RelayState {
  if (nowMs < state.pausedUntilMs) return state;
  const until = nowMs + pauseDurationMs(state.pauseLevel, settings);
  return {
    ...state,
    pausedUntilMs: Math.max(state.pausedUntilMs, until),
    pauseLevel: state.pauseLevel + 1,
    pauseReason: reason,
  };
}

/**
 * A batch went through without throttling at `nowMs`: the level goes back to 0. Unchanged (the same object:
 * no write) when it is 0 already, or while a pause is still running — a batch that got its permits before
 * another worker's pause says nothing about the relay now.
 */
export function recoverFromPause(state: RelayState, nowMs: number): RelayState {
  if (state.pauseLevel === 0 || nowMs < state.pausedUntilMs) return state;
  return { ...state, pauseLevel: 0 };
}

/** The pause in force at `nowMs`, if any, for display. */
export function relayStatus(state: RelayState, nowMs: number): RelayStatus {
  const paused = nowMs < state.pausedUntilMs;
  return {
    ...(paused ? { pausedUntil: new Date(state.pausedUntilMs) } : {}),
    pauseLevel: state.pauseLevel,
    ...(paused && state.pauseReason !== undefined ? { reason: state.pauseReason } : {}),
  };
}

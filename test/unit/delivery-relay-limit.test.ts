// The relay limit's pure rules (lib/delivery/relay-limit.ts): GCRA grants, the window bound as a property,
// the pause's growth, cap, no shortening, and its end by time alone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  initialRelayState,
  pauseDurationMs,
  type RelayLimitSettings,
  type RelayState,
  recoverFromPause,
  relayLimitSettings,
  relayStatus,
  startPause,
  takePermits,
} from '../../lib/delivery/relay-limit.ts';

const t0 = Date.UTC(2030, 0, 1); // realistic epoch ms: float precision is part of what is tested
const limited = (ratePerSecond: number, burst?: number): RelayLimitSettings =>
  relayLimitSettings({ ratePerSecond, ...(burst === undefined ? {} : { burst }) });

describe('relayLimitSettings', () => {
  it('defaults burst to one second of permits (at least 1) and the pause to 5 s … 5 min', () => {
    expect(relayLimitSettings({ ratePerSecond: 10 })).toEqual({
      ratePerSecond: 10,
      burst: 10,
      pauseBaseMs: 5_000,
      pauseMaxMs: 300_000,
    });
    expect(relayLimitSettings({ ratePerSecond: 2.5 }).burst).toBe(3);
    expect(relayLimitSettings({ ratePerSecond: 0.2 }).burst).toBe(1);
    expect(relayLimitSettings({})).toEqual({ burst: 1, pauseBaseMs: 5_000, pauseMaxMs: 300_000 });
  });

  it('refuses values that make no sense, naming them', () => {
    expect(() => relayLimitSettings({ ratePerSecond: 0 })).toThrow(/ratePerSecond/);
    expect(() => relayLimitSettings({ ratePerSecond: Number.POSITIVE_INFINITY })).toThrow(/ratePerSecond/);
    expect(() => relayLimitSettings({ ratePerSecond: 5, burst: 0 })).toThrow(/burst/);
    expect(() => relayLimitSettings({ ratePerSecond: 5, burst: 1.5 })).toThrow(/burst/);
    expect(() => relayLimitSettings({ pauseBaseMs: -1 })).toThrow(/pauseBaseMs/);
    expect(() => relayLimitSettings({ pauseBaseMs: 10_000, pauseMaxMs: 5_000 })).toThrow(/pauseMaxMs/);
  });
});

describe('takePermits (GCRA)', () => {
  it('lends the whole burst to an idle relay, then one permit per interval', () => {
    const settings = limited(10, 5); // interval 100 ms
    const first = takePermits(initialRelayState(), 8, t0, settings);
    expect(first).toMatchObject({ granted: 5, retryAfterMs: 0 });
    expect(first.state.tatMs).toBe(t0 + 500);

    const empty = takePermits(first.state, 1, t0, settings);
    expect(empty).toMatchObject({ granted: 0, retryAfterMs: 100 });
    expect(empty.state).toBe(first.state); // nothing to write

    expect(takePermits(first.state, 3, t0 + 99, settings).granted).toBe(0);
    expect(takePermits(first.state, 3, t0 + 100, settings).granted).toBe(1);
    expect(takePermits(first.state, 3, t0 + 250, settings).granted).toBe(2);
  });

  it('grants as many as fit, never more than wanted', () => {
    const settings = limited(10, 5);
    expect(takePermits(initialRelayState(), 3, t0, settings).granted).toBe(3);
    const some = takePermits(initialRelayState(), 4, t0, settings);
    expect(takePermits(some.state, 4, t0, settings).granted).toBe(1);
  });

  it('counts an interval that is not a whole number of ms exactly (3/s: three permits fill a burst of 3)', () => {
    const settings = limited(3);
    let state = initialRelayState();
    for (let i = 0; i < 3; i++) {
      const taken = takePermits(state, 1, t0, settings);
      expect(taken.granted).toBe(1);
      state = taken.state;
    }
    expect(takePermits(state, 1, t0, settings).granted).toBe(0);
    expect(takePermits(state, 3, t0 + 1000, settings).granted).toBe(3);
  });

  it('below one per second waits whole intervals', () => {
    const settings = limited(0.5); // burst 1, interval 2 s
    const first = takePermits(initialRelayState(), 5, t0, settings);
    expect(first.granted).toBe(1);
    expect(takePermits(first.state, 1, t0, settings).retryAfterMs).toBe(2000);
    expect(takePermits(first.state, 1, t0 + 2000, settings).granted).toBe(1);
  });

  it('does not bank idle time beyond the burst', () => {
    const settings = limited(10, 5);
    const first = takePermits(initialRelayState(), 5, t0, settings);
    expect(takePermits(first.state, 100, t0 + 60_000, settings).granted).toBe(5);
  });

  it('grants nothing for 0, negative, below-1 or NaN wants, and writes nothing', () => {
    const state = initialRelayState();
    for (const wanted of [0, -3, 0.7, Number.NaN]) {
      const taken = takePermits(state, wanted, t0, limited(10));
      expect(taken).toMatchObject({ granted: 0, retryAfterMs: 0 });
      expect(taken.state).toBe(state);
    }
  });

  it('without a rate grants everything and leaves the state as it was (no write)', () => {
    const state = initialRelayState();
    const taken = takePermits(state, 10_000, t0, relayLimitSettings({}));
    expect(taken.granted).toBe(10_000);
    expect(taken.state).toBe(state);
  });

  it('grants nothing while paused, with the time left and the end', () => {
    const paused: RelayState = { tatMs: 0, pausedUntilMs: t0 + 4_000, pauseLevel: 1 };
    for (const settings of [limited(10), relayLimitSettings({})]) {
      const taken = takePermits(paused, 5, t0 + 1_500, settings);
      expect(taken).toMatchObject({ granted: 0, retryAfterMs: 2_500, pausedUntil: new Date(t0 + 4_000) });
      expect(taken.state).toBe(paused);
    }
  });

  /** Grants (time, count) of a sequence of acquires, starting from an idle relay. */
  function run(settings: RelayLimitSettings, steps: Array<{ at: number; wanted: number }>) {
    let state = initialRelayState();
    const grants: Array<{ at: number; granted: number }> = [];
    for (const { at, wanted } of steps) {
      const taken = takePermits(state, wanted, at, settings);
      state = taken.state;
      if (taken.granted > 0) grants.push({ at, granted: taken.granted });
    }
    return grants;
  }

  const rates = fc.constantFrom(0.5, 1, 2.5, 3, 7, 10, 33.3, 100, 250);
  const bursts = fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined });
  const steps = fc.array(
    fc.record({
      gap: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 1500 }),
        fc.double({ min: 0, max: 50, noNaN: true }),
      ),
      wanted: fc.integer({ min: 0, max: 60 }),
    }),
    { maxLength: 200 },
  );

  it('property: permits granted in any 1 s window ≤ rate + burst', () => {
    fc.assert(
      fc.property(rates, bursts, steps, (rate, burst, sequence) => {
        const settings = limited(rate, burst);
        let at = t0;
        const grants = run(
          settings,
          sequence.map(({ gap, wanted }) => {
            at += gap;
            return { at, wanted };
          }),
        );
        for (const { at: start } of grants) {
          const inWindow = grants
            .filter((g) => g.at >= start && g.at < start + 1000)
            .reduce((sum, g) => sum + g.granted, 0);
          expect(inWindow).toBeLessThanOrEqual(rate + settings.burst);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('property: even with clocks out of order (workers disagree), the total ≤ burst + rate × span', () => {
    fc.assert(
      fc.property(
        rates,
        bursts,
        fc.array(
          fc.record({ at: fc.integer({ min: 0, max: 10_000 }), wanted: fc.integer({ min: 0, max: 60 }) }),
          {
            minLength: 1,
            maxLength: 200,
          },
        ),
        (rate, burst, sequence) => {
          const settings = limited(rate, burst);
          const grants = run(
            settings,
            sequence.map(({ at, wanted }) => ({ at: t0 + at, wanted })),
          );
          const total = grants.reduce((sum, g) => sum + g.granted, 0);
          const times = sequence.map((s) => s.at);
          const span = Math.max(...times) - Math.min(...times);
          expect(total).toBeLessThanOrEqual(settings.burst + (rate * span) / 1000 + 1e-9);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a worker that asks again after retryAfterMs gets the full rate (nothing lost to rounding)', () => {
    fc.assert(
      fc.property(rates, bursts, fc.integer({ min: 1, max: 20 }), (rate, burst, seconds) => {
        const settings = limited(rate, burst);
        const end = t0 + seconds * 1000;
        let state = initialRelayState();
        let total = 0;
        for (let at = t0; at <= end; ) {
          const taken = takePermits(state, 1_000, at, settings);
          state = taken.state;
          total += taken.granted;
          at += taken.retryAfterMs;
          if (taken.granted === 0) expect(taken.retryAfterMs).toBeGreaterThan(0);
        }
        const ideal = settings.burst + rate * seconds;
        expect(total).toBeLessThanOrEqual(ideal);
        // retryAfterMs is rounded up to whole ms: with a burst of 1 nothing absorbs that, so each permit may
        // come up to 1 ms late; a larger burst absorbs it.
        const interval = 1000 / rate;
        const worst = settings.burst + (seconds * 1000) / (interval + (settings.burst === 1 ? 1 : 0));
        expect(total).toBeGreaterThanOrEqual(Math.floor(worst) - 1);
      }),
      { numRuns: 100 },
    );
  });
});

describe('the pause', () => {
  const settings = relayLimitSettings({ ratePerSecond: 10, pauseBaseMs: 5_000, pauseMaxMs: 60_000 });

  it('starts at the base and records the reason', () => {
    const paused = startPause(initialRelayState(), '421 4.7.0 slow down', t0, settings);
    expect(paused).toEqual({
      tatMs: 0,
      pausedUntilMs: t0 + 5_000,
      pauseLevel: 1,
      pauseReason: '421 4.7.0 slow down',
    });
  });

  it('doubles each time the relay throttles again after a pause, up to the cap', () => {
    let state = initialRelayState();
    let at = t0;
    const lengths: number[] = [];
    for (let i = 0; i < 7; i++) {
      state = startPause(state, `throttled ${i}`, at, settings);
      lengths.push(state.pausedUntilMs - at);
      at = state.pausedUntilMs + 1; // throttled again right after the pause ended
    }
    expect(lengths).toEqual([5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
    expect(state.pauseLevel).toBe(7);
    expect(pauseDurationMs(10_000, settings)).toBe(60_000); // 2^10000 is Infinity: still capped
  });

  it('a throttling reply during a pause is the same episode: no growth, no write, never shortened', () => {
    const first = startPause(initialRelayState(), 'first', t0, settings);
    const again = startPause(first, 'second', t0 + 4_999, settings);
    expect(again).toBe(first);

    // A pause set further out (another worker with longer settings) is not cut short by a shorter one.
    const long: RelayState = { tatMs: 0, pausedUntilMs: t0 + 200_000, pauseLevel: 0 };
    expect(startPause(long, 'short', t0, settings)).toBe(long);
  });

  it('ends by time alone', () => {
    const paused = startPause(initialRelayState(), 'slow down', t0, settings);
    expect(takePermits(paused, 1, t0 + 4_999, settings)).toMatchObject({ granted: 0, retryAfterMs: 1 });
    expect(takePermits(paused, 1, t0 + 5_000, settings).granted).toBe(1);
    expect(relayStatus(paused, t0 + 4_999)).toEqual({
      pausedUntil: new Date(t0 + 5_000),
      pauseLevel: 1,
      reason: 'slow down',
    });
    expect(relayStatus(paused, t0 + 5_000)).toEqual({ pauseLevel: 1 });
  });

  it('recovery resets the level after the pause, not during it, and is a no-op at level 0', () => {
    const paused = startPause(initialRelayState(), 'slow down', t0, settings);
    expect(recoverFromPause(paused, t0 + 1_000)).toBe(paused);
    const recovered = recoverFromPause(paused, t0 + 6_000);
    expect(recovered).toMatchObject({ pauseLevel: 0, pausedUntilMs: t0 + 5_000 });
    expect(recoverFromPause(recovered, t0 + 7_000)).toBe(recovered);
    // The next pause starts at the base again.
    expect(startPause(recovered, 'again', t0 + 8_000, settings).pausedUntilMs).toBe(t0 + 13_000);
  });
});

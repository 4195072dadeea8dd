import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backoffSeconds,
  decideRetry,
  MAX_DEFERRAL_SECONDS,
  MAX_VISIBILITY_SECONDS,
} from '../../lib/delivery/backoff.ts';

const defaults = { baseSeconds: 300, maxSeconds: 14_400, maxAgeSeconds: 172_800, maxAttempts: 30 };

describe('backoffSeconds', () => {
  it('doubles the ceiling per attempt from the base, drawing from its upper half', () => {
    expect(backoffSeconds(1, defaults, () => 0)).toBe(150);
    expect(backoffSeconds(1, defaults, () => 1)).toBe(300);
    expect(backoffSeconds(2, defaults, () => 1)).toBe(600);
    expect(backoffSeconds(4, defaults, () => 1)).toBe(2400);
  });

  it('is capped at maxSeconds', () => {
    expect(backoffSeconds(10, defaults, () => 1)).toBe(14_400);
    expect(backoffSeconds(1000, defaults, () => 0.5)).toBe(10_800);
  });

  it('at a 12 h maxSeconds, still leaves room for the time the record was in flight before its visibility is set', () => {
    const twelveHours = {
      ...defaults,
      baseSeconds: MAX_VISIBILITY_SECONDS,
      maxSeconds: MAX_VISIBILITY_SECONDS,
    };
    expect(backoffSeconds(1, twelveHours, () => 1)).toBe(MAX_DEFERRAL_SECONDS);
    // 15 min of Lambda run + 5 min of batching window.
    expect(MAX_VISIBILITY_SECONDS - MAX_DEFERRAL_SECONDS).toBe(1200);
  });

  it('never exceeds the deferral limit nor goes below half the ceiling', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (attempt, base, max, r) => {
          const retry = { ...defaults, baseSeconds: base, maxSeconds: max };
          const delay = backoffSeconds(attempt, retry, () => r);
          const ceiling = Math.min(max, base * 2 ** Math.min(attempt - 1, 30), MAX_DEFERRAL_SECONDS);
          expect(Number.isInteger(delay)).toBe(true);
          expect(delay).toBeLessThanOrEqual(Math.min(Math.ceil(ceiling), MAX_DEFERRAL_SECONDS));
          expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        },
      ),
    );
  });
});

describe('decideRetry', () => {
  const created = new Date('2026-11-28T10:00:00Z');
  const at = (seconds: number) => new Date(created.getTime() + seconds * 1000);

  it('retries after the back-off while under both limits', () => {
    expect(decideRetry(1, created, at(10), defaults, () => 1)).toEqual({ retry: true, delaySeconds: 300 });
  });

  it('gives up at the attempt limit', () => {
    const decision = decideRetry(30, created, at(10), defaults);
    expect(decision.retry).toBe(false);
    expect(decision.retry === false && decision.reason).toMatch(/30 attempts/);
  });

  it('gives up at the maximum age', () => {
    const decision = decideRetry(3, created, at(172_800), defaults);
    expect(decision.retry).toBe(false);
    expect(decision.retry === false && decision.reason).toMatch(/172800 s/);
  });

  it('never schedules the next attempt past the maximum age', () => {
    expect(decideRetry(12, created, at(172_800 - 20), defaults, () => 1)).toEqual({
      retry: true,
      delaySeconds: 20,
    });
  });
});

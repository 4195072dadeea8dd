import { describe, expect, it } from 'vitest';
import { ApiError } from '../../scripts/cli/api-client.ts';

describe('ApiError.transient: which API answers the CLI tries again', () => {
  it.each([
    [0, 'network_error', true],
    [429, 'throttled', true],
    [500, 'internal_error', true],
    [503, 'unavailable', true],
    [409, 'idempotency_key_in_use', true],
    [409, 'conflict', false],
    [400, 'validation_failed', false],
    [404, 'not_found', false],
    [413, 'payload_too_large', false],
    [422, 'idempotency_key_reused', false],
  ])('HTTP %i %s → %s', (status, code, transient) => {
    expect(new ApiError(status, code, 'x').transient).toBe(transient);
  });
});

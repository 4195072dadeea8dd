// readJsonBody's nesting bound: deep JSON is refused with a 400 before any recursive walk can overflow the
// stack; nestingDepth itself never recurses.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestingDepth, readJsonBody } from '../../functions/api/request-body.ts';

const nested = (depth: number): string => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

const event = (body: string): APIGatewayProxyEventV2 =>
  ({
    headers: { 'content-type': 'application/json' },
    body,
    isBase64Encoded: false,
  }) as unknown as APIGatewayProxyEventV2;

describe('nestingDepth', () => {
  it.each([
    [1, 0],
    ['x', 0],
    [null, 0],
    [[], 1],
    [{}, 1],
    [{ a: [1, { b: 2 }] }, 3],
    [[[], [[[]]], []], 4],
  ])('%j is %i deep', (value, depth) => {
    expect(nestingDepth(value, 100)).toBe(depth);
  });

  it('walks 100,000 levels without overflowing the stack, and stops counting past the limit', () => {
    const deep = JSON.parse(nested(100_000));

    expect(nestingDepth(deep, Number.POSITIVE_INFINITY)).toBe(100_000);
    expect(nestingDepth(deep, 10)).toBe(11);
  });
});

describe('readJsonBody nesting bound', () => {
  it(`accepts ${MAX_JSON_DEPTH} levels`, () => {
    expect(readJsonBody(event(nested(MAX_JSON_DEPTH)), 1024 * 1024)).toMatchObject({ ok: true });
  });

  it.each([MAX_JSON_DEPTH + 1, 10_000])('refuses %i levels with 400 invalid_json', (depth) => {
    const result = readJsonBody(event(nested(depth)), 1024 * 1024);

    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.response.statusCode).toBe(400);
    expect(JSON.parse(result.response.body)).toMatchObject({ error: 'invalid_json' });
  });
});

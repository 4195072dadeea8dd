// The suppression list's routes: PUT / GET / DELETE /v1/suppressions/{address} and
// GET /v1/suppressions?source=&cursor=&limit=. Addresses are validated like recipients (400 naming the
// problem) and keyed as lib/delivery/suppression.ts says (`*@domain` for a whole domain).
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { InvalidCursorError } from '../../lib/aws/ledger-store.ts';
import {
  SUPPRESSION_SOURCES,
  type SuppressionEntry,
  type SuppressionSource,
  suppressionAddress,
} from '../../lib/delivery/suppression.ts';
import { CONTROL } from '../../lib/message/rules.ts';
import type { ApiDeps } from './deps.ts';
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from './list.ts';
import { readJsonBody } from './request-body.ts';
import { type ApiResponse, type Issue, json, problem } from './responses.ts';

const MAX_REASON_CHARS = 500;
const LIST_PARAMETERS = new Set(['source', 'limit', 'cursor']);

function invalidAddress(error: string): ApiResponse {
  return problem('validation_failed', 'the address is not valid', {
    issues: [{ path: 'address', message: error }],
  });
}

export async function handleSuppressionGet(address: string, deps: ApiDeps): Promise<ApiResponse> {
  const key = suppressionAddress(address);
  if (!key.ok) return invalidAddress(key.error);
  const entry = await deps.suppressions.get(key.address);
  return entry ? json(200, entry) : problem('not_found', `${key.address} is not on the suppression list`);
}

/** Adds (or replaces) a manual entry; the body `{ reason? }` is optional. */
export async function handleSuppressionPut(
  address: string,
  event: APIGatewayProxyEventV2,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const key = suppressionAddress(address);
  if (!key.ok) return invalidAddress(key.error);
  let reason = 'added by hand';
  if ((event.body ?? '') !== '') {
    const body = readJsonBody(event, 16 * 1024);
    if (!body.ok) return body.response;
    const issues = reasonIssues(body.value);
    if (issues.length > 0) return problem('validation_failed', 'the request has invalid fields', { issues });
    reason = (body.value as { reason?: string }).reason ?? reason;
  }
  const entry: SuppressionEntry = {
    address: key.address,
    source: 'manual',
    reason,
    createdAt: (deps.now?.() ?? new Date()).toISOString(),
  };
  await deps.suppressions.put(entry);
  return json(200, entry);
}

function reasonIssues(value: unknown): Issue[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [{ path: '', message: 'the request must be a JSON object: { "reason"?: string }' }];
  const issues: Issue[] = Object.keys(value)
    .filter((name) => name !== 'reason')
    .map((name) => ({ path: name, message: 'unknown field' }));
  const { reason } = value as { reason?: unknown };
  if (
    reason !== undefined &&
    (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS || CONTROL.test(reason))
  )
    issues.push({
      path: 'reason',
      message: `must be a string of at most ${MAX_REASON_CHARS} characters without control characters`,
    });
  return issues;
}

/** 204 whether or not the address was on the list: after it, it is not. */
export async function handleSuppressionDelete(address: string, deps: ApiDeps): Promise<ApiResponse> {
  const key = suppressionAddress(address);
  if (!key.ok) return invalidAddress(key.error);
  await deps.suppressions.remove(key.address);
  return { statusCode: 204, body: '' };
}

export async function handleSuppressionList(
  query: Record<string, string | undefined>,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const issues: Issue[] = Object.keys(query)
    .filter((name) => !LIST_PARAMETERS.has(name))
    .map((name) => ({ path: name, message: `unknown parameter; use ${[...LIST_PARAMETERS].join(', ')}` }));
  const { source, limit, cursor } = query;
  if (source !== undefined && !(SUPPRESSION_SOURCES as readonly string[]).includes(source))
    issues.push({ path: 'source', message: `must be one of ${SUPPRESSION_SOURCES.join(', ')}` });
  const validLimit =
    limit === undefined || (/^\d{1,3}$/.test(limit) && Number(limit) >= 1 && Number(limit) <= MAX_LIST_LIMIT);
  if (!validLimit)
    issues.push({ path: 'limit', message: `must be a whole number from 1 to ${MAX_LIST_LIMIT}` });
  if (issues.length > 0) return problem('validation_failed', 'the query has invalid parameters', { issues });
  try {
    const page = await deps.suppressions.list({
      ...(source ? { source: source as SuppressionSource } : {}),
      limit: limit === undefined ? DEFAULT_LIST_LIMIT : Number(limit),
      ...(cursor ? { cursor } : {}),
    });
    return json(200, { data: page.entries, nextCursor: page.cursor ?? null });
  } catch (error) {
    if (error instanceof InvalidCursorError)
      return problem('validation_failed', 'the query has invalid parameters', {
        issues: [{ path: 'cursor', message: 'is not a cursor this API returned' }],
      });
    throw error;
  }
}

// GET /v1/messages?state=&tag=key:value&since=&until=&limit=&cursor=: messages newest first, from the
// ledger's state index (one partition per state, merged), each as a summary with its recipients counted.
// Each caller sees only its own messages (READ_ALL_PRINCIPALS: every one).
// A filter the index cannot apply (a tag, the caller, a state a message left while being claimed) is applied to the
// records read, and further index pages are read until the page is full or MAX_INDEX_PAGES were read; a
// short page with a nextCursor then means "more may follow", as in DynamoDB's own API.
import { LISTED_STATES } from '../../lib/aws/ledger-store.ts';
import type { MessageState, RecipientState, StatusRecord } from '../../lib/delivery/ports.ts';
import { type Caller, mayRead } from './caller.ts';
import type { ApiDeps } from './deps.ts';
import { type ApiResponse, type Issue, json, problem } from './responses.ts';

export const DEFAULT_LIST_LIMIT = 20;
export const MAX_LIST_LIMIT = 100;
/** Index pages one request reads at most while filters drop records. */
const MAX_INDEX_PAGES = 10;

const STATES: readonly MessageState[] = [...LISTED_STATES, 'sending'];
const RECIPIENT_STATES: readonly RecipientState[] = [
  'queued',
  'delivered',
  'deferred',
  'failed',
  'cancelled',
  'suppressed',
];
const PARAMETERS = new Set(['state', 'tag', 'since', 'until', 'limit', 'cursor']);
const TAG = /^([A-Za-z0-9_.:-]{1,64}?):(.*)$/s;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

export interface ListParameters {
  state?: MessageState;
  tag?: { key: string; value: string };
  since?: string;
  until?: string;
  limit: number;
  cursor?: string;
}

export interface MessageSummary {
  id: string;
  state: MessageState;
  subject?: string;
  createdAt: string;
  updatedAt: string;
  sendAt?: string;
  tags?: Record<string, string>;
  recipients: Record<RecipientState, number>;
}

/** The query string → list parameters, or the problems with it, each naming its parameter. */
export function parseListParameters(
  query: Record<string, string | undefined>,
): { ok: true; value: ListParameters } | { ok: false; issues: Issue[] } {
  const issues: Issue[] = [];
  const value: ListParameters = { limit: DEFAULT_LIST_LIMIT };
  for (const name of Object.keys(query))
    if (!PARAMETERS.has(name))
      issues.push({ path: name, message: `unknown parameter; use ${[...PARAMETERS].join(', ')}` });
  const { state, tag, since, until, limit, cursor } = query;
  if (state !== undefined) {
    if ((STATES as readonly string[]).includes(state)) value.state = state as MessageState;
    else issues.push({ path: 'state', message: `must be one of ${STATES.join(', ')}` });
  }
  if (tag !== undefined) {
    const m = TAG.exec(tag);
    if (m) value.tag = { key: m[1]!, value: m[2]! };
    else issues.push({ path: 'tag', message: 'must be key:value (the key 1-64 of A-Z a-z 0-9 _ . : -)' });
  }
  for (const [name, given] of [
    ['since', since],
    ['until', until],
  ] as const) {
    if (given === undefined) continue;
    if (RFC3339.test(given) && !Number.isNaN(Date.parse(given))) value[name] = new Date(given).toISOString();
    else issues.push({ path: name, message: 'must be an RFC 3339 date-time, e.g. 2026-11-28T10:00:00Z' });
  }
  if (value.since && value.until && value.since > value.until)
    issues.push({ path: 'until', message: 'must not be before since' });
  if (limit !== undefined) {
    if (/^\d{1,3}$/.test(limit) && Number(limit) >= 1 && Number(limit) <= MAX_LIST_LIMIT)
      value.limit = Number(limit);
    else issues.push({ path: 'limit', message: `must be a whole number from 1 to ${MAX_LIST_LIMIT}` });
  }
  if (cursor !== undefined) value.cursor = cursor;
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value };
}

export async function handleList(
  query: Record<string, string | undefined>,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const parsed = parseListParameters(query);
  if (!parsed.ok) return problem('bad_request', 'invalid query parameters', { issues: parsed.issues });
  const params = parsed.value;
  // A message being sent is listed under the state it had when it was claimed.
  const states =
    params.state === undefined
      ? LISTED_STATES
      : params.state === 'sending'
        ? (['queued', 'scheduled', 'deferred'] as const)
        : [params.state];
  const data: MessageSummary[] = [];
  let cursor = params.cursor;
  for (let page = 0; page < MAX_INDEX_PAGES && data.length < params.limit; page++) {
    let listed: { ids: string[]; cursor?: string };
    try {
      listed = await deps.status.listIds({
        states,
        limit: params.limit - data.length,
        ...(params.since ? { since: params.since } : {}),
        ...(params.until ? { until: params.until } : {}),
        ...(cursor ? { cursor } : {}),
      });
    } catch (error) {
      if ((error as { code?: string }).code !== 'INVALID_CURSOR') throw error;
      return problem('bad_request', 'invalid query parameters', {
        issues: [{ path: 'cursor', message: 'is not a cursor this API returned' }],
      });
    }
    const records = await deps.status.getMany(listed.ids);
    for (const id of listed.ids) {
      const record = records.get(id)?.value;
      if (record && matches(record, params) && mayRead(caller, record, deps.config.readAllPrincipals))
        data.push(summary(record));
    }
    cursor = listed.cursor;
    if (!cursor) break;
  }
  return json(200, { data, nextCursor: cursor ?? null });
}

function matches(record: StatusRecord, params: ListParameters): boolean {
  if (params.state !== undefined && record.state !== params.state) return false;
  if (params.tag !== undefined && record.tags?.[params.tag.key] !== params.tag.value) return false;
  return true;
}

export function summary(record: StatusRecord): MessageSummary {
  const recipients = Object.fromEntries(RECIPIENT_STATES.map((s) => [s, 0])) as Record<
    RecipientState,
    number
  >;
  for (const r of record.recipients) recipients[r.state] += 1;
  return {
    id: record.id,
    state: record.state,
    ...(record.subject !== undefined ? { subject: record.subject } : {}),
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    ...(record.sendAt !== undefined ? { sendAt: record.sendAt } : {}),
    ...(record.tags !== undefined ? { tags: record.tags } : {}),
    recipients,
  };
}

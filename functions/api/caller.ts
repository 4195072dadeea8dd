// Who is calling, and what they may do: the IAM principal API Gateway authenticated (IAM auth), the senders
// the deployment allows (ALLOWED_FROM_DOMAINS), and which messages a caller may read (its own, unless it is
// listed in READ_ALL_PRINCIPALS). The local dev gateway has no auth: there is no caller, and everything is
// readable, as on any unauthenticated local server.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import type { SendRequest } from '../../lib/message/schema.ts';

/** The IAM caller as the ledger keeps it on each message it submits. */
export interface Caller {
  /** The principal: the user or role ARN (an assumed role's session name dropped, so that every session of
   *  the role is the same caller). */
  principal: string;
  accountId?: string;
  /** The access key id the request was signed with (which credentials, for an audit). */
  accessKey?: string;
}

interface IamAuthorizer {
  iam?: { userArn?: string; accountId?: string; accessKey?: string };
}

export function callerOf(event: APIGatewayProxyEventV2): Caller | undefined {
  const iam = (event.requestContext as { authorizer?: IamAuthorizer } | undefined)?.authorizer?.iam;
  if (!iam?.userArn) return undefined;
  return {
    principal: principalOf(iam.userArn),
    ...(iam.accountId ? { accountId: iam.accountId } : {}),
    ...(iam.accessKey ? { accessKey: iam.accessKey } : {}),
  };
}

/** `arn:aws:sts::123:assumed-role/Role/session` → `arn:aws:sts::123:assumed-role/Role`; others as they are. */
export function principalOf(userArn: string): string {
  const m = /^(arn:[^:]+:sts::\d+:assumed-role\/[^/]+)\/.+$/.exec(userArn);
  return m ? m[1]! : userArn;
}

/**
 * Whether `caller` may read `record`. Another caller's message is as good as absent (the API answers 404,
 * not 403, so that ids cannot be probed).
 */
export function mayRead(
  caller: Caller | undefined,
  record: StatusRecord,
  readAll: readonly string[],
): boolean {
  if (!caller) return true;
  if (readAll.includes(caller.principal)) return true;
  return record.caller?.principal === caller.principal;
}

/** The first sender address of the request outside the allowed domains, if any. */
export function senderNotAllowed(request: SendRequest, allowed: '*' | readonly string[]): string | undefined {
  if (allowed === '*') return undefined;
  // The From address is also the envelope sender (MAIL FROM): composeMessage derives it from `from`.
  const address = request.from.address;
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  const ok = allowed.some((entry) =>
    entry.startsWith('*.') ? domain.endsWith(entry.slice(1)) : domain === entry,
  );
  return ok ? undefined : address;
}

/** The Idempotency-Key as stored: scoped to the caller, so one caller can neither take nor read another's. */
export function scopedKey(caller: Caller | undefined, key: string): string {
  return caller ? `${caller.principal}\n${key}` : key;
}

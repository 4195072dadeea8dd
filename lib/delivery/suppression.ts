// The suppression list: addresses smtpq never sends to again (they bounced for good, unsubscribed, complained,
// or were added by hand). Pure: which replies suppress, how an address is keyed, and what a suppressed
// recipient's record says. lib/aws/suppression-store.ts keeps the entries in the ledger's table.
import { canonicalAddress } from '../message/address.ts';
import { isPermanent } from '../smtp/reply.ts';
import type { Reply } from '../smtp/types.ts';

export const SUPPRESSION_SOURCES = ['bounce', 'unsubscribe', 'complaint', 'manual'] as const;
export type SuppressionSource = (typeof SUPPRESSION_SOURCES)[number];

export interface SuppressionEntry {
  /** The address as keyed: the local part as given, the domain lower-cased; `*@domain` for a whole domain. */
  address: string;
  source: SuppressionSource;
  reason: string;
  /** The reply that caused it (source `bounce`). */
  reply?: Reply;
  /** The smtpq message whose attempt (or unsubscribe link) caused it. */
  messageId?: string;
  createdAt: string;
}

export interface SuppressionPage {
  entries: SuppressionEntry[];
  cursor?: string;
}

/** The suppression list's store (the ledger's DynamoDB table in AWS). */
export interface SuppressionStore {
  get(address: string): Promise<SuppressionEntry | undefined>;
  /** The entry that applies to each of `addresses` (its own, else its domain's); addresses without one are absent. */
  matching(addresses: readonly string[]): Promise<Map<string, SuppressionEntry>>;
  /** Adds or replaces the entry. */
  put(entry: SuppressionEntry): Promise<void>;
  /** Adds the entry unless the address has one already (which is kept); true when added. */
  add(entry: SuppressionEntry): Promise<boolean>;
  /** Removes the address's entry, if there is one. */
  remove(address: string): Promise<void>;
  /** Newest first, a page at a time, of one source or all. */
  list(query: { source?: SuppressionSource; limit: number; cursor?: string }): Promise<SuppressionPage>;
}

export type KeyResult = { ok: true; address: string } | { ok: false; error: string };

/**
 * An address as the list keys it: `user@Example.COM` → `user@example.com` (a domain is case-insensitive, a
 * local part may not be, RFC 5321 §2.4); `*@example.com` for every address of the domain. Validated like a
 * recipient of a send request.
 */
export function suppressionAddress(input: string): KeyResult {
  const trimmed = input.trim();
  const wildcard = trimmed.startsWith('*@');
  const checked = canonicalAddress(wildcard ? `x${trimmed.slice(1)}` : trimmed);
  if (!checked.ok) return { ok: false, error: checked.error };
  return { ok: true, address: wildcard ? `*${checked.value.slice(1)}` : checked.value };
}

/** The keys an address is suppressed under: its own, and its domain's. */
export function suppressionKeysOf(address: string): [string, string] {
  return [address, `*${address.slice(address.lastIndexOf('@'))}`];
}

/**
 * The enhanced status codes (RFC 3463) that say the address itself is bad for good, with their meaning. Only
 * these suppress: a policy refusal (5.7.x), a full mailbox (5.2.2) or a message too big (5.3.4) says nothing
 * against the address, and the next message may well pass.
 */
const ADDRESS_FAILURES: ReadonlyMap<string, string> = new Map([
  ['5.1.1', 'bad destination mailbox address'],
  ['5.1.2', 'bad destination system address'],
  ['5.1.3', 'bad destination mailbox address syntax'],
  ['5.1.6', 'destination mailbox has moved, no forwarding address'],
  ['5.1.10', 'recipient address has a null MX'],
  ['5.2.1', 'mailbox disabled, not accepting messages'],
]);

/** Why a recipient's reply puts it on the list (a permanent address-level failure), or undefined. */
export function suppressingReason(reply: Reply | undefined): string | undefined {
  if (!reply || !isPermanent(reply) || !reply.enhanced) return undefined;
  const meaning = ADDRESS_FAILURES.get(reply.enhanced);
  return meaning && `${reply.enhanced} ${meaning}`;
}

/** What a suppressed recipient's record (and its event) says: `suppressed: bounce (5.1.1 …, 2026-11-30)`. */
export function suppressedError(entry: SuppressionEntry): string {
  const scope = entry.address.startsWith('*@') ? `, domain ${entry.address.slice(2)}` : '';
  return `suppressed: ${entry.source} (${entry.reason}${scope}, since ${entry.createdAt.slice(0, 10)})`;
}

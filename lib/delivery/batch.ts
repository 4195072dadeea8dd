// One worker invocation's batch, delivered at the client's speed: the ledger is read once for the whole batch,
// the claims are written in parallel, every claimed message goes to the one SMTP connection together (so
// lib/smtp pipelines them), and the transcripts and outcomes are written in parallel once the SMTP work is
// over. No storage wait sits between two sends.
//
// Exactly once per recipient: a message is sent only under a lease taken by a conditional write on the
// version read; a second delivery of the same queue message sees the lease or loses that write, and backs
// off. A worker killed after the relay's 250 and before the outcome write leaves the lease to run out: the
// message is sent again at most once, by the delivery that takes the next lease.
import type { Envelope, MessageBody } from '../smtp/types.ts';
import { backoffSeconds, decideRetry, MAX_DEFERRAL_SECONDS, type RetrySettings } from './backoff.ts';
import { deliver } from './deliver.ts';
import {
  type AttemptSummary,
  applyResults,
  claim,
  failMessage,
  finishAttempt,
  giveUp,
  isFinal,
  leaseHeldByOther,
  pendingAddresses,
  releaseClaim,
  suppress,
} from './ledger.ts';
import type { RecipientResult } from './outcome.ts';
import {
  type MessageState,
  type RecipientRecord,
  type StatusRecord,
  type StatusStore,
  type TranscriptRef,
  type TranscriptStore,
  VersionConflictError,
  type Versioned,
} from './ports.ts';
import type { RelayGate } from './relay-limit.ts';
import { type RelaySender, transcriptPart } from './relay-sender.ts';
import { type SuppressionEntry, type SuppressionStore, suppressingReason } from './suppression.ts';
import { isThrottlingReply } from './throttle.ts';

/** One queue record of the batch. */
export interface BatchRecord {
  /** The queue's id of the record (SQS messageId): outcomes are keyed by it. */
  key: string;
  /** The smtpq message id it carries. */
  id: string;
  /** The queue's delivery count (SQS ApproximateReceiveCount): drives the back-off and the attempt limit. */
  receiveCount: number;
  /** When the API put it on the queue (SQS SentTimestamp): its record is the API's to write until the grace ends. */
  enqueuedAt: Date;
  /** The initial status record the queue message carries: written when the ledger has none yet. */
  initial: StatusRecord;
  /** Builds the message (Message-ID and date fixed at submit, so every attempt sends the same bytes). */
  prepare(record: StatusRecord): Preparation;
}

/** The message as a transaction needs it: the envelope sender and flags, and a fresh body stream per try. */
export interface PreparedMessage {
  envelope: Omit<Envelope, 'to'>;
  createBody: () => MessageBody;
  /** A message composed for each recipient (its own unsubscribe link): one transaction per recipient, each
   *  with this body; `createBody` is then unused. */
  forRecipient?: (address: string) => () => MessageBody;
}

/** What prepare() says of a ledger entry: the message to send, or why it can never be sent. */
export type Preparation = { ok: true; message: PreparedMessage } | { ok: false; reason: string };

export interface BatchDeps {
  status: StatusStore;
  /** Read once per batch (no recipient on it is addressed), added to by address-level bounces. */
  suppressions: Pick<SuppressionStore, 'matching' | 'add'>;
  transcripts: TranscriptStore;
  sender: Pick<RelaySender, 'describe' | 'send' | 'close' | 'connections'>;
  gate: RelayGate;
  retry: RetrySettings;
  /** The S3 key of the transcript of the sender's n-th connection. */
  transcriptKey(connection: number): string;
  /** Identifies this invocation in the leases it takes. */
  owner: string;
  /** How long a lease holds: longer than this invocation can possibly run. */
  leaseMs: number;
  /** How long after the enqueue a missing status record is left to the API (RECORD_WRITE_GRACE_SECONDS). */
  recordWriteGraceMs: number;
  /** Milliseconds left in which new SMTP work may start (the invocation's end, less time to record). */
  timeLeft(): number;
  now?: () => Date;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

interface AttemptFacts {
  attempt?: number;
  results?: Map<string, RecipientResult>;
  transactionMs?: number[];
}

export type RecordOutcome =
  /** Nothing more to do for this queue record: delete it. */
  | ({ kind: 'done'; id: string; state: MessageState; reason?: string } & AttemptFacts)
  /** Keep the record; hide it for `delaySeconds` (undefined: leave it to the queue's own timeout). */
  | ({
      kind: 'retry';
      id: string;
      delaySeconds?: number;
      why:
        | 'deferred'
        | 'leased'
        | 'conflict'
        | 'paused'
        | 'rate_limited'
        | 'out_of_time'
        | 'not_written'
        | 'error';
      error?: unknown;
    } & AttemptFacts)
  /** No retry can fix it: the message (if it exists) is failed with the reason; the record goes to the DLQ. */
  | { kind: 'malformed'; id: string; reason: string };

export interface BatchReport {
  outcomes: Map<string, RecordOutcome>;
  /** Transcripts that could not be stored (the outcomes are in the ledger all the same). */
  transcriptErrors: { key: string; error: unknown }[];
  /** Bounced addresses that could not be added to the suppression list. */
  suppressionErrors: { address: string; error: unknown }[];
  /** The relay pause this batch started (a throttling reply), if any. */
  pausedUntil?: Date;
}

/** No new chunk of the batch is started with less time left than this: its records go back untouched. */
export const MIN_TIME_LEFT_MS = 5_000;
/** The longest the worker waits in-invocation for rate-limit permits before returning records to the queue. */
const MAX_PERMIT_WAIT_MS = 2_000;
/** Permit waits are at least this long, so a rate-limited worker asks the table a few times a second at most. */
const MIN_PERMIT_WAIT_MS = 250;
/** Outcome writes that lose a race are re-read and merged this many times. */
const OUTCOME_WRITE_TRIES = 3;
/** A record the API is still writing is read once more after this pause (its write trails its enqueue). */
const RECORD_REREAD_MS = 200;
/** A message this young whose record is still missing comes back this soon; an older one at the grace's end. */
const NOT_WRITTEN_SOON = { ageMs: 5_000, delaySeconds: 2 };

interface Candidate {
  record: BatchRecord;
  entry: Versioned<StatusRecord>;
  message: PreparedMessage;
}

/** A claimed message that was not sent after all: its claim is given back. */
interface Unsent {
  c: Candidate;
  claim: Versioned<StatusRecord>;
}

interface Attempted {
  record: BatchRecord;
  claimed: Versioned<StatusRecord>;
  addresses: string[];
  tag: string;
  results: Map<string, RecipientResult>;
  transactionMs: number[];
  throttled: boolean;
}

export async function deliverBatch(deps: BatchDeps, records: readonly BatchRecord[]): Promise<BatchReport> {
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const outcomes = new Map<string, RecordOutcome>();
  const writes: Promise<void>[] = [];
  const report: BatchReport = { outcomes, transcriptErrors: [], suppressionErrors: [] };

  // The ledger, the suppression list (for the recipients the queue messages name, the ledger's own) and the
  // relay's pause in one parallel step.
  const [entriesRead, suppressedRead, relayRead] = await Promise.allSettled([
    deps.status.getMany(records.map((r) => r.id)),
    deps.suppressions.matching([
      ...new Set(records.flatMap((r) => r.initial.recipients.map((x) => x.address))),
    ]),
    deps.gate.status(now()),
  ]);
  // Without the list nobody is sent to: a suppressed address must never be addressed.
  if (entriesRead.status === 'rejected' || suppressedRead.status === 'rejected') {
    const error =
      entriesRead.status === 'rejected'
        ? entriesRead.reason
        : (suppressedRead as PromiseRejectedResult).reason;
    for (const r of records) outcomes.set(r.key, { kind: 'retry', id: r.id, why: 'error', error });
    return report;
  }
  const entries = entriesRead.value;
  const suppressed = suppressedRead.value;
  try {
    await checkOthers(deps, entries, records, suppressed);
  } catch (error) {
    for (const r of records) outcomes.set(r.key, { kind: 'retry', id: r.id, why: 'error', error });
    return report;
  }
  const started = now();
  // No record yet: the API enqueues before it writes the record, and is still writing it or died in between.
  // Within the grace period it may still be writing, with a write that has no condition and would replace a
  // record written here: read once more shortly (the usual case, its write a round trip behind its enqueue)
  // and otherwise leave it to the API. After the grace the API is gone; the queue message's record is written.
  const missing = records.filter(
    (r, i) => !entries.has(r.id) && records.findIndex((o) => o.id === r.id) === i,
  );
  const inGrace = (r: BatchRecord) => started.getTime() - r.enqueuedAt.getTime() < deps.recordWriteGraceMs;
  const rereadYoung = async (young: BatchRecord[]) => {
    if (young.length === 0) return;
    await sleep(RECORD_REREAD_MS);
    // Not read again: those records come back from the queue shortly (below), which is all a retry could do.
    const found = await deps.status.getMany(young.map((r) => r.id)).catch(() => new Map());
    for (const [id, entry] of found) entries.set(id, entry);
  };
  const writeOld = async (r: BatchRecord) => {
    const written = await writeInitial(deps, r).catch(() => undefined);
    if (written) entries.set(r.id, written);
  };
  await Promise.all([
    rereadYoung(missing.filter(inGrace)),
    ...missing.filter((r) => !inGrace(r)).map(writeOld),
  ]);

  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  for (const record of records) {
    const entry = entries.get(record.id);
    if (seen.has(record.id)) {
      // The same message twice in one batch (SQS delivers at least once): the first record carries it.
      outcomes.set(record.key, {
        kind: 'done',
        id: record.id,
        state: entry?.value.state ?? 'queued',
        reason: 'duplicate of another record in this batch',
      });
      continue;
    }
    seen.add(record.id);
    if (!entry && inGrace(record)) {
      const ageMs = started.getTime() - record.enqueuedAt.getTime();
      const delaySeconds =
        ageMs < NOT_WRITTEN_SOON.ageMs
          ? NOT_WRITTEN_SOON.delaySeconds
          : Math.max(1, Math.ceil((deps.recordWriteGraceMs - ageMs) / 1000));
      outcomes.set(record.key, { kind: 'retry', id: record.id, why: 'not_written', delaySeconds });
      continue;
    }
    if (!entry) {
      outcomes.set(record.key, {
        kind: 'retry',
        id: record.id,
        why: 'error',
        error: 'status record not written',
      });
      continue;
    }
    const value = suppress(entry.value, suppressed, started);
    if (isFinal(entry.value)) {
      outcomes.set(record.key, { kind: 'done', id: record.id, state: value.state, reason: 'already final' });
    } else if (leaseHeldByOther(value, deps.owner, started)) {
      outcomes.set(record.key, {
        kind: 'retry',
        id: record.id,
        why: 'leased',
        delaySeconds: leaseDelaySeconds(value, started),
      });
    } else if (pendingAddresses(value).length === 0) {
      // Every recipient left is suppressed, or every recipient is settled but the message state was not (a
      // worker stopped between writes): settled without a connection.
      writes.push(settleOnly(deps, record, { ...entry, value }, outcomes, started));
    } else {
      let prepared: Preparation;
      try {
        prepared = record.prepare(value);
      } catch (error) {
        // Not a verdict on the request (that is { ok: false }): this record only is tried again later.
        outcomes.set(record.key, { kind: 'retry', id: record.id, why: 'error', error });
        continue;
      }
      if (prepared.ok) {
        // The suppressed recipients are written with the claim.
        candidates.push({ record, entry: { ...entry, value }, message: prepared.message });
      } else {
        outcomes.set(record.key, { kind: 'malformed', id: record.id, reason: prepared.reason });
        writes.push(markFailed(deps.status, entry, prepared.reason, started).then(() => {}));
      }
    }
  }

  // Claim what the relay's limit lets this invocation send, then send it as the permits come: a permit is
  // taken right before its message goes out (no storage wait in between), so the relay sees the limit.
  const attempts: Promise<Attempted | Unsent>[] = [];
  let throttle: { reason: string; pause?: Promise<Date> } | undefined;
  const onThrottle = (reason: string) => {
    if (throttle) return;
    throttle = { reason };
    throttle.pause = deps.gate.pause(reason, now()).catch(() => new Date(now().getTime() + 1000));
  };
  const relay = relayRead.status === 'fulfilled' ? relayRead.value : undefined;
  const pausedAtStart =
    relay?.pausedUntil && relay.pausedUntil.getTime() > started.getTime() ? relay.pausedUntil : undefined;
  // A relay whose state could not be read is treated as paused for a second rather than hit blind.
  const blockedUntil = pausedAtStart ?? (relay ? undefined : new Date(started.getTime() + 1000));
  let unsent: Candidate[] = candidates;
  let retryAfterMs = 0;
  const released: Promise<void>[] = [];
  if (!blockedUntil && deps.timeLeft() >= MIN_TIME_LEFT_MS) {
    const claimable = Math.min(
      candidates.length,
      deps.gate.permitsWithin(deps.timeLeft() - MIN_TIME_LEFT_MS),
    );
    const claimed = await Promise.all(
      candidates
        .slice(0, claimable)
        .map(async (c) => ({ c, claim: await claimOne(deps, c, outcomes, now()) })),
    );
    unsent = candidates.slice(claimable);
    let ready = claimed.filter((x) => x.claim !== undefined) as {
      c: Candidate;
      claim: Versioned<StatusRecord>;
    }[];
    const limited = Number.isFinite(deps.gate.permitsWithin(0));
    while (ready.length > 0 && !throttle && deps.timeLeft() >= MIN_TIME_LEFT_MS) {
      const permits = limited
        ? await deps.gate.acquire(ready.length, now()).catch(() => ({ granted: 0, retryAfterMs: 1000 }))
        : { granted: ready.length, retryAfterMs: 0 };
      if (permits.granted === 0) {
        retryAfterMs = permits.retryAfterMs;
        const wait = Math.max(MIN_PERMIT_WAIT_MS, permits.retryAfterMs);
        if (wait > MAX_PERMIT_WAIT_MS || deps.timeLeft() - wait < MIN_TIME_LEFT_MS) break;
        await sleep(wait);
        continue;
      }
      for (const { c, claim } of ready.slice(0, permits.granted))
        attempts.push(sendOne(deps, c, claim, onThrottle, () => throttle !== undefined));
      ready = ready.slice(permits.granted);
    }
    // Claimed but not sent (no permit in time, or the relay throttled meanwhile): the claims go back.
    for (const { c, claim } of ready) released.push(giveBack(deps, c, claim, outcomes, now()));
    unsent = [...ready.map((x) => x.c), ...unsent];
  }
  const attempted: Attempted[] = [];
  for (const a of await Promise.all(attempts)) {
    if ('results' in a) {
      attempted.push(a);
    } else {
      released.push(giveBack(deps, a.c, a.claim, outcomes, now()));
      unsent.push(a.c);
    }
  }
  await deps.sender.close();
  const pausedUntil = throttle ? await throttle.pause : blockedUntil;
  if (throttle && pausedUntil) report.pausedUntil = pausedUntil;
  await Promise.all(released);

  // What was not sent goes back to the queue: after the pause, the next permit, or at once.
  const finished = now();
  const waitFor = (until: Date | undefined) =>
    until
      ? Math.min(MAX_DEFERRAL_SECONDS, Math.max(1, Math.ceil((until.getTime() - finished.getTime()) / 1000)))
      : undefined;
  const outOfTime = !pausedUntil && deps.timeLeft() < MIN_TIME_LEFT_MS;
  // Rate-limited records come back when the limit will have room for them (so a backlog does not bounce
  // through the queue every second).
  let rateWait = Math.max(1, Math.ceil(retryAfterMs / 1000));
  while (rateWait < MAX_DEFERRAL_SECONDS && deps.gate.permitsWithin(rateWait * 1000) < unsent.length)
    rateWait *= 2;
  for (const c of unsent) {
    const given = outcomes.get(c.record.key);
    if (given?.kind === 'retry' && given.why === 'error') continue;
    outcomes.set(
      c.record.key,
      pausedUntil
        ? { kind: 'retry', id: c.record.id, why: 'paused', delaySeconds: waitFor(pausedUntil) }
        : outOfTime
          ? { kind: 'retry', id: c.record.id, why: 'out_of_time' }
          : {
              kind: 'retry',
              id: c.record.id,
              why: 'rate_limited',
              delaySeconds: Math.min(MAX_DEFERRAL_SECONDS, rateWait),
            },
    );
  }

  // Transcripts (one object per connection) and outcomes, all in parallel.
  const puts = deps.sender.connections
    .filter((connection) => connection.tags.size > 0)
    .map(async (connection) => {
      const key = deps.transcriptKey(connection.number);
      try {
        await deps.transcripts.put(key, connection.transcript.toString());
      } catch (error) {
        report.transcriptErrors.push({ key, error });
      }
    });
  for (const a of attempted) {
    const refs: TranscriptRef[] = deps.sender.connections
      .filter((connection) => connection.tags.has(a.tag))
      .map((connection) => ({
        attempt: a.claimed.value.attempts,
        key: deps.transcriptKey(connection.number),
        lines: transcriptPart(connection.transcript.entries, a.tag),
      }));
    writes.push(
      recordOutcome(deps, a, refs, finished, a.throttled ? waitFor(pausedUntil) : undefined, outcomes),
      ...suppressBounced(deps, a, finished, report),
    );
  }
  const clean = attempted.length > 0 && !throttle;
  await Promise.all([...puts, ...writes, clean ? deps.gate.recovered(finished).catch(() => {}) : undefined]);
  return report;
}

/**
 * The list was read for the recipients the queue messages name, which are the ledger's own; any other
 * pending address a ledger record holds is looked up too (a second wait, in that case only).
 */
async function checkOthers(
  deps: BatchDeps,
  entries: ReadonlyMap<string, Versioned<StatusRecord>>,
  records: readonly BatchRecord[],
  suppressed: Map<string, SuppressionEntry>,
): Promise<void> {
  const asked = new Set(records.flatMap((r) => r.initial.recipients.map((x) => x.address)));
  const others = [...entries.values()].flatMap((e) => pendingAddresses(e.value)).filter((a) => !asked.has(a));
  if (others.length === 0) return;
  for (const [address, entry] of await deps.suppressions.matching([...new Set(others)]))
    suppressed.set(address, entry);
}

/** Each address the attempt's replies refused for good (suppressingReason) goes on the suppression list. */
function suppressBounced(deps: BatchDeps, a: Attempted, at: Date, report: BatchReport): Promise<void>[] {
  return [...a.results].flatMap(([address, result]) => {
    const reason = result.state === 'failed' ? suppressingReason(result.reply) : undefined;
    if (!reason) return [];
    const entry = {
      address,
      source: 'bounce' as const,
      reason,
      reply: result.reply,
      messageId: a.record.id,
      createdAt: at.toISOString(),
    };
    // An address already on the list keeps its entry (and the reason it was put there first).
    return [
      deps.suppressions.add(entry).then(
        () => {},
        (error: unknown) => void report.suppressionErrors.push({ address, error }),
      ),
    ];
  });
}

/** A claim not used: the record goes back to what it was, on the claim's version (best effort: a claim
 *  that cannot be given back runs out with its lease). */
async function giveBack(
  deps: BatchDeps,
  c: Candidate,
  claim: Versioned<StatusRecord>,
  outcomes: Map<string, RecordOutcome>,
  at: Date,
): Promise<void> {
  try {
    await deps.status.update(releaseClaim(c.entry.value, at), claim.version);
  } catch (error) {
    outcomes.set(c.record.key, { kind: 'retry', id: c.record.id, why: 'error', error });
  }
}

/** The queue message's initial record, written when the ledger has none (or the one a racing writer wrote). */
async function writeInitial(deps: BatchDeps, r: BatchRecord): Promise<Versioned<StatusRecord> | undefined> {
  try {
    return await deps.status.create(r.initial);
  } catch (error) {
    if (!(error instanceof VersionConflictError)) throw error;
    return deps.status.get(r.id);
  }
}

async function claimOne(
  deps: BatchDeps,
  c: Candidate,
  outcomes: Map<string, RecordOutcome>,
  at: Date,
): Promise<Versioned<StatusRecord> | undefined> {
  try {
    return await deps.status.update(
      claim(c.entry.value, deps.owner, at, new Date(at.getTime() + deps.leaseMs)),
      c.entry.version,
    );
  } catch (error) {
    const conflict = error instanceof VersionConflictError;
    outcomes.set(c.record.key, {
      kind: 'retry',
      id: c.record.id,
      why: conflict ? 'conflict' : 'error',
      delaySeconds: conflict ? backoffSeconds(c.record.receiveCount, deps.retry, deps.random) : undefined,
      ...(conflict ? {} : { error }),
    });
    return undefined;
  }
}

async function sendOne(
  deps: BatchDeps,
  c: Candidate,
  claimed: Versioned<StatusRecord>,
  onThrottle: (reason: string) => void,
  paused: () => boolean,
): Promise<Attempted | Unsent> {
  // The relay throttled while this message waited for its claim or its turn: it is not sent into the pause.
  if (paused()) return { c, claim: claimed };
  const attempt = claimed.value.attempts;
  const addresses = pendingAddresses(claimed.value);
  const tag = `${c.record.id}/${attempt}`;
  deps.sender.describe(
    tag,
    `delivery attempt ${attempt} of message ${c.record.id} to ${addresses.length} recipient(s)`,
  );
  const report = await deliverPrepared(deps, c.message, addresses, tag);
  let throttled = false;
  for (const result of report.results.values()) {
    if (result.state === 'deferred' && result.reply && isThrottlingReply(result.reply)) {
      throttled = true;
      onThrottle(`${result.reply.code} ${result.reply.lines[0] ?? ''}`.trim());
    }
  }
  return {
    record: c.record,
    claimed,
    addresses,
    tag,
    results: report.results,
    transactionMs: report.transactionMs,
    throttled,
  };
}

/** One transaction for every address, or one each when the message is composed per recipient (all of them
 *  handed to the one connection together, so they are pipelined like separate messages). */
async function deliverPrepared(
  deps: BatchDeps,
  message: PreparedMessage,
  addresses: string[],
  tag: string,
): Promise<{ results: Map<string, RecipientResult>; transactionMs: number[] }> {
  const { forRecipient, envelope } = message;
  if (!forRecipient)
    return deliver(deps.sender, { envelope, createBody: message.createBody, addresses, tag });
  const reports = await Promise.all(
    addresses.map((address) =>
      deliver(deps.sender, { envelope, createBody: forRecipient(address), addresses: [address], tag }),
    ),
  );
  return {
    results: new Map(reports.flatMap((r) => [...r.results])),
    transactionMs: reports.flatMap((r) => r.transactionMs),
  };
}

/** The attempt's outcome into the ledger, and what becomes of the queue record. */
async function recordOutcome(
  deps: BatchDeps,
  a: Attempted,
  transcripts: TranscriptRef[],
  finished: Date,
  pauseSeconds: number | undefined,
  outcomes: Map<string, RecordOutcome>,
): Promise<void> {
  const { record, claimed, results } = a;
  const facts: AttemptFacts = { attempt: claimed.value.attempts, results, transactionMs: a.transactionMs };
  const afterAttempt = applyResults(claimed.value.recipients, results, finished);
  let decision: ReturnType<typeof decideRetry> | undefined;
  if (afterAttempt.some((r) => r.state === 'deferred' || r.state === 'queued')) {
    // The ledger's attempt count, not the queue's receive count: receives that sent nothing (a relay
    // pause, a rate limit, a lease held elsewhere) are not attempts.
    decision = decideRetry(
      claimed.value.attempts,
      new Date(claimed.value.createdAt),
      finished,
      deps.retry,
      deps.random,
    );
    // A throttled relay is waited out: the pause, not the message's back-off, says when to try again.
    if (decision.retry && pauseSeconds !== undefined) decision = { retry: true, delaySeconds: pauseSeconds };
  }
  const gaveUp = decision?.retry === false ? decision.reason : undefined;
  // From any version of the ledger (the claimed one, or a newer one after a lost race): this attempt's
  // results, and the give-up if the limits were reached.
  const settle = (recipients: readonly RecipientRecord[]) => {
    const applied = applyResults(recipients, results, finished);
    return gaveUp ? giveUp(applied, gaveUp, finished) : applied;
  };
  const nextAttemptAt = decision?.retry
    ? new Date(finished.getTime() + decision.delaySeconds * 1000)
    : undefined;
  let written: StatusRecord;
  try {
    written = await writeOutcome(
      deps,
      claimed,
      settle,
      { transcripts, nextAttemptAt, error: gaveUp },
      finished,
    );
  } catch (error) {
    // The results are not in the ledger: the lease runs out and the next delivery sends (at most once) again.
    outcomes.set(record.key, { kind: 'retry', id: record.id, why: 'error', error, ...facts });
    return;
  }
  if (isFinal(written)) {
    outcomes.set(record.key, { kind: 'done', id: record.id, state: written.state, reason: gaveUp, ...facts });
    return;
  }
  // Not final: the queue record must stay. A live lease another delivery took meanwhile ('sending') is
  // waited out; a deferred message waits its back-off.
  if (written.state === 'sending') {
    outcomes.set(record.key, {
      kind: 'retry',
      id: record.id,
      why: 'leased',
      delaySeconds: leaseDelaySeconds(written, finished),
      ...facts,
    });
    return;
  }
  const delaySeconds = decision?.retry
    ? decision.delaySeconds
    : backoffSeconds(claimed.value.attempts, deps.retry, deps.random);
  outcomes.set(record.key, { kind: 'retry', id: record.id, why: 'deferred', delaySeconds, ...facts });
}

/** A message whose recipients are all settled but whose state is not: settle it without a connection. */
async function settleOnly(
  deps: BatchDeps,
  record: BatchRecord,
  entry: Versioned<StatusRecord>,
  outcomes: Map<string, RecordOutcome>,
  at: Date,
): Promise<void> {
  try {
    const settled = await writeOutcome(deps, entry, (recipients) => [...recipients], {}, at);
    // A delivery that took a lease meanwhile settles it itself; until then this queue record stays.
    outcomes.set(
      record.key,
      isFinal(settled)
        ? { kind: 'done', id: record.id, state: settled.state, reason: 'nothing left to send' }
        : { kind: 'retry', id: record.id, why: 'leased', delaySeconds: leaseDelaySeconds(settled, at) },
    );
  } catch (error) {
    outcomes.set(record.key, { kind: 'retry', id: record.id, why: 'error', error });
  }
}

/** A message that can never be sent: every open recipient fails with the reason (best effort). */
/**
 * A message that can never be sent (a malformed queue record, a request that cannot be composed): every open
 * recipient fails with the reason. Best effort — another delivery may have written meanwhile, or the ledger
 * may be down: the record still reaches the DLQ, which is what counts, with the reason in the worker's log.
 * Returns false when the record could not be marked.
 */
export async function markFailed(
  status: StatusStore,
  entry: Versioned<StatusRecord> | string,
  reason: string,
  at: Date,
): Promise<boolean> {
  try {
    const current = typeof entry === 'string' ? await status.get(entry) : entry;
    if (!current || isFinal(current.value)) return true;
    await status.update(failMessage(current.value, reason, at), current.version);
    return true;
  } catch {
    return false;
  }
}

/** Until a lease another delivery holds runs out (at least 1 s, at most what SQS can hide a record for). */
function leaseDelaySeconds(record: StatusRecord, now: Date): number {
  const leftMs = Date.parse(record.lease?.until ?? '') - now.getTime();
  if (!Number.isFinite(leftMs)) return 1;
  return Math.min(MAX_DEFERRAL_SECONDS, Math.max(1, Math.ceil(leftMs / 1000)));
}

/**
 * Writes the attempt's outcome on the version it read. If another writer got in between (only possible
 * once the lease ran out), the latest record is re-read and this attempt's results merged into it:
 * results are facts about what the server said, and a recipient already final keeps its state.
 */
async function writeOutcome(
  deps: BatchDeps,
  read: Versioned<StatusRecord>,
  settle: (recipients: readonly RecipientRecord[]) => RecipientRecord[],
  summary: Omit<AttemptSummary, 'recipients'>,
  at: Date,
): Promise<StatusRecord> {
  const owner = read.value.lease?.owner ?? '';
  let current = read;
  for (let tries = 1; ; tries++) {
    let next = finishAttempt(current.value, { ...summary, recipients: settle(current.value.recipients) }, at);
    // A live lease someone else took meanwhile stays theirs: they are sending right now.
    if (leaseHeldByOther(current.value, owner, at))
      next = { ...next, state: 'sending', lease: current.value.lease };
    try {
      return (await deps.status.update(next, current.version)).value;
    } catch (error) {
      if (!(error instanceof VersionConflictError) || tries >= OUTCOME_WRITE_TRIES) throw error;
      const latest = await deps.status.get(read.value.id);
      if (!latest) throw error;
      current = latest;
    }
  }
}

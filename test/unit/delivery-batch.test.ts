// deliverBatch's ledger protocol (one read for the batch, leases, conditional writes, retry decision), its
// relay gate (permits, throttling pause) and its transcripts (one per connection, a part per message),
// against in-memory ports and the real RelaySender over a scripted relay.
// (Against DynamoDB, S3 and a real SMTP server: test/integration/worker-handler.test.ts.)
import { describe, expect, it } from 'vitest';
import { MAX_DEFERRAL_SECONDS } from '../../lib/delivery/backoff.ts';
import {
  type BatchDeps,
  type BatchRecord,
  deliverBatch,
  type Preparation,
} from '../../lib/delivery/batch.ts';
import {
  type StatusRecord,
  type StatusStore,
  type TranscriptRef,
  type TranscriptStore,
  VersionConflictError,
  type Versioned,
} from '../../lib/delivery/ports.ts';
import type { AcquireResult, RelayGate } from '../../lib/delivery/relay-limit.ts';
import { type Connect, RelaySender, type SmtpConnectionLike } from '../../lib/delivery/relay-sender.ts';
import { SmtpError } from '../../lib/smtp/errors.ts';
import type {
  Envelope,
  MessageBody,
  RecipientOutcome,
  Reply,
  SendOptions,
  SendResult,
  Transcript,
} from '../../lib/smtp/types.ts';
import { MemorySuppressionStore } from '../support/memory-suppressions.ts';

const T0 = new Date('2026-11-28T10:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms).toISOString();

/** StatusStore semantics of the DynamoDB ledger: a version number per item, conditional create and update. */
class MemoryStatusStore implements StatusStore {
  readonly records = new Map<string, Versioned<StatusRecord>>();
  readonly calls = { getMany: [] as string[][], get: [] as string[], create: [] as string[] };
  failGetMany?: Error;
  failCreate?: Error;
  /** Runs once getMany has read its records (a writer that gets in between the read and the writes). */
  afterGetMany?: () => void;
  private hooks: { id: string; left: number; run: () => unknown }[] = [];

  async create(record: StatusRecord) {
    this.calls.create.push(record.id);
    if (this.failCreate) throw this.failCreate;
    if (this.records.has(record.id)) throw new VersionConflictError('exists');
    return this.put(record);
  }
  async createMany(records: readonly StatusRecord[]) {
    for (const record of records) this.put(record);
    return [];
  }
  async get(id: string) {
    this.calls.get.push(id);
    const v = this.records.get(id);
    return v && structuredClone(v);
  }
  async getMany(ids: readonly string[]) {
    this.calls.getMany.push([...ids]);
    if (this.failGetMany) throw this.failGetMany;
    const found = new Map<string, Versioned<StatusRecord>>();
    for (const id of ids) {
      const v = this.records.get(id);
      if (v) found.set(id, structuredClone(v));
    }
    const hook = this.afterGetMany;
    this.afterGetMany = undefined;
    hook?.();
    return found;
  }
  async update(record: StatusRecord, version: string) {
    const hook = this.hooks.find((h) => h.id === record.id && --h.left === 0);
    if (hook) {
      this.hooks = this.hooks.filter((h) => h !== hook);
      await hook.run();
    }
    if (this.records.get(record.id)?.version !== version) throw new VersionConflictError('changed');
    return this.put(record);
  }
  /** An unconditional write: the next version of the item. */
  put(record: StatusRecord) {
    const previous = Number(this.records.get(record.id)?.version ?? 0);
    const v = { value: structuredClone(record), version: String(previous + 1) };
    this.records.set(record.id, v);
    return structuredClone(v);
  }
  /** Runs (and awaits) `run` just before the `nth` update of `id` from now on is checked: a concurrent
   *  writer, or a slow write. */
  beforeUpdate(id: string, nth: number, run: () => unknown) {
    this.hooks.push({ id, left: nth, run });
  }
  value(id: string): StatusRecord {
    return this.records.get(id)!.value;
  }
}

/** TranscriptStore semantics of the S3 adapter: one object per connection, part() cuts the line runs out. */
class MemoryTranscriptStore implements TranscriptStore {
  readonly texts = new Map<string, string>();
  failPuts?: Error;
  async put(key: string, text: string) {
    if (this.failPuts) throw this.failPuts;
    this.texts.set(key, text);
  }
  async part(ref: TranscriptRef) {
    const text = this.texts.get(ref.key);
    if (text === undefined) return undefined;
    const lines = text.split('\n');
    return ref.lines.flatMap(([first, last]) => lines.slice(first, last + 1).map((l) => `${l}\n`)).join('');
  }
}

/** A relay gate with scripted grants (by default every permit asked for) that records what it was told. */
class FakeGate implements RelayGate {
  /** The answers to the next acquire() calls, in order; then every permit asked for. */
  grants: Omit<AcquireResult, 'pausedUntil'>[] = [];
  readonly wanted: number[] = [];
  readonly pauses: string[] = [];
  recoveries = 0;
  pauseMs = 30_000;
  /** A rate limit is set: the worker asks for permits (by default none is set, and it does not). */
  limited = false;
  permitsWithin() {
    return this.limited ? 1_000 : Number.POSITIVE_INFINITY;
  }
  async acquire(wanted: number) {
    this.wanted.push(wanted);
    const next = this.grants.shift();
    return next ? { ...next, granted: Math.min(next.granted, wanted) } : { granted: wanted, retryAfterMs: 0 };
  }
  async pause(reason: string, now = new Date()) {
    this.pauses.push(reason);
    return new Date(now.getTime() + this.pauseMs);
  }
  async recovered() {
    this.recoveries += 1;
  }
  async status() {
    return { pauseLevel: 0 };
  }
}

const ok: Reply = { code: 250, lines: ['2.0.0 ok'] };
const reply = (code: number, text = `${code} reply`): Reply => ({ code, lines: [text] });
const tick = () => Promise.resolve();

/**
 * A relay that answers RCPT from a script (250 by default; a 421 closes the connection, as lib/smtp does)
 * and writes the lines lib/smtp would into the connection's transcript: the connection's own untagged,
 * each transaction's with its tag. Each step yields, so concurrent transactions interleave.
 */
class ScriptedRelay {
  replies: Record<string, Reply> = {};
  /** The first connections opened are already closed by the relay: their first transaction finds out. */
  deadConnections = 0;
  connects = 0;
  /** Every transaction the relay saw a MAIL FROM of: the message's tag and its recipients. */
  readonly mails: { tag: string | undefined; to: string[] }[] = [];

  readonly connect: Connect = async (options) => {
    this.connects += 1;
    const transcript = options.transcript!;
    transcript.add('*', `connected to ${options.host}:${options.port}`);
    transcript.add('S', '220 relay.test ESMTP');
    transcript.add('C', 'EHLO worker.test');
    transcript.add('S', '250 relay.test');
    return new ScriptedConnection(this, transcript, this.connects <= this.deadConnections);
  };
}

class ScriptedConnection implements SmtpConnectionLike {
  usable = true;
  deadline: number | undefined;
  private failure: SmtpError | undefined;

  constructor(
    private readonly relay: ScriptedRelay,
    private readonly transcript: Transcript,
    private dead: boolean,
  ) {}

  async send(envelope: Envelope, _body: MessageBody, options: SendOptions = {}): Promise<SendResult> {
    const { tag } = options;
    await this.step();
    this.transcript.add('C', `MAIL FROM:<${envelope.from}>`, tag);
    if (this.dead) {
      this.dead = false;
      this.fail(new SmtpError('SMTP_CONNECTION', 'connection closed by the server', { stage: 'mail' }), tag);
    }
    this.relay.mails.push({ tag, to: [...envelope.to] });
    await this.step();
    this.transcript.add('S', '250 2.1.0 sender ok', tag);
    const recipients: RecipientOutcome[] = [];
    for (const address of envelope.to) {
      this.transcript.add('C', `RCPT TO:<${address}>`, tag);
      await this.step();
      const answer = this.relay.replies[address] ?? ok;
      this.transcript.add('S', `${answer.code} ${answer.lines[0]}`, tag);
      if (answer.code === 421)
        this.fail(SmtpError.fromReply('rcpt', answer, 'server closing the connection'), tag);
      const status = answer.code < 300 ? 'accepted' : answer.code < 500 ? 'deferred' : 'failed';
      recipients.push({ address, status, reply: answer });
    }
    if (!recipients.some((r) => r.status === 'accepted')) return { mail: ok, recipients };
    this.transcript.add('C', 'DATA', tag);
    await this.step();
    this.transcript.add('S', '354 go ahead', tag);
    this.transcript.add('C', '<message: 5 octets, 1 lines>', tag);
    await this.step();
    const data = reply(250, '2.0.0 queued');
    this.transcript.add('S', '250 2.0.0 queued', tag);
    return {
      mail: ok,
      recipients: recipients.map((r) => (r.status === 'accepted' ? { ...r, reply: data } : r)),
      data,
    };
  }
  async quit() {
    this.transcript.add('C', 'QUIT');
    this.transcript.add('S', '221 bye');
    this.usable = false;
  }
  close() {
    this.usable = false;
  }
  private async step() {
    await tick();
    if (this.failure) throw this.failure;
  }
  private fail(error: SmtpError, tag: string | undefined): never {
    this.usable = false;
    this.failure = error;
    this.transcript.add('*', `error ${error.code} at ${error.stage}: ${error.message}`, tag);
    throw error;
  }
}

function initialRecord(id: string, addresses: string[], patch: Partial<StatusRecord> = {}): StatusRecord {
  return {
    id,
    state: 'queued',
    createdAt: T0.toISOString(),
    updatedAt: T0.toISOString(),
    messageId: `<${id}@smtpq.test>`,
    from: 'a@x.test',
    recipients: addresses.map((address) => ({
      address,
      kind: 'to',
      state: 'queued',
      updatedAt: T0.toISOString(),
    })),
    attempts: 0,
    transcripts: [],
    ...patch,
  };
}

const sendable = (): Preparation => ({
  ok: true,
  message: { envelope: { from: 'a@x.test' }, createBody: () => 'hello' },
});

/** A queue record of message `id` (the SQS messageId defaults to `sqs-<id>`). */
function queued(
  id: string,
  options: {
    key?: string;
    receiveCount?: number;
    /** Default: past the grace (an API that may still be writing the record is the exception here). */
    enqueuedAt?: Date;
    addresses?: string[];
    prepare?: BatchRecord['prepare'];
  } = {},
): BatchRecord {
  return {
    key: options.key ?? `sqs-${id}`,
    id,
    receiveCount: options.receiveCount ?? 1,
    enqueuedAt: options.enqueuedAt ?? new Date(T0.getTime() - GRACE_MS - 1),
    initial: initialRecord(id, options.addresses ?? ['b@x.test']),
    prepare: options.prepare ?? sendable,
  };
}

const retry = { baseSeconds: 60, maxSeconds: 3600, maxAgeSeconds: 86_400, maxAttempts: 5 };
const GRACE_MS = 60_000;

function setup(codes: Record<string, number> = {}, now = T0) {
  const status = new MemoryStatusStore();
  const suppressions = new MemorySuppressionStore();
  const transcripts = new MemoryTranscriptStore();
  const gate = new FakeGate();
  const relay = new ScriptedRelay();
  for (const [address, code] of Object.entries(codes)) relay.replies[address] = reply(code, `for ${address}`);
  const senders: RelaySender[] = [];
  const sleeps: number[] = [];
  /** One worker invocation: a fresh sender, the batch delivered. */
  const run = (records: BatchRecord[], overrides: Partial<BatchDeps> = {}) => {
    const sender = new RelaySender(relay.connect, { host: 'relay.test', port: 587 });
    senders.push(sender);
    const owner = overrides.owner ?? 'w1';
    const deps: BatchDeps = {
      status,
      suppressions,
      transcripts,
      sender,
      gate,
      retry,
      transcriptKey: (n) => `transcripts/2026-11-28/${owner}-${n}.log`,
      owner,
      leaseMs: 60_000,
      recordWriteGraceMs: GRACE_MS,
      timeLeft: () => 600_000,
      now: () => now,
      random: () => 1,
      sleep: async (ms) => {
        sleeps.push(ms);
        // Lets every send in flight run to its end, as a real wait would.
        await new Promise<void>((resolve) => setImmediate(resolve));
      },
      ...overrides,
    };
    return deliverBatch(deps, records);
  };
  const seed = (id: string, addresses: string[], patch: Partial<StatusRecord> = {}) =>
    status.put(initialRecord(id, addresses, patch));
  /** The recipients the relay was asked to take, in order. */
  const sentTo = () => relay.mails.flatMap((m) => m.to);
  return { status, suppressions, transcripts, gate, relay, senders, sleeps, run, seed, sentTo };
}

/** A transcript part without the timestamps. */
const withoutTimes = (text: string | undefined) =>
  (text ?? '')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/^\S+ /, ''));

describe('deliverBatch: one message', () => {
  it('delivers, stores the transcript and settles the record as sent', async () => {
    const { status, transcripts, run, seed, sentTo } = setup();
    seed('m1', ['b@x.test', 'c@x.test']);

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({
      kind: 'done',
      id: 'm1',
      state: 'sent',
      attempt: 1,
    });
    expect(sentTo()).toEqual(['b@x.test', 'c@x.test']);
    const record = status.value('m1');
    expect(record).toMatchObject({
      state: 'sent',
      attempts: 1,
      transcripts: [{ attempt: 1, key: 'transcripts/2026-11-28/w1-1.log' }],
    });
    expect(record.lease).toBeUndefined();
    expect(await transcripts.part(record.transcripts[0]!)).toMatch(
      /delivery attempt 1 of message m1 to 2 recipient\(s\)/,
    );
    expect(report.transcriptErrors).toEqual([]);
  });

  it('mixed outcomes: deferred with a back-off; the next attempt addresses only the deferred recipient', async () => {
    const { status, relay, run, seed } = setup({ 'later@x.test': 451, 'never@x.test': 550 });
    seed('m1', ['ok@x.test', 'later@x.test', 'never@x.test']);

    const first = await run([queued('m1', { receiveCount: 1 })]);
    relay.replies = {};
    const second = await run([queued('m1', { receiveCount: 2 })], { owner: 'w2' });

    expect(first.outcomes.get('sqs-m1')).toMatchObject({ kind: 'retry', why: 'deferred', delaySeconds: 60 });
    expect(second.outcomes.get('sqs-m1')).toMatchObject({
      kind: 'done',
      state: 'partially_sent',
      attempt: 2,
    });
    expect(relay.mails).toEqual([
      { tag: 'm1/1', to: ['ok@x.test', 'later@x.test', 'never@x.test'] },
      { tag: 'm1/2', to: ['later@x.test'] },
    ]);
    const record = status.value('m1');
    expect(record.recipients.map((r) => r.state)).toEqual(['delivered', 'delivered', 'failed']);
    expect(record.transcripts.map((t) => [t.attempt, t.key])).toEqual([
      [1, 'transcripts/2026-11-28/w1-1.log'],
      [2, 'transcripts/2026-11-28/w2-1.log'],
    ]);
  });

  it('a deferred message records when it is due again', async () => {
    const { status, run, seed } = setup({ 'later@x.test': 451 });
    seed('m1', ['later@x.test']);

    await run([queued('m1')]);

    expect(status.value('m1')).toMatchObject({
      state: 'deferred',
      nextAttemptAt: '2026-11-28T10:01:00.000Z',
    });
  });

  it('a second delivery of a finished message sends nothing', async () => {
    const { run, seed, sentTo } = setup();
    seed('m1', ['b@x.test']);

    await run([queued('m1')]);
    const again = await run([queued('m1')], { owner: 'w2' });

    expect(again.outcomes.get('sqs-m1')).toMatchObject({
      kind: 'done',
      state: 'sent',
      reason: 'already final',
    });
    expect(sentTo()).toEqual(['b@x.test']);
  });

  it('backs off while another owner holds a live lease', async () => {
    const { run, seed, sentTo } = setup();
    seed('m1', ['b@x.test'], { state: 'sending', lease: { owner: 'w9', until: at(42_500) } });

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toEqual({
      kind: 'retry',
      id: 'm1',
      why: 'leased',
      delaySeconds: 43,
    });
    expect(sentTo()).toEqual([]);
  });

  it('waits out a lease far in the future no longer than SQS can hide the record', async () => {
    const { run, seed } = setup();
    seed('m1', ['b@x.test'], { state: 'sending', lease: { owner: 'w9', until: at(2 * 86_400_000) } });

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toEqual({
      kind: 'retry',
      id: 'm1',
      why: 'leased',
      delaySeconds: MAX_DEFERRAL_SECONDS,
    });
  });

  it('takes over an expired lease', async () => {
    const { run, seed, sentTo } = setup();
    seed('m1', ['b@x.test'], { state: 'sending', lease: { owner: 'w9', until: at(-1) } });

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo()).toEqual(['b@x.test']);
  });

  it('backs off without sending when its claim loses the conditional write', async () => {
    const { status, run, seed, sentTo } = setup();
    seed('m1', ['b@x.test']);
    status.beforeUpdate('m1', 1, () =>
      seed('m1', ['b@x.test'], { state: 'sending', lease: { owner: 'w9', until: T0.toISOString() } }),
    );

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'retry', why: 'conflict', delaySeconds: 60 });
    expect(sentTo()).toEqual([]);
  });

  it('gives up past the attempt limit: failed with the last reply, not retried', async () => {
    const { status, run, seed } = setup({ 'b@x.test': 451 });
    seed('m1', ['b@x.test'], { state: 'deferred', attempts: 4 });

    const report = await run([queued('m1', { receiveCount: 5 })]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'failed' });
    const record = status.value('m1');
    expect(record.recipients[0]).toMatchObject({ state: 'failed', reply: { code: 451 } });
    expect(record.error).toMatch(/5 attempts/);
  });

  it("counts the ledger's attempts against the limit, not the queue's receives that sent nothing", async () => {
    const { status, run, seed } = setup({ 'b@x.test': 451 });
    // Received many times while the relay was paused or rate limited: never attempted.
    seed('m1', ['b@x.test']);

    const report = await run([queued('m1', { receiveCount: 9 })]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'retry', why: 'deferred', attempt: 1 });
    expect(status.value('m1')).toMatchObject({ state: 'deferred', attempts: 1 });
  });

  it('gives up past the maximum age: failed with the last reply, not retried', async () => {
    const { status, run, seed } = setup({ 'b@x.test': 451 }, new Date(T0.getTime() + 86_401_000));
    seed('m1', ['b@x.test']);

    const report = await run([queued('m1', { receiveCount: 2 })]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'failed' });
    const record = status.value('m1');
    expect(record.recipients[0]).toMatchObject({ state: 'failed', reply: { code: 451 } });
    expect(record.error).toMatch(/gave up after 86401 s in the queue \(limit 86400 s\)/);
    expect(record.nextAttemptAt).toBeUndefined();
  });

  it('merges its results when the outcome write races another writer', async () => {
    const { status, run, seed } = setup();
    seed('m1', ['b@x.test', 'c@x.test']);
    // After the claim, another writer marks c delivered (as a worker with an expired lease might).
    status.beforeUpdate('m1', 2, () => {
      const current = status.value('m1');
      status.put({
        ...current,
        recipients: current.recipients.map((r) =>
          r.address === 'c@x.test' ? { ...r, state: 'delivered' } : r,
        ),
      });
    });

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(status.value('m1').transcripts.map((t) => t.attempt)).toEqual([1]);
  });

  it('a give-up survives a lost outcome write: the merged record still fails the open recipients', async () => {
    const { status, run, seed } = setup({ 'b@x.test': 451 });
    seed('m1', ['b@x.test', 'c@x.test'], { state: 'deferred', attempts: 4 });
    // A bare rewrite: new version, same content.
    status.beforeUpdate('m1', 2, () => status.put(status.value('m1')));

    const report = await run([queued('m1', { receiveCount: 5 })]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'partially_sent' });
    expect(status.value('m1').recipients.map((r) => r.state)).toEqual(['failed', 'delivered']);
  });

  it('keeps the queue record when the outcome lands while another delivery holds a live lease', async () => {
    const { status, run, seed } = setup({ 'later@x.test': 451 });
    seed('m1', ['b@x.test', 'later@x.test']);
    // Between the claim and the outcome, another delivery took a lease (ours ran out): it is sending now.
    status.beforeUpdate('m1', 2, () => {
      status.put({ ...status.value('m1'), lease: { owner: 'w9', until: at(120_000) } });
    });

    const report = await run([queued('m1')]);

    // Deleting it now would leave 'later' to a delivery that may itself be lost: wait out the lease instead.
    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'retry', why: 'leased', delaySeconds: 120 });
    const record = status.value('m1');
    expect(record).toMatchObject({ state: 'sending', lease: { owner: 'w9' } });
    expect(record.recipients.map((r) => r.state)).toEqual(['delivered', 'deferred']);
  });

  it('settles a message whose recipients are all final, unless another delivery took a lease meanwhile', async () => {
    const { status, run, seed, sentTo, relay } = setup();
    const settled: StatusRecord['recipients'] = [
      { address: 'b@x.test', kind: 'to', state: 'delivered', updatedAt: T0.toISOString() },
    ];
    seed('m1', ['b@x.test'], { state: 'sending', recipients: settled });
    const first = await run([queued('m1')]);

    seed('m1', ['b@x.test'], { state: 'sending', recipients: settled });
    status.beforeUpdate('m1', 1, () => {
      status.put({ ...status.value('m1'), lease: { owner: 'w9', until: at(30_000) } });
    });
    const second = await run([queued('m1')]);

    expect(first.outcomes.get('sqs-m1')).toMatchObject({
      kind: 'done',
      state: 'sent',
      reason: 'nothing left to send',
    });
    expect(second.outcomes.get('sqs-m1')).toEqual({
      kind: 'retry',
      id: 'm1',
      why: 'leased',
      delaySeconds: 30,
    });
    expect(status.value('m1')).toMatchObject({ state: 'sending', lease: { owner: 'w9' } });
    expect(sentTo()).toEqual([]);
    expect(relay.connects).toBe(0);
  });

  it('a transcript that cannot be stored does not lose the outcome', async () => {
    const { status, transcripts, run, seed, sentTo } = setup();
    seed('m1', ['b@x.test']);
    transcripts.failPuts = new Error('S3 SlowDown');

    const report = await run([queued('m1')]);
    transcripts.failPuts = undefined;
    const again = await run([queued('m1')], { owner: 'w2' });

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(report.transcriptErrors).toEqual([
      { key: 'transcripts/2026-11-28/w1-1.log', error: new Error('S3 SlowDown') },
    ]);
    const record = status.value('m1');
    expect(record).toMatchObject({ state: 'sent', attempts: 1 });
    expect(record.lease).toBeUndefined();
    // The next delivery of the same queue message sends nothing again.
    expect(again.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', reason: 'already final' });
    expect(sentTo()).toEqual(['b@x.test']);
  });

  it('a message that can never be built is failed with the reason and left for the dead-letter queue', async () => {
    const { status, run, seed, relay } = setup();
    seed('m1', ['b@x.test']);
    const prepare = (): Preparation => ({ ok: false, reason: 'attachment a.pdf: invalid base64' });

    const report = await run([queued('m1', { prepare })]);

    expect(report.outcomes.get('sqs-m1')).toEqual({
      kind: 'malformed',
      id: 'm1',
      reason: 'attachment a.pdf: invalid base64',
    });
    expect(status.value('m1')).toMatchObject({
      state: 'failed',
      attempts: 0,
      error: 'attachment a.pdf: invalid base64',
      recipients: [{ state: 'failed', error: 'attachment a.pdf: invalid base64' }],
    });
    expect(relay.connects).toBe(0);
  });
});

describe('deliverBatch: the ledger of a batch', () => {
  it('reads the whole batch with one getMany and no per-record read', async () => {
    const { status, run, seed } = setup();
    for (const id of ['m1', 'm2', 'm3']) seed(id, [`${id}@x.test`]);

    await run([queued('m1'), queued('m2'), queued('m3')]);

    expect(status.calls.getMany).toEqual([['m1', 'm2', 'm3']]);
    expect(status.calls.get).toEqual([]);
  });

  it('sends every message of the batch on one connection', async () => {
    const { relay, senders, run, seed } = setup();
    for (const id of ['m1', 'm2', 'm3']) seed(id, [`${id}@x.test`]);

    const report = await run([queued('m1'), queued('m2'), queued('m3')]);

    expect([...report.outcomes.values()].map((o) => o.kind)).toEqual(['done', 'done', 'done']);
    expect(relay.connects).toBe(1);
    expect(relay.mails.map((m) => m.tag).sort()).toEqual(['m1/1', 'm2/1', 'm3/1']);
    expect([...senders[0]!.connections[0]!.tags].sort()).toEqual(['m1/1', 'm2/1', 'm3/1']);
  });

  it('creates a record missing from the ledger from the queue message and delivers it', async () => {
    const { status, run, sentTo } = setup();

    const report = await run([queued('m1', { addresses: ['b@x.test', 'c@x.test'] })]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent', attempt: 1 });
    expect(status.calls.create).toEqual(['m1']);
    expect(sentTo()).toEqual(['b@x.test', 'c@x.test']);
    expect(status.value('m1')).toMatchObject({ state: 'sent', attempts: 1, messageId: '<m1@smtpq.test>' });
  });

  it("leaves a young message's missing record to the API: read again shortly, used once the API wrote it", async () => {
    const { status, run, seed, sleeps, sentTo } = setup();
    // The API enqueued a second ago and its ledger write is a moment behind the worker's read.
    status.afterGetMany = () => seed('m1', ['b@x.test'], { tags: { campaign: 'c1' } });

    const report = await run([queued('m1', { enqueuedAt: new Date(T0.getTime() - 1000) })]);

    expect(status.calls.create).toEqual([]);
    expect(status.calls.getMany).toEqual([['m1'], ['m1']]);
    expect(sleeps[0]).toBe(200);
    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo()).toEqual(['b@x.test']);
    expect(status.value('m1')).toMatchObject({ state: 'sent', tags: { campaign: 'c1' } });
  });

  it("writes nothing for a young message whose record is still missing: back soon, then at the grace's end", async () => {
    const { status, run, sentTo } = setup();

    const report = await run([
      queued('m1', { enqueuedAt: new Date(T0.getTime() - 1000) }),
      queued('m2', { enqueuedAt: new Date(T0.getTime() - 20_000) }),
    ]);

    // Written by nobody here: the API's unconditional batch write could still replace it.
    expect(status.calls.create).toEqual([]);
    expect(sentTo()).toEqual([]);
    expect(report.outcomes.get('sqs-m1')).toMatchObject({
      kind: 'retry',
      why: 'not_written',
      delaySeconds: 2,
    });
    expect(report.outcomes.get('sqs-m2')).toMatchObject({
      kind: 'retry',
      why: 'not_written',
      delaySeconds: 40,
    });
  });

  it('uses the record the API wrote in the meantime rather than its own copy', async () => {
    const { status, run, seed, sentTo } = setup();
    // Not there when the batch is read; there when the worker writes it (the API was just slower).
    status.afterGetMany = () => seed('m1', ['b@x.test'], { tags: { campaign: 'c1' } });

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo()).toEqual(['b@x.test']);
    expect(status.value('m1')).toMatchObject({ state: 'sent', tags: { campaign: 'c1' } });
  });

  it('retries a record whose initial status record cannot be written, sending nothing', async () => {
    const { status, run, seed, sentTo } = setup();
    seed('m2', ['m2@x.test']);
    status.failCreate = new Error('DynamoDB unavailable');

    const report = await run([queued('m1'), queued('m2')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'retry', id: 'm1', why: 'error' });
    expect(report.outcomes.get('sqs-m2')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo()).toEqual(['m2@x.test']);
  });

  it('two records of the same message in one batch: the first delivers it, the second is a duplicate', async () => {
    const { status, run, seed, sentTo } = setup();
    seed('m1', ['b@x.test']);

    const report = await run([queued('m1', { key: 'sqs-1' }), queued('m1', { key: 'sqs-2' })]);

    expect(report.outcomes.get('sqs-1')).toMatchObject({ kind: 'done', state: 'sent', attempt: 1 });
    expect(report.outcomes.get('sqs-2')).toMatchObject({
      kind: 'done',
      id: 'm1',
      reason: 'duplicate of another record in this batch',
    });
    expect(sentTo()).toEqual(['b@x.test']);
    expect(status.value('m1').attempts).toBe(1);
  });

  it('writes a missing record once when the batch carries it twice', async () => {
    const { status, run, sentTo } = setup();

    const report = await run([queued('m1', { key: 'sqs-1' }), queued('m1', { key: 'sqs-2' })]);

    expect(status.calls.create).toEqual(['m1']);
    expect(report.outcomes.get('sqs-1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(report.outcomes.get('sqs-2')).toMatchObject({
      kind: 'done',
      reason: expect.stringMatching(/duplicate/),
    });
    expect(sentTo()).toEqual(['b@x.test']);
  });

  it("one record's claim conflict touches no other record", async () => {
    const { status, run, seed, sentTo } = setup();
    for (const id of ['m1', 'm2', 'm3']) seed(id, [`${id}@x.test`]);
    const racer = () => seed('m2', ['m2@x.test'], { state: 'sending', lease: { owner: 'w9', until: at(1) } });
    status.beforeUpdate('m2', 1, racer);

    const report = await run([queued('m1'), queued('m2'), queued('m3')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(report.outcomes.get('sqs-m2')).toMatchObject({ kind: 'retry', why: 'conflict', delaySeconds: 60 });
    expect(report.outcomes.get('sqs-m3')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo().sort()).toEqual(['m1@x.test', 'm3@x.test']);
    expect(status.value('m2')).toMatchObject({ state: 'sending', attempts: 0, lease: { owner: 'w9' } });
  });

  it('a claim that fails for another reason retries that record with the error', async () => {
    const { status, run, seed, sentTo } = setup();
    for (const id of ['m1', 'm2']) seed(id, [`${id}@x.test`]);
    const outage = new Error('ProvisionedThroughputExceeded');
    status.beforeUpdate('m1', 1, () => {
      throw outage;
    });

    const report = await run([queued('m1'), queued('m2')]);

    expect(report.outcomes.get('sqs-m1')).toEqual({ kind: 'retry', id: 'm1', why: 'error', error: outage });
    expect(report.outcomes.get('sqs-m2')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo()).toEqual(['m2@x.test']);
  });

  it('a ledger that cannot be read returns every record for a retry, sending nothing', async () => {
    const { status, run, relay } = setup();
    const outage = new Error('DynamoDB unavailable');
    status.failGetMany = outage;

    const report = await run([queued('m1'), queued('m2')]);

    expect([...report.outcomes.values()]).toEqual([
      { kind: 'retry', id: 'm1', why: 'error', error: outage },
      { kind: 'retry', id: 'm2', why: 'error', error: outage },
    ]);
    expect(relay.connects).toBe(0);
  });

  it('records each outcome on its own: one delivered, one deferred, one failed', async () => {
    const { status, run, seed } = setup({ 'm2@x.test': 451, 'm3@x.test': 550 });
    for (const id of ['m1', 'm2', 'm3']) seed(id, [`${id}@x.test`]);

    const report = await run([queued('m1'), queued('m2'), queued('m3')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(report.outcomes.get('sqs-m2')).toMatchObject({ kind: 'retry', why: 'deferred', delaySeconds: 60 });
    expect(report.outcomes.get('sqs-m3')).toMatchObject({ kind: 'done', state: 'failed' });
    expect(['m1', 'm2', 'm3'].map((id) => status.value(id).state)).toEqual(['sent', 'deferred', 'failed']);
  });
});

describe('deliverBatch: transcripts', () => {
  it("each outcome points to its connection's transcript, with the connection's lines and its own only", async () => {
    const { status, transcripts, run, seed } = setup();
    seed('m1', ['b@x.test']);
    seed('m2', ['c@x.test']);

    await run([queued('m1'), queued('m2')]);

    const key = 'transcripts/2026-11-28/w1-1.log';
    expect([...transcripts.texts.keys()]).toEqual([key]);
    const [ref1] = status.value('m1').transcripts;
    const [ref2] = status.value('m2').transcripts;
    expect(ref1).toMatchObject({ attempt: 1, key });
    expect(ref2).toMatchObject({ attempt: 1, key });
    const connection = [
      '*  connected to relay.test:587',
      'S: 220 relay.test ESMTP',
      'C: EHLO worker.test',
      'S: 250 relay.test',
    ];
    const message = (id: string, to: string) => [
      `*  delivery attempt 1 of message ${id} to 1 recipient(s)`,
      'C: MAIL FROM:<a@x.test>',
      'S: 250 2.1.0 sender ok',
      `C: RCPT TO:<${to}>`,
      'S: 250 2.0.0 ok',
      'C: DATA',
      'S: 354 go ahead',
      'C: <message: 5 octets, 1 lines>',
      'S: 250 2.0.0 queued',
    ];
    const quit = ['C: QUIT', 'S: 221 bye'];
    expect(withoutTimes(await transcripts.part(ref1!))).toEqual([
      ...connection,
      ...message('m1', 'b@x.test'),
      ...quit,
    ]);
    expect(withoutTimes(await transcripts.part(ref2!))).toEqual([
      ...connection,
      ...message('m2', 'c@x.test'),
      ...quit,
    ]);
  });

  it("the line runs of interleaved messages select exactly the lines of the connection's transcript that are theirs", async () => {
    const { status, transcripts, senders, run, seed } = setup();
    seed('m1', ['b@x.test']);
    seed('m2', ['c@x.test']);

    await run([queued('m1'), queued('m2')]);

    const entries = senders[0]!.connections[0]!.transcript.entries;
    const stored = transcripts.texts.get('transcripts/2026-11-28/w1-1.log')!.split('\n');
    expect(stored).toHaveLength(entries.length + 1); // one line per entry, then the final newline
    for (const id of ['m1', 'm2']) {
      const { lines } = status.value(id).transcripts[0]!;
      const chosen = lines.flatMap(([first, last]) =>
        Array.from({ length: last - first + 1 }, (_, i) => first + i),
      );
      const expected = entries.flatMap((e, n) => (e.tag === undefined || e.tag === `${id}/1` ? [n] : []));
      expect(chosen).toEqual(expected);
      // Runs are maximal: two runs never touch.
      for (let i = 1; i < lines.length; i++) expect(lines[i]![0]).toBeGreaterThan(lines[i - 1]![1] + 1);
    }
  });

  it('an attempt that needed a second connection points to both transcripts', async () => {
    const { status, transcripts, relay, run, seed } = setup();
    relay.deadConnections = 1;
    seed('m1', ['b@x.test']);

    const report = await run([queued('m1')]);

    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    const refs = status.value('m1').transcripts;
    expect(refs.map((r) => [r.attempt, r.key])).toEqual([
      [1, 'transcripts/2026-11-28/w1-1.log'],
      [1, 'transcripts/2026-11-28/w1-2.log'],
    ]);
    expect(await transcripts.part(refs[0]!)).toMatch(/the connection broke .*; reconnecting/);
    expect(await transcripts.part(refs[1]!)).toMatch(/250 2\.0\.0 queued/);
  });
});

describe('deliverBatch: the relay gate', () => {
  it('a clean batch tells the gate the relay recovered; nothing is paused', async () => {
    const { gate, run, seed } = setup();
    seed('m1', ['b@x.test']);

    const report = await run([queued('m1')]);

    expect(gate.recoveries).toBe(1);
    expect(gate.pauses).toEqual([]);
    expect(report.pausedUntil).toBeUndefined();
  });

  it('a throttling reply pauses the relay once; every throttled record waits out the pause', async () => {
    const { status, gate, relay, run, seed } = setup();
    relay.replies['b@x.test'] = {
      code: 421,
      enhanced: '4.7.0',
      lines: ['4.7.0 Too many messages, slow down'],
    };
    seed('m1', ['b@x.test']);
    seed('m2', ['c@x.test']);

    const report = await run([queued('m1'), queued('m2')]);

    expect(gate.pauses).toHaveLength(1);
    expect(gate.pauses[0]).toMatch(/^421 /);
    expect(report.pausedUntil).toEqual(new Date(T0.getTime() + 30_000));
    for (const key of ['sqs-m1', 'sqs-m2'])
      expect(report.outcomes.get(key)).toMatchObject({ kind: 'retry', why: 'deferred', delaySeconds: 30 });
    expect(status.value('m1')).toMatchObject({ state: 'deferred', nextAttemptAt: at(30_000) });
    expect(relay.connects).toBe(1); // no reconnect into a throttling relay
    expect(gate.recoveries).toBe(0);
  });

  it('a throttling reply stops the batch: the records not yet sent come back unclaimed, after the pause', async () => {
    const { status, gate, relay, run, seed } = setup();
    relay.replies['m1@x.test'] = { code: 421, enhanced: '4.7.0', lines: ['4.7.0 rate limit exceeded'] };
    for (const id of ['m1', 'm2', 'm3']) seed(id, [`${id}@x.test`]);
    // One permit now, the next one soon: m1 goes out alone and is throttled while the worker waits.
    gate.limited = true;
    gate.grants = [
      { granted: 1, retryAfterMs: 0 },
      { granted: 0, retryAfterMs: 500 },
    ];

    const report = await run([queued('m1'), queued('m2'), queued('m3')]);

    expect(relay.mails.map((m) => m.tag)).toEqual(['m1/1']);
    expect(gate.pauses).toHaveLength(1);
    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'retry', why: 'deferred', delaySeconds: 30 });
    expect(report.outcomes.get('sqs-m2')).toEqual({
      kind: 'retry',
      id: 'm2',
      why: 'paused',
      delaySeconds: 30,
    });
    expect(report.outcomes.get('sqs-m3')).toEqual({
      kind: 'retry',
      id: 'm3',
      why: 'paused',
      delaySeconds: 30,
    });
    expect(status.value('m2')).toMatchObject({ state: 'queued', attempts: 0 });
  });

  it('a gate granting fewer permits than records sends only those and returns the rest as rate limited', async () => {
    const { status, gate, relay, sleeps, run, seed } = setup();
    for (const id of ['m1', 'm2', 'm3', 'm4']) seed(id, [`${id}@x.test`]);
    gate.limited = true;
    gate.grants = [
      { granted: 2, retryAfterMs: 0 },
      { granted: 0, retryAfterMs: 3_000 },
    ];

    const report = await run([queued('m1'), queued('m2'), queued('m3'), queued('m4')]);

    expect(relay.mails.map((m) => m.tag)).toEqual(['m1/1', 'm2/1']);
    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(report.outcomes.get('sqs-m2')).toMatchObject({ kind: 'done', state: 'sent' });
    for (const id of ['m3', 'm4']) {
      expect(report.outcomes.get(`sqs-${id}`)).toEqual({
        kind: 'retry',
        id,
        why: 'rate_limited',
        delaySeconds: 3,
      });
      expect(status.value(id)).toMatchObject({ state: 'queued', attempts: 0 });
    }
    expect(gate.wanted).toEqual([4, 2]);
    expect(sleeps).toEqual([]); // a permit 3 s away is not waited for in the invocation
  });

  it('waits in the invocation for a permit that is due soon, then sends the rest', async () => {
    const { gate, relay, sleeps, run, seed } = setup();
    for (const id of ['m1', 'm2']) seed(id, [`${id}@x.test`]);
    gate.limited = true;
    gate.grants = [
      { granted: 1, retryAfterMs: 0 },
      { granted: 0, retryAfterMs: 100 },
    ];

    const report = await run([queued('m1'), queued('m2')]);

    expect(relay.mails.map((m) => m.tag)).toEqual(['m1/1', 'm2/1']);
    expect([...report.outcomes.values()].map((o) => o.kind)).toEqual(['done', 'done']);
    expect(sleeps).toEqual([250]); // at least 250 ms between two asks of the shared gate
    expect(relay.connects).toBe(1);
  });

  it('starts no SMTP work with too little time left: every record goes back unclaimed', async () => {
    const { status, relay, run, seed } = setup();
    for (const id of ['m1', 'm2']) seed(id, [`${id}@x.test`]);

    const report = await run([queued('m1'), queued('m2')], { timeLeft: () => 4_000 });

    expect([...report.outcomes.values()]).toEqual([
      { kind: 'retry', id: 'm1', why: 'out_of_time', delaySeconds: undefined },
      { kind: 'retry', id: 'm2', why: 'out_of_time', delaySeconds: undefined },
    ]);
    expect(relay.connects).toBe(0);
    expect(status.value('m1')).toMatchObject({ state: 'queued', attempts: 0 });
  });
});

describe('deliverBatch: isolation and the throttling pause', () => {
  it('a record whose message cannot be built for an unexpected reason touches no other record', async () => {
    const { run, seed, sentTo } = setup();
    for (const id of ['m1', 'm2', 'm3']) seed(id, [`${id}@x.test`]);
    const broken = (): Preparation => {
      throw new TypeError('unexpected');
    };

    const report = await run([queued('m1'), queued('m2', { prepare: broken }), queued('m3')]);

    expect(report.outcomes.get('sqs-m2')).toMatchObject({ kind: 'retry', why: 'error' });
    expect(report.outcomes.get('sqs-m1')).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo().sort()).toEqual(['m1@x.test', 'm3@x.test']);
  });
});

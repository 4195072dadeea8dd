// runAttempt's ledger protocol (lease, conditional writes, retry decision) against in-memory ports.
import { describe, expect, it } from 'vitest';
import { type AttemptDeps, runAttempt } from '../../lib/delivery/attempt.ts';
import { MAX_DEFERRAL_SECONDS } from '../../lib/delivery/backoff.ts';
import type { SmtpSender } from '../../lib/delivery/deliver.ts';
import {
  type StatusRecord,
  type StatusStore,
  type TranscriptStore,
  VersionConflictError,
  type Versioned,
} from '../../lib/delivery/ports.ts';
import type { Reply, Transcript, TranscriptEntry } from '../../lib/smtp/types.ts';

const T0 = new Date('2026-11-28T10:00:00Z');

/** StatusStore semantics of the S3 adapter: the version changes on every write; update is If-Match. */
class MemoryStatusStore implements StatusStore {
  readonly records = new Map<string, Versioned<StatusRecord>>();
  private counter = 0;
  /** Runs once just before the next update is checked, to simulate a concurrent writer. */
  beforeNextUpdate?: () => void;
  async create(record: StatusRecord) {
    if (this.records.has(record.id)) throw new VersionConflictError('exists');
    return this.put(record);
  }
  async get(id: string) {
    const v = this.records.get(id);
    return v && structuredClone(v);
  }
  async update(record: StatusRecord, version: string) {
    const hook = this.beforeNextUpdate;
    this.beforeNextUpdate = undefined;
    hook?.();
    if (this.records.get(record.id)?.version !== version) throw new VersionConflictError('changed');
    return this.put(record);
  }
  put(record: StatusRecord) {
    const v = { value: structuredClone(record), version: `v${++this.counter}` };
    this.records.set(record.id, v);
    return structuredClone(v);
  }
}

class MemoryTranscriptStore implements TranscriptStore {
  readonly texts = new Map<string, string>();
  async put(id: string, attempt: number, text: string) {
    const key = `transcripts/${id}/${attempt}.log`;
    this.texts.set(key, text);
    return key;
  }
  async get(id: string, attempt = 1) {
    return this.texts.get(`transcripts/${id}/${attempt}.log`);
  }
}

function memoryTranscript(): Transcript {
  const entries: TranscriptEntry[] = [];
  return {
    entries,
    add: (kind, text) => void entries.push({ at: T0, kind, text }),
    toString: () => entries.map((e) => `${e.kind}: ${e.text}\n`).join(''),
  };
}

const ok: Reply = { code: 250, lines: ['ok'] };

/** A sender answering each address with a fixed code, and counting what it was asked to send. */
function scriptedSender(codes: Record<string, number>) {
  const sentTo: string[] = [];
  const sender: SmtpSender & { attach(t: Transcript): void } = {
    attach: () => {},
    async send(envelope) {
      sentTo.push(...envelope.to);
      const recipients = envelope.to.map((address) => {
        const code = codes[address] ?? 250;
        const reply = { code, lines: [`${code} for ${address}`] };
        return {
          address,
          status: code < 300 ? 'accepted' : code < 500 ? 'deferred' : 'failed',
          reply,
        } as const;
      });
      return { mail: ok, recipients, data: ok };
    },
  };
  return { sender, sentTo };
}

function seed(status: MemoryStatusStore, addresses: string[], patch: Partial<StatusRecord> = {}) {
  status.put({
    id: 'm1',
    state: 'queued',
    createdAt: T0.toISOString(),
    updatedAt: T0.toISOString(),
    messageId: '<m1@smtpq.test>',
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
  });
}

const retry = { baseSeconds: 60, maxSeconds: 3600, maxAgeSeconds: 86_400, maxAttempts: 5 };

function setup(codes: Record<string, number> = {}, at = T0) {
  const status = new MemoryStatusStore();
  const transcripts = new MemoryTranscriptStore();
  const { sender, sentTo } = scriptedSender(codes);
  const deps: AttemptDeps = {
    status,
    transcripts,
    session: sender,
    createTranscript: memoryTranscript,
    retry,
    now: () => at,
    random: () => 1,
  };
  const input = (owner = 'w1', receiveCount = 1) => ({
    id: 'm1',
    owner,
    receiveCount,
    leaseMs: 60_000,
    prepare: () => ({ envelope: { from: 'a@x.test' }, createBody: () => 'hello' }),
  });
  return { status, transcripts, deps, sentTo, input };
}

/** Runs `write` just before the second update (the outcome, after the claim) is checked: a concurrent writer. */
function beforeOutcomeUpdate(status: MemoryStatusStore, write: () => void) {
  let calls = 0;
  const original = status.update.bind(status);
  status.update = async (record, version) => {
    if (++calls === 2) write();
    return original(record, version);
  };
}

describe('runAttempt', () => {
  it('delivers, writes the transcript and settles the record as sent', async () => {
    const { status, transcripts, deps, sentTo, input } = setup();
    seed(status, ['b@x.test', 'c@x.test']);
    const result = await runAttempt(deps, input());
    expect(result).toMatchObject({ kind: 'done', state: 'sent', attempt: 1 });
    expect(sentTo).toEqual(['b@x.test', 'c@x.test']);
    const record = status.records.get('m1')!.value;
    expect(record).toMatchObject({ state: 'sent', attempts: 1, transcripts: ['transcripts/m1/1.log'] });
    expect(record.lease).toBeUndefined();
    expect(transcripts.texts.get('transcripts/m1/1.log')).toMatch(/delivery attempt 1 of message m1/);
  });

  it('mixed outcomes: deferred with a back-off; the next attempt addresses only the deferred recipient', async () => {
    const { status, deps, sentTo, input } = setup({ 'later@x.test': 451, 'never@x.test': 550 });
    seed(status, ['ok@x.test', 'later@x.test', 'never@x.test']);
    const first = await runAttempt(deps, input('w1', 1));
    expect(first).toMatchObject({ kind: 'retry', why: 'deferred', delaySeconds: 60 });
    expect(status.records.get('m1')!.value).toMatchObject({
      state: 'deferred',
      nextAttemptAt: '2026-11-28T10:01:00.000Z',
    });

    sentTo.length = 0;
    const second = await runAttempt({ ...deps, session: scriptedSender({}).sender }, input('w2', 2));
    expect(second).toMatchObject({ kind: 'done', state: 'partially_sent', attempt: 2 });
    const record = status.records.get('m1')!.value;
    expect(record.recipients.map((r) => r.state)).toEqual(['delivered', 'delivered', 'failed']);
    expect(record.transcripts).toEqual(['transcripts/m1/1.log', 'transcripts/m1/2.log']);
  });

  it('a second delivery of a finished message sends nothing', async () => {
    const { status, deps, sentTo, input } = setup();
    seed(status, ['b@x.test']);
    await runAttempt(deps, input('w1'));
    const again = await runAttempt(deps, input('w2'));
    expect(again).toMatchObject({ kind: 'done', state: 'sent', reason: 'already final' });
    expect(sentTo).toEqual(['b@x.test']);
  });

  it('backs off while another owner holds a live lease', async () => {
    const { status, deps, sentTo, input } = setup();
    seed(status, ['b@x.test'], {
      state: 'sending',
      lease: { owner: 'w9', until: new Date(T0.getTime() + 42_500).toISOString() },
    });
    expect(await runAttempt(deps, input('w1'))).toEqual({ kind: 'retry', why: 'leased', delaySeconds: 43 });
    expect(sentTo).toEqual([]);
  });

  it('waits out a lease far in the future no longer than SQS can hide the record', async () => {
    const { status, deps, input } = setup();
    seed(status, ['b@x.test'], {
      state: 'sending',
      lease: { owner: 'w9', until: new Date(T0.getTime() + 2 * 86_400_000).toISOString() },
    });
    expect(await runAttempt(deps, input('w1'))).toEqual({
      kind: 'retry',
      why: 'leased',
      delaySeconds: MAX_DEFERRAL_SECONDS,
    });
  });

  it('takes over an expired lease', async () => {
    const { status, deps, sentTo, input } = setup();
    seed(status, ['b@x.test'], {
      state: 'sending',
      lease: { owner: 'w9', until: new Date(T0.getTime() - 1).toISOString() },
    });
    expect(await runAttempt(deps, input('w1'))).toMatchObject({ kind: 'done', state: 'sent' });
    expect(sentTo).toEqual(['b@x.test']);
  });

  it('backs off without sending when its claim loses the conditional write', async () => {
    const { status, deps, sentTo, input } = setup();
    seed(status, ['b@x.test']);
    status.beforeNextUpdate = () =>
      seed(status, ['b@x.test'], { state: 'sending', lease: { owner: 'w9', until: T0.toISOString() } });
    expect(await runAttempt(deps, input('w1'))).toMatchObject({ kind: 'retry', why: 'conflict' });
    expect(sentTo).toEqual([]);
  });

  it('gives up past the attempt limit: failed with the last reply, not retried', async () => {
    const { status, deps, input } = setup({ 'b@x.test': 421 });
    seed(status, ['b@x.test']);
    const result = await runAttempt(deps, input('w1', 5));
    expect(result).toMatchObject({ kind: 'done', state: 'failed' });
    const record = status.records.get('m1')!.value;
    expect(record.recipients[0]).toMatchObject({ state: 'failed', reply: { code: 421 } });
    expect(record.error).toMatch(/5 attempts/);
  });

  it('gives up past the maximum age: failed with the last reply, not retried', async () => {
    const { status, deps, input } = setup({ 'b@x.test': 451 }, new Date(T0.getTime() + 86_401_000));
    seed(status, ['b@x.test']);
    const result = await runAttempt(deps, input('w1', 2));
    expect(result).toMatchObject({ kind: 'done', state: 'failed' });
    const record = status.records.get('m1')!.value;
    expect(record.recipients[0]).toMatchObject({ state: 'failed', reply: { code: 451 } });
    expect(record.error).toMatch(/gave up after 86401 s in the queue \(limit 86400 s\)/);
    expect(record.nextAttemptAt).toBeUndefined();
  });

  it('merges its results when the outcome write races another writer', async () => {
    const { status, deps, input } = setup();
    seed(status, ['b@x.test', 'c@x.test']);
    // After the claim, another writer marks c delivered (as a worker with an expired lease might).
    beforeOutcomeUpdate(status, () => {
      const current = status.records.get('m1')!.value;
      status.put({
        ...current,
        recipients: current.recipients.map((r) =>
          r.address === 'c@x.test' ? { ...r, state: 'delivered' } : r,
        ),
      });
    });
    const result = await runAttempt(deps, input('w1'));
    expect(result).toMatchObject({ kind: 'done', state: 'sent' });
    expect(status.records.get('m1')!.value.transcripts).toEqual(['transcripts/m1/1.log']);
  });

  it('a give-up survives a lost outcome write: the merged record still fails the open recipients', async () => {
    const { status, deps, input } = setup({ 'b@x.test': 451 });
    seed(status, ['b@x.test', 'c@x.test']);
    // A bare rewrite: new version, same content.
    beforeOutcomeUpdate(status, () => status.put(status.records.get('m1')!.value));
    const result = await runAttempt(deps, input('w1', 5));
    expect(result).toMatchObject({ kind: 'done', state: 'partially_sent' });
    expect(status.records.get('m1')!.value.recipients.map((r) => r.state)).toEqual(['failed', 'delivered']);
  });

  it('keeps the queue message when the outcome lands while another delivery holds a live lease', async () => {
    const { status, deps, input } = setup({ 'later@x.test': 451 });
    seed(status, ['b@x.test', 'later@x.test']);
    // Between the claim and the outcome, another delivery took a lease (ours ran out): it is sending now.
    beforeOutcomeUpdate(status, () => {
      const current = status.records.get('m1')!.value;
      status.put({
        ...current,
        lease: { owner: 'w9', until: new Date(T0.getTime() + 120_000).toISOString() },
      });
    });
    const result = await runAttempt(deps, input('w1'));
    // Deleting it now would leave 'later' to a delivery that may itself be lost: wait out the lease instead.
    expect(result).toMatchObject({ kind: 'retry', why: 'leased', delaySeconds: 120 });
    const record = status.records.get('m1')!.value;
    expect(record).toMatchObject({ state: 'sending', lease: { owner: 'w9' } });
    expect(record.recipients.map((r) => r.state)).toEqual(['delivered', 'deferred']);
  });

  it('settles a message whose recipients are all final, unless another delivery took a lease meanwhile', async () => {
    const { status, deps, sentTo, input } = setup();
    const settledRecipients = [
      { address: 'b@x.test', kind: 'to', state: 'delivered', updatedAt: T0.toISOString() },
    ];
    seed(status, ['b@x.test'], {
      state: 'sending',
      recipients: settledRecipients as StatusRecord['recipients'],
    });
    expect(await runAttempt(deps, input('w1'))).toMatchObject({ kind: 'done', state: 'sent' });

    seed(status, ['b@x.test'], {
      state: 'sending',
      recipients: settledRecipients as StatusRecord['recipients'],
    });
    status.beforeNextUpdate = () => {
      const current = status.records.get('m1')!.value;
      status.put({
        ...current,
        lease: { owner: 'w9', until: new Date(T0.getTime() + 30_000).toISOString() },
      });
    };
    expect(await runAttempt(deps, input('w1'))).toEqual({ kind: 'retry', why: 'leased', delaySeconds: 30 });
    expect(status.records.get('m1')!.value).toMatchObject({ state: 'sending', lease: { owner: 'w9' } });
    expect(sentTo).toEqual([]);
  });

  it('a transcript that cannot be stored does not lose the outcome', async () => {
    const { status, deps, sentTo, input } = setup();
    seed(status, ['b@x.test']);
    const failing: AttemptDeps = {
      ...deps,
      transcripts: {
        put: async () => {
          throw new Error('S3 SlowDown');
        },
        get: async () => undefined,
      },
    };
    const result = await runAttempt(failing, input('w1'));
    expect(result).toMatchObject({
      kind: 'done',
      state: 'sent',
      transcriptError: 'storing the transcript of attempt 1 failed: S3 SlowDown',
    });
    const record = status.records.get('m1')!.value;
    expect(record).toMatchObject({ state: 'sent', attempts: 1, transcripts: [] });
    expect(record.lease).toBeUndefined();
    // The next delivery of the same queue message sends nothing again.
    expect(await runAttempt(deps, input('w2'))).toMatchObject({ kind: 'done', reason: 'already final' });
    expect(sentTo).toEqual(['b@x.test']);
  });

  it('reports a missing ledger entry', async () => {
    const { deps, input } = setup();
    expect(await runAttempt(deps, input())).toEqual({ kind: 'missing' });
  });
});

// RelaySender's connection policy against scripted connections: one connection shared by every message
// (one connect for concurrent sends), one reconnect when it breaks before a transaction got under way (never
// into a throttling relay), a transcript per connection whose lines carry each message's tag, and
// transcriptPart cutting a message's part out of it.
// (Against a real SMTP server: test/integration/worker-handler.test.ts.)
import { describe, expect, it } from 'vitest';
import { RelaySender, type SmtpConnectionLike, transcriptPart } from '../../lib/delivery/relay-sender.ts';
import { SmtpError } from '../../lib/smtp/errors.ts';
import type {
  Envelope,
  MessageBody,
  SendOptions,
  SendResult,
  SmtpClientOptions,
  SmtpStage,
  Transcript,
  TranscriptEntry,
} from '../../lib/smtp/types.ts';

const ok = { code: 250, lines: ['ok'] };

/**
 * A connection that answers 250 to everything, one transaction at a time (as lib/smtp's write turn does),
 * writing its lines into the connection's transcript with the transaction's tag. `breakNext` makes the next
 * transaction fail at a stage after its MAIL went out; from then on the connection is dead and every
 * transaction still waiting fails with the same error before writing anything.
 */
class ScriptedConnection implements SmtpConnectionLike {
  usable = true;
  deadline: number | undefined;
  readonly sent: { tag: string | undefined; to: string[] }[] = [];
  quits = 0;
  closes = 0;
  breakNext?: Error & { stage: SmtpStage };
  private failure: Error | undefined;
  private turn: Promise<unknown> = Promise.resolve();
  private readonly transcript: Transcript;

  constructor(readonly options: SmtpClientOptions) {
    this.transcript = options.transcript!;
    this.transcript.add('S', '220 relay.test ESMTP');
    this.transcript.add('*', 'TLS 1.3, certificate verified');
  }

  send(envelope: Envelope, _body: MessageBody, options: SendOptions = {}): Promise<SendResult> {
    const run = this.turn.then(() => this.transact(envelope, options.tag));
    this.turn = run.catch(() => {});
    return run;
  }

  private async transact(envelope: Envelope, tag: string | undefined): Promise<SendResult> {
    if (this.failure) throw this.failure;
    this.transcript.add('C', `MAIL FROM:<${envelope.from}>`, tag);
    const breaking = this.breakNext;
    if (breaking) {
      this.breakNext = undefined;
      this.usable = false;
      this.failure = breaking;
      this.transcript.add('*', `error at ${breaking.stage}: ${breaking.message}`, tag);
      throw breaking;
    }
    this.transcript.add('S', '250 ok', tag);
    this.sent.push({ tag, to: envelope.to });
    return {
      mail: ok,
      recipients: envelope.to.map((address) => ({ address, status: 'accepted', reply: ok })),
      data: ok,
    };
  }

  async quit() {
    this.quits += 1;
    this.transcript.add('C', 'QUIT');
    this.usable = false;
  }
  close() {
    this.closes += 1;
    this.usable = false;
  }
}

const lost = (stage: SmtpStage) =>
  new SmtpError('SMTP_CONNECTION', 'connection closed', { stage, transient: true });

/** A session over scripted connections; the first `failConnects` connects are refused. */
function session(options: { failConnects?: number; connectGate?: Promise<void> } = {}) {
  const connections: ScriptedConnection[] = [];
  const connectOptions: SmtpClientOptions[] = [];
  let attempts = 0;
  const s = new RelaySender(
    async (connectWith) => {
      attempts += 1;
      connectOptions.push(connectWith);
      await options.connectGate;
      if (attempts <= (options.failConnects ?? 0)) {
        throw new SmtpError('SMTP_CONNECTION', 'ECONNREFUSED', { stage: 'connect', transient: true });
      }
      const c = new ScriptedConnection(connectWith);
      connections.push(c);
      return c;
    },
    { host: 'relay.test', port: 587 },
  );
  return { s, connections, connectOptions, connectAttempts: () => attempts };
}

const envelope = (to: string) => ({ from: 'a@x.test', to: [to] });
const body = () => 'x';
const lines = (t: Transcript) => t.entries.map((e) => [e.kind, e.text, e.tag]);

describe('RelaySender', () => {
  it('reuses one connection for every message and quits it once when closed', async () => {
    const { s, connections } = session();

    await s.send(envelope('1@x.test'), body, 'm1/1');
    await s.send(envelope('2@x.test'), body, 'm2/1');
    await s.close();
    await s.close();

    expect(connections).toHaveLength(1);
    expect(connections[0]!.sent).toEqual([
      { tag: 'm1/1', to: ['1@x.test'] },
      { tag: 'm2/1', to: ['2@x.test'] },
    ]);
    expect(connections[0]!.quits).toBe(1);
    expect(connections[0]!.closes).toBe(1);
    expect(s.connections).toHaveLength(1);
    expect(s.connections[0]).toMatchObject({ number: 1, tags: new Set(['m1/1', 'm2/1']) });
  });

  it('concurrent sends share one connect', async () => {
    let open!: () => void;
    const connectGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const { s, connections, connectAttempts } = session({ connectGate });

    const sends = [1, 2, 3].map((n) => s.send(envelope(`${n}@x.test`), body, `m${n}/1`));
    open();
    const results = await Promise.all(sends);

    expect(connectAttempts()).toBe(1);
    expect(results.map((r) => r.recipients[0]!.status)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(connections[0]!.sent.map((t) => t.tag)).toEqual(['m1/1', 'm2/1', 'm3/1']);
  });

  it("tags the lines: the connection's own none, each message's header and transaction its tag", async () => {
    const { s } = session();
    s.describe('m1/1', 'delivery attempt 1 of message m1 to 1 recipient(s)');
    s.describe('m2/1', 'delivery attempt 1 of message m2 to 1 recipient(s)');

    await s.send(envelope('1@x.test'), body, 'm1/1');
    await s.send(envelope('2@x.test'), body, 'm2/1');
    await s.close();

    expect(lines(s.connections[0]!.transcript)).toEqual([
      ['S', '220 relay.test ESMTP', undefined],
      ['*', 'TLS 1.3, certificate verified', undefined],
      ['*', 'delivery attempt 1 of message m1 to 1 recipient(s)', 'm1/1'],
      ['C', 'MAIL FROM:<a@x.test>', 'm1/1'],
      ['S', '250 ok', 'm1/1'],
      ['*', 'delivery attempt 1 of message m2 to 1 recipient(s)', 'm2/1'],
      ['C', 'MAIL FROM:<a@x.test>', 'm2/1'],
      ['S', '250 ok', 'm2/1'],
      ['C', 'QUIT', undefined],
    ]);
  });

  it('writes the header of a message once per connection, however many transactions it has there', async () => {
    const { s } = session();
    s.describe('m1/1', 'delivery attempt 1 of message m1 to 2 recipient(s)');

    await s.send(envelope('1@x.test'), body, 'm1/1');
    await s.send(envelope('2@x.test'), body, 'm1/1'); // the further transaction after a 452

    const headers = s.connections[0]!.transcript.entries.filter((e) => e.text.startsWith('delivery attempt'));
    expect(headers).toHaveLength(1);
  });

  it('retries on a new connection when the connection turns out dead at MAIL, nothing accepted', async () => {
    const { s, connections } = session();
    s.describe('m2/1', 'delivery attempt 1 of message m2 to 1 recipient(s)');
    await s.send(envelope('1@x.test'), body, 'm1/1');
    connections[0]!.breakNext = lost('mail');

    const result = await s.send(envelope('2@x.test'), body, 'm2/1');

    expect(result.recipients[0]!.status).toBe('accepted');
    expect(connections).toHaveLength(2);
    expect(connections[1]!.sent).toEqual([{ tag: 'm2/1', to: ['2@x.test'] }]);
    const [first, second] = s.connections;
    expect(first!.transcript.toString()).toMatch(
      /the connection broke \(SMTP_CONNECTION: connection closed during mail\); reconnecting/,
    );
    expect(first!.transcript.entries.find((e) => e.text.includes('reconnecting'))?.tag).toBe('m2/1');
    expect(second).toMatchObject({ number: 2, tags: new Set(['m2/1']) });
    // The message's header opens its part in each connection it used.
    expect(second!.transcript.entries.find((e) => e.tag === 'm2/1')?.text).toBe(
      'delivery attempt 1 of message m2 to 1 recipient(s)',
    );
  });

  it('each connection gets its own transcript', async () => {
    const { s, connections } = session();
    await s.send(envelope('1@x.test'), body, 'm1/1');
    connections[0]!.breakNext = lost('mail');

    await s.send(envelope('2@x.test'), body, 'm2/1');

    const [first, second] = s.connections;
    expect(first!.transcript).not.toBe(second!.transcript);
    expect(connections[0]!.options.transcript).toBe(first!.transcript);
    expect(connections[1]!.options.transcript).toBe(second!.transcript);
    expect(second!.transcript.entries.some((e) => e.tag === 'm1/1')).toBe(false);
    expect(second!.transcript.entries[0]).toMatchObject({ kind: 'S', text: '220 relay.test ESMTP' });
  });

  it("retries a transaction that had written nothing when another message's failure ended the connection", async () => {
    const { s, connections } = session();
    await s.send(envelope('0@x.test'), body, 'm0/1');
    connections[0]!.breakNext = lost('dot');

    // m2 waits for m1's turn; m1 breaks the connection after its data went out.
    const [first, second] = await Promise.allSettled([
      s.send(envelope('1@x.test'), body, 'm1/1'),
      s.send(envelope('2@x.test'), body, 'm2/1'),
    ]);

    expect(first).toMatchObject({ status: 'rejected', reason: { stage: 'dot' } });
    expect(second).toMatchObject({ status: 'fulfilled' });
    expect(connections).toHaveLength(2);
    expect(connections[1]!.sent).toEqual([{ tag: 'm2/1', to: ['2@x.test'] }]);
  });

  it('does not resend when the connection broke after the data went out', async () => {
    const { s, connections } = session();
    await s.send(envelope('1@x.test'), body, 'm1/1');
    connections[0]!.breakNext = lost('dot');

    await expect(s.send(envelope('2@x.test'), body, 'm2/1')).rejects.toMatchObject({ stage: 'dot' });
    expect(connections).toHaveLength(1);
  });

  it('does not reconnect after a throttling reply: the relay wants a pause, not another connection', async () => {
    const { s, connections, connectAttempts } = session();
    await s.send(envelope('1@x.test'), body, 'm1/1');
    const reply = { code: 421, enhanced: '4.7.0', lines: ['4.7.0 Too many connections, slow down'] };
    connections[0]!.breakNext = SmtpError.fromReply('mail', reply, 'server closing the connection');

    await expect(s.send(envelope('2@x.test'), body, 'm2/1')).rejects.toMatchObject({ reply: { code: 421 } });
    expect(connectAttempts()).toBe(1);
  });

  it('opens at most two connections per invocation, then fails fast', async () => {
    const { s, connectAttempts } = session({ failConnects: 5 });

    for (const n of [1, 2]) {
      await expect(s.send(envelope(`${n}@x.test`), body, `m${n}/1`)).rejects.toMatchObject({
        stage: 'connect',
      });
    }
    await expect(s.send(envelope('3@x.test'), body, 'm3/1')).rejects.toMatchObject({
      code: 'SESSION_EXHAUSTED',
      transient: true,
    });

    expect(connectAttempts()).toBe(2);
    // The reason is in the third message's part of the last connection's transcript.
    const { entries } = s.connections[1]!.transcript;
    const part = transcriptPart(entries, 'm3/1').flatMap(([first, last]) => entries.slice(first, last + 1));
    expect(part.map((e) => e.text).join('\n')).toMatch(
      /not connecting again: 2 connections to relay.test:587 .*ECONNREFUSED/,
    );
  });

  it("a failed connect is written into that connection's transcript, inside the message's part", async () => {
    const { s } = session({ failConnects: 1 });

    await expect(s.send(envelope('1@x.test'), body, 'm1/1')).rejects.toThrow('ECONNREFUSED');

    const [record] = s.connections;
    expect(record!.tags).toEqual(new Set(['m1/1']));
    expect(record!.transcript.toString()).toMatch(
      /connection to relay.test:587 failed: SMTP_CONNECTION: ECONNREFUSED during connect/,
    );
    expect(transcriptPart(record!.transcript.entries, 'm1/1')).toEqual([
      [0, record!.transcript.entries.length - 1],
    ]);
  });

  it('bounds the connect and every reply wait by the deadline it was given', async () => {
    const { s, connections, connectOptions } = session();
    const deadline = Date.now() + 5_000;
    s.setDeadline(deadline);

    await s.send(envelope('1@x.test'), body, 'm1/1');

    const timeouts = connectOptions[0]!.timeouts!;
    for (const key of ['connect', 'greeting', 'command', 'data', 'dataEnd'] as const)
      expect(timeouts[key]).toBeLessThanOrEqual(5_000);
    expect(connections[0]!.deadline).toBe(deadline);
    s.setDeadline(deadline + 1);
    expect(connections[0]!.deadline).toBe(deadline + 1);
  });
});

describe('transcriptPart', () => {
  const entry = (text: string, tag?: string): TranscriptEntry =>
    tag === undefined ? { at: new Date(0), kind: '*', text } : { at: new Date(0), kind: '*', text, tag };
  const entries = [
    entry('220 greeting'),
    entry('a: MAIL', 'a'),
    entry('b: MAIL', 'b'),
    entry('a: DATA', 'a'),
    entry('421 closing'),
    entry('b: error', 'b'),
    entry('QUIT'),
  ];

  it("gives the connection's own lines and the message's, as maximal runs of line numbers", () => {
    expect(transcriptPart(entries, 'a')).toEqual([
      [0, 1],
      [3, 4],
      [6, 6],
    ]);
    expect(transcriptPart(entries, 'b')).toEqual([
      [0, 0],
      [2, 2],
      [4, 6],
    ]);
  });

  it("a message with no lines of its own gets only the connection's", () => {
    expect(transcriptPart(entries, 'c')).toEqual([
      [0, 0],
      [4, 4],
      [6, 6],
    ]);
    expect(transcriptPart([], 'a')).toEqual([]);
  });
});

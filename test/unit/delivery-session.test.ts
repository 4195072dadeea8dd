// SmtpSession's connection policy against scripted connections: reuse across records, one reconnect,
// a retry on a fresh connection when a reused one turns out dead, and per-record transcript routing.
// (Against a real SMTP server: test/integration/worker-handler.test.ts.)
import { describe, expect, it } from 'vitest';
import { type SmtpConnectionLike, SmtpSession } from '../../lib/delivery/session.ts';
import type {
  Envelope,
  SendResult,
  SmtpClientOptions,
  Transcript,
  TranscriptEntry,
} from '../../lib/smtp/types.ts';

function memoryTranscript(): Transcript {
  const entries: TranscriptEntry[] = [];
  return {
    entries,
    add: (kind, text) => void entries.push({ at: new Date(0), kind, text }),
    toString: () => entries.map((e) => `${e.kind} ${e.text}`).join('\n'),
  };
}

const sendError = (stage: string) =>
  Object.assign(new Error('connection closed'), { code: 'SMTP_CONNECTION', stage, transient: true });

/** A connection that answers 250 to everything until told to break at a stage. */
class ScriptedConnection implements SmtpConnectionLike {
  usable = true;
  sent: string[][] = [];
  quits = 0;
  breakNextAt?: string;
  constructor(readonly options: SmtpClientOptions) {
    options.transcript?.add('*', 'TLS 1.3, certificate verified');
  }
  async send(envelope: Envelope): Promise<SendResult> {
    if (this.breakNextAt) {
      this.usable = false;
      throw sendError(this.breakNextAt);
    }
    this.options.transcript?.add('C', `MAIL FROM:<${envelope.from}>`);
    this.sent.push(envelope.to);
    const ok = { code: 250, lines: ['ok'] };
    return {
      mail: ok,
      recipients: envelope.to.map((address) => ({ address, status: 'accepted', reply: ok })),
      data: ok,
    };
  }
  async quit() {
    this.quits += 1;
    this.usable = false;
  }
  close() {
    this.usable = false;
  }
}

function session(failConnects = 0) {
  const connections: ScriptedConnection[] = [];
  let attempts = 0;
  const s = new SmtpSession(
    async (options) => {
      attempts += 1;
      if (attempts <= failConnects) {
        options.transcript?.add('*', 'error SMTP_CONNECTION at connect: ECONNREFUSED');
        throw Object.assign(new Error('ECONNREFUSED'), {
          code: 'SMTP_CONNECTION',
          stage: 'connect',
          transient: true,
        });
      }
      const c = new ScriptedConnection(options);
      connections.push(c);
      return c;
    },
    { host: 'relay.test', port: 587 },
  );
  return { s, connections, connectAttempts: () => attempts };
}

const envelope = (to: string) => ({ from: 'a@x.test', to: [to] });
const body = () => 'x';

describe('SmtpSession', () => {
  it('reuses one connection across records, each record with its own transcript', async () => {
    const { s, connections } = session();
    const first = memoryTranscript();
    s.attach(first);
    await s.send(envelope('1@x.test'), body);
    const second = memoryTranscript();
    s.attach(second);
    await s.send(envelope('2@x.test'), body);
    await s.close();

    expect(connections).toHaveLength(1);
    expect(connections[0]!.quits).toBe(1);
    expect(first.toString()).toBe('* TLS 1.3, certificate verified\nC MAIL FROM:<a@x.test>');
    expect(second.toString()).toBe(
      [
        '* reusing the connection to relay.test:587 (1 transactions so far)',
        '* earlier on this connection: TLS 1.3, certificate verified',
        'C MAIL FROM:<a@x.test>',
      ].join('\n'),
    );
  });

  it('retries on a new connection when a reused one turns out dead before anything was accepted', async () => {
    const { s, connections } = session();
    s.attach(memoryTranscript());
    await s.send(envelope('1@x.test'), body);
    connections[0]!.breakNextAt = 'mail';
    const t = memoryTranscript();
    s.attach(t);
    const result = await s.send(envelope('2@x.test'), body);
    expect(result.recipients[0]!.status).toBe('accepted');
    expect(connections).toHaveLength(2);
    expect(connections[1]!.sent).toEqual([['2@x.test']]);
    expect(t.toString()).toMatch(
      /the reused connection broke \(SMTP_CONNECTION: connection closed during mail\); reconnecting/,
    );
  });

  it('does not resend when the connection broke after the data went out', async () => {
    const { s, connections } = session();
    s.attach(memoryTranscript());
    await s.send(envelope('1@x.test'), body);
    connections[0]!.breakNextAt = 'dot';
    await expect(s.send(envelope('2@x.test'), body)).rejects.toMatchObject({ stage: 'dot' });
    expect(connections).toHaveLength(1);
  });

  it('opens at most two connections per invocation, then fails fast', async () => {
    const { s, connectAttempts } = session(5);
    for (const n of [1, 2]) {
      s.attach(memoryTranscript());
      await expect(s.send(envelope(`${n}@x.test`), body)).rejects.toMatchObject({ stage: 'connect' });
    }
    const third = memoryTranscript();
    s.attach(third);
    await expect(s.send(envelope('3@x.test'), body)).rejects.toMatchObject({
      code: 'SESSION_EXHAUSTED',
      transient: true,
    });
    expect(connectAttempts()).toBe(2);
    expect(third.toString()).toMatch(/not connecting again: 2 connections to relay.test:587 .*ECONNREFUSED/);
  });

  it('a failed connect is written into the record transcript', async () => {
    const { s } = session(1);
    const t = memoryTranscript();
    s.attach(t);
    await expect(s.send(envelope('1@x.test'), body)).rejects.toThrow('ECONNREFUSED');
    expect(t.toString()).toMatch(
      /connection to relay.test:587 failed: SMTP_CONNECTION: ECONNREFUSED during connect/,
    );
  });
});

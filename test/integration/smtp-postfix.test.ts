// Interop with a real MTA: a private Postfix instance (scripts/local/postfix.ts) on loopback, whose smtpd
// offers PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8 and STARTTLS. Several messages go over one connection with
// DATA and with BDAT; what Postfix delivers is read back and compared byte for byte, and parsed with mailparser.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComposedMessage, composeMessage } from '../../lib/message/index.ts';
import { createTranscript, type SmtpClientOptions, SmtpConnection } from '../../lib/smtp/index.ts';
import { sharedLocalCa } from '../../scripts/local/certs.ts';
import {
  type DeliveredMessage,
  type PostfixInstance,
  postfixUnavailable,
  startPostfix,
  startSmtpSink,
} from '../../scripts/local/postfix.ts';

// Postfix comes from the Debian package (.ci/run installs it); a fresh dev machine without apt, or a
// non-root user, cannot run a private instance, so these tests say why and skip there.
const unavailable = postfixUnavailable();

let postfix: PostfixInstance;
let client: SmtpClientOptions;

beforeAll(async () => {
  if (unavailable) return;
  const ca = await sharedLocalCa();
  postfix = await startPostfix({ tls: { keyPem: ca.keyPem, certPem: ca.certPem } });
  client = {
    host: postfix.host,
    port: postfix.port,
    tls: 'starttls',
    ca: ca.caPem,
    servername: 'localhost',
    name: 'client.smtpq.test',
  };
});
afterAll(async () => {
  await postfix?.stop();
});

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Postfix's copy minus the Received header it prepends, back in CRLF (its pipe agent writes Unix text). */
function asSent(delivered: DeliveredMessage): Buffer {
  const text = delivered.raw.toString('latin1');
  const received = /^Received: .*\n(?:[ \t].*\n)*/.exec(text);
  expect(received).not.toBeNull();
  return Buffer.from(text.slice(received![0].length).replace(/\n/g, '\r\n'), 'latin1');
}

const runId = randomBytes(4).toString('hex');
let serial = 0;

function messages(tag: string): ComposedMessage[] {
  const id = () => `<${tag}-${runId}-${++serial}@smtpq.test>`;
  return [
    composeMessage({
      from: 'Alice <alice@example.test>',
      to: ['bob@example.test', 'carol@example.org'],
      subject: `${tag}: plain`,
      text: 'Hello Bob.\n.\nA line that is only a dot is above; one that starts with one:\n.dot\n',
      messageId: id(),
    }),
    composeMessage({
      from: 'alice@example.test',
      to: 'dave@example.test',
      bcc: 'erin@example.test',
      subject: `${tag}: attachment — ünïcode`,
      text: 'Report attached.',
      html: '<p>Report <b>attached</b>.</p>',
      attachments: [
        { filename: 'data.bin', content: randomBytes(300_000), contentType: 'application/octet-stream' },
      ],
      messageId: id(),
    }),
    composeMessage({
      from: 'alice@example.test',
      to: 'frank@example.test',
      subject: `${tag}: long lines`,
      text: `${'x'.repeat(5000)}\n${'y '.repeat(3000)}\n`,
      messageId: id(),
    }),
  ];
}

/** Sends the messages over one connection; returns the expected bytes of each and the transcript. */
async function sendAll(composed: ComposedMessage[], options: Partial<SmtpClientOptions>) {
  const transcript = createTranscript();
  const connection = await SmtpConnection.connect({ ...client, ...options, transcript });
  expect(connection.secure).toBe(true);
  const expected = new Map<string, Buffer>();
  for (const message of composed) {
    expected.set(message.messageId, await bytesOf(message.createStream()));
    const result = await connection.send(message.envelope, message.createStream());
    expect(result.recipients.map((r) => r.status)).toEqual(message.envelope.to.map(() => 'accepted'));
    expect(result.data?.code).toBe(250);
  }
  await connection.quit();
  return { expected, transcript: transcript.toString() };
}

async function deliveredFor(composed: ComposedMessage[]): Promise<Map<string, DeliveredMessage[]>> {
  const recipients = composed.reduce((n, m) => n + m.envelope.to.length, 0);
  const ids = new Set(composed.map((m) => m.messageId));
  const byId = new Map<string, DeliveredMessage[]>();
  const deadline = Date.now() + 30_000;
  for (;;) {
    byId.clear();
    for (const delivered of await postfix.delivered()) {
      const id = /^Message-ID: (.*)$/im.exec(delivered.raw.toString('latin1'))?.[1]?.trim();
      if (id && ids.has(id)) byId.set(id, [...(byId.get(id) ?? []), delivered]);
    }
    const count = [...byId.values()].reduce((n, list) => n + list.length, 0);
    if (count >= recipients) return byId;
    if (Date.now() > deadline)
      throw new Error(`${count}/${recipients} delivered; log:\n${await postfix.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function expectDelivered(composed: ComposedMessage[], expected: Map<string, Buffer>) {
  const byId = await deliveredFor(composed);
  for (const message of composed) {
    const copies = byId.get(message.messageId) ?? [];
    expect(copies.map((c) => c.recipient).sort()).toEqual([...message.envelope.to].sort());
    for (const copy of copies) expect(asSent(copy).equals(expected.get(message.messageId)!)).toBe(true);
  }
  // Parsed: headers, bodies, the attachment byte-equal, Bcc nowhere.
  const [withAttachment] = byId.get(composed[1]!.messageId)!;
  const parsed = await simpleParser(withAttachment!.raw);
  expect(parsed.subject).toMatch(/attachment — ünïcode$/);
  expect(parsed.html).toContain('<b>attached</b>');
  expect(parsed.headers.has('bcc')).toBe(false);
  const original = await simpleParser(expected.get(composed[1]!.messageId)!);
  expect(parsed.attachments).toHaveLength(1);
  expect(parsed.attachments[0]!.content.equals(original.attachments[0]!.content)).toBe(true);
  const plain = await simpleParser(byId.get(composed[0]!.messageId)![0]!.raw);
  expect(plain.text).toContain('\n.\n');
  expect(plain.text).toContain('\n.dot\n');
}

describe.skipIf(unavailable)(`Postfix smtpd ${unavailable ? `(skipped: ${unavailable})` : ''}`, () => {
  it('PIPELINING with DATA: three messages over one connection arrive byte for byte', async () => {
    const composed = messages('data');
    const { expected, transcript } = await sendAll(composed, { chunking: false });

    // Pipelined (RFC 2920): MAIL, both RCPTs and DATA leave before any of their replies is read.
    expect(transcript).toMatch(
      /C: MAIL FROM:<alice@example.test>[^\n]*\n[^\n]* C: RCPT TO:<bob@example.test>\n[^\n]* C: RCPT TO:<carol@example.org>\n[^\n]* C: DATA\n/,
    );
    expect(transcript).not.toMatch(/C: BDAT/);
    expect(transcript.match(/C: EHLO /g)).toHaveLength(2); // before and after STARTTLS
    await expectDelivered(composed, expected);
  });

  it('CHUNKING with BDAT: three messages over one connection arrive byte for byte', async () => {
    const composed = messages('bdat');
    const { expected, transcript } = await sendAll(composed, {});

    expect(transcript).toMatch(/C: BDAT \d+ LAST/);
    expect(transcript).not.toMatch(/C: DATA\n/);
    await expectDelivered(composed, expected);
  });

  it('SMTPUTF8: an internationalised address goes through with the SMTPUTF8 parameter', async () => {
    const message = composeMessage({
      from: 'alice@example.test',
      to: 'josé@exämple.test',
      subject: 'utf8',
      text: 'olá',
      messageId: `<utf8-${runId}@smtpq.test>`,
    });
    expect(message.envelope.smtpUtf8).toBe(true);
    const transcript = createTranscript();
    const connection = await SmtpConnection.connect({ ...client, transcript });
    const result = await connection.send(message.envelope, message.createStream());
    await connection.quit();

    expect(result.recipients[0]!.status).toBe('accepted');
    expect(transcript.toString()).toMatch(/C: MAIL FROM:<alice@example.test>.* SMTPUTF8/);
    const byId = await deliveredFor([message]);
    // The domain travels as an A-label (lib/message's IDN step); the local part needs SMTPUTF8.
    expect(message.envelope.to).toEqual(['josé@xn--exmple-cua.test']);
    expect(byId.get(message.messageId)![0]!.recipient).toBe('josé@xn--exmple-cua.test');
  });

  it('DSN: Postfix offers it and takes RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT, then delivers', async () => {
    const message = composeMessage({
      from: 'alice@example.test',
      to: ['bob@example.test', 'carol+news@example.org'],
      subject: 'dsn',
      text: 'with delivery status notifications',
      messageId: `<dsn-${runId}@smtpq.test>`,
    });
    const transcript = createTranscript();
    const connection = await SmtpConnection.connect({ ...client, transcript });
    expect(connection.extensions.dsn).toBe(true);
    const result = await connection.send(
      { ...message.envelope, dsn: { notify: ['failure', 'delay'], ret: 'hdrs', envid: `run ${runId}` } },
      message.createStream(),
    );
    await connection.quit();
    expect(result.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    const text = transcript.toString();
    expect(text).toMatch(new RegExp(`C: MAIL FROM:<alice@example.test> RET=HDRS ENVID=run\\+20${runId}\n`));
    expect(text).toMatch(
      /C: RCPT TO:<carol\+news@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;carol\+2Bnews@example.org\n/,
    );
    expect(text).not.toMatch(/does not offer DSN/);
    const byId = await deliveredFor([message]);
    expect(byId.get(message.messageId)).toHaveLength(2);
  });
});

describe.skipIf(unavailable)('Postfix smtp-sink (the benchmark sink)', () => {
  it('takes several pipelined messages over one connection with DATA (it offers no CHUNKING)', async () => {
    const sink = await startSmtpSink();
    try {
      const transcript = createTranscript();
      const connection = await SmtpConnection.connect({
        host: sink.host,
        port: sink.port,
        tls: 'none',
        name: 'client.smtpq.test',
        transcript,
      });
      expect(connection.extensions.pipelining).toBe(true);
      expect(connection.extensions.chunking).toBe(false);
      for (const message of messages('sink')) {
        const result = await connection.send(message.envelope, message.createStream());
        expect(result.recipients.every((r) => r.status === 'accepted')).toBe(true);
        expect(result.data?.code).toBe(250);
      }
      await connection.quit();
      expect(transcript.toString().match(/C: DATA\n/g)).toHaveLength(3);
    } finally {
      await sink.stop();
    }
  });
});

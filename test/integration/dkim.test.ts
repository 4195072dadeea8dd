// DKIM signing verified on what the server received, by mailauth's verifier given the public key (a resolver
// answering the TXT record `smtpq dkim keygen` prints): text, html, attachments, non-ASCII headers and a
// 20 MiB attachment, RSA and Ed25519, From oversigned and List-Unsubscribe-Post covered; a wrong key or a
// header changed after signing fails; a From without a key goes unsigned. Then the worker signing with the
// DKIM_* configuration of npm run dev.
import { generateKeyPairSync } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker } from '../../functions/worker/worker.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import {
  type DkimKey,
  DkimKeyError,
  dkimDnsValue,
  dkimKeyObject,
  signedBody,
} from '../../lib/message/dkim.ts';
import { type ComposeInput, composeMessage } from '../../lib/message/index.ts';
import { createSqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import { smtpSessionsPerTest } from '../support/smtp-sessions.ts';
import { apiEvent } from './api-harness.ts';

const sessions = smtpSessionsPerTest();

function newKey(type: 'rsa' | 'ed25519', domain = 'signer.test'): DkimKey {
  const { privateKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  return {
    domain,
    selector: `sel-${type}`,
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
const rsa = newKey('rsa');
const ed25519 = newKey('ed25519');

/** mailauth's verdict on `raw`, the TXT record of `published` being what DNS answers for its selector. */
async function verify(raw: Buffer, published: DkimKey) {
  const record = dkimDnsValue(published.privateKey);
  const result = await dkimVerify(raw, {
    resolver: async (name: string) => {
      if (name !== `${published.selector}._domainkey.${published.domain}`)
        throw Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' });
      return [[record]];
    },
  });
  return result.results.map((r: { status: { result: string }; signingHeaders?: { keys: string } }) => ({
    result: r.status.result,
    headers: r.signingHeaders?.keys,
  }));
}

/** Sends `input`, signed with `key`, through lib/smtp to smtp-server; what the server received. */
async function sendSigned(input: ComposeInput, key: DkimKey, size?: number): Promise<Buffer> {
  const { server, connection } = await sessions.connect(size ? { size } : {});
  const composed = composeMessage(input);
  const body = signedBody(() => composed.createStream(), key);
  const result = await connection.send({ ...composed.envelope }, body());
  expect(result.recipients.every((r) => r.status === 'accepted')).toBe(true);
  return server.messages.at(-1)!.raw;
}

const base = { from: 'News <news@signer.test>', to: 'reader@example.org', subject: 'Hello' };

describe('DKIM signatures, verified by mailauth on the bytes received', () => {
  it.each([
    ['text, rsa-sha256', { ...base, text: 'plain text\nsecond line' }, rsa],
    ['html, ed25519-sha256', { ...base, html: '<p>hello <b>world</b></p>', text: 'hello world' }, ed25519],
    [
      'attachments',
      {
        ...base,
        text: 'see attached',
        attachments: [
          { filename: 'report.pdf', content: Buffer.from('%PDF-1.4 fake'), contentType: 'application/pdf' },
          { filename: 'notes.txt', content: Buffer.from('line 1\nline 2\n') },
        ],
      },
      rsa,
    ],
    [
      'non-ASCII headers',
      {
        ...base,
        from: 'Zoë Ångström <news@signer.test>',
        to: 'Jürgen <j@example.org>',
        subject: 'Grüße — 日本語',
        text: 'naïve café',
      },
      ed25519,
    ],
    [
      'List-Unsubscribe and List-Unsubscribe-Post',
      {
        ...base,
        text: 'news',
        listUnsubscribe: { url: 'https://api.test/v1/unsubscribe/abc.def', mailto: 'l@signer.test' },
      },
      rsa,
    ],
  ] as const)('%s', async (_, input, key) => {
    const raw = await sendSigned(input as ComposeInput, key);
    const verdict = await verify(raw, key);
    expect(verdict).toHaveLength(1);
    expect(verdict[0]!.result).toBe('pass');
    // From is named once more than it appears: oversigned.
    const h = /\bh=([^;]+);/.exec(raw.toString('latin1').replace(/\r\n[ \t]+/g, ' '))![1]!;
    expect(h.split(':').filter((name) => name.trim().toLowerCase() === 'from')).toHaveLength(2);
    if ('listUnsubscribe' in input) expect(verdict[0]!.headers).toMatch(/List-Unsubscribe-Post/);
  });

  it('a 20 MiB attachment, streamed through both passes', async () => {
    const content = Buffer.alloc(20 * 1024 * 1024, 'smtpq-dkim ');
    const raw = await sendSigned(
      { ...base, text: 'big', attachments: [{ filename: 'big.bin', content }] },
      rsa,
    );
    expect(raw.length).toBeGreaterThan(20 * 1024 * 1024);
    expect((await verify(raw, rsa))[0]!.result).toBe('pass');
  });

  it('fails with a wrong public key, and when a signed header is changed', async () => {
    const raw = await sendSigned({ ...base, text: 'x' }, rsa);
    expect((await verify(raw, { ...newKey('rsa'), selector: rsa.selector }))[0]!.result).toBe('fail');
    const changed = Buffer.from(raw.toString('latin1').replace('Subject: Hello', 'Subject: Hellp'), 'latin1');
    expect((await verify(changed, rsa))[0]!.result).toBe('fail');
    // A second From added below the signed one breaks it too (the oversigning).
    const added = Buffer.from(
      raw.toString('latin1').replace('\r\n\r\n', '\r\nFrom: evil@attacker.test\r\n\r\n'),
      'latin1',
    );
    expect((await verify(added, rsa))[0]!.result).not.toBe('pass');
  });

  it('refuses RSA keys under 2048 bits and keys that are not PEM', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const weak = {
      domain: 'signer.test',
      selector: 's',
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    expect(() => dkimKeyObject(weak)).toThrow(DkimKeyError);
    expect(() => dkimKeyObject(weak)).toThrow(/1024 bits; at least 2048/);
    expect(() => dkimKeyObject({ ...weak, privateKey: 'nope' })).toThrow(/not a PEM private key/);
  });
});

describe('the worker signs with the DKIM_* configuration', () => {
  let resources: TestResources;
  let smtp: TestSmtpServer;
  beforeAll(async () => {
    process.env.POWERTOOLS_LOG_LEVEL = 'CRITICAL';
    process.env.POWERTOOLS_METRICS_DISABLED = 'true';
    resources = await createTestResources(inject('motoEndpoint'), { visibilityTimeoutSeconds: 1 });
    smtp = await startTestSmtpServer();
  });
  afterAll(async () => {
    await smtp?.close();
  });

  it('signs mail from the key’s domain and leaves other domains unsigned', async () => {
    const env = { ...resources.env, UNSUBSCRIBE_SECRET: 'k'.repeat(40) };
    const api = createApiHandler(createAwsDeps(loadApiConfig(env), new Logger({ logLevel: 'SILENT' })));
    const worker = createWorker(
      createWorkerDeps(
        loadWorkerConfig({
          ...env,
          SMTP_HOST: smtp.host,
          SMTP_PORT: String(smtp.port),
          SMTP_CA_PEM: smtp.caPem,
          SMTP_EHLO_NAME: 'worker.smtpq.test',
          DKIM_DOMAIN: 'Signer.Test',
          DKIM_SELECTOR: ed25519.selector,
          // As an env file holds it: one line, \n escaped.
          DKIM_PRIVATE_KEY: ed25519.privateKey.replace(/\n/g, '\\n'),
        }),
        { clients: resources.clients },
      ),
    );
    const ids: string[] = [];
    for (const from of ['news@signer.test', 'other@unsigned.test']) {
      const response = await api(
        apiEvent({
          method: 'POST',
          path: '/v1/messages',
          body: { from, to: ['a@example.org', 'b@example.org'], subject: 's', text: 't', unsubscribe: true },
        }),
      );
      expect(response.statusCode).toBe(202);
      ids.push(JSON.parse(response.body!).id);
    }
    const poller = createSqsPoller({
      sqs: resources.clients.sqs,
      queueUrl: resources.queueUrl,
      waitTimeSeconds: 1,
      handler: worker,
    });
    const ledger = new DynamoLedger(resources.clients.documents, resources.table, 30);
    for (let round = 0; round < 10; round++) {
      const states = await Promise.all(ids.map(async (id) => (await ledger.get(id))!.value.state));
      if (states.every((s) => s === 'sent')) break;
      await poller.pollOnce();
    }
    const signed = smtp.messages.filter((m) => m.mailFrom === 'news@signer.test');
    expect(signed).toHaveLength(2); // one per recipient (each its own unsubscribe link)
    for (const m of signed) {
      const verdict = await verify(m.raw, ed25519);
      expect(verdict[0]).toMatchObject({ result: 'pass' });
      expect(verdict[0]!.headers).toMatch(/List-Unsubscribe-Post/);
    }
    const unsigned = smtp.messages.filter((m) => m.mailFrom === 'other@unsigned.test');
    expect(unsigned).toHaveLength(2);
    for (const m of unsigned) expect(m.raw.toString('latin1')).not.toMatch(/^DKIM-Signature:/m);
  });
});

// The suppression list end to end against moto and an in-process SMTP server: the API's routes (validation,
// domain entries, paging by source), the check at submit (a suppressed recipient never queued for; a message
// with nobody left failed without a session) and before each attempt, and the bounce that fills it (550
// 5.1.1 adds the address; 5.7.1, 5.2.2 and 5.3.4 do not).
import { Logger } from '@aws-lambda-powertools/logger';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { createWorkerDeps } from '../../functions/worker/deps.ts';
import { createWorker, type WorkerHandler } from '../../functions/worker/worker.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { DynamoSuppressionStore } from '../../lib/aws/suppression-store.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { createSqsPoller } from '../../scripts/local/sqs-poller.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../support/smtp-server.ts';
import { apiEvent } from './api-harness.ts';

let resources: TestResources;
let smtp: TestSmtpServer;
let api: ReturnType<typeof createApiHandler>;
let worker: WorkerHandler;
const UNSUBSCRIBE_SECRET = 'test-unsubscribe-key-0123456789abcdef';
const PUBLIC_BASE_URL = 'https://mail.example.test';

/** RCPT replies by local part: `bounce-511@…` → 550 5.1.1, and so on. */
const REFUSALS: Record<string, { code: number; message: string }> = {
  'bounce-511': { code: 550, message: '5.1.1 no such user' },
  'bounce-521': { code: 550, message: '5.2.1 mailbox disabled' },
  'policy-571': { code: 550, message: '5.7.1 relaying denied' },
  'full-522': { code: 552, message: '5.2.2 mailbox full' },
  'big-534': { code: 552, message: '5.3.4 message too big' },
};

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'CRITICAL';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  resources = await createTestResources(inject('motoEndpoint'), { visibilityTimeoutSeconds: 1 });
  smtp = await startTestSmtpServer({
    hooks: { rcpt: ({ address }) => REFUSALS[address?.split('@')[0] ?? ''] },
  });
  api = createApiHandler(
    createAwsDeps(
      loadApiConfig({ ...resources.env, MESSAGE_ID_DOMAIN: 'smtpq.test', UNSUBSCRIBE_SECRET }),
      new Logger({ logLevel: 'SILENT' }),
    ),
  );
  worker = createWorker(
    createWorkerDeps(
      loadWorkerConfig({
        ...resources.env,
        SMTP_HOST: smtp.host,
        SMTP_PORT: String(smtp.port),
        SMTP_TLS: 'starttls',
        SMTP_CA_PEM: smtp.caPem,
        SMTP_EHLO_NAME: 'worker.smtpq.test',
        UNSUBSCRIBE_SECRET,
        PUBLIC_BASE_URL,
      }),
      { clients: resources.clients },
    ),
  );
});

afterAll(async () => {
  await smtp?.close();
});

const call = async (
  method: string,
  path: string,
  body?: unknown,
  query?: Record<string, string>,
  headers?: Record<string, string>,
) => {
  const response = await api(apiEvent({ method, path, body, query, headers }));
  return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : undefined };
};

const ledger = () => new DynamoLedger(resources.clients.documents, resources.table, 30);
const record = async (id: string): Promise<StatusRecord> => (await ledger().get(id))!.value;
const list = () => new DynamoSuppressionStore(resources.clients.documents, resources.table);

/** Runs the queue through the worker until it is empty. */
async function drain(): Promise<void> {
  const poller = createSqsPoller({
    sqs: resources.clients.sqs,
    queueUrl: resources.queueUrl,
    waitTimeSeconds: 1,
    handler: worker,
  });
  for (let round = 0; round < 20 && (await poller.pollOnce()) > 0; round++);
}

async function submit(to: string[], extra: object = {}): Promise<{ id: string; status: string }> {
  const response = await call('POST', '/v1/messages', {
    from: 'sender@smtpq.test',
    to,
    subject: 'hello',
    text: 'hello',
    ...extra,
  });
  expect(response.status).toBe(202);
  return response.body;
}

describe('the suppression list API', () => {
  it('adds, reads, lists and removes entries, keyed with the domain lower-cased', async () => {
    const put = await call('PUT', '/v1/suppressions/Ann%40Example.ORG', { reason: 'asked by phone' });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      address: 'Ann@example.org',
      source: 'manual',
      reason: 'asked by phone',
    });

    const got = await call('GET', '/v1/suppressions/Ann@example.org');
    expect(got.status).toBe(200);
    expect(got.body.address).toBe('Ann@example.org');
    // The local part is as given: another case is another mailbox.
    expect((await call('GET', '/v1/suppressions/ann@example.org')).status).toBe(404);

    expect((await call('DELETE', '/v1/suppressions/Ann@EXAMPLE.org')).status).toBe(204);
    expect((await call('GET', '/v1/suppressions/Ann@example.org')).status).toBe(404);
    // Gone already: still 204.
    expect((await call('DELETE', '/v1/suppressions/Ann@example.org')).status).toBe(204);
  });

  it('refuses an invalid address, reason, source or limit with a 400 naming it', async () => {
    const bad = await call('PUT', '/v1/suppressions/not-an-address', {});
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('address');
    expect(bad.body.issues[0].message).toMatch(/no "@"/);
    const crlf = await call('PUT', '/v1/suppressions/a%0D%0A@example.org', {});
    expect(crlf.status).toBe(400);
    const reason = await call('PUT', '/v1/suppressions/a@example.org', { reason: 7, source: 'bounce' });
    expect(reason.status).toBe(400);
    expect(reason.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(['reason', 'source']);
    const query = await call('GET', '/v1/suppressions', undefined, { source: 'spam', limit: '0' });
    expect(query.status).toBe(400);
    expect(query.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(['limit', 'source']);
    const cursor = await call('GET', '/v1/suppressions', undefined, { cursor: 'forged' });
    expect(cursor.status).toBe(400);
    expect(cursor.body.issues[0].path).toBe('cursor');
  });

  it('lists newest first, a page at a time, of one source or all', async () => {
    const store = list();
    for (let i = 0; i < 5; i++)
      await store.put({
        address: `page-${i}@paging.test`,
        source: i % 2 === 0 ? 'complaint' : 'unsubscribe',
        reason: `r${i}`,
        createdAt: `2026-12-0${i + 1}T00:00:00.000Z`,
      });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await call('GET', '/v1/suppressions', undefined, {
        limit: '2',
        ...(cursor ? { cursor } : {}),
      });
      expect(page.status).toBe(200);
      seen.push(...page.body.data.map((e: { address: string }) => e.address));
      cursor = page.body.nextCursor ?? undefined;
    } while (cursor);
    const paging = seen.filter((a) => a.endsWith('@paging.test'));
    expect(paging).toEqual([4, 3, 2, 1, 0].map((i) => `page-${i}@paging.test`));
    const complaints = await call('GET', '/v1/suppressions', undefined, {
      source: 'complaint',
      limit: '100',
    });
    expect(complaints.body.data.map((e: { address: string }) => e.address)).toEqual(
      [4, 2, 0].map((i) => `page-${i}@paging.test`),
    );
  });
});

describe('suppressed recipients', () => {
  it('are never addressed: marked suppressed at submit, the others delivered', async () => {
    await call('PUT', '/v1/suppressions/gone@submit.test', { reason: 'left the company' });
    await call('PUT', '/v1/suppressions/*@blocked.test', {});
    const { id } = await submit(['gone@submit.test', 'anyone@blocked.test', 'here@submit.test']);
    const atSubmit = await record(id);
    expect(atSubmit.recipients.map((r) => [r.address, r.state])).toEqual([
      ['gone@submit.test', 'suppressed'],
      ['anyone@blocked.test', 'suppressed'],
      ['here@submit.test', 'queued'],
    ]);
    expect(atSubmit.recipients[0]!.error).toMatch(/^suppressed: manual \(left the company/);
    expect(atSubmit.recipients[1]!.error).toMatch(/domain blocked\.test/);
    await drain();
    const after = await record(id);
    expect(after.state).toBe('partially_sent');
    const addressed = smtp.messages.flatMap((m) => m.rcptTo);
    expect(addressed).toContain('here@submit.test');
    expect(addressed).not.toContain('gone@submit.test');
    expect(addressed).not.toContain('anyone@blocked.test');
  });

  it('a message whose every recipient is suppressed fails at once, with nothing queued', async () => {
    await call('PUT', '/v1/suppressions/nobody@submit.test', {});
    const before = smtp.messages.length;
    const accepted = await submit(['nobody@submit.test']);
    expect(accepted.status).toBe('failed');
    const r = await record(accepted.id);
    expect(r.state).toBe('failed');
    expect(r.attempts).toBe(0);
    await drain();
    expect(smtp.messages.length).toBe(before);
  });

  it('are checked again before the attempt: an address suppressed after submit is not addressed', async () => {
    const { id } = await submit(['late@scheduled.test', 'kept@scheduled.test'], {
      sendAt: new Date(Date.now() + 1500).toISOString(),
    });
    await call('PUT', '/v1/suppressions/late@scheduled.test', {});
    await new Promise((resolve) => setTimeout(resolve, 1600));
    for (let round = 0; round < 10 && ['scheduled', 'queued'].includes((await record(id)).state); round++)
      await drain();
    const r = await record(id);
    expect(r.recipients.map((x) => [x.address, x.state])).toEqual([
      ['late@scheduled.test', 'suppressed'],
      ['kept@scheduled.test', 'delivered'],
    ]);
    expect(smtp.messages.flatMap((m) => m.rcptTo)).not.toContain('late@scheduled.test');
  });
});

describe('bounces', () => {
  it('address-level permanent failures add the address; policy, full-mailbox and size refusals do not', async () => {
    const to = ['bounce-511', 'bounce-521', 'policy-571', 'full-522', 'big-534', 'fine'].map(
      (local) => `${local}@bounce.test`,
    );
    const { id } = await submit(to);
    await drain();
    const r = await record(id);
    expect(r.state).toBe('partially_sent');
    const store = list();
    const entry = await store.get('bounce-511@bounce.test');
    expect(entry).toMatchObject({
      source: 'bounce',
      reason: '5.1.1 bad destination mailbox address',
      messageId: id,
      reply: { code: 550, enhanced: '5.1.1' },
    });
    expect((await store.get('bounce-521@bounce.test'))?.reason).toMatch(/^5\.2\.1 /);
    for (const address of ['policy-571', 'full-522', 'big-534', 'fine'])
      expect(await store.get(`${address}@bounce.test`)).toBeUndefined();

    // The next message to the bounced address is not sent to it.
    const next = await submit(['bounce-511@bounce.test', 'fine@bounce.test']);
    expect((await record(next.id)).recipients[0]!.state).toBe('suppressed');
  });
});

describe('one-click unsubscribe (RFC 8058)', () => {
  const oneClick = (path: string, body = 'List-Unsubscribe=One-Click') =>
    api(
      apiEvent({
        method: 'POST',
        path,
        rawBody: body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
    );

  it('gives each recipient its own link, one transaction each; a POST of it suppresses that recipient', async () => {
    const to = ['una@unsub.test', 'otto@unsub.test'];
    const { id } = await submit(to, { cc: 'cleo@unsub.test', unsubscribe: { mailto: 'leave@smtpq.test' } });
    await drain();
    expect((await record(id)).state).toBe('sent');
    const received = smtp.messages.filter((m) => m.rcptTo.some((r) => r.endsWith('@unsub.test')));
    expect(received.map((m) => m.rcptTo)).toEqual([
      ['una@unsub.test'],
      ['otto@unsub.test'],
      ['cleo@unsub.test'],
    ]);
    const links = new Map<string, string>();
    for (const message of received) {
      const parsed = await simpleParser(message.raw);
      expect(message.raw.toString('latin1')).toMatch(
        /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m,
      );
      // Every recipient sees the same To and Cc; only the link differs.
      expect(parsed.to && 'text' in parsed.to ? parsed.to.text : '').toBe('una@unsub.test, otto@unsub.test');
      const header = message.raw.toString('latin1').match(/^List-Unsubscribe:(.*(?:\r\n[ \t].*)*)/m)![1]!;
      const https = /<(https:\/\/[^>]+)>/.exec(header)![1]!;
      expect(header).toContain('<mailto:leave@smtpq.test?subject=unsubscribe>');
      expect(https.startsWith(`${PUBLIC_BASE_URL}/v1/unsubscribe/`)).toBe(true);
      links.set(message.rcptTo[0]!, new URL(https).pathname);
    }
    expect(new Set(links.values()).size).toBe(3);

    const first = await oneClick(links.get('otto@unsub.test')!);
    expect(first.statusCode).toBe(200);
    expect(first.body).toBe('');
    const entry = await list().get('otto@unsub.test');
    expect(entry).toMatchObject({ source: 'unsubscribe', messageId: id });
    // Idempotent: the second click keeps the first entry.
    const again = await oneClick(links.get('otto@unsub.test')!);
    expect(again.statusCode).toBe(200);
    expect(await list().get('otto@unsub.test')).toEqual(entry);
    expect(await list().get('una@unsub.test')).toBeUndefined();
    // The next message to otto is not sent to otto.
    const next = await submit(['otto@unsub.test', 'una@unsub.test']);
    expect((await record(next.id)).recipients.map((r) => r.state)).toEqual(['suppressed', 'queued']);
  });

  it('answers 400 to a forged, truncated or altered token, and to a body that is not one-click, changing nothing', async () => {
    const { id } = await submit(['vic@forged.test'], { unsubscribe: true });
    await drain();
    expect((await record(id)).state).toBe('sent');
    const message = smtp.messages.find((m) => m.rcptTo[0] === 'vic@forged.test')!;
    const path = new URL(/<(https:[^>]+)>/.exec(message.raw.toString('latin1'))![1]!).pathname;
    const token = path.split('/').pop()!;
    const [payload, mac] = token.split('.') as [string, string];
    const otherPayload = Buffer.from(`${id}\nmallory@forged.test`).toString('base64url');
    const flipped = `${mac.slice(0, 10)}${mac[10] === 'A' ? 'B' : 'A'}${mac.slice(11)}`;
    for (const bad of [
      `${otherPayload}.${mac}`,
      `${payload}.${flipped}`,
      token.slice(0, -3),
      'garbage',
      `${payload}.`,
    ]) {
      const response = await oneClick(`/v1/unsubscribe/${bad}`);
      expect(response.statusCode, bad).toBe(400);
    }
    expect((await oneClick(path, 'List-Unsubscribe=No')).statusCode).toBe(400);
    expect(await list().get('vic@forged.test')).toBeUndefined();
    expect(await list().get('mallory@forged.test')).toBeUndefined();
    // The real one still works.
    expect((await oneClick(path)).statusCode).toBe(200);
    expect((await list().get('vic@forged.test'))?.source).toBe('unsubscribe');
  });

  it('refuses an unsubscribe value that is not true, false or { mailto }', async () => {
    const response = await call('POST', '/v1/messages', {
      from: 'sender@smtpq.test',
      to: 'a@unsub.test',
      text: 'x',
      unsubscribe: { mailto: 'not an address' },
    });
    expect(response.status).toBe(400);
    expect(response.body.issues[0].path).toBe('unsubscribe');
    expect(response.body.issues[0].message).toMatch(/true, false or \{ "mailto"\?: address \}/);
  });
});

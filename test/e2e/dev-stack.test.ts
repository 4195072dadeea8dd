// The whole local loop of `npm run dev`, in process: submit over HTTP → API handler → SQS (moto) → poller →
// worker → dev SMTP server over STARTTLS with AUTH → captured on disk; status (the DynamoDB ledger) and
// transcript through the API; the dev inbox's JSON API joins the ledger, listed through its state index, with
// the captured mail and the relay's shared state.

import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newMessageId } from '../../functions/api/ids.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startDev } from '../../scripts/local/dev.ts';
import { startTestDev, submit, waitFor } from './dev-harness.ts';

let dev: DevStack;

beforeAll(async () => {
  dev = await startTestDev();
});

afterAll(async () => {
  await dev?.stop();
});

async function status(id: string): Promise<StatusRecord> {
  const response = await fetch(`${dev.apiUrl}/v1/messages/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as StatusRecord;
}

describe('npm run dev, in process', () => {
  it('delivers a submitted message to the dev SMTP server over STARTTLS with AUTH, with status and transcript', async () => {
    const id = await submit(dev.apiUrl, {
      from: 'Alice <alice@example.com>',
      to: ['bob@example.com'],
      subject: 'Hello from the dev stack',
      text: 'plain body',
      html: '<p>html <b>body</b></p>',
      attachments: [
        {
          filename: 'note.txt',
          contentType: 'text/plain',
          content: Buffer.from('attached').toString('base64'),
        },
      ],
    });

    const record = await waitFor('status sent', async () => {
      const current = await status(id);
      return current.state === 'sent' ? current : undefined;
    });
    expect(record.recipients).toMatchObject([{ address: 'bob@example.com', state: 'delivered' }]);

    const [mail] = dev.mail!.byMessageId(record.messageId);
    expect(mail).toBeDefined();
    expect(mail!.envelope).toEqual({ from: 'alice@example.com', to: ['bob@example.com'] });
    expect(mail!.tls).toBe(true);
    expect(mail!.authUser).toBe(dev.smtpCredentials!.username);
    const parsed = await simpleParser(await readFile(path.join(dev.dataDir, 'mail', `${mail!.id}.eml`)));
    expect(parsed.subject).toBe('Hello from the dev stack');
    expect(parsed.text?.trim()).toBe('plain body');
    expect(parsed.attachments.map((a) => a.content.toString())).toEqual(['attached']);

    const transcript = await (await fetch(`${dev.apiUrl}/v1/messages/${id}/transcript?attempt=1`)).text();
    expect(transcript).toContain('C: STARTTLS');
    expect(transcript).toContain('C: AUTH PLAIN <redacted>');
    expect(transcript).not.toContain(dev.smtpCredentials!.password);
    expect(transcript).toMatch(/S: 250 2\.0\.0 Ok: queued as /);
  });

  it('records per-recipient outcomes: delivered, failed (550) and deferred (451) then retried', async () => {
    const id = await submit(dev.apiUrl, {
      from: 'alice@example.com',
      to: ['ok@example.com', 'nobody+reject@example.com', 'later+defer@example.com'],
      subject: 'mixed',
      text: 'x',
    });
    // A transcript is stored when its attempt ends: two of them means the retry is over.
    const record = await waitFor('a second attempt', async () => {
      const current = await status(id);
      return current.transcripts.length >= 2 && current.state !== 'sending' ? current : undefined;
    });
    const byAddress = Object.fromEntries(record.recipients.map((r) => [r.address, r]));
    expect(byAddress['ok@example.com']!.state).toBe('delivered');
    expect(byAddress['nobody+reject@example.com']!.state).toBe('failed');
    expect(byAddress['nobody+reject@example.com']!.reply?.code).toBe(550);
    expect(byAddress['later+defer@example.com']!.state).toBe('deferred');
    // The retry addressed only the deferred recipient: the delivered one got exactly one copy.
    const copies = dev.mail!.list().filter((m) => m.envelope.to.includes('ok@example.com'));
    expect(copies).toHaveLength(1);
    const second = await (await fetch(`${dev.apiUrl}/v1/messages/${id}/transcript?attempt=2`)).text();
    expect(second).toContain('RCPT TO:<later+defer@example.com>');
    expect(second).not.toContain('RCPT TO:<ok@example.com>');
  });

  it("has the worker give up on a recipient deferred every time, recording 'failed' before the queue's redrive", async () => {
    // The relation infra/README.md asks for: the queue redrives only after the worker's last attempt.
    const maxAttempts = Number(process.env.RETRY_MAX_ATTEMPTS);
    const { Attributes } = await dev.clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: dev.resources.queueUrl, AttributeNames: ['RedrivePolicy'] }),
    );
    const { maxReceiveCount } = JSON.parse(Attributes!.RedrivePolicy!) as { maxReceiveCount: number };
    expect(maxReceiveCount).toBeGreaterThan(maxAttempts);

    const id = await submit(dev.apiUrl, {
      from: 'alice@example.com',
      to: ['never+defer@example.com'],
      subject: 'deferred for good',
      text: 'x',
    });
    const record = await waitFor(
      'the message failed',
      async () => {
        const current = await status(id);
        return current.state === 'failed' ? current : undefined;
      },
      120_000,
    );
    expect(record.attempts).toBe(maxAttempts);
    expect(record.transcripts).toHaveLength(maxAttempts);
    expect(record.recipients).toMatchObject([{ address: 'never+defer@example.com', state: 'failed' }]);
    // The worker deleted it from the queue: it never reached the DLQ.
    const dead = await dev.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: dev.resources.dlqUrl!, MaxNumberOfMessages: 10 }),
    );
    expect((dead.Messages ?? []).filter((m) => m.Body?.includes(id))).toEqual([]);
  }, 180_000);

  it('lists messages in the dev inbox API with their recipients, and serves HTML bodies sandboxed', async () => {
    const id = await submit(dev.apiUrl, {
      from: 'alice@example.com',
      to: ['carol@example.com'],
      subject: 'inbox listing',
      html: '<p>hi</p><script>parent.document.title = "owned"</script>',
    });
    const listed = await waitFor('the message listed as sent', async () => {
      const list = (await (await fetch(`${dev.apiUrl}/_inbox/api/messages`)).json()) as {
        messages: Array<{ id: string; state: string; received: number; recipients: unknown[] }>;
      };
      const entry = list.messages.find((m) => m.id === id);
      return entry?.state === 'sent' && entry.received === 1 ? entry : undefined;
    });
    expect(listed.recipients).toEqual([{ address: 'carol@example.com', kind: 'to', state: 'delivered' }]);

    const detail = (await (await fetch(`${dev.apiUrl}/_inbox/api/messages/${id}`)).json()) as {
      mails: Array<{ id: string }>;
    };
    const html = await fetch(`${dev.apiUrl}/_inbox/api/mail/${detail.mails[0]!.id}/html`);
    expect(html.headers.get('content-security-policy')).toMatch(/^sandbox;.*default-src 'none'/);
    expect(await html.text()).toContain('<p>hi</p>');
  });

  it('lists the inbox from the ledger (its state index), newest first across states, with the relay state', async () => {
    // A record that only the ledger knows: written straight into the table, never submitted, never mailed.
    const ledger = new DynamoLedger(dev.clients.documents, dev.resources.table, 30);
    const sent = await submit(dev.apiUrl, {
      from: 'alice@example.com',
      to: ['listed@example.com'],
      subject: 'listed from the ledger',
      text: 'x',
    });
    const failed = await submit(dev.apiUrl, {
      from: 'alice@example.com',
      to: ['gone+reject@example.com'],
      subject: 'failed, listed too',
      text: 'x',
    });
    const onlyInLedger = newMessageId();
    const validated = validateSendRequest({
      from: 'alice@example.com',
      to: ['nobody-mailed@example.com'],
      subject: 'only in the ledger',
      text: 'x',
    });
    if (!validated.ok) throw new Error('test request is invalid');
    await ledger.create(
      newRecord(validated.value, onlyInLedger, new Date(), { messageIdDomain: 'smtpq.test' }).record,
    );

    type Listed = { id: string; state: string; subject?: string; received: number; recipients: unknown[] };
    const list = await waitFor('all three listed in their states', async () => {
      const body = (await (await fetch(`${dev.apiUrl}/_inbox/api/messages`)).json()) as {
        messages: Listed[];
        capturing: boolean;
        relay?: { pausedUntil?: string; pauseLevel: number; reason?: string };
      };
      const state = (id: string) => body.messages.find((m) => m.id === id)?.state;
      return state(sent) === 'sent' && state(failed) === 'failed' && state(onlyInLedger) === 'queued'
        ? body
        : undefined;
    });
    expect(list.capturing).toBe(true);
    // The relay's shared state rides along: nothing here throttled, so no pause.
    expect(list.relay).toEqual({ pauseLevel: 0 });
    // Newest first (ids are ULIDs), whatever their state: the three just made lead the list, newest on top.
    const ids = list.messages.map((m) => m.id);
    expect(ids).toEqual([...ids].sort().reverse());
    expect(ids.slice(0, 3)).toEqual([onlyInLedger, failed, sent]);
    const byId = new Map(list.messages.map((m) => [m.id, m]));
    expect(byId.get(onlyInLedger)).toMatchObject({
      subject: 'only in the ledger',
      received: 0,
      recipients: [{ address: 'nobody-mailed@example.com', kind: 'to', state: 'queued' }],
    });
    expect(byId.get(sent)).toMatchObject({ subject: 'listed from the ledger', received: 1 });
    expect(byId.get(failed)).toMatchObject({
      received: 0,
      recipients: [{ address: 'gone+reject@example.com', kind: 'to', state: 'failed' }],
    });
    // Every listed message is a ledger item with the state shown.
    const records = await ledger.getMany(ids);
    expect(records.size).toBe(ids.length);
    for (const m of list.messages) expect(records.get(m.id)!.value.state).toBe(m.state);
    // The detail reads the ledger too.
    const detail = (await (await fetch(`${dev.apiUrl}/_inbox/api/messages/${onlyInLedger}`)).json()) as {
      status: { id: string; state: string };
      mails: unknown[];
    };
    expect(detail).toMatchObject({ status: { id: onlyInLedger, state: 'queued' }, mails: [] });
  });

  it('answers unknown routes like API Gateway and never serves files outside the inbox', async () => {
    const unknown = await fetch(`${dev.apiUrl}/v2/messages`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ message: 'Not Found' });
    const traversal = await fetch(`${dev.apiUrl}/_inbox/api/mail/..%2F..%2Fdev-smtp-credentials.json/raw`);
    expect(traversal.status).toBe(404);
    expect(await traversal.text()).not.toContain(dev.smtpCredentials!.password);
  });

  it('fails with a clear error when the API port is already in use, and leaves nothing running', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startDev({ port, smtpPort: 0, dataDir: dev.dataDir, log: () => {} })).rejects.toThrow(
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`),
      );
    } finally {
      blocker.close();
    }
  });
});

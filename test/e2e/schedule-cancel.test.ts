// sendAt and cancel through the whole local pipeline: a scheduled message reaches the relay only once it is
// due — also when its queue message comes early (the worker puts it back: chained delays) — and a cancelled
// one never does.
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { toSqsBody } from '../../lib/delivery/queue-message.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, submit, waitFor } from './dev-harness.ts';

let dev: DevStack;

beforeAll(async () => {
  dev = await startTestDev();
});

afterAll(async () => {
  await dev?.stop();
});

async function status(id: string): Promise<StatusRecord> {
  return (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
}
const soon = (ms: number) => new Date(Date.now() + ms).toISOString();
const arrivals = (messageId: string) => dev.mail!.byMessageId(messageId).map((m) => m.receivedAt);

describe('scheduled messages', () => {
  it('is scheduled until its sendAt, then delivered (not before)', async () => {
    const sendAt = soon(3_000);
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['later@example.org'],
      text: 'x',
      sendAt,
    });
    expect(await status(id)).toMatchObject({ state: 'scheduled', sendAt });

    const sent = await waitFor('sent', async () => {
      const r = await status(id);
      return r.state === 'sent' ? r : undefined;
    });

    const [arrived] = arrivals(sent.messageId);
    expect(Date.parse(arrived!)).toBeGreaterThanOrEqual(Date.parse(sendAt));
  });

  it('a queue message that comes before its sendAt goes back on the queue and is delivered when due', async () => {
    // Prepare: the record and its queue message as the API makes them, but sent without the delay.
    const sendAt = soon(4_000);
    const request = validateSendRequest({
      from: 'a@example.com',
      to: ['early@example.org'],
      text: 'x',
      sendAt,
    });
    if (!request.ok) throw new Error('invalid');
    const { newMessageId } = await import('../../functions/api/ids.ts');
    const accepted = newRecord(request.value, newMessageId(), new Date(), { messageIdDomain: 'smtpq.local' });
    await new DynamoLedger(dev.clients.documents, dev.resources.table, 30).create(accepted.record);

    // Act
    await dev.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: dev.resources.queueUrl,
        MessageBody: toSqsBody({ v: 1, id: accepted.id, record: accepted.record, request: accepted.stored }),
      }),
    );

    // Assess
    await waitFor('sent', async () => ((await status(accepted.id)).state === 'sent' ? true : undefined));
    const received = arrivals(accepted.stored.messageId!);
    expect(received).toHaveLength(1);
    expect(Date.parse(received[0]!)).toBeGreaterThanOrEqual(Date.parse(sendAt));
  });

  it('a cancelled scheduled message is never sent', async () => {
    const sendAt = soon(2_000);
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['never@example.org'],
      text: 'x',
      sendAt,
    });
    const cancelled = await fetch(`${dev.apiUrl}/v1/messages/${id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);

    // A message submitted after it and due after it: once it is sent, the cancelled one was due and seen.
    const marker = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['marker@example.org'],
      text: 'x',
      sendAt: soon(3_000),
    });
    await waitFor('marker sent', async () => ((await status(marker)).state === 'sent' ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    const record = await status(id);
    expect(record.state).toBe('cancelled');
    expect(record.attempts).toBe(0);
    expect(arrivals(record.messageId)).toEqual([]);
  });
});

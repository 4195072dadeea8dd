// deliver() against a scripted sender: the splitting and classification logic, without a network.
// (The same paths run against a real SMTP server in test/integration/worker-*.test.ts.)
import { describe, expect, it } from 'vitest';
import { deliver, type SmtpSender } from '../../lib/delivery/deliver.ts';
import { SmtpError } from '../../lib/smtp/index.ts';
import type { Envelope, Reply, SendResult } from '../../lib/smtp/types.ts';

const r = (code: number, text = String(code)): Reply => ({ code, lines: [text] });

/** A sender that accepts at most `limit` recipients per transaction, answering the rest 452. */
function limitedSender(limit: number, rcptReply: (address: string) => Reply = () => r(250)) {
  const transactions: string[][] = [];
  const tags: string[] = [];
  const sender: SmtpSender = {
    async send(envelope: Envelope, createBody, tag) {
      createBody();
      transactions.push([...envelope.to]);
      tags.push(tag);
      const data = r(250, 'queued');
      const recipients = envelope.to.map((address, i) => {
        const reply = i < limit ? rcptReply(address) : r(452, '4.5.3 too many recipients');
        if (reply.code >= 400)
          return { address, status: reply.code >= 500 ? 'failed' : 'deferred', reply } as const;
        return { address, status: 'accepted', reply: data } as const;
      });
      return { mail: r(250), recipients, data } satisfies SendResult;
    },
  };
  return { sender, transactions, tags };
}

const request = (addresses: string[]) => ({
  envelope: { from: 'a@x.test' },
  addresses,
  createBody: () => 'body',
  tag: 'm1/1',
});

describe('deliver', () => {
  it('sends the recipients a 452 turned away in further transactions of the same attempt', async () => {
    const { sender, transactions } = limitedSender(2);
    const report = await deliver(
      sender,
      request(['1@x.test', '2@x.test', '3@x.test', '4@x.test', '5@x.test']),
    );
    expect(transactions).toEqual([
      ['1@x.test', '2@x.test', '3@x.test', '4@x.test', '5@x.test'],
      ['3@x.test', '4@x.test', '5@x.test'],
      ['5@x.test'],
    ]);
    expect([...report.results.values()].every((x) => x.state === 'delivered')).toBe(true);
    expect(report.transactionMs).toHaveLength(3);
  });

  it("tags every transaction of the attempt with the request's tag, the further ones after a 452 too", async () => {
    const { sender, tags } = limitedSender(2);
    await deliver(sender, request(['1@x.test', '2@x.test', '3@x.test']));
    expect(tags).toEqual(['m1/1', 'm1/1']);
  });

  it('asks for a fresh body for each transaction', async () => {
    let bodies = 0;
    const { sender } = limitedSender(1);
    await deliver(sender, {
      ...request(['1@x.test', '2@x.test', '3@x.test']),
      createBody: () => `body ${++bodies}`,
    });
    expect(bodies).toBe(3);
  });

  it('sends to an address listed twice once', async () => {
    const { sender, transactions } = limitedSender(10);
    const report = await deliver(sender, request(['1@x.test', '2@x.test', '1@x.test']));
    expect(transactions).toEqual([['1@x.test', '2@x.test']]);
    expect([...report.results.keys()]).toEqual(['1@x.test', '2@x.test']);
  });

  it('defers a recipient the result does not mention rather than losing it', async () => {
    const sender: SmtpSender = {
      send: async (envelope) => ({
        mail: r(250),
        recipients: [{ address: envelope.to[0]!, status: 'accepted', reply: r(250) }],
        data: r(250),
      }),
    };
    const report = await deliver(sender, request(['1@x.test', '2@x.test']));
    expect(report.results.get('2@x.test')).toEqual({
      state: 'deferred',
      error: 'no reply for this recipient',
    });
  });

  it('defers on a 452 to the first recipient (no progress: a real shortage, RFC 5321 §4.5.3.1.10)', async () => {
    const { sender, transactions } = limitedSender(0);
    const report = await deliver(sender, request(['1@x.test', '2@x.test']));
    expect(transactions).toHaveLength(1);
    expect(report.results.get('1@x.test')).toMatchObject({ state: 'deferred', reply: { code: 452 } });
  });

  it('classifies each recipient on its own: delivered, deferred, failed', async () => {
    const replies: Record<string, Reply> = {
      'ok@x.test': r(250),
      'later@x.test': r(450),
      'never@x.test': r(550),
    };
    const { sender } = limitedSender(10, (a) => replies[a]!);
    const report = await deliver(sender, request(Object.keys(replies)));
    expect(Object.fromEntries([...report.results].map(([a, x]) => [a, x.state]))).toEqual({
      'ok@x.test': 'delivered',
      'later@x.test': 'deferred',
      'never@x.test': 'failed',
    });
  });

  it('a transaction that throws decides every remaining recipient, with the error', async () => {
    const error = new SmtpError('SMTP_CONNECTION', 'connection closed', { stage: 'rcpt' });
    const sender: SmtpSender = {
      send: async () => {
        throw error;
      },
    };
    const report = await deliver(sender, request(['1@x.test', '2@x.test']));
    expect(report.results.get('2@x.test')).toEqual({
      state: 'deferred',
      reply: undefined,
      error: 'SMTP_CONNECTION: connection closed during rcpt',
    });
  });

  it('a 452 to the data (all accepted recipients) is deferred, not split', async () => {
    const data = r(452, '4.3.1 insufficient storage');
    const sender: SmtpSender = {
      send: async (envelope) => ({
        mail: r(250),
        recipients: envelope.to.map((address) => ({ address, status: 'deferred' as const, reply: data })),
        data,
      }),
    };
    const report = await deliver(sender, request(['1@x.test', '2@x.test']));
    expect([...report.results.values()].map((x) => x.state)).toEqual(['deferred', 'deferred']);
    expect(report.transactionMs).toHaveLength(1);
  });
});

// The CLI of the events issue, run as a user runs it (a child process) against the dev stack: list, cancel,
// submit --send-at, events --follow (its temporary rule and queue removed on Ctrl-C), webhook verify.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListQueuesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsOf } from '../../lib/delivery/events.ts';
import { newRecord } from '../../lib/delivery/ledger.ts';
import { newWebhookSecret, signWebhook } from '../../lib/delivery/webhook-signature.ts';
import { validateSendRequest } from '../../lib/message/schema.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, submit, waitFor } from './dev-harness.ts';

const smtpq = fileURLToPath(new URL('../../scripts/smtpq.mjs', import.meta.url));
const children = new Set<ChildProcess>();
let dev: DevStack;
let dir: string;

beforeAll(async () => {
  dev = await startTestDev();
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-cli-events-'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await dev?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function cli(args: string[], input?: string) {
  const child = spawn(process.execPath, [smtpq, ...args], {
    env: { ...process.env, SMTPQ_API: dev.apiUrl, SMTPQ_HISTORY: path.join(dir, 'history.jsonl') },
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  if (input !== undefined) child.stdin!.end(input);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, ...out });
    }),
  );
  return { child, out, done };
}
const run = (args: string[], input?: string) => cli(args, input).done;
const state = async (id: string) =>
  ((await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as { state: string }).state;

describe('smtpq list / cancel / submit --send-at', () => {
  it('schedules with --send-at, lists by state and tag, pages with a cursor, and cancels', async () => {
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const submitted = await run([
      'submit',
      '--from',
      'a@example.com',
      '--to',
      'b@example.org',
      '--text',
      'x',
      '--tag',
      'cli=yes',
      '--send-at',
      sendAt,
    ]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const { id, status } = JSON.parse(submitted.stdout) as { id: string; status: string };
    expect(status).toBe('scheduled');
    const other = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['c@example.org'],
      text: 'y',
      tags: { cli: 'yes' },
    });

    const scheduled = await run(['list', '--state', 'scheduled', '--json']);
    expect((JSON.parse(scheduled.stdout) as { data: { id: string }[] }).data.map((m) => m.id)).toContain(id);
    const table = await run(['list', '--tag', 'cli:yes']);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+scheduled\\s+.*sendAt ${sendAt}.*1 queued`));
    const first = await run(['list', '--tag', 'cli:yes', '--limit', '1']);
    expect(first.stdout.split('\n')[0]).toContain(other);
    const cursor = /--cursor (\S+)/.exec(first.stdout)?.[1];
    expect(cursor).toBeDefined();
    const second = await run(['list', '--tag', 'cli:yes', '--limit', '1', '--cursor', cursor!, '--json']);
    expect((JSON.parse(second.stdout) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual([id]);
    expect((await run(['list', '--limit', '0'])).code).toBe(64);

    const cancelled = await run(['cancel', id]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain(`${id}  cancelled  (1 recipients cancelled: b@example.org)`);
    expect(await state(id)).toBe('cancelled');
    const again = await run(['cancel', id]);
    expect(again.code).toBe(69);
    expect(again.stderr).toMatch(/not cancellable: .*cancelled/);
  });
});

describe('smtpq events --follow', () => {
  it("prints a message's events as they happen, and removes its rule and queue on Ctrl-C", async () => {
    const follower = cli(['events', '--follow']);
    await waitFor('the follower subscribed', async () =>
      follower.out.stderr.includes('following') ? true : undefined,
    );

    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['d@example.org', 'e+reject@example.org'],
      text: 'z',
    });
    await waitFor('the events printed', async () =>
      follower.out.stdout.includes(`message.partially_sent  ${id}`) ? true : undefined,
    );
    const lines = follower.out.stdout.split('\n').filter((l) => l.includes(id));
    expect(lines.map((l) => l.split(/\s+/)[1])).toEqual([
      'message.queued',
      'recipient.delivered',
      'recipient.failed',
      'message.partially_sent',
    ]);
    expect(lines[2]).toMatch(/e\+reject@example\.org\s+550 5\.1\.1/);

    follower.child.kill('SIGINT');
    const { code, stderr } = await follower.done;
    expect(code).toBe(0);
    expect(stderr).toContain('the temporary rule and queue are removed');
    // No smtpq-cli-* queue is left behind.
    const left = await dev.clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'smtpq-cli-' }));
    expect(left.QueueUrls ?? []).toEqual([]);
  });

  it('refuses to run without --follow, and an unknown --type', async () => {
    expect((await run(['events'])).code).toBe(64);
    expect((await run(['events', '--follow', '--type', 'message.lost'])).code).toBe(64);
  });
});

describe('smtpq webhook verify', () => {
  const secret = newWebhookSecret();
  const request = validateSendRequest({ from: 'a@example.com', to: ['x@example.org'], text: 'hi' });
  if (!request.ok) throw new Error('invalid');
  const [event] = eventsOf({
    after: newRecord(request.value, '01ARZ3NDEKTSV4RRFFQ69G5FAV', new Date(), { messageIdDomain: 'e.com' })
      .record,
    version: 1,
  });

  it('accepts a genuine request, refuses a tampered body and an old timestamp', async () => {
    const signed = signWebhook(secret, event!);
    const body = path.join(dir, 'body.json');
    await writeFile(body, signed.body);
    const headers = Object.entries(signed.headers).flatMap(([name, value]) => [
      '--header',
      `${name}: ${value}`,
    ]);

    const ok = await run(['webhook', 'verify', '--secret', secret, '--body-file', body, ...headers]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe(`valid: message.queued 01ARZ3NDEKTSV4RRFFQ69G5FAV\n`);

    const tampered = await run(
      ['webhook', 'verify', '--secret', secret, ...headers],
      signed.body.replace('queued', 'sent'),
    );
    expect(tampered.code).toBe(69);
    expect(tampered.stderr).toMatch(/invalid webhook/);

    const old = signWebhook(secret, event!, new Date(Date.now() - 10 * 60_000));
    const stale = await run(
      [
        'webhook',
        'verify',
        '--secret',
        secret,
        '--id',
        old.headers['webhook-id'],
        '--timestamp',
        old.headers['webhook-timestamp'],
        '--signature',
        old.headers['webhook-signature'],
      ],
      old.body,
    );
    expect(stale.code).toBe(69);
    expect(stale.stderr).toMatch(/timestamp/i);
  });

  it('makes a new secret', async () => {
    expect((await run(['webhook', 'secret'])).stdout).toMatch(/^whsec_[A-Za-z0-9+/]{43}=\n$/);
  });
});

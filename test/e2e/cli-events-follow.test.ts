// `smtpq events --follow` as a user runs it (a child process) against the dev stack: the events of a message
// submitted while it runs, filtered by --message and --type, as lines and as JSON; a reply's control characters
// printed escaped; its temporary rule and queue removed on SIGINT and SIGTERM; the deployed-stack path (--bus,
// --region, the AWS chain) against the same emulator; a bus that does not exist leaves nothing behind.
// This file's dev stack lives in its own region, so its smtpq-cli-* queues are never seen by other files.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type EventBridgeClient, ListRulesCommand, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { DeleteQueueCommand, GetQueueUrlCommand, ListQueuesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBridgeClient } from '../../lib/aws/event-publisher.ts';
import type { SmtpqEvent } from '../../lib/delivery/events.ts';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, submit, waitFor } from './dev-harness.ts';

const REGION = 'eu-west-3';
const smtpq = fileURLToPath(new URL('../../scripts/smtpq.mjs', import.meta.url));
const children = new Set<ChildProcess>();
let dev: DevStack;
let dir: string;
let eventbridge: EventBridgeClient;
let busName: string;

beforeAll(async () => {
  process.env.AWS_REGION = REGION;
  dev = await startTestDev();
  busName = dev.events!.busName;
  eventbridge = createEventBridgeClient({ region: REGION, endpoint: dev.awsEndpoint });
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-cli-follow-'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  eventbridge?.destroy();
  await dev?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Follower {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** The rule's and the queue's name, from the "following …" line. */
  name: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(process.execPath, [smtpq, ...args], {
    env: { ...process.env, SMTPQ_API: dev.apiUrl, SMTPQ_HISTORY: path.join(dir, 'history.jsonl'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  const done = new Promise<Awaited<Follower['done']>>((resolve) =>
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, ...out });
    }),
  );
  return { child, out, done };
}

async function follow(args: string[], env: Record<string, string | undefined> = {}): Promise<Follower> {
  const run = cli(['events', '--follow', ...args], env);
  const name = await waitFor(
    'the follower subscribed',
    async () => {
      if (run.child.exitCode !== null) throw new Error(`events exited: ${run.out.stderr}`);
      return /through the rule and queue (smtpq-cli-[0-9a-f]{8})/.exec(run.out.stderr)?.[1];
    },
    30_000,
  );
  return { ...run, name };
}

/** Stops the follower with `signal`; it must exit 0 with its rule and its queue gone. */
async function stopAndCheckRemoved(follower: Follower, signal: NodeJS.Signals): Promise<string> {
  follower.child.kill(signal);
  const { code, stderr, stdout } = await follower.done;
  expect(code, stderr).toBe(0);
  expect(stderr).toContain('stopped; the temporary rule and queue are removed');
  await expect(
    dev.clients.sqs.send(new GetQueueUrlCommand({ QueueName: follower.name })),
  ).rejects.toMatchObject({ name: expect.stringMatching(/QueueDoesNotExist|NonExistentQueue/) });
  const rules = await eventbridge.send(
    new ListRulesCommand({ EventBusName: busName, NamePrefix: follower.name }),
  );
  expect(rules.Rules ?? []).toEqual([]);
  return stdout;
}

const linesOf = (stdout: string, id: string) => stdout.split('\n').filter((l) => l.includes(id));
const typesOf = (lines: string[]) => lines.map((l) => l.split(/\s+/)[1]);

describe('smtpq events --follow against the dev stack', () => {
  it("prints a message's events, in order, with replies; removes its rule and queue on SIGINT", async () => {
    const follower = await follow([]);
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['ok@example.org', 'no+reject@example.org'],
      subject: 'follow me',
      text: 'x',
    });
    await waitFor('the message partially sent', async () =>
      follower.out.stdout.includes(`message.partially_sent  ${id}`) ? true : undefined,
    );
    const lines = linesOf(follower.out.stdout, id);
    expect(typesOf(lines)).toEqual([
      'message.queued',
      'recipient.delivered',
      'recipient.failed',
      'message.partially_sent',
    ]);
    // code, enhanced code and text, the enhanced code once.
    expect(lines[1]).toMatch(/ok@example\.org {2}250 2\.0\.0 (?!2\.0\.0)\S/);
    expect(lines[2]).toMatch(/no\+reject@example\.org {2}550 5\.1\.1 (?!5\.1\.1)\S/);
    await stopAndCheckRemoved(follower, 'SIGINT');
  });

  it('--message and --json: only that message, each line the event as published; SIGTERM cleans up', async () => {
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const id = await submit(dev.apiUrl, { from: 'a@example.com', to: ['s@example.org'], text: 'x', sendAt });
    const follower = await follow(['--message', id, '--json']);
    const other = await submit(dev.apiUrl, { from: 'a@example.com', to: ['t@example.org'], text: 'y' });
    const cancel = await fetch(`${dev.apiUrl}/v1/messages/${id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    await waitFor('the cancel event', async () =>
      follower.out.stdout.includes('"message.cancelled"') ? true : undefined,
    );
    // The other message's events are published too (it is sent meanwhile); give them time to arrive.
    await waitFor('the other message sent', async () => {
      const r = (await (await fetch(`${dev.apiUrl}/v1/messages/${other}`)).json()) as { state: string };
      return r.state === 'sent' ? true : undefined;
    });
    await dev.events!.drain();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const stdout = await stopAndCheckRemoved(follower, 'SIGTERM');
    const events = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as SmtpqEvent);
    expect(events.map((e) => [e.type, e.data.messageId, e.data.state])).toEqual([
      ['message.cancelled', id, 'cancelled'],
    ]);
    expect(events[0]!.id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(events[0]!.data.tags).toEqual({});
    expect(stdout).not.toContain(other);
  });

  it("--type: only those types; an outside reply's control characters are printed escaped", async () => {
    const follower = await follow(['--type', 'recipient.failed', '--type', 'message.partially_sent']);
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['ok2@example.org', 'no2+reject@example.org'],
      text: 'x',
    });
    // An event as a hostile relay's reply would make it: ESC sequences, BEL, a CR, a C1 control.
    const forged = 'ZZZZZZZZZZZZZZZZZZZZZZZZZZ';
    const event: SmtpqEvent = {
      id: 'evt_00000000000000000000000000000000',
      type: 'recipient.failed',
      timestamp: new Date().toISOString(),
      data: {
        messageId: forged,
        sequence: 3,
        state: 'failed',
        tags: {},
        attempt: 1,
        recipient: 'x\u001b]0;owned\u0007@example.org',
        reply: { code: 550, enhancedCode: '5.7.1', text: '5.7.1 \u001b[2J\u001b[31mred\rhidden\u009b' },
      },
    };
    const put = await eventbridge.send(
      new PutEventsCommand({
        Entries: [
          { EventBusName: busName, Source: 'smtpq', DetailType: event.type, Detail: JSON.stringify(event) },
        ],
      }),
    );
    expect(put.FailedEntryCount ?? 0).toBe(0);
    await waitFor('both messages printed', async () =>
      follower.out.stdout.includes(`message.partially_sent  ${id}`) && follower.out.stdout.includes(forged)
        ? true
        : undefined,
    );
    const stdout = await stopAndCheckRemoved(follower, 'SIGINT');
    expect(typesOf(linesOf(stdout, id))).toEqual(['recipient.failed', 'message.partially_sent']);
    // Nothing raw: no ESC, BEL, CR or C1 reaches the terminal; each is written out as \u….
    expect(stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    const hostile = linesOf(stdout, forged)[0]!;
    expect(hostile).toContain('x\\u001b]0;owned\\u0007@example.org');
    expect(hostile).toContain('550 5.7.1 \\u001b[2J\\u001b[31mred hidden\\u009b');
  });
});

/**
 * A pass-through to the emulator for the CLI's AWS calls (its AWS_ENDPOINT_URL) that lets a test act while a
 * given call (X-Amz-Target, e.g. "AWSEvents.PutRule") is in flight, or answer it with an error instead.
 */
async function awsProxy(
  on: (target: string) => Promise<{ status: number; body: string } | undefined>,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const answer = await on(target);
    if (answer) {
      res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.0' }).end(answer.body);
      return;
    }
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(
        ([name]) => !['host', 'content-length', 'connection'].includes(name),
      ),
    ) as Record<string, string>;
    const upstream = await fetch(new URL(req.url!, dev.awsEndpoint), {
      method: req.method,
      headers,
      ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
    });
    res.writeHead(upstream.status, Object.fromEntries(upstream.headers));
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function nothingLeft(): Promise<void> {
  const queues = await dev.clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'smtpq-cli-' }));
  expect(queues.QueueUrls ?? []).toEqual([]);
  const rules = await eventbridge.send(
    new ListRulesCommand({ EventBusName: busName, NamePrefix: 'smtpq-cli-' }),
  );
  expect(rules.Rules ?? []).toEqual([]);
}

describe('smtpq events --follow interrupted while it subscribes, or failing to clean up', () => {
  const followArgs = () => ['events', '--follow', '--bus', busName, '--region', REGION];

  it.each([
    'AmazonSQS.CreateQueue',
    'AmazonSQS.GetQueueAttributes',
    'AWSEvents.PutRule',
    'AmazonSQS.SetQueueAttributes',
    'AWSEvents.PutTargets',
  ])('a Ctrl-C during %s: the subscription is finished, then removed; exit 0', async (step) => {
    let child: ChildProcess | undefined;
    let interrupted = false;
    const proxy = await awsProxy(async (target) => {
      if (target === step && !interrupted) {
        interrupted = true;
        child!.kill('SIGINT');
        // Answered only once the signal has surely arrived: the call is in flight when it comes.
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      return undefined;
    });
    try {
      const run = cli(followArgs(), { AWS_ENDPOINT_URL: proxy.url, SMTPQ_API: undefined });
      child = run.child;
      const { code, stderr } = await run.done;
      expect(interrupted).toBe(true);
      expect(code, stderr).toBe(0);
      expect(stderr).not.toContain('following');
      expect(stderr).toContain('stopped; the temporary rule and queue are removed');
      await nothingLeft();
    } finally {
      await proxy.close();
    }
  });

  it('a queue it cannot delete: named, with the rule removed, exit 75', async () => {
    let child: ChildProcess | undefined;
    const proxy = await awsProxy(async (target) => {
      if (target === 'AWSEvents.PutTargets') setTimeout(() => child!.kill('SIGINT'), 300);
      if (target === 'AmazonSQS.DeleteQueue')
        return {
          status: 400,
          body: JSON.stringify({ __type: 'com.amazonaws.sqs#AccessDenied', message: 'no' }),
        };
      return undefined;
    });
    try {
      const run = cli(followArgs(), { AWS_ENDPOINT_URL: proxy.url, SMTPQ_API: undefined });
      child = run.child;
      const { code, stderr } = await run.done;
      expect(code, stderr).toBe(75);
      const name = /could not remove the queue named (smtpq-cli-[0-9a-f]{8}) on /.exec(stderr)?.[1];
      expect(name, stderr).toBeDefined();
      const rules = await eventbridge.send(new ListRulesCommand({ EventBusName: busName, NamePrefix: name }));
      expect(rules.Rules ?? []).toEqual([]);
      const { QueueUrl } = await dev.clients.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
      await dev.clients.sqs.send(new DeleteQueueCommand({ QueueUrl }));
      await nothingLeft();
    } finally {
      await proxy.close();
    }
  });
});

describe('smtpq events --follow against a deployed stack (--bus, --region, the AWS chain)', () => {
  // The emulator stands in for AWS: AWS_ENDPOINT_URL, as the SDK itself reads it.
  const aws = () => ({ AWS_ENDPOINT_URL: dev.awsEndpoint, AWS_REGION: undefined, SMTPQ_API: undefined });

  it('follows the named bus', async () => {
    const follower = await follow(['--bus', busName, '--region', REGION], aws());
    expect(follower.out.stderr).toContain(`following ${busName}`);
    const id = await submit(dev.apiUrl, { from: 'a@example.com', to: ['u@example.org'], text: 'x' });
    await waitFor('the message sent', async () =>
      new RegExp(`message\\.sent\\s+${id}`).test(follower.out.stdout) ? true : undefined,
    );
    const stdout = await stopAndCheckRemoved(follower, 'SIGINT');
    expect(typesOf(linesOf(stdout, id))).toEqual(['message.queued', 'recipient.delivered', 'message.sent']);
  });

  it('a bus that does not exist: exit 69 naming it, and no queue left behind', async () => {
    const run = await cli(['events', '--follow', '--bus', 'no-such-bus', '--region', REGION], aws()).done;
    expect(run.code, run.stderr).toBe(69);
    expect(run.stderr).toMatch(/no such event bus/);
    const queues = await dev.clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'smtpq-cli-' }));
    expect(queues.QueueUrls ?? []).toEqual([]);
  });

  it('--bus without a region, and a deployed API without --bus: usage errors', async () => {
    const noRegion = await cli(['events', '--follow', '--bus', busName], {
      ...aws(),
      AWS_DEFAULT_REGION: undefined,
    }).done;
    expect(noRegion.code).toBe(64);
    expect(noRegion.stderr).toMatch(/--bus needs a region/);
    const deployed = await cli(['events', '--follow'], {
      SMTPQ_API: 'https://abc123.execute-api.eu-west-3.amazonaws.com',
    }).done;
    expect(deployed.code).toBe(64);
    expect(deployed.stderr).toMatch(/--bus <EventBusName output>/);
  });
});

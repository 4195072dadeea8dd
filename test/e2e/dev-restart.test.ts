// `smtpq dev` as a process, with its own moto: Ctrl-C stops everything (moto included), and captured mail,
// the ledger table (status records, idempotency keys), transcripts and a deferred message still waiting on the
// queue all survive a restart. While it starts, the API port already answers: 503 `starting` with Retry-After.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusRecord } from '../../lib/delivery/ports.ts';
import { submit, waitFor } from './dev-harness.ts';

const smtpq = fileURLToPath(new URL('../../scripts/smtpq.mjs', import.meta.url));

let dataDir: string;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-dev-restart-'));
});

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

interface DevProcess {
  child: ChildProcess;
  apiUrl: string;
  awsEndpoint: string;
  output: () => string;
  exited: Promise<number | null>;
  /** What the API port answered before the banner (when started on a known port). */
  whileStarting: Array<{ status: number; retryAfter: string | null; body: unknown }>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts `smtpq dev` on free ports, with its own moto (no AWS_ENDPOINT_URL), and reads the banner. With
 * `port`, the API port is known in advance, and is asked for a status until the banner shows.
 */
async function startDevProcess(port = 0): Promise<DevProcess> {
  const { AWS_ENDPOINT_URL: _shared, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [smtpq, 'dev', '--port', String(port), '--smtp-port', '0', '--data-dir', dataDir],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const whileStarting: DevProcess['whileStarting'] = [];
  const bannerShown = () => output.includes('Ctrl-C stops everything');
  await waitFor(
    'the banner',
    async () => {
      if (bannerShown()) return true;
      if (port !== 0) {
        try {
          const response = await fetch(`http://127.0.0.1:${port}/v1/messages/01M8XHB3VWRWSDEZYWN9R0QMM9`);
          const body = await response.json();
          // Answers that arrived after the banner are the running stack's, not the starting one's.
          if (!bannerShown())
            whileStarting.push({
              status: response.status,
              retryAfter: response.headers.get('retry-after'),
              body,
            });
        } catch {
          // Not listening yet.
        }
      }
      return undefined;
    },
    120_000,
  );
  return {
    child,
    apiUrl: /^\s+API\s+(http:\/\/localhost:\d+)/m.exec(output)![1]!,
    awsEndpoint: /^\s+AWS\s+(http:\/\/127\.0\.0\.1:\d+)/m.exec(output)![1]!,
    output: () => output,
    exited,
    whileStarting,
  };
}

async function status(apiUrl: string, id: string): Promise<StatusRecord> {
  return (await (await fetch(`${apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
}

async function transcript(apiUrl: string, id: string, attempt: number): Promise<string> {
  const response = await fetch(`${apiUrl}/v1/messages/${id}/transcript?attempt=${attempt}`);
  expect(response.status).toBe(200);
  return response.text();
}

describe('smtpq dev across a restart', () => {
  it('stops cleanly on SIGINT and comes back with mail, the ledger, transcripts and queued retries', {
    timeout: 300_000,
  }, async () => {
    const first = await startDevProcess();
    const keptRequest = { from: 'a@example.com', to: ['b@example.com'], subject: 'kept', text: 'x' };
    const key = { 'idempotency-key': 'restart-e2e-kept-1' };
    const sent = await submit(first.apiUrl, keptRequest, key);
    const deferred = await submit(first.apiUrl, {
      from: 'a@example.com',
      to: ['later+defer@example.com'],
      subject: 'retried after the restart',
      text: 'y',
    });
    await waitFor('both attempts done', async () => {
      const [s, d] = await Promise.all([status(first.apiUrl, sent), status(first.apiUrl, deferred)]);
      return s.state === 'sent' && d.state === 'deferred' && d.transcripts.length === 1 ? true : undefined;
    });
    const sentBefore = await status(first.apiUrl, sent);
    const deferredBefore = await status(first.apiUrl, deferred);
    const deferredTranscriptBefore = await transcript(first.apiUrl, deferred, 1);

    first.child.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('saved 1 queued messages');
    expect(first.output()).toContain('stopped.');
    // moto went with it.
    await expect(fetch(`${first.awsEndpoint}/moto-api/data.json`)).rejects.toThrow();

    // The snapshot holds the ledger table: both status records and the idempotency key, as DynamoDB items.
    const items = (await readFile(path.join(dataDir, 'state', 'ledger.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, { S?: string }>);
    const keysSaved = items.map((item) => item.pk?.S);
    expect(keysSaved).toEqual(expect.arrayContaining([`msg#${sent}`, `msg#${deferred}`]));
    expect(keysSaved.some((k) => k?.startsWith('idem#'))).toBe(true);
    expect(items.find((item) => item.pk?.S === `msg#${sent}`)!.state).toEqual({ S: 'sent' });

    const port = await freePort();
    const second = await startDevProcess(port);
    // The API port answered at once, before the handlers were ready: 503 `starting`, with Retry-After.
    expect(second.whileStarting.length).toBeGreaterThan(0);
    for (const answer of second.whileStarting) {
      expect(answer).toMatchObject({
        status: 503,
        retryAfter: expect.stringMatching(/^\d+$/),
        body: { error: 'starting', message: expect.any(String) },
      });
    }
    const restored = /restored (\d+) objects and 1 queued messages/.exec(second.output());
    expect(restored).not.toBeNull();
    // The ledger items and (at least) the transcript object.
    expect(Number(restored![1])).toBeGreaterThan(items.length);

    // The status, looked up after the restart, is the one from before it (read from the restored table).
    expect(await status(second.apiUrl, sent)).toEqual(sentBefore);
    // The restored idempotency key: the same request with the same key is a replay, not a second message.
    const replay = await fetch(`${second.apiUrl}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...key },
      body: JSON.stringify(keptRequest),
    });
    expect(replay.status).toBe(202);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(((await replay.json()) as { id: string }).id).toBe(sent);
    // The inbox lists it through the restored state index, with its captured mail (one copy).
    const inbox = (await (await fetch(`${second.apiUrl}/_inbox/api/messages`)).json()) as {
      messages: Array<{ id: string; state: string; received: number }>;
    };
    expect(inbox.messages.find((m) => m.id === sent)).toMatchObject({ state: 'sent', received: 1 });
    // Transcripts: the restored connection objects, each message's own part.
    const sentTranscript = await transcript(second.apiUrl, sent, 1);
    expect(sentTranscript).toContain('C: RCPT TO:<b@example.com>');
    expect(sentTranscript).not.toContain('later+defer@example.com');
    expect(await transcript(second.apiUrl, deferred, 1)).toBe(deferredTranscriptBefore);
    // The deferred message was back on the queue: the worker tried it again, counting on from the restored
    // record (attempt 2), not from a fresh one written from the queue message.
    const retried = await waitFor('the second attempt', async () => {
      const d = await status(second.apiUrl, deferred);
      return d.transcripts.length === 2 && d.state !== 'sending' ? d : undefined;
    });
    expect(retried).toMatchObject({
      attempts: 2,
      createdAt: deferredBefore.createdAt,
      messageId: deferredBefore.messageId,
    });
    expect(await transcript(second.apiUrl, deferred, 2)).toContain('C: RCPT TO:<later+defer@example.com>');

    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });
});

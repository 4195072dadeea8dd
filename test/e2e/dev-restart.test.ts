// `smtpq dev` as a process, with its own moto: Ctrl-C stops everything (moto included), and captured mail,
// status records and a deferred message still waiting on the queue all survive a restart.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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
}

/** Starts `smtpq dev` on free ports, with its own moto (no AWS_ENDPOINT_URL), and reads the banner. */
async function startDevProcess(): Promise<DevProcess> {
  const { AWS_ENDPOINT_URL: _shared, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [smtpq, 'dev', '--port', '0', '--smtp-port', '0', '--data-dir', dataDir],
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
  await waitFor(
    'the banner',
    async () => (output.includes('Ctrl-C stops everything') ? true : undefined),
    120_000,
  );
  return {
    child,
    apiUrl: /^\s+API\s+(http:\/\/localhost:\d+)/m.exec(output)![1]!,
    awsEndpoint: /^\s+AWS\s+(http:\/\/127\.0\.0\.1:\d+)/m.exec(output)![1]!,
    output: () => output,
    exited,
  };
}

async function status(apiUrl: string, id: string): Promise<StatusRecord> {
  return (await (await fetch(`${apiUrl}/v1/messages/${id}`)).json()) as StatusRecord;
}

describe('smtpq dev across a restart', () => {
  it('stops cleanly on SIGINT and comes back with mail, status and queued retries', {
    timeout: 300_000,
  }, async () => {
    const first = await startDevProcess();
    const sent = await submit(first.apiUrl, {
      from: 'a@example.com',
      to: ['b@example.com'],
      subject: 'kept',
      text: 'x',
    });
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

    first.child.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('saved 1 queued messages');
    expect(first.output()).toContain('stopped.');
    // moto went with it.
    await expect(fetch(`${first.awsEndpoint}/moto-api/data.json`)).rejects.toThrow();

    const second = await startDevProcess();
    expect(second.output()).toMatch(/restored \d+ objects and 1 queued messages/);
    expect((await status(second.apiUrl, sent)).state).toBe('sent');
    const inbox = (await (await fetch(`${second.apiUrl}/_inbox/api/messages`)).json()) as {
      messages: Array<{ id: string; received: number }>;
    };
    expect(inbox.messages.find((m) => m.id === sent)?.received).toBe(1);
    const transcript = await fetch(`${second.apiUrl}/v1/messages/${sent}/transcript?attempt=1`);
    expect(await transcript.text()).toContain('C: RCPT TO:<b@example.com>');
    // The deferred message was back on the queue: the worker tried it again.
    await waitFor('the second attempt', async () => {
      const d = await status(second.apiUrl, deferred);
      return d.transcripts.length === 2 && d.state !== 'sending' ? true : undefined;
    });

    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });
});

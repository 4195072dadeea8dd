// `smtpq batch` as a user runs it: the real CLI process against the dev stack, 500 recipients and a template,
// with a progress bar; interrupted with SIGINT part-way, then resumed — and every recipient gets exactly one
// message at the dev SMTP server. The resume also re-sends rows whose progress lines were lost (as after a
// crash between the API's answer and the log write): their idempotency keys must make those no-ops. And a row
// the API accepted while the CLI saw an error (a gateway timeout) keeps its key through the failures file.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, waitFor } from './dev-harness.ts';

const smtpq = fileURLToPath(new URL('../../scripts/smtpq.mjs', import.meta.url));
const RECIPIENTS = 500;
const INTERRUPT_AFTER = 150;
const LOST_PROGRESS_LINES = 25;

let dev: DevStack;
let dir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dev = await startTestDev();
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-batch-e2e-'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await dev?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function runCli(args: string[]): Run {
  const child = spawn(process.execPath, [smtpq, ...args], {
    env: { ...process.env, SMTPQ_HISTORY: path.join(dir, 'history.jsonl') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done };
}

/** Progress entries (row number → message id), skipping the header line. */
async function progress(file: string): Promise<Map<number, string>> {
  const entries = new Map<number, string>();
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return entries;
  }
  for (const line of text.split('\n').slice(1)) {
    if (!line) continue;
    const entry = JSON.parse(line) as { n: number; id: string };
    entries.set(entry.n, entry.id);
  }
  return entries;
}

describe('smtpq batch', () => {
  it('sends 500 recipients once each across a Ctrl-C and a resume', { timeout: 600_000 }, async () => {
    const csv = path.join(dir, 'recipients.csv');
    const template = path.join(dir, 'template.json');
    const stateFile = path.join(dir, 'recipients.progress.jsonl');
    const rows = Array.from(
      { length: RECIPIENTS },
      (_, i) => `user${i}@example.com,"Reader, No. ${i}",${1000 + i}`,
    );
    await writeFile(csv, `email,name,code\n${rows.join('\n')}\n`);
    await writeFile(
      template,
      JSON.stringify({
        from: 'News <news@example.com>',
        subject: 'Code for {{name}}',
        text: 'Your code: {{code}}',
      }),
    );
    const args = ['batch', csv, '--template', template, '--api', dev.apiUrl, '--concurrency', '4'];

    // Prepare/Act: the first run, interrupted part-way like a Ctrl-C.
    const first = runCli(args);
    await waitFor('progress past the interrupt point', async () =>
      (await progress(stateFile)).size >= INTERRUPT_AFTER ? true : undefined,
    );
    first.child.kill('SIGINT');
    const interrupted = await first.done;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stdout).toMatch(/^interrupted: /m);
    expect(interrupted.stderr).toMatch(/batch \[.*\] \d+% \| \d+\/500 \| [\d.]+\/s \| ETA/);
    const before = await progress(stateFile);
    expect(before.size).toBeGreaterThanOrEqual(INTERRUPT_AFTER);
    expect(before.size).toBeLessThan(RECIPIENTS);

    // Lose the last progress lines: those rows were accepted by the API but the CLI "did not see it".
    const lines = (await readFile(stateFile, 'utf8')).trimEnd().split('\n');
    const lost = lines
      .slice(-LOST_PROGRESS_LINES)
      .map((line) => JSON.parse(line) as { n: number; id: string });
    await writeFile(stateFile, `${lines.slice(0, -LOST_PROGRESS_LINES).join('\n')}\n`);

    const resumed = await runCli(args).done;
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(
      `resuming: ${before.size - LOST_PROGRESS_LINES} of 500 rows were sent before`,
    );
    expect(resumed.stdout).toMatch(/^done: .* 500\/500 rows submitted in all, 0 failed/m);
    const after = await progress(stateFile);
    expect(after.size).toBe(RECIPIENTS);
    // The re-sent rows got their original ids back: the API recognised their idempotency keys.
    for (const entry of lost) expect(after.get(entry.n)).toBe(entry.id);
    expect(new Set(after.values()).size).toBe(RECIPIENTS);

    // Assess: the dev SMTP server received exactly one message per recipient.
    await waitFor(
      'all 500 delivered',
      async () => (dev.mail!.list().length >= RECIPIENTS ? true : undefined),
      300_000,
    );
    // Then until the queue is empty (nothing in flight could still deliver a duplicate), and count again.
    await waitFor('an empty queue', async () => {
      const { Attributes: a } = await dev.clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: dev.resources.queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      return a?.ApproximateNumberOfMessages === '0' && a.ApproximateNumberOfMessagesNotVisible === '0'
        ? true
        : undefined;
    });
    const mails = dev.mail!.list();
    const perRecipient = new Map<string, number>();
    for (const mail of mails)
      for (const to of mail.envelope.to) perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
    expect(perRecipient.size).toBe(RECIPIENTS);
    expect([...perRecipient.values()].every((count) => count === 1)).toBe(true);
    expect(mails).toHaveLength(RECIPIENTS);
    const one = mails.find((m) => m.envelope.to[0] === 'user7@example.com')!;
    expect(one.subject).toBe('Code for Reader, No. 7');
  });

  it("reruns a failures file with each row's original Idempotency-Key, so an accepted row is not queued twice", async () => {
    const csv = path.join(dir, 'flaky.csv');
    const template = path.join(dir, 'flaky-template.json');
    await writeFile(csv, 'email,name\nann.flaky@example.com,Ann\n');
    await writeFile(
      template,
      JSON.stringify({ from: 'news@example.com', subject: 'Hi {{name}}', text: 't' }),
    );
    // A gateway that passes each submit on to the API and then answers 504, as after a timeout: the API
    // accepted the row, the CLI sees a transient failure.
    const accepted: Array<{ key: string | undefined; id: string }> = [];
    const gateway: Server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const key = req.headers['idempotency-key'] as string | undefined;
      const answer = await fetch(`${dev.apiUrl}${req.url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: Buffer.concat(chunks),
      });
      accepted.push({ key, id: ((await answer.json()) as { id: string }).id });
      res.writeHead(504, { 'content-type': 'application/json' }).end('{"message":"Gateway Timeout"}');
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      const viaGateway = `http://127.0.0.1:${(gateway.address() as { port: number }).port}`;
      const first = await runCli(['batch', csv, '--template', template, '--api', viaGateway]).done;
      expect(first.code).toBe(75);
    } finally {
      await new Promise<void>((resolve) => gateway.close(() => resolve()));
    }
    // Every try of the row carried the same key, and the API answered each with the same id.
    expect(accepted.length).toBeGreaterThan(0);
    expect(new Set(accepted.map((a) => `${a.key} ${a.id}`)).size).toBe(1);

    const failed = path.join(dir, 'flaky.failed.csv');
    expect((await readFile(failed, 'utf8')).split('\n')[0]).toBe('email,name,_error,_idempotency_key');
    const rerun = await runCli(['batch', failed, '--template', template, '--api', dev.apiUrl]).done;
    expect(rerun.code).toBe(0);
    // The API recognised the key: the rerun got the id of the first acceptance, not a second message.
    const rerunProgress = await progress(path.join(dir, 'flaky.failed.progress.jsonl'));
    expect([...rerunProgress.values()]).toEqual([accepted[0]!.id]);
    await waitFor('the row delivered', async () =>
      dev.mail!.list().some((m) => m.envelope.to.includes('ann.flaky@example.com')) ? true : undefined,
    );
    expect(dev.mail!.list().filter((m) => m.envelope.to.includes('ann.flaky@example.com'))).toHaveLength(1);
  }, 120_000);
});

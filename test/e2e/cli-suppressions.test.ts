// `smtpq suppressions list|add|remove` run as a user runs them (a child process) against the dev stack, and the
// dev stack's one-click unsubscribe: links pointing at its own API, signed with the key it generated, which a
// plain form POST (as a mailbox provider sends it) follows to the suppression list.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, submit, waitFor } from './dev-harness.ts';

const smtpq = fileURLToPath(new URL('../../scripts/smtpq.mjs', import.meta.url));
const children = new Set<ChildProcess>();
let dev: DevStack;

beforeAll(async () => {
  dev = await startTestDev();
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await dev?.stop();
});

function run(args: string[]) {
  const child = spawn(process.execPath, [smtpq, ...args], {
    env: { ...process.env, SMTPQ_API: dev.apiUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, ...out });
    }),
  );
}

interface Status {
  state: string;
  recipients: { address: string; state: string; error?: string }[];
}
const status = async (id: string) =>
  (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as Status;

describe('smtpq suppressions', () => {
  it('adds, lists and removes an entry; a suppressed recipient is never sent to', async () => {
    const added = await run(['suppressions', 'add', 'Zoe@Example.NET', '--reason', 'asked us']);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('suppressed Zoe@example.net  manual  asked us');

    const listed = await run(['suppressions', 'list', '--source', 'manual', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const page = JSON.parse(listed.stdout) as { data: { address: string }[] };
    expect(page.data.map((e) => e.address)).toContain('Zoe@example.net');

    const id = await submit(dev.apiUrl, { from: 'a@smtpq.test', to: 'Zoe@example.net', text: 'hi' });
    const record = await status(id);
    expect(record.state).toBe('failed');
    expect(record.recipients[0]).toMatchObject({ state: 'suppressed' });
    expect(record.recipients[0]!.error).toMatch(/^suppressed: manual \(asked us/);

    const removed = await run(['suppressions', 'remove', 'Zoe@example.net']);
    expect(removed.code, removed.stderr).toBe(0);
    const after = await run(['suppressions', 'list', '--json']);
    expect(
      (JSON.parse(after.stdout) as { data: { address: string }[] }).data.map((e) => e.address),
    ).not.toContain('Zoe@example.net');
  });

  it('refuses a bad address (the API names it) and a bad --source (a usage error)', async () => {
    const bad = await run(['suppressions', 'add', 'not-an-address']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/address/);
    const source = await run(['suppressions', 'list', '--source', 'spam']);
    expect(source.code).toBe(64);
    expect(source.stderr).toMatch(/--source must be one of bounce, unsubscribe, complaint, manual/);
  });
});

describe('one-click unsubscribe on the dev stack', () => {
  it('links to the dev API; a form POST of the link suppresses the recipient', async () => {
    const id = await submit(dev.apiUrl, {
      from: 'news@smtpq.test',
      to: ['ida@example.org', 'jan@example.org'],
      subject: 'news',
      text: 'news',
      unsubscribe: true,
    });
    await waitFor('sent', async () => ((await status(id)).state === 'sent' ? true : undefined));
    // The key was generated once into the data dir.
    expect(
      (await readFile(path.join(dev.dataDir, 'dev-unsubscribe-key'), 'utf8')).trim().length,
    ).toBeGreaterThan(32);
    const ida = dev.mail!.list().find((m) => m.envelope.to.includes('ida@example.org'))!;
    expect(ida.envelope.to).toEqual(['ida@example.org']);
    const raw = (await dev.mail!.readEml(ida.id))!.toString('latin1');
    const link = /<(http:\/\/[^>]+\/v1\/unsubscribe\/[^>]+)>/.exec(raw.replace(/\r\n[ \t]+/g, ' '))![1]!;
    expect(link.startsWith(`${dev.apiUrl}/v1/unsubscribe/`)).toBe(true);

    const response = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('');
    const entry = await (await fetch(`${dev.apiUrl}/v1/suppressions/ida@example.org`)).json();
    expect(entry).toMatchObject({ source: 'unsubscribe', messageId: id });
    expect((await fetch(`${dev.apiUrl}/v1/suppressions/jan@example.org`)).status).toBe(404);
  });
});

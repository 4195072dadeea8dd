// `smtpq list`, `smtpq cancel`, `smtpq submit --send-at` and a `sendAt` column of `smtpq batch`, run as a user
// runs them (a child process) against the dev stack: the real API, worker and ledger on moto.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, submit, waitFor } from './dev-harness.ts';

const smtpq = fileURLToPath(new URL('../../scripts/smtpq.mjs', import.meta.url));
/** Nothing listens here: a command that made a request would exit 75 (network), not 64. */
const NOWHERE = 'http://127.0.0.1:9';
const children = new Set<ChildProcess>();
let dev: DevStack;
let dir: string;

beforeAll(async () => {
  dev = await startTestDev();
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-cli-list-'));
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await dev?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [smtpq, ...args], {
    env: { ...process.env, SMTPQ_API: dev.apiUrl, SMTPQ_HISTORY: path.join(dir, 'history.jsonl'), ...env },
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
  id: string;
  state: string;
  sendAt?: string;
  recipients: { address: string; state: string }[];
}
const status = async (id: string) =>
  (await (await fetch(`${dev.apiUrl}/v1/messages/${id}`)).json()) as Status;
const settled = (id: string, state: string) =>
  waitFor(`${id} ${state}`, async () => ((await status(id)).state === state ? true : undefined));
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
const ids = (stdout: string) => (JSON.parse(stdout) as { data: { id: string }[] }).data.map((m) => m.id);

describe('smtpq submit --send-at and smtpq list', () => {
  const tag = `run${Date.now()}`;
  let sent: string;
  let scheduled: string;
  let partial: string;
  let sendAt: string;

  beforeAll(async () => {
    sent = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['one@example.org'],
      subject: 'first',
      text: 'x',
      tags: { run: tag },
    });
    sendAt = inAnHour();
    const submitted = await run([
      'submit',
      '--from',
      'a@example.com',
      '--to',
      'later@example.org',
      '--subject',
      'second',
      '--text',
      'x',
      '--tag',
      `run=${tag}`,
      '--send-at',
      sendAt,
    ]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const answer = JSON.parse(submitted.stdout) as { id: string; status: string };
    expect(answer.status).toBe('scheduled');
    scheduled = answer.id;
    partial = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['two@example.org', 'three+reject@example.org'],
      subject: 'third',
      text: 'x',
      tags: { run: tag },
    });
    await settled(sent, 'sent');
    await settled(partial, 'partially_sent');
  });

  it('submit --send-at makes a scheduled message, due then', async () => {
    const record = await status(scheduled);
    expect(record.state).toBe('scheduled');
    expect(record.sendAt).toBe(sendAt);
    expect(record.recipients.map((r) => r.state)).toEqual(['queued']);
  });

  it('a bad --send-at is a usage error before any request; one in the past is the API 400', async () => {
    const bad = await run(
      ['submit', '--from', 'a@example.com', '--to', 'b@example.org', '--text', 'x'].concat([
        '--send-at',
        'tomorrow 9am',
      ]),
      { SMTPQ_API: NOWHERE },
    );
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/--send-at tomorrow 9am: must be an RFC 3339 time/);
    const past = await run([
      'submit',
      '--from',
      'a@example.com',
      '--to',
      'b@example.org',
      '--text',
      'x',
      '--send-at',
      '2020-01-01T00:00:00Z',
    ]);
    expect(past.code).toBe(64);
    expect(past.stderr).toMatch(/HTTP 400 .*sendAt: is in the past/);
  });

  it('a table, newest first: state, created, sendAt, recipients counted, subject', async () => {
    const table = await run(['list', '--tag', `run:${tag}`]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual([partial, scheduled, sent]);
    expect(lines[0]).toMatch(
      new RegExp(`^${partial}  partially_sent  \\S+Z  +1 delivered, 1 failed  third$`),
    );
    expect(lines[1]).toMatch(
      new RegExp(`^${scheduled}  scheduled\\s+\\S+Z  sendAt ${sendAt}  1 queued\\s+second$`),
    );
    expect(lines[2]).toMatch(new RegExp(`^${sent}  sent\\s+\\S+Z  +1 delivered\\s+first$`));
    expect(table.stdout).not.toContain('more:');
  });

  it('--state and --tag (key=value too) with --json: the API answer', async () => {
    const json = await run(['list', '--state', 'sent', '--tag', `run=${tag}`, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const page = JSON.parse(json.stdout) as { data: Record<string, unknown>[]; nextCursor: string | null };
    expect(page.nextCursor).toBeNull();
    expect(page.data).toHaveLength(1);
    expect(page.data[0]).toMatchObject({
      id: sent,
      state: 'sent',
      subject: 'first',
      tags: { run: tag },
      recipients: { queued: 0, delivered: 1, deferred: 0, failed: 0, cancelled: 0 },
    });
    expect(
      ids((await run(['list', '--state', 'scheduled', '--tag', `run:${tag}`, '--json'])).stdout),
    ).toEqual([scheduled]);
  });

  it('pages: --limit 1 prints the command for the next page, and that command continues', async () => {
    const seen: string[] = [];
    let args = ['list', '--tag', `run:${tag}`, '--limit', '1'];
    for (let page = 0; page < 10; page++) {
      const out = await run(args);
      expect(out.code, out.stderr).toBe(0);
      const [first, ...rest] = out.stdout.trimEnd().split('\n');
      if (!first!.startsWith('no messages')) seen.push(first!.split(/\s+/)[0]!);
      const more = rest.find((l) => l.startsWith('more: '));
      if (!more) break;
      // The hint repeats the filters: run it as printed (its words need no shell unquoting here).
      expect(more).toContain(`--tag run:${tag}`);
      expect(more).toContain('--limit 1');
      args = more.slice('more: smtpq '.length).split(' ');
    }
    expect(seen).toEqual([partial, scheduled, sent]);

    const first = await run(['list', '--tag', `run:${tag}`, '--limit', '1', '--json']);
    const cursor = (JSON.parse(first.stdout) as { nextCursor: string }).nextCursor;
    expect(cursor).toEqual(expect.any(String));
    const second = await run(['list', '--tag', `run:${tag}`, '--limit', '1', '--cursor', cursor, '--json']);
    expect(ids(second.stdout)).toEqual([scheduled]);
  });

  it('--all follows the cursor to the end: one table, or all data in one JSON array', async () => {
    const all = await run(['list', '--tag', `run:${tag}`, '--limit', '1', '--all', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const answer = JSON.parse(all.stdout) as { data: { id: string }[]; nextCursor: string | null };
    expect(answer.data.map((m) => m.id)).toEqual([partial, scheduled, sent]);
    expect(answer.nextCursor).toBeNull();
    const table = await run(['list', '--tag', `run:${tag}`, '--limit', '1', '--all']);
    expect(
      table.stdout
        .trimEnd()
        .split('\n')
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual([partial, scheduled, sent]);
  });

  it.each([
    [['--state', 'lost'], /--state lost: must be one of queued, scheduled/],
    [['--limit', '0'], /--limit 0: must be a whole number from 1 to 100/],
    [['--limit', '101'], /--limit 101/],
    [['--tag', 'nokey'], /--tag nokey: must be key:value/],
    [['--since', 'yesterday'], /--since yesterday: must be an RFC 3339 time/],
    [['--until', '2026-02-30T00:00:00Z'], /--until 2026-02-30T00:00:00Z/],
    [
      ['--since', '2026-12-02T00:00:00Z', '--until', '2026-12-01T00:00:00Z'],
      /--until must not be before --since/,
    ],
    [['--cursor', ''], /--cursor must not be empty/],
  ])('list %j: a usage error (64) before any request', async (args, says) => {
    const out = await run(['list', ...args], { SMTPQ_API: NOWHERE });
    expect(out.stderr).toMatch(says);
    expect(out.code).toBe(64);
  });

  it('a cursor the API did not hand out: its 400, with the issue, exit 64', async () => {
    const out = await run(['list', '--cursor', 'c1.bm90LWEtY3Vyc29y']);
    expect(out.code).toBe(64);
    expect(out.stderr).toMatch(
      /HTTP 400 bad_request: invalid query parameters \(cursor: is not a cursor this API returned\)/,
    );
  });
});

describe('smtpq cancel', () => {
  it('cancels a scheduled message: prints the new state and the recipients cancelled', async () => {
    const submitted = await run([
      'submit',
      '--from',
      'a@example.com',
      '--to',
      'x@example.org',
      '--cc',
      'y@example.org',
      '--text',
      'x',
      '--send-at',
      inAnHour(),
    ]);
    const { id } = JSON.parse(submitted.stdout) as { id: string };
    const cancelled = await run(['cancel', id]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toBe(
      `${id}  cancelled  (2 recipients cancelled: x@example.org, y@example.org)\n`,
    );
    const record = await status(id);
    expect(record.state).toBe('cancelled');
    expect(record.recipients.map((r) => r.state)).toEqual(['cancelled', 'cancelled']);
  });

  it('--json: the cancelled message as GET /v1/messages/{id} shows it', async () => {
    const id = await submit(dev.apiUrl, {
      from: 'a@example.com',
      to: ['z@example.org'],
      text: 'x',
      sendAt: inAnHour(),
    });
    const out = await run(['cancel', id, '--json']);
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(await status(id));
    expect((JSON.parse(out.stdout) as Status).state).toBe('cancelled');
  });

  it('a sent message: 409, "not cancellable: it is sent", exit 69; an unknown one: not found, 69', async () => {
    const id = await submit(dev.apiUrl, { from: 'a@example.com', to: ['w@example.org'], text: 'x' });
    await settled(id, 'sent');
    const refused = await run(['cancel', id]);
    expect(refused.code).toBe(69);
    expect(refused.stderr).toBe(`smtpq: ${id} not cancellable: it is sent\n`);
    expect(refused.stdout).toBe('');
    expect((await status(id)).state).toBe('sent');

    const unknown = await run(['cancel', '01ARZ3NDEKTSV4RRFFQ69G5FAV']);
    expect(unknown.code).toBe(69);
    expect(unknown.stderr).toMatch(/not found: no message 01ARZ3NDEKTSV4RRFFQ69G5FAV/);
  });
});

describe('smtpq batch with a sendAt column', () => {
  /** Row number → message id, from the progress file. */
  async function progress(file: string): Promise<Map<number, string>> {
    const lines = (await readFile(file, 'utf8')).trim().split('\n').slice(1);
    return new Map(lines.map((l) => JSON.parse(l) as { n: number; id: string }).map((e) => [e.n, e.id]));
  }

  it('schedules the rows that have one (CSV with a template, CSV and JSONL without)', async () => {
    const sendAt = inAnHour();
    const template = path.join(dir, 'template.json');
    await writeFile(
      template,
      JSON.stringify({ from: 'news@example.com', subject: 'Hi {{name}}', text: 'x' }),
    );
    const withTemplate = path.join(dir, 'recipients.csv');
    await writeFile(withTemplate, `email,name,sendAt\nann@example.org,Ann,${sendAt}\nbob@example.org,Bob,\n`);
    const plainCsv = path.join(dir, 'requests.csv');
    await writeFile(plainCsv, `from,to,text,sendAt\na@example.com,c@example.org;d@example.org,x,${sendAt}\n`);
    const jsonl = path.join(dir, 'lines.jsonl');
    await writeFile(
      jsonl,
      `${JSON.stringify({ from: 'a@example.com', to: ['e@example.org'], text: 'x', sendAt })}\n`,
    );

    const first = await run(['batch', withTemplate, '--template', template]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^done: 2 submitted \(1 scheduled\) in /m);
    const rows = await progress(path.join(dir, 'recipients.progress.jsonl'));
    const ann = await status(rows.get(1)!);
    expect([ann.state, ann.sendAt, ann.recipients.map((r) => r.address)]).toEqual([
      'scheduled',
      sendAt,
      ['ann@example.org'],
    ]);
    const bob = await status(rows.get(2)!);
    expect(bob.sendAt).toBeUndefined();
    expect(bob.state).not.toBe('scheduled');

    for (const file of [plainCsv, jsonl]) {
      const out = await run(['batch', file]);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toMatch(/^done: 1 submitted \(1 scheduled\) in /m);
      const id = (await progress(file.replace(/\.(csv|jsonl)$/, '.progress.jsonl'))).get(1)!;
      const record = await status(id);
      expect([record.state, record.sendAt]).toEqual(['scheduled', sendAt]);
    }
  });

  it('a row whose sendAt the API refuses fails on its own, with the reason', async () => {
    const file = path.join(dir, 'bad.csv');
    await writeFile(
      file,
      `from,to,text,sendAt\na@example.com,f@example.org,x,2020-01-01T00:00:00Z\na@example.com,g@example.org,x,\n`,
    );
    const out = await run(['batch', file]);
    expect(out.code).toBe(69);
    expect(out.stdout).toMatch(/^done: 1 submitted in .* 1 failed/m);
    expect(out.stdout).toMatch(/row 1: HTTP 400 .*sendAt: is in the past/);
  });
});

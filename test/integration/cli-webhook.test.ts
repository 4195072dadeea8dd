// `smtpq webhook verify` and `smtpq webhook secret` as a receiver runs them (the real CLI process), on requests
// signed by the same code that signs smtpq's webhooks (signWebhook): genuine ones accepted — headers as
// -H or as flags, the body from a file or stdin, a rotated secret's two signatures — and a tampered body, an
// old timestamp and another secret refused with the reason. Nothing here reaches a network.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SmtpqEvent } from '../../lib/delivery/events.ts';
import { newWebhookSecret, signWebhook } from '../../lib/delivery/webhook-signature.ts';

const CLI = path.resolve(import.meta.dirname, '../../scripts/smtpq.mjs');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-cli-webhook-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function smtpq(args: string[], input?: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { timeout: 30_000, env: { ...process.env, ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin!.end(input ?? '');
  });
}

const event: SmtpqEvent = {
  id: 'evt_5f0c1d2e3f405162738495a6b7c8d9e0',
  type: 'recipient.failed',
  timestamp: '2026-12-03T10:00:01.412Z',
  data: {
    messageId: '01KBQ7N3R5X2W8Y9Z0A1B2C3D4',
    sequence: 3,
    state: 'partially_sent',
    tags: { order: '1234' },
    attempt: 1,
    recipient: 'ben+reject@example.org',
    reply: { code: 550, enhancedCode: '5.1.1', text: '5.1.1 Mailbox unavailable' },
  },
};

const headerArgs = (headers: Record<string, string>) =>
  Object.entries(headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);

describe('smtpq webhook verify', () => {
  const secret = newWebhookSecret();

  it('accepts a genuine request: headers as -H, the body from a file', async () => {
    const signed = signWebhook(secret, event);
    const body = path.join(dir, 'body.json');
    await writeFile(body, signed.body);
    const run = await smtpq([
      'webhook',
      'verify',
      '--secret',
      secret,
      '--body-file',
      body,
      ...headerArgs(signed.headers),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('valid: recipient.failed 01KBQ7N3R5X2W8Y9Z0A1B2C3D4\n');
  });

  it('accepts one with --id/--timestamp/--signature, the body on stdin, the secret from $WEBHOOK_SECRET; --json', async () => {
    const signed = signWebhook(secret, event);
    const run = await smtpq(
      [
        'webhook',
        'verify',
        '--id',
        signed.headers['webhook-id'],
        '--timestamp',
        signed.headers['webhook-timestamp'],
        '--signature',
        signed.headers['webhook-signature'],
        '--json',
      ],
      signed.body,
      { WEBHOOK_SECRET: secret },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      type: event.type,
      timestamp: event.timestamp,
      data: event.data,
    });
  });

  it('accepts the signature of either secret while one is rotated (two signatures in the header)', async () => {
    const signed = signWebhook(secret, event);
    const other = signWebhook(
      newWebhookSecret(),
      event,
      new Date(Number(signed.headers['webhook-timestamp']) * 1000),
    );
    const headers = {
      ...signed.headers,
      'webhook-signature': `${other.headers['webhook-signature']} ${signed.headers['webhook-signature']}`,
    };
    const run = await smtpq(['webhook', 'verify', '--secret', secret, ...headerArgs(headers)], signed.body);
    expect(run.code, run.stderr).toBe(0);
  });

  it('refuses a tampered body: bad signature, exit 69', async () => {
    const signed = signWebhook(secret, event);
    const tampered = signed.body.replace('recipient.failed', 'recipient.delivered');
    const run = await smtpq(
      ['webhook', 'verify', '--secret', secret, ...headerArgs(signed.headers)],
      tampered,
    );
    expect(run.code).toBe(69);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^smtpq: invalid webhook: bad signature/);
  });

  it('refuses another secret: bad signature', async () => {
    const signed = signWebhook(newWebhookSecret(), event);
    const run = await smtpq(
      ['webhook', 'verify', '--secret', secret, ...headerArgs(signed.headers)],
      signed.body,
    );
    expect(run.code).toBe(69);
    expect(run.stderr).toMatch(/bad signature/);
  });

  it('refuses a timestamp more than 5 minutes old, even with a good signature', async () => {
    const signedAt = new Date(Date.now() - 10 * 60_000);
    const signed = signWebhook(secret, event, signedAt);
    const run = await smtpq(
      ['webhook', 'verify', '--secret', secret, ...headerArgs(signed.headers)],
      signed.body,
    );
    expect(run.code).toBe(69);
    expect(run.stderr).toMatch(/invalid webhook: timestamp too old: signed at \S+Z, 6\d\d s ago/);
  });

  it.each([
    { args: ['webhook', 'verify'], says: /--secret whsec_… \(or \$WEBHOOK_SECRET\) is required/ },
    { args: ['webhook', 'verify', '--secret', 'whsec_!!'], says: /--secret: not a signing secret/ },
    {
      args: ['webhook', 'verify', '--secret', 'SECRET', '-H', 'webhook-id: x', '-H', 'webhook-timestamp: 1'],
      says: /missing webhook-signature/,
    },
    {
      args: [
        'webhook',
        'verify',
        '--secret',
        'SECRET',
        '--id',
        'x',
        '--timestamp',
        'now',
        '--signature',
        'v1,x',
      ],
      says: /webhook-timestamp now: must be Unix time in seconds/,
    },
    { args: ['webhook', 'verify', '--secret', 'SECRET', '-H', 'no colon'], says: /expected "name: value"/ },
    {
      args: [
        'webhook',
        'verify',
        '--secret',
        'SECRET',
        '--id',
        'x',
        '--timestamp',
        '1',
        '--signature',
        'v1,x',
        '--body-file',
        '/nonexistent/body',
      ],
      says: /ENOENT/,
    },
  ])('$args: a usage error (64)', async ({ args, says }) => {
    const run = await smtpq(args.map((a) => (a === 'SECRET' ? secret : a)));
    expect(run.stderr).toMatch(says);
    expect(run.code).toBe(64);
  });
});

describe('smtpq webhook secret', () => {
  it('prints a new secret each time, one that signs and verifies', async () => {
    const [a, b] = await Promise.all([smtpq(['webhook', 'secret']), smtpq(['webhook', 'secret'])]);
    expect(a.stdout).toMatch(/^whsec_[A-Za-z0-9+/]{43}=\n$/);
    expect(a.stdout).not.toBe(b.stdout);
    const secret = a.stdout.trim();
    const signed = signWebhook(secret, event);
    const run = await smtpq(
      ['webhook', 'verify', '--secret', secret, ...headerArgs(signed.headers)],
      signed.body,
    );
    expect(run.code, run.stderr).toBe(0);
  });
});

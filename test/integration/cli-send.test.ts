// `smtpq send` as a user runs it: the real CLI process (node scripts/smtpq.mjs send …) against the in-process
// smtp-server fixture. Asserts the exit code, what the server received (parsed with mailparser) and the output.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  startTestSmtpServer,
  TEST_USER,
  type TestSmtpServer,
  type TestSmtpServerOptions,
} from '../support/smtp-server.ts';

const CLI = path.resolve(import.meta.dirname, '../../scripts/smtpq.mjs');

let dir: string;
let caFile: string;
let server: TestSmtpServer | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-cli-send-'));
  caFile = path.join(dir, 'ca.pem');
});
afterEach(async () => {
  await server?.close();
  server = undefined;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(options: TestSmtpServerOptions = {}): Promise<TestSmtpServer> {
  server = await startTestSmtpServer(options);
  await writeFile(caFile, server.caPem);
  return server;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process (the smtp-server fixture lives in it). */
function smtpq(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'send', ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const target = (s: TestSmtpServer) => ['--server', `smtp://127.0.0.1:${s.port}`, '--ca', caFile];
const basic = [
  '--from',
  'Alice <alice@example.test>',
  '--to',
  'bob@example.test',
  '--subject',
  'Hi',
  '--text',
  'Hello',
];

// Each case starts one or two Node processes (tsx compiles the CLI on load): slow on a loaded machine.
const SLOW = { timeout: 90_000 };

describe('smtpq send delivers', SLOW, () => {
  it('a full message over STARTTLS: recipients, Bcc kept out of the headers, html, attachment bytes equal', async () => {
    const s = await start();
    const attachment = randomBytes(50_000);
    const attachmentFile = path.join(dir, 'report.bin');
    const htmlFile = path.join(dir, 'body.html');
    await writeFile(attachmentFile, attachment);
    await writeFile(htmlFile, '<p>Hello <b>Bob</b> — ünïcode</p>');

    const run = await smtpq([
      ...target(s),
      '--tls',
      'starttls',
      '--from',
      'Alice <alice@example.test>',
      '--to',
      'bob@example.test',
      '--to',
      'Carol <carol@example.test>',
      '--cc',
      'dave@example.test',
      '--bcc',
      'eve@example.test',
      '--subject',
      'Quarterly report — é',
      '--text',
      'See attached.\n.\nEnd.',
      '--html-file',
      htmlFile,
      '--attach',
      attachmentFile,
    ]);

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(s.messages).toHaveLength(1);
    const [message] = s.messages;
    expect(message!.secure).toBe(true);
    expect(message!.mailFrom).toBe('alice@example.test');
    expect(message!.rcptTo.sort()).toEqual(
      ['bob@example.test', 'carol@example.test', 'dave@example.test', 'eve@example.test'].sort(),
    );
    const parsed = await simpleParser(message!.raw);
    expect(parsed.subject).toBe('Quarterly report — é');
    expect(parsed.text?.trim()).toBe('See attached.\n.\nEnd.');
    expect(parsed.html).toContain('<b>Bob</b> — ünïcode');
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(message!.raw.toString('latin1')).not.toContain('eve@example.test');
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]!.filename).toBe('report.bin');
    expect(Buffer.compare(parsed.attachments[0]!.content, attachment)).toBe(0);

    // The transcript, then one line per recipient.
    expect(run.stdout).toMatch(/ C: STARTTLS\n/);
    expect(run.stdout).toMatch(/ S: 220 /);
    for (const address of ['bob', 'carol', 'dave', 'eve']) {
      expect(run.stdout).toContain(`${address}@example.test: accepted (250`);
    }
  });

  it('--json prints one JSON object with every outcome and the transcript', async () => {
    const s = await start();
    const run = await smtpq([...target(s), ...basic, '--json']);

    expect(run.code).toBe(0);
    const output = JSON.parse(run.stdout);
    expect(output).toMatchObject({ ok: true, exitCode: 0, attempts: 1 });
    expect(output.recipients).toEqual([
      { address: 'bob@example.test', status: 'accepted', reply: expect.objectContaining({ code: 250 }) },
    ]);
    expect(
      output.transcript.some((e: { kind: string; text: string }) => e.kind === 'C' && e.text === 'STARTTLS'),
    ).toBe(true);
    expect(s.messages).toHaveLength(1);
  });

  it('implicit TLS (smtps://)', async () => {
    const s = await start({ tls: 'implicit' });
    const run = await smtpq(['--server', `smtps://127.0.0.1:${s.port}`, '--ca', caFile, ...basic]);
    expect(run.code).toBe(0);
    expect(s.messages[0]!.secure).toBe(true);
  });

  it('AUTH with the password from an environment variable, never printed', async () => {
    const s = await start({ auth: ['PLAIN'] });
    const run = await smtpq(
      [...target(s), '--user', TEST_USER.user, '--password-env', 'SMTPQ_TEST_PASSWORD', ...basic],
      { SMTPQ_TEST_PASSWORD: TEST_USER.pass },
    );

    expect(run.code).toBe(0);
    expect(s.logins).toEqual([{ method: 'PLAIN', user: TEST_USER.user }]);
    expect(run.stdout).toContain('<redacted>');
    expect(run.stdout + run.stderr).not.toContain(TEST_USER.pass);
    expect(run.stdout + run.stderr).not.toContain(
      Buffer.from(`\0${TEST_USER.user}\0${TEST_USER.pass}`).toString('base64'),
    );
  });
});

describe('smtpq send exit codes', SLOW, () => {
  const twoRecipients = [
    '--from',
    'alice@example.test',
    '--to',
    'bob@example.test',
    '--to',
    'carol@example.test',
    '--subject',
    's',
    '--text',
    't',
  ];

  it('69 when every recipient is refused permanently', async () => {
    const s = await start({ hooks: { rcpt: () => ({ code: 550, message: '5.1.1 no such user' }) } });
    const run = await smtpq([...target(s), ...twoRecipients]);
    expect(run.code).toBe(69);
    expect(run.stdout).toContain('bob@example.test: failed (550');
    expect(s.messages).toHaveLength(0);
  });

  it('75 when any recipient is deferred, even beside a permanent failure and an acceptance', async () => {
    const s = await start({
      hooks: {
        rcpt: ({ address }) =>
          address === 'carol@example.test' ? { code: 450, message: '4.2.1 mailbox busy' } : undefined,
      },
    });
    const run = await smtpq([...target(s), ...twoRecipients, '--to', 'dan@example.test', '--json']);
    expect(run.code).toBe(75);
    const output = JSON.parse(run.stdout);
    expect(output.recipients.map((r: { status: string }) => r.status)).toEqual([
      'accepted',
      'deferred',
      'accepted',
    ]);
    expect(s.messages[0]!.rcptTo).toEqual(['bob@example.test', 'dan@example.test']);
  });

  it('--retries 1 sends a deferred recipient again, and only that one', async () => {
    const s = await start({
      hooks: {
        rcpt: ({ address, countForAddress }) =>
          address === 'carol@example.test' && countForAddress === 1
            ? { code: 451, message: '4.3.0 try again' }
            : undefined,
      },
    });
    const run = await smtpq([...target(s), ...twoRecipients, '--retries', '1', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).attempts).toBe(2);
    expect(s.messages.map((m) => m.rcptTo)).toEqual([['bob@example.test'], ['carol@example.test']]);
  });

  it('75 when the server is unreachable', async () => {
    const s = await start();
    const port = s.port;
    await s.close();
    server = undefined;
    const run = await smtpq(['--server', `smtp://127.0.0.1:${port}`, ...basic]);
    expect(run.code).toBe(75);
    expect(run.stdout).toContain('SMTP_CONNECTION');
  });

  it('TLS required but not offered: nothing sent (69); --no-require-tls sends in plaintext (0)', async () => {
    const s = await start({ tls: 'none' });
    const refused = await smtpq([...target(s), ...basic]);
    expect(refused.code).toBe(69);
    expect(refused.stdout).toContain('SMTP_TLS_REQUIRED');
    expect(s.messages).toHaveLength(0);

    const allowed = await smtpq([...target(s), ...basic, '--no-require-tls']);
    expect(allowed.code).toBe(0);
    expect(s.messages).toHaveLength(1);
    expect(s.messages[0]!.secure).toBe(false);
  });

  it.each([
    ['no body flag', ['--from', 'a@example.test', '--to', 'b@example.test', '--subject', 's']],
    ['both --text and --text-file', [...basic, '--text-file', '/etc/hostname']],
    ['a recipient with CR/LF', [...basic, '--to', 'x@example.test\r\nRCPT TO:<evil@example.test>']],
    ['an unknown flag', [...basic, '--carbon-copy', 'x@example.test']],
    ['a missing attachment', [...basic, '--attach', '/nonexistent/file.pdf']],
    [
      'a password variable that is not set',
      [...basic, '--user', 'u', '--password-env', 'SMTPQ_UNSET_VARIABLE'],
    ],
    ['--retries that is not a number', [...basic, '--retries', 'many']],
  ])('64 for %s, and nothing reaches the server', async (_what, args) => {
    const s = await start();
    const run = await smtpq([...target(s), ...args]);
    expect(run.code).toBe(64);
    expect(run.stderr).not.toBe('');
    expect(s.connections()).toBe(0);
  });

  it('64 with --json: the problems come as one JSON object', async () => {
    const s = await start();
    const run = await smtpq([...target(s), ...basic, '--to', 'not an address', '--json']);
    expect(run.code).toBe(64);
    const output = JSON.parse(run.stdout);
    expect(output).toMatchObject({ ok: false, exitCode: 64 });
    expect(output.error.issues).toEqual([expect.objectContaining({ path: expect.stringMatching(/^to/) })]);
    expect(s.connections()).toBe(0);
  });

  it('64 for a server URL that is not smtp://', async () => {
    const run = await smtpq(['--server', 'http://127.0.0.1:25', ...basic]);
    expect(run.code).toBe(64);
  });
});

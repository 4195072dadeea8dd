// What the CLI prints of what a server sent: control characters escaped (a relay cannot drive the terminal),
// and `smtpq send --deadline` bounding a session against a server that answers a byte at a time.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { safe, safeJson, safeLines } from '../../scripts/cli/terminal.ts';
import {
  expectLine,
  type RawSmtpServer,
  sendSplit,
  stall,
  startRawSmtpServer,
  write,
} from '../support/raw-smtp-server.ts';

const CLI = path.resolve(import.meta.dirname, '../../scripts/smtpq.mjs');
let server: RawSmtpServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

function send(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'send', ...args], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}
const message = [
  '--from',
  'a@example.test',
  '--to',
  'b@example.test',
  '--subject',
  'Hi',
  '--text',
  'x',
  '--tls',
  'none',
];

describe('terminal safety', () => {
  it('escapes C0 (but tab), DEL, C1 and a bare CR; keeps the data in JSON', () => {
    expect(safe('a\x1b]0;pwned\x07b\tc\rd\x7fe\x9bf')).toBe(
      'a\\u001b]0;pwned\\u0007b\tc\\u000dd\\u007fe\\u009bf',
    );
    expect(safeLines('S: 250 ok\r\nS: 550 \x1b[2Jgone\n')).toBe('S: 250 ok\nS: 550 \\u001b[2Jgone\n');
    expect(JSON.parse(safeJson({ reply: '\x1b[31m\x9b' }))).toEqual({ reply: '\x1b[31m\x9b' });
    expect(safeJson({ reply: '\x1b\x9b' })).not.toMatch(/[\x1b\x9b]/);
  });

  it('smtpq send prints a hostile reply with its escape sequences escaped, in the transcript and the outcome', async () => {
    server = await startRawSmtpServer({
      script: [
        write('220 evil.test ESMTP\r\n'),
        expectLine(/^EHLO /),
        write('250 evil.test\r\n'),
        expectLine(/^MAIL FROM:/),
        write('550 5.7.1 \x1b]0;owned\x07\x1b[2J denied\r\n'),
        expectLine(/^(RSET|QUIT)/),
        write('221 bye\r\n'),
        stall(),
      ],
    });
    const run = await send(['--server', `smtp://127.0.0.1:${server.port}`, ...message]);
    expect(run.stdout).toContain('\\u001b]0;owned\\u0007\\u001b[2J denied');
    expect(run.stdout + run.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  });
});

describe('smtpq send --deadline', () => {
  it('ends the session at its deadline although the server keeps trickling bytes', async () => {
    // One byte every 200 ms: the greeting alone takes 5 s, each byte inside the 10 s greeting timeout.
    server = await startRawSmtpServer({
      script: [sendSplit('220 slow.test ESMTP slowly, byte by byte\r\n', 1), stall()],
      chunkPauseMs: 200,
    });
    const run = await send([
      '--server',
      `smtp://127.0.0.1:${server.port}`,
      ...message,
      '--deadline',
      '1',
      '--json',
    ]);
    expect(run.code).toBe(75);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: 'SMTP_TIMEOUT' } });
  });

  it('refuses a deadline that is not a positive number of seconds', async () => {
    expect((await send(['--server', 'smtp://127.0.0.1:1', ...message, '--deadline', '0'])).code).toBe(64);
  });
});

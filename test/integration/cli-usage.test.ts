// Commander's usage errors exit 64 (EX_USAGE) in every sub-command, as the real CLI process (node
// scripts/smtpq.mjs) reports them; --help and --version still exit 0. Nothing here reaches a network.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = path.resolve(import.meta.dirname, '../../scripts/smtpq.mjs');

interface Run {
  code: number;
  stderr: string;
}

function smtpq(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (error, _stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stderr });
    });
  });
}

describe('smtpq usage errors', () => {
  it.each([
    { args: ['batch'], says: /missing required argument 'file'/ },
    { args: ['submit', '--bogus'], says: /unknown option '--bogus'/ },
    { args: ['status'], says: /missing required argument 'id'/ },
    { args: ['transcript'], says: /missing required argument/ },
    { args: ['tail', '--bogus'], says: /unknown option '--bogus'/ },
    { args: ['dev', '--bogus'], says: /unknown option '--bogus'/ },
    { args: ['send', '--to', 'bob@example.test'], says: /required option '--server <url>' not specified/ },
    { args: ['no-such-command'], says: /unknown command 'no-such-command'/ },
    { args: ['list', '--limit', '0'], says: /--limit 0: must be a whole number from 1 to 100/ },
    { args: ['list', '--state', 'lost'], says: /--state lost: must be one of/ },
    { args: ['list', '--tag', 'nokey'], says: /--tag nokey: must be key:value/ },
    { args: ['list', '--since', 'yesterday'], says: /--since yesterday: must be an RFC 3339 time/ },
    { args: ['list', '--api', 'not a url'], says: /--api is not a URL/ },
    { args: ['cancel'], says: /missing required argument 'id'/ },
    { args: ['events'], says: /events needs --follow/ },
    {
      args: ['events', '--follow', '--type', 'message.lost'],
      says: /--type message.lost: not an event type/,
    },
    { args: ['events', '--follow', '--message', 'nope'], says: /--message nope: not a message id/ },
    { args: ['webhook', 'verify'], says: /--secret whsec_… \(or \$WEBHOOK_SECRET\) is required/ },
    { args: ['webhook', 'bogus'], says: /unknown command 'bogus'/ },
    {
      args: ['submit', '--from', 'a@example.com', '--to', 'b@example.com', '--send-at', 'tomorrow'],
      says: /--send-at tomorrow: must be an RFC 3339 time with an offset/,
    },
  ])('smtpq $args exits 64 and names the problem', async ({ args, says }) => {
    const run = await smtpq(args);
    expect(run.stderr).toMatch(says);
    expect(run.code).toBe(64);
  });

  it.each([
    { args: ['--help'] },
    { args: ['--version'] },
    { args: ['status', '--help'] },
    { args: ['help', 'batch'] },
    { args: ['list', '--help'] },
    { args: ['cancel', '--help'] },
    { args: ['events', '--help'] },
    { args: ['webhook', 'verify', '--help'] },
    { args: ['webhook', 'secret'] },
  ])('smtpq $args exits 0', async ({ args }) => {
    expect((await smtpq(args)).code).toBe(0);
  });
});

// `smtpq submit`: one message through the HTTP API (npm run dev locally, or the deployed, SigV4-signed API).
// Built from flags like `smtpq send`, or taken whole from --json FILE (- for stdin).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ApiClient, ApiError } from './api-client.ts';
import { appendHistory } from './history.ts';
import { EXIT } from './send-report.ts';
import { safe } from './terminal.ts';
import { isRfc3339, RFC3339_EXAMPLE } from './time.ts';

interface SubmitOptions {
  api?: string;
  json?: string;
  from?: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string[];
  subject?: string;
  text?: string;
  textFile?: string;
  html?: string;
  htmlFile?: string;
  attach: string[];
  header: string[];
  tag: string[];
  idempotencyKey?: string;
  sendAt?: string;
  unsubscribe?: boolean;
  unsubscribeMailto?: string;
  dsnNotify?: string;
  dsnRet?: string;
  dsnEnvid?: string;
  requireTls?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('submit')
    .description('submit one message through the smtpq HTTP API')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .option('--json <file>', 'the whole send request as JSON (- for stdin); other flags override its fields')
    .option('--from <address>', 'sender, e.g. "Alice <alice@example.com>"')
    .option('--to <address>', 'recipient (repeatable)', collect, [])
    .option('--cc <address>', 'copy recipient (repeatable)', collect, [])
    .option('--bcc <address>', 'blind copy recipient (repeatable)', collect, [])
    .option('--reply-to <address>', 'Reply-To address (repeatable)', collect, [])
    .option('--subject <text>', 'subject')
    .option('--text <text>', 'plain-text body')
    .option('--text-file <file>', 'plain-text body from a file')
    .option('--html <html>', 'HTML body')
    .option('--html-file <file>', 'HTML body from a file')
    .option('--attach <file>', 'attach a file (repeatable)', collect, [])
    .option('--header <"Name: value">', 'extra header (repeatable)', collect, [])
    .option('--tag <key=value>', 'tag stored with the status (repeatable)', collect, [])
    .option('--idempotency-key <key>', 'the same key within 24 h returns the same id and sends once')
    .option(
      '--send-at <time>',
      `schedule it: RFC 3339 with an offset, at most 30 days ahead (e.g. ${RFC3339_EXAMPLE}); prints "status":"scheduled"`,
    )
    .option('--unsubscribe', 'one-click unsubscribe links (RFC 8058), one per recipient')
    .option('--unsubscribe-mailto <address>', 'with --unsubscribe: a mailto: link to this address too')
    .option('--dsn-notify <list>', 'delivery status notifications: never, or some of success,failure,delay')
    .option(
      '--dsn-ret <full|hdrs>',
      'a failure report carries the whole message (full) or its headers (hdrs)',
    )
    .option('--dsn-envid <id>', 'your id for this message, echoed in the reports (printable ASCII, ≤ 100)')
    .option('--require-tls', 'REQUIRETLS (RFC 8689): TLS all the way, or not sent at all')
    .action(async (options: SubmitOptions) => {
      try {
        const request = await buildRequest(options);
        const client = new ApiClient({ api: options.api });
        const result = await client.submit(request, options.idempotencyKey);
        await appendHistory([result.id]);
        console.log(JSON.stringify(result));
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

/**
 * Prints a failure for a person; returns the exit code, the same sysexits codes as `smtpq send`: 64 bad input
 * (a 400 included: nothing was queued), 75 worth retrying (network, 429, 5xx), 69 anything else (e.g. 404).
 */
export function reportError(error: unknown): number {
  if (error instanceof ApiError) {
    console.error(`smtpq: ${safe(error.describe())}`);
    if (error.usage) return EXIT.usage;
    if (error.transient) return EXIT.tempfail;
    return error.status === 400 || error.status === 413 || error.status === 415 || error.status === 422
      ? EXIT.usage
      : EXIT.unavailable;
  }
  if (error instanceof UsageError) {
    console.error(`smtpq: ${error.message}`);
    return EXIT.usage;
  }
  throw error;
}

export class UsageError extends Error {
  readonly code = 'USAGE';
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  const text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${file} must hold a JSON object (a send request)`);
  }
  return value as Record<string, unknown>;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function keyValues(list: string[], separator: string, flag: string): Record<string, string> | undefined {
  if (list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const at = item.indexOf(separator);
    if (at <= 0) throw new UsageError(`${flag} "${item}" must look like name${separator}value`);
    out[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return out;
}

async function buildRequest(options: SubmitOptions): Promise<Record<string, unknown>> {
  const request: Record<string, unknown> = options.json ? await readJson(options.json) : {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) request[key] = value;
  };
  set('from', options.from);
  set('to', options.to);
  set('cc', options.cc);
  set('bcc', options.bcc);
  set('replyTo', options.replyTo);
  set('subject', options.subject);
  if (options.sendAt !== undefined && !isRfc3339(options.sendAt))
    throw new UsageError(
      `--send-at ${options.sendAt}: must be an RFC 3339 time with an offset, e.g. ${RFC3339_EXAMPLE}`,
    );
  set('sendAt', options.sendAt);
  set('text', options.textFile ? await readFile(options.textFile, 'utf8') : options.text);
  set('html', options.htmlFile ? await readFile(options.htmlFile, 'utf8') : options.html);
  set('headers', keyValues(options.header, ':', '--header'));
  set('tags', keyValues(options.tag, '=', '--tag'));
  if (options.attach.length > 0) {
    request.attachments = await Promise.all(
      options.attach.map(async (file) => ({
        filename: path.basename(file),
        content: (await readFile(file)).toString('base64'),
      })),
    );
  }
  if (options.unsubscribeMailto !== undefined && !options.unsubscribe)
    throw new UsageError('--unsubscribe-mailto needs --unsubscribe');
  if (options.unsubscribe)
    request.unsubscribe = options.unsubscribeMailto ? { mailto: options.unsubscribeMailto } : true;
  if (options.dsnNotify !== undefined || options.dsnRet !== undefined || options.dsnEnvid !== undefined) {
    const notify = options.dsnNotify?.split(',').map((value) => value.trim().toLowerCase());
    if (notify?.some((value) => !['never', 'success', 'failure', 'delay'].includes(value)))
      throw new UsageError(
        '--dsn-notify must be never, or a comma-separated list of success, failure, delay',
      );
    if (options.dsnRet !== undefined && options.dsnRet !== 'full' && options.dsnRet !== 'hdrs')
      throw new UsageError('--dsn-ret must be full or hdrs');
    request.dsn = {
      ...(notify ? { notify } : {}),
      ...(options.dsnRet ? { ret: options.dsnRet } : {}),
      ...(options.dsnEnvid !== undefined ? { envid: options.dsnEnvid } : {}),
    };
  }
  if (options.requireTls) request.requireTls = true;
  if (request.from === undefined) throw new UsageError('--from (or "from" in --json) is required');
  return request;
}

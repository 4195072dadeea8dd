// `smtpq send` flags → SMTP client options and compose input. Every problem is a UsageError (exit 64),
// found before any connection is made.
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ComposeInput } from '../../lib/message/index.ts';
import type { SmtpClientOptions, TlsMode } from '../../lib/smtp/index.ts';

export interface SendFlags {
  server: string;
  tls?: string;
  requireTls: boolean;
  ca?: string;
  user?: string;
  passwordEnv?: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject: string;
  text?: string;
  textFile?: string;
  htmlFile?: string;
  attach: string[];
  json?: boolean;
  retries: string;
  deadline: string;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface SendPlan {
  client: SmtpClientOptions;
  message: ComposeInput;
  /** Attempts in all: --retries + 1. */
  attempts: number;
  /** Seconds the whole session may take (--deadline): no wait, attempt or back-off runs past it. */
  deadlineSeconds: number;
}

const TLS_MODES: readonly TlsMode[] = ['starttls', 'implicit', 'none'];
const MAX_RETRIES = 10;

export async function planSend(flags: SendFlags, env: NodeJS.ProcessEnv = process.env): Promise<SendPlan> {
  const { host, port, scheme } = parseServer(flags.server);
  // smtps:// means TLS from the first byte; --tls decides when given.
  const tls = (flags.tls ?? (scheme === 'smtps' ? 'implicit' : 'starttls')) as TlsMode;
  if (!TLS_MODES.includes(tls))
    throw new UsageError(`--tls must be one of ${TLS_MODES.join(', ')}, not "${tls}"`);
  if (!flags.requireTls && tls !== 'starttls')
    throw new UsageError('--no-require-tls only applies to --tls starttls');

  const client: SmtpClientOptions = {
    host,
    ...(port === undefined ? {} : { port }),
    tls,
    ...(tls === 'starttls' ? { requireTLS: flags.requireTls } : {}),
  };
  if (flags.ca) client.ca = await readInput(flags.ca, '--ca');
  if (flags.user !== undefined || flags.passwordEnv !== undefined) {
    if (!flags.user || !flags.passwordEnv) throw new UsageError('--user and --password-env go together');
    const pass = env[flags.passwordEnv];
    if (pass === undefined || pass === '') {
      throw new UsageError(`--password-env ${flags.passwordEnv}: that environment variable is not set`);
    }
    client.auth = { user: flags.user, pass };
  }

  if ((flags.text === undefined) === (flags.textFile === undefined)) {
    throw new UsageError('give exactly one of --text and --text-file');
  }
  const text = flags.text ?? (await readInput(flags.textFile!, '--text-file'));
  const html = flags.htmlFile === undefined ? undefined : await readInput(flags.htmlFile, '--html-file');
  if (flags.to.length + flags.cc.length + flags.bcc.length === 0)
    throw new UsageError('give at least one --to');
  // Attachments stream from their files (opened anew for each attempt); only their presence is checked here.
  const attachments = await Promise.all(
    flags.attach.map(async (file) => {
      await checkFile(file, '--attach');
      return { filename: path.basename(file), content: { path: file } };
    }),
  );

  if (!/^\d+$/.test(flags.retries) || Number(flags.retries) > MAX_RETRIES) {
    throw new UsageError(`--retries must be a whole number from 0 to ${MAX_RETRIES}`);
  }
  return {
    client,
    message: {
      from: flags.from,
      to: flags.to,
      cc: flags.cc,
      bcc: flags.bcc,
      subject: flags.subject,
      text,
      ...(html === undefined ? {} : { html }),
      attachments,
    },
    attempts: Number(flags.retries) + 1,
    deadlineSeconds: deadlineOf(flags.deadline),
  };
}

function deadlineOf(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400)
    throw new UsageError(`--deadline must be a number of seconds from 0 to 86400, got "${value}"`);
  return seconds;
}

function parseServer(server: string): { host: string; port?: number; scheme: 'smtp' | 'smtps' } {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new UsageError(`--server must look like smtp://HOST:PORT, not "${server}"`);
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'smtp' && scheme !== 'smtps')
    throw new UsageError('--server must start with smtp:// or smtps://');
  if (!url.hostname || url.username || url.password || (url.pathname !== '' && url.pathname !== '/')) {
    throw new UsageError('--server takes only a host and a port (credentials go in --user/--password-env)');
  }
  // IPv6 literals come bracketed in a URL; sockets want them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, scheme, ...(url.port ? { port: Number(url.port) } : {}) };
}

const fileProblem = (file: string, flag: string, error: unknown) =>
  new UsageError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);

async function readInput(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw fileProblem(file, flag, error);
  }
}

async function checkFile(file: string, flag: string): Promise<void> {
  let isFile: boolean;
  try {
    await access(file, constants.R_OK);
    isFile = (await stat(file)).isFile();
  } catch (error) {
    throw fileProblem(file, flag, error);
  }
  if (!isFile) throw new UsageError(`${flag} ${file}: not a regular file`);
}

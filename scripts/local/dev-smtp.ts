// The embedded dev SMTP server of `npm run dev`: the worker's default relay. It speaks STARTTLS with the local
// CA's certificate, requires AUTH (only after STARTTLS) with the dev credentials from the local secret, and keeps
// every message it accepts on disk (<dir>/<id>.eml + <id>.json), so captured mail survives a restart.
//
// Test addresses: a local part containing "+reject" gets 550, one containing "+defer" gets 451 — handy to watch
// a failure or a retry in the dev inbox.
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';

/** What the dev server knows about one message it accepted (the .json beside the .eml). */
export interface CapturedMail {
  /** Sortable by arrival: `<epoch ms>-<random>`. */
  id: string;
  receivedAt: string;
  envelope: { from: string; to: string[] };
  size: number;
  /** The Message-ID header, as sent (with angle brackets), when there was one. */
  messageId?: string;
  subject?: string;
  tls: boolean;
  authUser?: string;
  remoteAddress: string;
}

export interface DevSmtpOptions {
  /** Directory of the captured mail. */
  dir: string;
  host: string;
  /** 0 for any free port. */
  port: number;
  keyPem: string;
  certPem: string;
  credentials: { username: string; password: string };
  /** Largest message accepted (advertised with SIZE). Default 25 MiB. */
  maxBytes?: number;
}

export interface DevSmtpServer {
  port: number;
  store: MailStore;
  stop(): Promise<void>;
}

/** The captured mail on disk, indexed in memory; emits 'mail' (CapturedMail) for each new message. */
export class MailStore extends EventEmitter<{ mail: [CapturedMail] }> {
  readonly #dir: string;
  readonly #mails = new Map<string, CapturedMail>();
  /** Message-ID (without brackets) → the captured copies, so the inbox joins thousands of records cheaply. */
  readonly #byMessageId = new Map<string, CapturedMail[]>();

  constructor(dir: string) {
    super();
    this.#dir = dir;
  }

  /** Loads what earlier runs captured. Unreadable metadata is reported, not silently skipped. */
  async load(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    for (const name of await readdir(this.#dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        this.#index(JSON.parse(await readFile(path.join(this.#dir, name), 'utf8')) as CapturedMail);
      } catch (error) {
        console.error(`[dev-smtp] cannot read ${name}: ${(error as Error).message}`);
      }
    }
  }

  /** Newest first. */
  list(): CapturedMail[] {
    return [...this.#mails.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  }

  get(id: string): CapturedMail | undefined {
    return this.#mails.get(id);
  }

  /** Every captured message carrying this Message-ID (one per delivery attempt that got through). */
  byMessageId(messageId: string): CapturedMail[] {
    return [...(this.#byMessageId.get(bareMessageId(messageId)) ?? [])].sort((a, b) =>
      a.id < b.id ? 1 : -1,
    );
  }

  #index(mail: CapturedMail): void {
    this.#mails.set(mail.id, mail);
    if (mail.messageId === undefined) return;
    const key = bareMessageId(mail.messageId);
    this.#byMessageId.set(key, [...(this.#byMessageId.get(key) ?? []), mail]);
  }

  emlPath(id: string): string {
    if (!/^[0-9]+-[0-9a-f]{8}$/.test(id)) throw new Error(`not a captured mail id: ${id}`);
    return path.join(this.#dir, `${id}.eml`);
  }

  async readEml(id: string): Promise<Buffer | undefined> {
    if (!this.#mails.has(id)) return undefined;
    return readFile(this.emlPath(id));
  }

  /** Writes the message body from `stream`; the index entry appears only once both files are complete. */
  async save(
    stream: NodeJS.ReadableStream,
    meta: Omit<CapturedMail, 'id' | 'size' | 'messageId' | 'subject'>,
    /** Checked once the body is complete; a message it refuses is deleted and the promise rejects. */
    refuse: () => string | undefined = () => undefined,
  ): Promise<CapturedMail> {
    const id = `${Date.now()}-${randomUUID().slice(0, 8)}`;
    const eml = this.emlPath(id);
    const partial = `${eml}.partial`;
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    try {
      await pipeline(stream, createWriteStream(partial));
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
    const refusal = refuse();
    if (refusal) {
      await rm(partial, { force: true });
      throw new RefusedMailError(refusal);
    }
    await rename(partial, eml);
    const parsed = await simpleParser(await readFile(eml), { skipHtmlToText: true, skipTextToHtml: true });
    const mail: CapturedMail = {
      id,
      ...meta,
      size,
      ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
      ...(parsed.subject !== undefined ? { subject: parsed.subject } : {}),
    };
    await writeFile(path.join(this.#dir, `${id}.json`), `${JSON.stringify(mail, null, 2)}\n`);
    this.#index(mail);
    this.emit('mail', mail);
    return mail;
  }
}

export function bareMessageId(messageId: string): string {
  return messageId.replace(/^<|>$/g, '');
}

class RefusedMailError extends Error {
  readonly code = 'MAIL_REFUSED';
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function rcptReply(address: SMTPServerAddress): Error | null {
  const local = address.address.split('@')[0] ?? '';
  const reply = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
  if (local.includes('+reject')) return reply(550, '5.1.1 Mailbox unavailable (dev server: +reject address)');
  if (local.includes('+defer')) return reply(451, '4.3.0 Try again later (dev server: +defer address)');
  return null;
}

export async function startDevSmtp(options: DevSmtpOptions): Promise<DevSmtpServer> {
  const store = new MailStore(options.dir);
  await store.load();
  const server = new SMTPServer({
    name: 'localhost',
    banner: 'smtpq dev SMTP server',
    key: options.keyPem,
    cert: options.certPem,
    secure: false,
    // AUTH is required, and offered only after STARTTLS (allowInsecureAuth stays false).
    authOptional: false,
    authMethods: ['PLAIN', 'LOGIN'],
    size: options.maxBytes ?? 25 * 1024 * 1024,
    logger: false,
    // Ctrl-C should not wait 30 s for an idle client to hang up.
    closeTimeout: 1_000,
    onAuth(auth, _session, callback) {
      const ok =
        auth.username === options.credentials.username &&
        sameSecret(auth.password ?? '', options.credentials.password);
      if (ok) callback(null, { user: auth.username });
      else
        callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      callback(rcptReply(address));
    },
    onData(stream, session: SMTPServerSession, callback) {
      const meta = {
        receivedAt: new Date().toISOString(),
        envelope: {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
        },
        tls: session.secure,
        ...(typeof session.user === 'string' ? { authUser: session.user } : {}),
        remoteAddress: session.remoteAddress,
      };
      // smtp-server only flags a message over the SIZE limit on its stream; refusing it is up to us.
      const tooBig = () =>
        (stream as { sizeExceeded?: boolean }).sizeExceeded ? '5.3.4 Message too big' : undefined;
      store.save(stream, meta, tooBig).then(
        (mail) => callback(null, `2.0.0 Ok: queued as ${mail.id}`),
        (error: Error) => {
          const refused = error instanceof RefusedMailError;
          callback(
            Object.assign(new Error(refused ? error.message : `4.3.0 Could not store: ${error.message}`), {
              responseCode: refused ? 552 : 451,
            }),
          );
        },
      );
    },
  });
  server.on('error', (error) => console.error('[dev-smtp]', error.message));
  const port = await new Promise<number>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? Object.assign(new Error(`dev SMTP server: port ${options.port} is already in use`), {
              code: 'PORT_IN_USE',
            })
          : error,
      );
    };
    server.server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.server.off('error', onError);
      resolve((server.server.address() as AddressInfo).port);
    });
  });
  return {
    port,
    store,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

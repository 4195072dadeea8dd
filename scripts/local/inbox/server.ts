// The dev inbox behind http://localhost:3000/_inbox: the static page, a small JSON API joining the status
// ledger (DynamoDB, listed through its state index) with the mail the dev SMTP server captured, the relay's
// shared pause (throttling), and a server-sent event stream that
// tells open pages when to refresh. Local only: no auth, so the gateway binds to loopback.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AddressObject, simpleParser } from 'mailparser';
import { type DynamoLedger, LISTED_STATES } from '../../../lib/aws/ledger-store.ts';
import type { StatusRecord } from '../../../lib/delivery/ports.ts';
import type { RelayStatus } from '../../../lib/delivery/relay-limit.ts';
import { bareMessageId, type MailStore } from '../dev-smtp.ts';
import type { Timeline } from '../event-log.ts';

export interface InboxOptions {
  ledger: Pick<DynamoLedger, 'get' | 'getMany' | 'listIds'>;
  /** The relay's shared state (a throttling pause), shown above the list. */
  relay?: () => Promise<RelayStatus>;
  /** Absent when the worker delivers to a real relay (SMTP_URL): then there is no captured mail. */
  mail?: MailStore;
  /** A message's events and webhook tries (absent on existing resources). */
  timeline?: (id: string) => Timeline;
  /** Where the stack's AWS side is, for `smtpq events --follow` against the dev stack. */
  stack?: { region: string; awsEndpoint?: string; busName?: string };
}

export interface Inbox {
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  /** Something changed (a submit, a worker run, a received mail): open pages refresh. Coalesced. */
  notify(): void;
  close(): void;
}

const STATIC: Record<string, { file: string; type: string }> = {
  '/_inbox/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/_inbox/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/_inbox/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** The page itself runs only its own script; mail HTML never runs in it (see HTML_BODY_CSP). */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * A received HTML body is untrusted: served with a CSP sandbox (opaque origin, no scripts, no forms) and no
 * network access at all — no remote images, so opening a mail never pings a tracker — and shown in an
 * <iframe sandbox> as a second fence.
 */
const HTML_BODY_CSP =
  "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; frame-ancestors 'self'";

const LIST_LIMIT = 200;

export function createInbox(options: InboxOptions): Inbox {
  const listeners = new Set<ServerResponse>();
  let pending: NodeJS.Timeout | undefined;
  const heartbeat = setInterval(() => {
    for (const res of listeners) res.write(': keep-alive\n\n');
  }, 15_000);
  heartbeat.unref();

  const notify = () => {
    pending ??= setTimeout(() => {
      pending = undefined;
      for (const res of listeners) res.write('event: change\ndata: {}\n\n');
    }, 150);
  };
  options.mail?.on('mail', notify);

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> => {
    const path = url.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'the dev inbox is read-only', { allow: 'GET' });
      return true;
    }
    if (path === '/_inbox') {
      res.writeHead(308, { location: '/_inbox/' }).end();
      return true;
    }
    const asset = STATIC[path];
    if (asset) {
      const body = await readFile(new URL(`./public/${asset.file}`, import.meta.url));
      send(res, 200, asset.type, body, { 'content-security-policy': PAGE_CSP, 'cache-control': 'no-cache' });
      return true;
    }
    if (path === '/_inbox/api/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      res.write('retry: 2000\n\n');
      listeners.add(res);
      req.on('close', () => listeners.delete(res));
      return true;
    }
    if (path === '/_inbox/api/messages') {
      const all = await newestRecords(options.ledger, LIST_LIMIT);
      const relay = await options.relay?.().catch(() => undefined);
      const messages = all.map((record) => ({
        ...summary(record),
        received: options.mail?.byMessageId(record.messageId).length ?? 0,
      }));
      // Mail that did not come through smtpq (e.g. swaks straight at the dev server) is listed apart.
      const known = new Set(all.map((record) => bareMessageId(record.messageId)));
      const other = (options.mail?.list() ?? []).filter((m) => !known.has(bareMessageId(m.messageId ?? '')));
      sendJson(res, 200, {
        messages,
        other: other.slice(0, LIST_LIMIT),
        capturing: options.mail !== undefined,
        relay: relay
          ? {
              pausedUntil: relay.pausedUntil?.toISOString(),
              pauseLevel: relay.pauseLevel,
              reason: relay.reason,
            }
          : undefined,
      });
      return true;
    }
    const message = /^\/_inbox\/api\/messages\/([A-Za-z0-9_-]{1,128})$/.exec(path);
    if (message) {
      const record = (await options.ledger.get(message[1]!))?.value;
      if (!record) sendJson(res, 404, { error: 'not_found', message: `no message ${message[1]}` });
      else
        sendJson(res, 200, {
          status: record,
          mails: options.mail?.byMessageId(record.messageId) ?? [],
          timeline: options.timeline?.(record.id),
        });
      return true;
    }
    if (path === '/_inbox/api/stack') {
      sendJson(res, 200, options.stack ?? {});
      return true;
    }
    const mail = /^\/_inbox\/api\/mail\/([0-9]+-[0-9a-f]{8})(\/html|\/raw|\/attachments\/([0-9]+))?$/.exec(
      path,
    );
    if (mail && options.mail) {
      await serveMail(res, options.mail, mail[1]!, mail[2], mail[3]);
      return true;
    }
    sendJson(res, 404, { error: 'not_found', message: `no inbox resource ${path}` });
    return true;
  };

  return {
    handle,
    notify,
    close() {
      clearInterval(heartbeat);
      clearTimeout(pending);
      options.mail?.off('mail', notify);
      for (const res of listeners) res.end();
      listeners.clear();
    },
  };
}

function summary(record: StatusRecord) {
  return {
    id: record.id,
    state: record.state,
    subject: record.subject,
    from: record.from,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    attempts: record.attempts,
    nextAttemptAt: record.nextAttemptAt,
    error: record.error,
    recipients: record.recipients.map((r) => ({ address: r.address, kind: r.kind, state: r.state })),
  };
}

async function serveMail(
  res: ServerResponse,
  store: MailStore,
  id: string,
  part: string | undefined,
  attachment: string | undefined,
): Promise<void> {
  const meta = store.get(id);
  const raw = await store.readEml(id);
  if (!meta || !raw) {
    sendJson(res, 404, { error: 'not_found', message: `no captured mail ${id}` });
    return;
  }
  if (part === '/raw') {
    send(res, 200, 'text/plain; charset=utf-8', raw, {
      'content-disposition': `inline; filename="${id}.eml"`,
    });
    return;
  }
  const parsed = await simpleParser(raw);
  if (part === '/html') {
    send(res, 200, 'text/html; charset=utf-8', parsed.html || '', {
      'content-security-policy': HTML_BODY_CSP,
    });
    return;
  }
  if (attachment !== undefined) {
    const file = parsed.attachments[Number(attachment)];
    if (!file) {
      sendJson(res, 404, { error: 'not_found', message: `no attachment ${attachment}` });
      return;
    }
    // Always a download, never rendered in the inbox's origin.
    send(res, 200, 'application/octet-stream', file.content, {
      'content-disposition': `attachment; filename="${asciiFilename(file.filename ?? `attachment-${attachment}`)}"`,
    });
    return;
  }
  sendJson(res, 200, {
    meta,
    subject: parsed.subject,
    from: parsed.from?.text,
    to: addressText(parsed.to),
    cc: addressText(parsed.cc),
    date: parsed.date?.toISOString(),
    text: parsed.text ?? '',
    hasHtml: Boolean(parsed.html),
    headers: parsed.headerLines.map((h) => h.line),
    attachments: parsed.attachments.map((a, index) => ({
      index,
      filename: a.filename,
      contentType: a.contentType,
      size: a.size,
    })),
  });
}

function addressText(value: AddressObject | AddressObject[] | undefined): string | undefined {
  if (!value) return undefined;
  return (Array.isArray(value) ? value : [value]).map((a) => a.text).join(', ');
}

function asciiFilename(name: string): string {
  return name.replace(/[^\x20-\x7e]|["\\]/g, '_');
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': type, 'x-content-type-options': 'nosniff', ...headers }).end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body), { 'cache-control': 'no-store' });
}

/**
 * The newest `limit` records across every state: the state index gives each state's newest ids (by creation
 * time), merged; the records then come in one batch read.
 */
async function newestRecords(ledger: InboxOptions['ledger'], limit: number): Promise<StatusRecord[]> {
  const { ids } = await ledger.listIds({ states: LISTED_STATES, limit });
  const found = await ledger.getMany(ids);
  return ids.flatMap((id) => {
    const entry = found.get(id);
    return entry ? [entry.value] : [];
  });
}

// MIME composition with Nodemailer's MailComposer: the RFC 5322 message as a stream, plus its SMTP envelope.
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import MailComposer, {
  type MailComposerAttachment,
  type MailComposerOptions,
} from 'nodemailer/lib/mail-composer';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { type Mailbox, type MailboxInput, needsSmtpUtf8, parseAddress, parseAddressList } from './address.ts';
import { type AttachmentSource, isAttachmentSource, sourceOpener } from './attachment-source.ts';
import { MessageError, type ValidationIssue } from './errors.ts';
import { lazyStream } from './lazy-stream.ts';
import {
  cidProblem,
  contentTypeProblem,
  duplicateHeaderName,
  filenameProblem,
  headerNameProblem,
  headerValueProblem,
  MAX_RECIPIENTS,
  normaliseMessageId,
  subjectProblem,
} from './rules.ts';
import type { SendRequest } from './schema.ts';

export type { AttachmentSource };

export interface ComposeAttachment {
  filename: string;
  contentType?: string;
  content: AttachmentSource;
  /** Content-ID without brackets: the attachment goes inline (multipart/related beside the html). */
  cid?: string;
}

/** One address field: an address, a string holding a comma-separated list, or an array of these. */
export type AddressField = MailboxInput | readonly MailboxInput[];

export interface ComposeInput {
  from: MailboxInput;
  to?: AddressField;
  cc?: AddressField;
  /** Envelope only: never written into the headers. */
  bcc?: AddressField;
  replyTo?: AddressField;
  subject?: string;
  text?: string;
  html?: string;
  attachments?: ComposeAttachment[];
  /** Custom headers; the rules of the request schema apply (no CR/LF/NUL, no reserved names). */
  headers?: Record<string, string>;
  /** With or without angle brackets; generated (`<uuid@messageIdDomain>`) when absent. */
  messageId?: string;
  /** Default: the time of composeMessage. */
  date?: Date;
  /** Right-hand side of a generated Message-ID. Default: the From address's domain. */
  messageIdDomain?: string;
  /** One-click unsubscribe (RFC 8058, RFC 2369): List-Unsubscribe with this https link (and the mailto:
   *  address, if given) and List-Unsubscribe-Post. */
  listUnsubscribe?: { url: string; mailto?: string };
}

export interface ComposedEnvelope {
  from: string;
  /** to + cc + bcc, canonical, de-duplicated, in that order. */
  to: string[];
  /** An address has a non-ASCII local part: the server must offer SMTPUTF8 (RFC 6531). */
  smtpUtf8: boolean;
  /** The message has 8-bit octets (only the raw UTF-8 of such addresses; bodies are QP/base64). */
  eightBit: boolean;
}

export interface ComposedMessage {
  envelope: ComposedEnvelope;
  /** Bracketed, as in the header. */
  messageId: string;
  date: Date;
  /**
   * The message (CRLF line endings). May be called again, e.g. for a retry: the bytes are identical.
   * Throws MessageError MESSAGE_SOURCE_CONSUMED if an attachment is a one-shot Readable already read.
   */
  createStream(): Readable;
}

// Custom headers are capped at 900 characters (rules.ts); a longer unbreakable run in the subject is
// encoded so that folding can split it, keeping every line under RFC 5322's 998 octets.
const LONGEST_UNFOLDABLE_RUN = 900;

/** The input's addresses, canonical; problems go to `issues`. */
function readAddresses(input: ComposeInput, issues: ValidationIssue[]) {
  const read = (path: string, field: AddressField | undefined): Mailbox[] => {
    const entries = field === undefined ? [] : Array.isArray(field) ? field : [field as MailboxInput];
    return entries.flatMap((entry, index) => {
      const parsed = typeof entry === 'string' ? parseAddressList(entry) : parseAddress(entry);
      if (parsed.ok) return Array.isArray(parsed.value) ? parsed.value : [parsed.value];
      issues.push({ path: Array.isArray(field) ? `${path}[${index}]` : path, message: parsed.error });
      return [];
    });
  };
  const from = read('from', input.from);
  if (input.from === undefined) issues.push({ path: 'from', message: 'from is required' });
  if (from.length > 1) issues.push({ path: 'from', message: 'exactly one From address is required' });
  const addresses = {
    from: from[0],
    to: read('to', input.to),
    cc: read('cc', input.cc),
    bcc: read('bcc', input.bcc),
    replyTo: read('replyTo', input.replyTo),
  };
  const listed = addresses.to.length + addresses.cc.length + addresses.bcc.length;
  if (listed === 0)
    issues.push({ path: 'to', message: 'at least one recipient (to, cc or bcc) is required' });
  if (listed > MAX_RECIPIENTS) issues.push({ path: 'to', message: `at most ${MAX_RECIPIENTS} recipients` });
  return addresses;
}

/** The rules of the request schema for the fields that end up in headers; problems go to `issues`. */
function checkHeaderFields(input: ComposeInput, issues: ValidationIssue[]): void {
  const check = (path: string, problem: string | undefined) => {
    if (problem) issues.push({ path, message: problem });
  };
  if (input.subject !== undefined) check('subject', subjectProblem(input.subject));
  const headers = input.headers ?? {};
  for (const [name, value] of Object.entries(headers)) {
    check(`headers.${name}`, headerNameProblem(name) ?? headerValueProblem(value));
  }
  const duplicate = duplicateHeaderName(Object.keys(headers));
  if (duplicate) check(`headers.${duplicate}`, 'header given twice (names are case-insensitive)');
  (input.attachments ?? []).forEach((attachment, index) => {
    const path = `attachments[${index}]`;
    check(`${path}.filename`, filenameProblem(attachment.filename));
    if (attachment.contentType !== undefined)
      check(`${path}.contentType`, contentTypeProblem(attachment.contentType));
    if (attachment.cid !== undefined) check(`${path}.cid`, cidProblem(attachment.cid));
    if (!isAttachmentSource(attachment.content)) {
      check(
        `${path}.content`,
        'must be bytes (Uint8Array), a Readable, a function returning one, or { path }',
      );
    }
  });
  if (input.messageId !== undefined && normaliseMessageId(input.messageId) === undefined) {
    check('messageId', 'must be a Message-ID like "<unique-part@example.com>"');
  }
  if (input.date !== undefined && Number.isNaN(input.date.getTime())) check('date', 'invalid date');
}

/** Composes the message; throws MessageError MESSAGE_INVALID (with every issue) on bad input. */
export function composeMessage(input: ComposeInput): ComposedMessage {
  const issues: ValidationIssue[] = [];
  const { from, to, cc, bcc, replyTo } = readAddresses(input, issues);
  checkHeaderFields(input, issues);
  if (issues.length > 0 || from === undefined)
    throw new MessageError('MESSAGE_INVALID', 'invalid message', issues);

  const fromDomain = from.address.slice(from.address.lastIndexOf('@') + 1);
  const messageId =
    input.messageId !== undefined
      ? normaliseMessageId(input.messageId)!
      : `<${randomUUID()}@${input.messageIdDomain ?? fromDomain}>`;
  const date = input.date ?? new Date();
  const smtpUtf8 = [from, ...to, ...cc, ...bcc, ...replyTo].some((mailbox) => needsSmtpUtf8(mailbox.address));
  const envelope: ComposedEnvelope = {
    from: from.address,
    to: [...new Set([...to, ...cc, ...bcc].map((mailbox) => mailbox.address))],
    smtpUtf8,
    eightBit: smtpUtf8,
  };

  const attachments = (input.attachments ?? []).map((attachment) => ({
    attachment,
    opener: sourceOpener(attachment.content),
  }));
  // MailComposer rewrites the address objects it is given (IDN forms), so each call gets copies.
  const copies = (list: Mailbox[]) => list.map((mailbox) => ({ ...mailbox }));
  const fixed: MailComposerOptions = {
    ...subjectOption(input.subject, {
      ...(input.headers ?? {}),
      ...listUnsubscribeHeaders(input.listUnsubscribe),
    }),
    ...(input.text !== undefined ? { text: lineBreaks(input.text) } : {}),
    ...(input.html !== undefined ? { html: lineBreaks(input.html) } : {}),
    messageId,
    date,
    // Fixed once, so that every createStream builds the same multipart boundaries.
    baseBoundary: randomBytes(12).toString('hex'),
    // Content is always handed over as bytes or streams; MailComposer must never read a path or URL itself.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  const createStream = (): Readable => {
    // Checked before any source is opened, so that a refused call leaves no file handle behind.
    const spent = attachments.findIndex(({ opener }) => opener.spent());
    if (spent >= 0) {
      throw new MessageError(
        'MESSAGE_SOURCE_CONSUMED',
        `attachments[${spent}] is a stream that was already read; pass a stream factory or a path to compose again`,
      );
    }
    // A one-shot stream is taken now, so that another createStream is refused; files, factories and the
    // composer itself wait for the first read (lazyStream).
    const taken = attachments.map(({ opener }) => (opener.oneShot ? opener.open() : undefined));
    return lazyStream(
      () => {
        const parts = attachments.map(({ attachment, opener }, i) =>
          toMailComposer(attachment, taken[i] ?? opener.open()),
        );
        return new MailComposer({
          ...fixed,
          from: { ...from },
          ...(to.length ? { to: copies(to) } : {}),
          ...(cc.length ? { cc: copies(cc) } : {}),
          ...(replyTo.length ? { replyTo: copies(replyTo) } : {}),
          attachments: parts,
        })
          .compile()
          .createReadStream();
      },
      () => {
        for (const stream of taken) if (stream instanceof Readable) stream.destroy();
      },
    );
  };
  return { envelope, messageId, date, createStream };
}

/**
 * A text body's line breaks are CRLF on the wire (RFC 2046 §4.1.1), and a bare CR (which no MTA may pass on
 * as such) becomes a line break too. Done here, once per message, rather than by MailComposer's newline
 * option, which would run a transform over every byte of every createStream (attachments included) when
 * everything else MailComposer writes is CRLF already.
 */
function lineBreaks(body: string): string {
  return body.replace(/\r\n?|\n/g, '\r\n');
}

/** Subject as a MailComposer option; a subject that folding could not split goes in pre-encoded (RFC 2047). */
function subjectOption(
  subject: string | undefined,
  headers: Record<string, string>,
): Pick<MailComposerOptions, 'subject' | 'headers'> {
  if (subject === undefined) return { headers };
  const longestRun = Math.max(0, ...subject.split(/\s+/).map((word) => Buffer.byteLength(word, 'utf8')));
  if (longestRun <= LONGEST_UNFOLDABLE_RUN) return { subject, headers };
  return {
    headers: {
      ...headers,
      Subject: { prepared: true, foldLines: true, value: encodeWord(subject, 'Q', 52) },
    },
  };
}

function toMailComposer(attachment: ComposeAttachment, content: Buffer | Readable): MailComposerAttachment {
  return {
    filename: attachment.filename,
    content,
    contentTransferEncoding: 'base64',
    ...(attachment.contentType !== undefined ? { contentType: attachment.contentType } : {}),
    ...(attachment.cid !== undefined ? { cid: attachment.cid, contentDisposition: 'inline' } : {}),
  };
}

/**
 * The compose input for a validated API request; attachments decoded from base64. The Message-ID is the
 * request's (the API fixes it at submit); without one, composeMessage generates one at `messageIdDomain`.
 */
function listUnsubscribeHeaders(links: ComposeInput['listUnsubscribe']): Record<string, string> {
  if (!links) return {};
  if (!/^https?:\/\/[\x21-\x7e]+$/.test(links.url) || /[<>,]/.test(links.url))
    throw new MessageError(
      'MESSAGE_INVALID',
      'listUnsubscribe.url must be an http(s) URL without <, > or ","',
    );
  const mailto =
    links.mailto === undefined ? '' : `, <mailto:${encodeURI(links.mailto)}?subject=unsubscribe>`;
  return {
    'List-Unsubscribe': `<${links.url}>${mailto}`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  };
}

export function fromSendRequest(
  request: SendRequest,
  opts: { messageIdDomain?: string; date?: Date } = {},
): ComposeInput {
  const { messageId } = request;
  const date = request.date !== undefined ? new Date(request.date) : opts.date;
  return {
    from: request.from,
    to: request.to,
    cc: request.cc,
    bcc: request.bcc,
    replyTo: request.replyTo,
    ...(request.subject !== undefined ? { subject: request.subject } : {}),
    ...(request.text !== undefined ? { text: request.text } : {}),
    ...(request.html !== undefined ? { html: request.html } : {}),
    attachments: request.attachments.map((attachment) => ({
      filename: attachment.filename,
      content: Buffer.from(attachment.content, 'base64'),
      ...(attachment.contentType !== undefined ? { contentType: attachment.contentType } : {}),
      ...(attachment.cid !== undefined ? { cid: attachment.cid } : {}),
    })),
    headers: request.headers,
    ...(messageId !== undefined ? { messageId } : {}),
    ...(date !== undefined ? { date } : {}),
    ...(opts.messageIdDomain !== undefined ? { messageIdDomain: opts.messageIdDomain } : {}),
  };
}

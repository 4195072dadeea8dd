// MIME composition with Nodemailer's MailComposer: the RFC 5322 message as a stream, plus its SMTP envelope.
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import MailComposer, {
  type MailComposerAttachment,
  type MailComposerOptions,
} from 'nodemailer/lib/mail-composer';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { type Mailbox, type MailboxInput, needsSmtpUtf8, parseAddress, parseAddressList } from './address.ts';
import { MessageError, type ValidationIssue } from './errors.ts';
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

/**
 * Attachment bytes: in memory, a one-shot stream, a stream factory (called once per createStream, so a
 * retry can re-read it), or a file path (opened anew on every createStream).
 */
export type AttachmentSource = Uint8Array | Readable | (() => Readable) | { path: string };

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

export function composeMessage(input: ComposeInput): ComposedMessage {
  const issues: ValidationIssue[] = [];
  const addresses = (path: string, field: AddressField | undefined): Mailbox[] => {
    const entries = field === undefined ? [] : Array.isArray(field) ? field : [field as MailboxInput];
    return entries.flatMap((entry, index) => {
      const parsed = typeof entry === 'string' ? parseAddressList(entry) : parseAddress(entry);
      if (parsed.ok) return Array.isArray(parsed.value) ? parsed.value : [parsed.value];
      issues.push({ path: Array.isArray(field) ? `${path}[${index}]` : path, message: parsed.error });
      return [];
    });
  };
  const fromList = addresses('from', input.from);
  if (fromList.length === 0 && input.from === undefined)
    issues.push({ path: 'from', message: 'from is required' });
  if (fromList.length > 1) issues.push({ path: 'from', message: 'exactly one From address is required' });
  const to = addresses('to', input.to);
  const cc = addresses('cc', input.cc);
  const bcc = addresses('bcc', input.bcc);
  const replyTo = addresses('replyTo', input.replyTo);
  const listed = to.length + cc.length + bcc.length;
  if (listed === 0)
    issues.push({ path: 'to', message: 'at least one recipient (to, cc or bcc) is required' });
  if (listed > MAX_RECIPIENTS) issues.push({ path: 'to', message: `at most ${MAX_RECIPIENTS} recipients` });

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
  const from = fromList[0];
  let messageId = input.messageId === undefined ? undefined : normaliseMessageId(input.messageId);
  if (input.messageId !== undefined && messageId === undefined) {
    issues.push({ path: 'messageId', message: 'must be a Message-ID like "<unique-part@example.com>"' });
  }
  if (input.date !== undefined && Number.isNaN(input.date.getTime()))
    issues.push({ path: 'date', message: 'invalid date' });
  if (issues.length > 0 || from === undefined)
    throw new MessageError('MESSAGE_INVALID', 'invalid message', issues);

  messageId ??= generatedMessageId(
    input.messageIdDomain ?? from.address.slice(from.address.lastIndexOf('@') + 1),
  );
  const date = input.date ?? new Date();
  const recipients = [...new Set([...to, ...cc, ...bcc].map((mailbox) => mailbox.address))];
  const smtpUtf8 = [from, ...to, ...cc, ...bcc, ...replyTo].some((mailbox) => needsSmtpUtf8(mailbox.address));
  const envelope: ComposedEnvelope = { from: from.address, to: recipients, smtpUtf8, eightBit: smtpUtf8 };

  const openers = (input.attachments ?? []).map(sourceOpener);
  // Fixed once, so that every createStream builds the same multipart boundaries.
  const baseBoundary = randomBytes(12).toString('hex');
  const options = (): MailComposerOptions => ({
    from,
    ...(to.length ? { to } : {}),
    ...(cc.length ? { cc } : {}),
    ...(replyTo.length ? { replyTo } : {}),
    ...subjectOption(input.subject, headers),
    ...(input.text !== undefined ? { text: lineBreaks(input.text) } : {}),
    ...(input.html !== undefined ? { html: lineBreaks(input.html) } : {}),
    attachments: (input.attachments ?? []).map((attachment, index) =>
      toMailComposer(attachment, openers[index]!()),
    ),
    messageId,
    date,
    baseBoundary,
    newline: 'windows',
    // Content is always handed over as bytes or streams; MailComposer must never read a path or URL itself.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    envelope,
    messageId,
    date,
    createStream: () => new MailComposer(options()).compile().createReadStream(),
  };
}

/**
 * A text body's line breaks are CRLF on the wire (RFC 2046 §4.1.1); MailComposer turns LF into CRLF, so a
 * bare CR (which no MTA may pass on as such) becomes a line break here too.
 */
function lineBreaks(body: string): string {
  return body.replace(/\r\n?/g, '\n');
}

function generatedMessageId(domain: string): string {
  return `<${randomUUID()}@${domain}>`;
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

function isAttachmentSource(source: unknown): source is AttachmentSource {
  if (source instanceof Uint8Array || typeof source === 'function') return true;
  if (typeof source !== 'object' || source === null) return false;
  return (
    typeof (source as Readable).pipe === 'function' || typeof (source as { path?: unknown }).path === 'string'
  );
}

/** A function giving the attachment's content for one createStream call. */
function sourceOpener(attachment: ComposeAttachment, index: number): () => Buffer | Readable {
  const source = attachment.content;
  if (source instanceof Uint8Array) {
    const bytes = Buffer.isBuffer(source)
      ? source
      : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    return () => bytes;
  }
  if (typeof source === 'function') return source;
  // fs.ReadStream has a `path` too, but it is a one-shot stream like any other.
  if (!('pipe' in source) && typeof source.path === 'string') {
    const { path } = source;
    return () => createReadStream(path);
  }
  let used = false;
  return () => {
    if (used) {
      throw new MessageError(
        'MESSAGE_SOURCE_CONSUMED',
        `attachments[${index}] is a stream that was already read; pass a stream factory or a path to compose again`,
      );
    }
    used = true;
    return source as Readable;
  };
}

/** The compose input for a validated API request; attachments decoded from base64. */
export function fromSendRequest(
  request: SendRequest,
  opts: { messageIdDomain: string; id?: string; date?: Date },
): ComposeInput {
  const messageId =
    request.messageId ?? (opts.id !== undefined ? `<${opts.id}@${opts.messageIdDomain}>` : undefined);
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
    messageIdDomain: opts.messageIdDomain,
  };
}

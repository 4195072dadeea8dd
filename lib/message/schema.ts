// The API send request (JSON): schema, validation with field-level messages, and its decoded size.
import { z } from 'zod';
import { type Mailbox, type MailboxInput, parseAddress, parseAddressList } from './address.ts';
import type { ValidationIssue } from './errors.ts';
import {
  CONTROL,
  cidProblem,
  contentTypeProblem,
  duplicateHeaderName,
  filenameProblem,
  hasLoneSurrogate,
  headerNameProblem,
  headerValueProblem,
  MAX_ATTACHMENTS,
  MAX_CUSTOM_HEADERS,
  MAX_RECIPIENTS,
  MAX_REPLY_TO,
  MAX_TAG_VALUE_CHARS,
  MAX_TAGS,
  normaliseMessageId,
  subjectProblem,
} from './rules.ts';

export type { ValidationIssue };

/** An attachment of the request; `content` is standard base64 (RFC 4648 §4) without whitespace. */
export interface RequestAttachment {
  filename: string;
  contentType?: string;
  content: string;
  /** Content-ID (without brackets): the attachment is inline, referenced from the html as `cid:…`. */
  cid?: string;
}

/**
 * A validated send request. Addresses are canonical (see Mailbox), so the envelope composeMessage derives
 * from it lists exactly these strings. Valid output is also valid input (it survives a JSON round trip and
 * a second validation unchanged).
 */
export interface SendRequest {
  from: Mailbox;
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
  replyTo: Mailbox[];
  subject?: string;
  text?: string;
  html?: string;
  attachments: RequestAttachment[];
  headers: Record<string, string>;
  tags: Record<string, string>;
  /** Bracketed msg-id, e.g. `<abc@example.com>`. */
  messageId?: string;
  /** ISO 8601 date-time with an offset. */
  date?: string;
  /** When to send (RFC 3339, normalised to UTC): the message waits, `scheduled`, until then. */
  sendAt?: string;
  /** One-click unsubscribe (RFC 8058): each recipient gets its own link; `mailto` adds a mailto: one too.
   *  `true` in the request is `{}` here. */
  unsubscribe?: { mailto?: string };
  /** Delivery status notifications (RFC 3461), asked of the relay when it offers DSN. */
  dsn?: {
    /** `["never"]`, or some of success, failure, delay (validation keeps "never" alone). */
    notify?: ('success' | 'failure' | 'delay' | 'never')[];
    ret?: 'full' | 'hdrs';
    envid?: string;
  };
  /** REQUIRETLS (RFC 8689): sent only over TLS to a relay that offers it, which must keep it on TLS onward;
   *  otherwise its recipients fail, unsent. */
  requireTls?: boolean;
}

export type ValidationResult = { ok: true; value: SendRequest } | { ok: false; issues: ValidationIssue[] };

const RECIPIENT_FIELDS = ['to', 'cc', 'bcc', 'replyTo'] as const;

const mailboxObject = z.strictObject({ name: z.string().optional(), address: z.string() });
const mailboxShape = z.union([z.string(), mailboxObject], {
  error: 'must be an address string ("Name <user@example.com>") or { name, address }',
});

/** One address (a string holding one mailbox, or an object). */
const singleMailbox = mailboxShape.transform((input: MailboxInput, ctx): Mailbox => {
  const parsed = parseAddress(input);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
});

/** An entry of a recipient field: a string may hold a comma-separated list. */
const mailboxEntry = mailboxShape.transform((input: MailboxInput, ctx): Mailbox[] => {
  const parsed = typeof input === 'string' ? parseAddressList(input) : parseAddress(input);
  if (parsed.ok) return Array.isArray(parsed.value) ? parsed.value : [parsed.value];
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
});

/** A recipient field: one entry or an array of them (a lone entry is wrapped; see fixPath). */
const mailboxList = (max: number) =>
  z
    .preprocess(
      (value) => (value === undefined || Array.isArray(value) ? value : [value]),
      z.array(mailboxEntry).max(max, `at most ${max} entries`),
    )
    .transform((entries) => (entries ?? []).flat())
    .optional()
    .transform((list) => list ?? []);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const base64Content = z.string().transform((value, ctx) => {
  // Line breaks are common in base64 from MIME-minded encoders; nothing else is tolerated.
  const compact = value.replace(/[\r\n\t ]/g, '');
  if (BASE64.test(compact)) return compact;
  ctx.addIssue({
    code: 'custom',
    message: 'must be standard base64 (RFC 4648 §4: A-Z a-z 0-9 + /, "=" padding to a multiple of 4)',
  });
  return z.NEVER;
});

/** A string field checked by one of the rules in rules.ts. */
const checked = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

const attachment = z.strictObject({
  filename: checked(filenameProblem),
  contentType: checked(contentTypeProblem).optional(),
  content: base64Content,
  cid: checked(cidProblem).optional(),
});

const customHeaders = z
  .record(z.string(), z.string())
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > MAX_CUSTOM_HEADERS) {
      ctx.addIssue({ code: 'custom', message: `at most ${MAX_CUSTOM_HEADERS} custom headers` });
    }
    for (const name of names) {
      const message = headerNameProblem(name) ?? headerValueProblem(headers[name]!);
      if (message) ctx.addIssue({ code: 'custom', message, path: [name] });
    }
    const duplicate = duplicateHeaderName(names);
    if (duplicate)
      ctx.addIssue({
        code: 'custom',
        message: 'header given twice (names are case-insensitive)',
        path: [duplicate],
      });
  })
  .optional()
  .transform((headers) => headers ?? {});

const TAG_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

const tags = z
  .record(z.string(), z.string())
  .superRefine((record, ctx) => {
    const names = Object.keys(record);
    if (names.length > MAX_TAGS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_TAGS} tags` });
    for (const name of names) {
      const value = record[name]!;
      let message: string | undefined;
      if (!TAG_NAME.test(name)) message = 'tag name must be 1-64 of A-Z a-z 0-9 _ . : -';
      else if (value.length > MAX_TAG_VALUE_CHARS || CONTROL.test(value) || hasLoneSurrogate(value)) {
        message = `tag value must be at most ${MAX_TAG_VALUE_CHARS} characters of valid Unicode without control characters`;
      }
      if (message) ctx.addIssue({ code: 'custom', message, path: [name] });
    }
  })
  .optional()
  .transform((record) => record ?? {});

const messageId = z.string().transform((value, ctx) => {
  const normalised = normaliseMessageId(value);
  if (normalised) return normalised;
  ctx.addIssue({
    code: 'custom',
    message: 'must be a Message-ID like "<unique-part@example.com>" (RFC 5322 §3.6.4)',
  });
  return z.NEVER;
});

const sendRequestSchema = z
  .strictObject({
    from: singleMailbox,
    to: mailboxList(MAX_RECIPIENTS),
    cc: mailboxList(MAX_RECIPIENTS),
    bcc: mailboxList(MAX_RECIPIENTS),
    replyTo: mailboxList(MAX_REPLY_TO),
    subject: checked(subjectProblem).optional(),
    text: z.string().optional(),
    html: z.string().optional(),
    attachments: z
      .array(attachment)
      .max(MAX_ATTACHMENTS, `at most ${MAX_ATTACHMENTS} attachments`)
      .optional()
      .transform((list) => list ?? []),
    headers: customHeaders,
    tags,
    messageId: messageId.optional(),
    date: z.iso
      .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-11-28T10:00:00Z' })
      .optional(),
    // Whether the time is ahead, and not too far, depends on the clock: the API checks it (sendAtProblem).
    sendAt: z.iso
      .datetime({
        offset: true,
        error: 'must be an RFC 3339 date-time with an offset, e.g. 2026-11-28T10:00:00Z',
      })
      .transform((value) => new Date(value).toISOString())
      .optional(),
    unsubscribe: z
      .union(
        [
          z.boolean(),
          z.strictObject({ mailto: singleMailbox.transform((mailbox) => mailbox.address).optional() }),
        ],
        { error: 'must be true, false or { "mailto"?: address }' },
      )
      .transform((value) => (value === true ? {} : value === false ? undefined : value))
      .optional(),
    dsn: z
      .strictObject({
        notify: z
          .array(z.enum(['success', 'failure', 'delay', 'never']), {
            error: 'must be an array of "success", "failure", "delay", or ["never"]',
          })
          .min(1, 'must list at least one of "success", "failure", "delay", or be ["never"]')
          .superRefine((list, ctx) => {
            if (list.includes('never') && list.length > 1)
              ctx.addIssue({ code: 'custom', message: '"never" cannot be combined with other values' });
            if (new Set(list).size !== list.length)
              ctx.addIssue({ code: 'custom', message: 'lists a value twice' });
          })
          .optional(),
        ret: z.enum(['full', 'hdrs'], { error: 'must be "full" or "hdrs"' }).optional(),
        envid: z
          .string()
          .regex(/^[\x20-\x7e]{1,100}$/, 'must be 1 to 100 printable ASCII characters (RFC 3461 §4.4)')
          .optional(),
      })
      .optional(),
    requireTls: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .superRefine((request, ctx) => {
    const recipients = request.to.length + request.cc.length + request.bcc.length;
    if (recipients === 0)
      ctx.addIssue({
        code: 'custom',
        message: 'at least one recipient (to, cc or bcc) is required',
        path: ['to'],
      });
    if (recipients > MAX_RECIPIENTS) {
      ctx.addIssue({
        code: 'custom',
        message: `at most ${MAX_RECIPIENTS} recipients in to, cc and bcc together`,
        path: ['to'],
      });
    }
    if (request.text === undefined && request.html === undefined) {
      ctx.addIssue({ code: 'custom', message: 'text or html (or both) is required', path: ['text'] });
    }
  })
  .transform(withoutRepeatedRecipients);

/**
 * An address listed twice (in to, cc or bcc) is kept where it first appears only, so that the status ledger
 * built from these fields has one entry per address, as the envelope has.
 */
function withoutRepeatedRecipients<T extends Pick<SendRequest, 'to' | 'cc' | 'bcc'>>(request: T): T {
  const seen = new Set<string>();
  const firstOnly = (list: Mailbox[]) =>
    list.filter((mailbox) => {
      if (seen.has(mailbox.address)) return false;
      seen.add(mailbox.address);
      return true;
    });
  return { ...request, to: firstOnly(request.to), cc: firstOnly(request.cc), bcc: firstOnly(request.bcc) };
}

/** `['attachments', 0, 'content']` → `attachments[0].content`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(String(key))) out += out ? `.${String(key)}` : String(key);
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** A recipient field given as one value (not an array) was wrapped for parsing; report it as `to`, not `to[0]`. */
function fixPath(path: PropertyKey[], input: unknown): PropertyKey[] {
  const [field, index, ...rest] = path;
  if (typeof input !== 'object' || input === null || field === undefined || index !== 0) return path;
  if (!RECIPIENT_FIELDS.includes(field as (typeof RECIPIENT_FIELDS)[number])) return path;
  return Array.isArray((input as Record<string, unknown>)[field as string]) ? path : [field, ...rest];
}

/**
 * Where the (JSON-parsed) input has an own "__proto__" key. zod leaves such a key out of its output without
 * a word, so a header or tag of that name would vanish silently; it is refused instead.
 */
function protoKeyPaths(value: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (typeof value !== 'object' || value === null) return [];
  if (Array.isArray(value)) return value.flatMap((item, index) => protoKeyPaths(item, [...path, index]));
  const found = Object.hasOwn(value, '__proto__') ? [[...path, '__proto__']] : [];
  return [...found, ...Object.entries(value).flatMap(([key, item]) => protoKeyPaths(item, [...path, key]))];
}

export function validateSendRequest(input: unknown): ValidationResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, issues: [{ path: '', message: 'the request must be a JSON object' }] };
  }
  const issues: ValidationIssue[] = protoKeyPaths(input, []).map((path) => ({
    path: formatPath(path),
    message: '"__proto__" is not allowed as a name',
  }));
  const result = sendRequestSchema.safeParse(input);
  if (result.success && issues.length === 0) return { ok: true, value: result.data };
  if (result.success) return { ok: false, issues };
  for (const issue of result.error.issues) {
    const path = fixPath([...issue.path], input);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        issues.push({ path: formatPath([...path, key]), message: 'unknown field' });
    } else {
      issues.push({ path: formatPath(path), message: issue.message });
    }
  }
  return { ok: false, issues };
}

/** How far ahead a message may be scheduled. */
export const MAX_SCHEDULE_DAYS = 30;

/** What is wrong with a (valid) `sendAt` at `now`: in the past, or more than MAX_SCHEDULE_DAYS ahead. */
export function sendAtProblem(sendAt: string | undefined, now: Date): string | undefined {
  if (sendAt === undefined) return undefined;
  const at = Date.parse(sendAt);
  if (at < now.getTime()) return `is in the past (now is ${now.toISOString()})`;
  if (at > now.getTime() + MAX_SCHEDULE_DAYS * 86_400_000)
    return `is more than ${MAX_SCHEDULE_DAYS} days ahead (at most ${new Date(now.getTime() + MAX_SCHEDULE_DAYS * 86_400_000).toISOString()})`;
  return undefined;
}

/** Octets of a valid base64 string once decoded, computed without decoding it. */
export function base64DecodedLength(base64: string): number {
  const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
  return (base64.length / 4) * 3 - padding;
}

/** The request's payload size for the API's size limit: text + html (UTF-8) + decoded attachments. */
export function decodedSize(request: SendRequest): number {
  let size = Buffer.byteLength(request.text ?? '', 'utf8') + Buffer.byteLength(request.html ?? '', 'utf8');
  for (const { content } of request.attachments) size += base64DecodedLength(content);
  return size;
}

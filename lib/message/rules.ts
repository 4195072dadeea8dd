// Field rules shared by the request schema and composeMessage, so a message built from code (the CLI, the
// worker) is held to the same limits as one that came through the API.

/** Recipients per message: every listed one counts (to + cc + bcc, before de-duplication), as in SES. */
export const MAX_RECIPIENTS = 50;
export const MAX_REPLY_TO = 10;
export const MAX_SUBJECT_CHARS = 998;
export const MAX_ATTACHMENTS = 100;
export const MAX_FILENAME_CHARS = 255;
export const MAX_CUSTOM_HEADERS = 50;
/** A header field name. RFC 5322 allows any length; 76 keeps `Name: ` plus a folded value under 998 octets. */
export const MAX_HEADER_NAME_CHARS = 76;
/** A custom header value; long enough for List-Unsubscribe URLs and still one line (998) when unfoldable. */
export const MAX_HEADER_VALUE_CHARS = 900;
export const MAX_TAGS = 10;
export const MAX_TAG_VALUE_CHARS = 256;

/** C0 controls and DEL except horizontal tab: CR, LF and NUL among them. */
export const CONTROL_EXCEPT_TAB = /[\x00-\x08\x0a-\x1f\x7f]/;
/** Every C0 control and DEL. */
export const CONTROL = /[\x00-\x1f\x7f]/;

// RFC 5322 §3.6.8 field-name: printable US-ASCII except ":".
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

// Headers the composer writes itself; a caller-supplied copy would duplicate or contradict them.
const RESERVED_HEADERS = new Set([
  'from',
  'sender',
  'to',
  'cc',
  'bcc',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'mime-version',
]);

// Headers only a relay, a signer or smtpq's unsubscribe links may write: a caller's copy would forge a trace
// (Received, Return-Path), an authentication result (DKIM-Signature, ARC-*, Authentication-Results), a resend
// (Resent-*) or an unsubscribe link smtpq did not make (List-Unsubscribe[-Post]).
const WRITTEN_BY_OTHERS = new Set([
  'received',
  'return-path',
  'dkim-signature',
  'authentication-results',
  'list-unsubscribe',
  'list-unsubscribe-post',
]);

/** Why a custom header name is refused, or undefined when it is fine. */
export function headerNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'header name is empty';
  if (name.length > MAX_HEADER_NAME_CHARS)
    return `header name is longer than ${MAX_HEADER_NAME_CHARS} characters`;
  if (!FIELD_NAME.test(name)) {
    return 'header name must be printable ASCII without spaces, ":" or control characters (RFC 5322 §3.6.8)';
  }
  const lower = name.toLowerCase();
  if (WRITTEN_BY_OTHERS.has(lower) || lower.startsWith('arc-') || lower.startsWith('resent-'))
    return `"${name}" is written only by relays, signers and smtpq's own unsubscribe links; it cannot be set`;
  if (RESERVED_HEADERS.has(lower) || lower.startsWith('content-')) {
    return `"${name}" is set by smtpq itself; use the request field instead`;
  }
  return undefined;
}

/** Why a custom header value is refused, or undefined when it is fine. */
export function headerValueProblem(value: string): string | undefined {
  if (CONTROL_EXCEPT_TAB.test(value))
    return 'header value must not contain CR, LF, NUL or other control characters';
  if (value.length > MAX_HEADER_VALUE_CHARS) {
    return `header value is longer than ${MAX_HEADER_VALUE_CHARS} characters`;
  }
  return undefined;
}

/** Why a set of custom headers is refused as a whole (a name given twice in different case). */
export function duplicateHeaderName(names: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const name of names) {
    const lower = name.toLowerCase();
    if (seen.has(lower)) return name;
    seen.add(lower);
  }
  return undefined;
}

// Content-Type: type "/" subtype, then optional `; name=value` parameters (token or quoted-string).
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const CONTENT_TYPE = new RegExp(
  `^${TOKEN}/${TOKEN}(?:\\s*;\\s*${TOKEN}=(?:${TOKEN}|"[^"\\\\\\x00-\\x1f\\x7f]*"))*$`,
);

export function contentTypeProblem(contentType: string): string | undefined {
  if (contentType.length > 255) return 'content type is longer than 255 characters';
  if (!CONTENT_TYPE.test(contentType))
    return 'content type must look like "type/subtype" (RFC 2045), e.g. "application/pdf"';
  return undefined;
}

export function filenameProblem(filename: string): string | undefined {
  if (filename.length === 0) return 'filename is empty';
  if (filename.length > MAX_FILENAME_CHARS) return `filename is longer than ${MAX_FILENAME_CHARS} characters`;
  if (CONTROL.test(filename)) return 'filename must not contain control characters';
  return spoofingProblem(filename, 'filename');
}

// Content-ID without its angle brackets: printable ASCII, no brackets, no spaces (RFC 2392 "addr-spec"-like).
const CID = /^[\x21-\x3b\x3d\x3f-\x7e]{1,255}$/;

export function cidProblem(cid: string): string | undefined {
  return CID.test(cid)
    ? undefined
    : 'cid must be 1-255 printable ASCII characters without "<", ">" or spaces';
}

// msg-id (RFC 5322 §3.6.4), brackets optional on input: id-left "@" id-right, printable ASCII, no brackets.
const MESSAGE_ID = /^<?([\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+)>?$/;

/** The Message-ID in its bracketed form, or undefined when it is not a valid msg-id. */
export function normaliseMessageId(messageId: string): string | undefined {
  if (messageId.length > 255) return undefined;
  const match = MESSAGE_ID.exec(messageId);
  if (!match || match[1]!.split('@').length !== 2) return undefined;
  return `<${match[1]}>`;
}

/** Half of a UTF-16 surrogate pair without its other half: not a character, and not valid UTF-8 (the ledger,
 *  DynamoDB, refuses such strings). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * C1 controls and the bidirectional formatting characters (Unicode's Trojan Source list: LRE, RLE, PDF, LRO,
 * RLO, LRI, RLI, FSI, PDI, LRM, RLM, ALM): invisible, they make a name, an address or a filename read other
 * than it is ("invoice‮fdp.exe" shows as "invoiceexe.pdf").
 */
const SPOOFING = /[\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** Why `text` (a subject, a display name, an address, a filename) could show other than it is, if it could. */
export function spoofingProblem(text: string, what: string): string | undefined {
  const found = SPOOFING.exec(text);
  if (found) {
    const code = found[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    return `${what} must not contain U+${code} (a C1 control or bidirectional formatting character)`;
  }
  if (hasLoneSurrogate(text)) return `${what} must be valid Unicode (it has a lone surrogate)`;
  return undefined;
}

export function subjectProblem(subject: string): string | undefined {
  if (CONTROL_EXCEPT_TAB.test(subject))
    return 'subject must not contain CR, LF, NUL or other control characters';
  if (subject.length > MAX_SUBJECT_CHARS) return `subject is longer than ${MAX_SUBJECT_CHARS} characters`;
  return spoofingProblem(subject, 'subject');
}

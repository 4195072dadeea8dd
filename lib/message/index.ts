// lib/message: address parsing and MIME composition; the send request's schema and validation are in schema.ts.
export {
  type AddressResult,
  canonicalAddress,
  type Mailbox,
  type MailboxInput,
  needsSmtpUtf8,
  parseAddress,
  parseAddressList,
} from './address.ts';
export {
  type AddressField,
  type AttachmentSource,
  type ComposeAttachment,
  type ComposedEnvelope,
  type ComposedMessage,
  type ComposeInput,
  composeMessage,
  fromSendRequest,
} from './compose.ts';
export { MessageError, type MessageErrorCode } from './errors.ts';
export { MAX_ATTACHMENTS, MAX_RECIPIENTS, MAX_REPLY_TO, MAX_SUBJECT_CHARS } from './rules.ts';
// The request schema (zod) is its own entry point, lib/message/schema.ts: a sender that only composes does not
// load it (zod is ~6 MiB of resident memory). Its types are re-exported here, which loads nothing.
export type { RequestAttachment, SendRequest, ValidationIssue, ValidationResult } from './schema.ts';

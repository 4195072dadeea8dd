// lib/message: the send request (schema + validation), address parsing and MIME composition.
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
export {
  base64DecodedLength,
  decodedSize,
  type RequestAttachment,
  type SendRequest,
  type ValidationIssue,
  type ValidationResult,
  validateSendRequest,
} from './schema.ts';

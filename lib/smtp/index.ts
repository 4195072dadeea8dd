// lib/smtp: the SMTP client. Public API.

export {
  createDataEncoder,
  type DataEncoderOptions,
  DataEncoding,
  encodeData,
  OutgoingBody,
} from './body.ts';
export { SmtpConnection } from './connection.ts';
export { type CredentialLink, isLoopbackAddress, maySendCredentials } from './credential-policy.ts';
export { SmtpError } from './errors.ts';
export { noExtensions, parseExtensions } from './extensions.ts';
export { DEFAULT_TIMEOUTS, resolveOptions } from './options.ts';
export { describeMessage } from './pipeline.ts';
export { MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyParser } from './replies.ts';
export {
  formatReply,
  isIntermediate,
  isPermanent,
  isPositive,
  isTransient,
  replyClass,
  replyLines,
  statusOf,
} from './reply.ts';
export {
  isRetryable,
  type RetryResult,
  type SendWithRetryArgs,
  sendWithRetry,
  withDeadline,
} from './retry.ts';
export { chooseMechanism, login, plain, type SaslMechanism, xoauth2 } from './sasl.ts';
export { furtherTransaction, type SplitRound, sendSplitting } from './split.ts';
export { createTranscript, formatEntries } from './transcript.ts';
export type * from './types.ts';
export { REDACTED, redactCommand } from './wire.ts';

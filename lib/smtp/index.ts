// lib/smtp: the SMTP client. Public API.
export { SmtpConnection } from './connection.ts';
export { type CredentialLink, isLoopbackAddress, maySendCredentials } from './credential-policy.ts';
export { createDataEncoder, type DataEncoderOptions, DataEncoding, encodeData } from './data-encoder.ts';
export { formatReply, SmtpError } from './errors.ts';
export { noExtensions, parseExtensions } from './extensions.ts';
export { DEFAULT_TIMEOUTS, resolveOptions } from './options.ts';
export { furtherTransaction, statusOf } from './outcomes.ts';
export { MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyParser, replyClass, replyLines } from './reply.ts';
export { isRetryable, type SendWithRetryArgs, sendWithRetry, withDeadline } from './retry.ts';
export { chooseMechanism, login, plain, type SaslMechanism, xoauth2 } from './sasl.ts';
export { type SplitRound, sendSplitting } from './split.ts';
export { createTranscript, describeMessage, formatEntries, REDACTED, redactCommand } from './transcript.ts';
export type * from './types.ts';

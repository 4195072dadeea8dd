// Typed errors of lib/message, each with a stable `code`.

export interface ValidationIssue {
  /** Where the problem is, e.g. `to[1]`, `attachments[0].content`, `headers.X-Campaign`; '' for the whole input. */
  path: string;
  message: string;
}

export type MessageErrorCode =
  /** The compose input breaks a rule (address, header, filename, …); `issues` says which. */
  | 'MESSAGE_INVALID'
  /** createStream() was called again, but an attachment is a one-shot Readable already read. */
  | 'MESSAGE_SOURCE_CONSUMED';

export class MessageError extends Error {
  override readonly name = 'MessageError';
  readonly code: MessageErrorCode;
  readonly issues: readonly ValidationIssue[];

  constructor(code: MessageErrorCode, message: string, issues: readonly ValidationIssue[] = []) {
    super(
      issues.length
        ? `${message}: ${issues.map((i) => `${i.path || '(message)'}: ${i.message}`).join('; ')}`
        : message,
    );
    this.code = code;
    this.issues = issues;
  }
}

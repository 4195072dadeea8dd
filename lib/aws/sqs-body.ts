// The text of an SQS message body. SQS accepts only the XML characters #x9 | #xA | #xD | #x20-#xD7FF |
// #xE000-#xFFFD | #x10000-#x10FFFF and refuses a whole message (InvalidMessageContents) for any other.
// JSON.stringify already escapes C0 controls and, since ES2019, lone surrogates; it writes U+FFFE and U+FFFF
// as they are. Every character outside the set is written as a \uXXXX escape instead: such characters occur
// only inside JSON strings, so the escaped text parses to the same JSON value.
import type { QueueMessage } from '../delivery/queue-message.ts';

// With the u flag a valid surrogate pair is one (allowed) code point and a lone surrogate is matched alone.
const outsideSqsCharacters = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

const escapeCharacter = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** The message as JSON text that SQS accepts; JSON.parse gives back the same value. */
export function toSqsBody(message: QueueMessage): string {
  return JSON.stringify(message).replace(outsideSqsCharacters, escapeCharacter);
}

// Text from outside (a relay's replies, subjects, filenames, addresses) as the CLI prints it to a terminal:
// control characters — C0 except tab and the newline that ends a line, DEL, C1 and a lone CR — escaped as
// \u001b and the like, so that no server or sender can move the cursor, retitle the window or hide a line.
// JSON output keeps the data as it is (JSON.stringify escapes C0 itself; see safeJson for the rest).

// C0 except tab (\t) and line feed, DEL, C1.
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
const escapeCode = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One line of outside text, safe to print: every control character escaped, a newline too. */
export function safe(text: string | undefined | null): string {
  if (text === undefined || text === null) return '';
  return String(text).replace(UNSAFE, escapeCode).replace(/\n/g, '\\n');
}

/** Several lines of outside text (a transcript): line feeds kept, everything else escaped (a CR too). */
export function safeLines(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(UNSAFE, escapeCode);
}

/** JSON for a terminal: the same data, with DEL and C1 (which JSON.stringify leaves raw) escaped too. */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[\x7f-\x9f]/g, escapeCode);
}

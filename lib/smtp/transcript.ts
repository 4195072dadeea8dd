// The session record (RFC 5321 Appendix D style): `C:` client lines, `S:` server lines, `*` events, each
// timestamped. The wire decides what reaches it (wire.ts redacts secrets before `add`).
import type { Transcript, TranscriptEntry } from './types.ts';

export function createTranscript(): Transcript {
  const entries: TranscriptEntry[] = [];
  return {
    entries,
    add(kind, text, tag) {
      entries.push(tag === undefined ? { at: new Date(), kind, text } : { at: new Date(), kind, text, tag });
    },
    toString() {
      return formatEntries(entries);
    },
  };
}

/** One line per entry: a CR or LF inside an entry's text is written as an escape, so line n is entry n. */
export function formatEntries(entries: readonly TranscriptEntry[]): string {
  let out = '';
  for (const { at, kind, text } of entries) {
    const line = text.replace(/[\r\n]/g, (c) => (c === '\r' ? '\\r' : '\\n'));
    out += `${at.toISOString()} ${kind === '*' ? '* ' : `${kind}:`} ${line}\n`;
  }
  return out;
}

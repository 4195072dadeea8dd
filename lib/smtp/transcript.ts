// The session record (RFC 5321 Appendix D style): `C:` client lines, `S:` server lines, `*` events, each
// timestamped. The connection decides what reaches it; secrets are replaced with `<redacted>` before `add`.
import type { Transcript, TranscriptEntry } from './types.ts';

export const REDACTED = '<redacted>';

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

/** How a command line appears in the transcript: AUTH arguments become `<redacted>`. */
export function redactCommand(line: string): string {
  const match = /^(AUTH [A-Za-z0-9_-]+)( .*)?$/i.exec(line);
  if (match) return match[2] ? `${match[1]} ${REDACTED}` : match[1]!;
  return line;
}

/** `<message: 1532 octets, 31 lines>`: what the transcript keeps of the data unless asked for the payload. */
export function describeMessage(octets: number, lines: number): string {
  return `<message: ${octets} octets, ${lines} lines>`;
}

/** Records a message payload line by line (transcriptData), holding at most one partial line between chunks. */
export class PayloadRecorder {
  private carry = '';
  constructor(private readonly add: (kind: 'C', text: string) => void) {}

  push(chunk: Buffer): void {
    const text = this.carry + chunk.toString('utf8');
    const lines = text.split('\r\n');
    this.carry = lines.pop() ?? '';
    for (const line of lines) this.add('C', line);
  }

  end(): void {
    if (this.carry) this.add('C', this.carry);
    this.carry = '';
  }
}

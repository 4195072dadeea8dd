// The session record (RFC 5321 Appendix D style): `C:` client lines, `S:` server lines, `*` events, each
// timestamped. The connection decides what reaches it; secrets are replaced with `<redacted>` before `add`.
import type { Transcript, TranscriptEntry } from './types.ts';

export const REDACTED = '<redacted>';

export function createTranscript(): Transcript {
  const entries: TranscriptEntry[] = [];
  return {
    entries,
    add(kind, text) {
      entries.push({ at: new Date(), kind, text });
    },
    toString() {
      let out = '';
      for (const { at, kind, text } of entries)
        out += `${at.toISOString()} ${kind === '*' ? '* ' : `${kind}:`} ${text}\n`;
      return out;
    },
  };
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
  constructor(private readonly transcript: Transcript) {}

  push(chunk: Buffer): void {
    const text = this.carry + chunk.toString('utf8');
    const lines = text.split('\r\n');
    this.carry = lines.pop() ?? '';
    for (const line of lines) this.transcript.add('C', line);
  }

  end(): void {
    if (this.carry) this.transcript.add('C', this.carry);
    this.carry = '';
  }
}

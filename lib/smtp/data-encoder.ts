// The DATA/BDAT body encoder: every line ending (CRLF, bare LF, bare CR) leaves as CRLF — never a bare CR or
// LF, the SMTP-smuggling defence — and, for DATA, a line starting with "." is dot-stuffed (RFC 5321 §4.5.2)
// and the body ends with CRLF.CRLF. Works on Buffers chunk by chunk with two flags of state, so memory does not
// grow with the message; a chunk that needs no change is passed through without a copy.
import { isAscii } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const TERMINATOR = Buffer.from('.\r\n');
const CRLF_TERMINATOR = Buffer.from('\r\n.\r\n');
const LF_TERMINATOR = Buffer.from('\n.\r\n');

export interface DataEncoderOptions {
  /** Double a leading "." (DATA). BDAT sends the message as is. Default true. */
  dotStuff?: boolean;
  /** End with ".\r\n" after the last line (DATA). Default: the same as dotStuff. */
  terminate?: boolean;
}

/** The encoder's state, usable without streams (the connection calls it directly). */
export class DataEncoding {
  /** Octets of the message with normalised line endings (no stuffing, no terminator): its SIZE. */
  octets = 0;
  /** Line endings in the message (a final one is added if the body lacks it). */
  lines = 0;
  /** An octet above 127 was seen (the message needs BODY=8BITMIME). */
  eightBit = false;
  private readonly dotStuff: boolean;
  private readonly terminate: boolean;
  private atLineStart = true;
  /** The last chunk ended with CR: whether it was CRLF depends on the next chunk's first byte. */
  private pendingCR = false;

  constructor(options: DataEncoderOptions = {}) {
    this.dotStuff = options.dotStuff ?? true;
    this.terminate = options.terminate ?? this.dotStuff;
  }

  /** Encodes one chunk; the result is `input` itself when nothing had to change. */
  encode(input: Uint8Array): Buffer {
    const n = input.length;
    if (n === 0) return EMPTY;
    const buffer = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, n);
    if (this.passesAsIs(buffer)) return buffer;
    return this.rewrite(input);
  }

  /** The common case, checked with native scans (memchr, SIMD) instead of a byte loop: every line ending
   *  already CRLF and, for DATA, no line starting with ".". Updates the state when it returns true. */
  private passesAsIs(input: Buffer): boolean {
    const n = input.length;
    if (this.pendingCR && input[0] !== LF) return false;
    if (this.dotStuff && this.atLineStart && !this.pendingCR && input[0] === DOT) return false;
    let lines = 0;
    for (let lf = input.indexOf(LF); lf >= 0; lf = input.indexOf(LF, lf + 1)) {
      if (lf > 0 ? input[lf - 1] !== CR : !this.pendingCR) return false;
      if (this.dotStuff && input[lf + 1] === DOT) return false;
      lines++;
    }
    for (let cr = input.indexOf(CR); cr >= 0 && cr < n - 1; cr = input.indexOf(CR, cr + 1)) {
      if (input[cr + 1] !== LF) return false;
    }
    const last = input[n - 1];
    this.pendingCR = last === CR;
    this.atLineStart = last === LF;
    if (!this.eightBit && !isAscii(input)) this.eightBit = true;
    this.octets += n;
    this.lines += lines;
    return true;
  }

  /** Any other chunk: one pass that inserts what is missing (CR, LF, a stuffed dot). */
  private rewrite(input: Uint8Array): Buffer {
    const n = input.length;
    const dotStuff = this.dotStuff;
    let atLineStart = this.atLineStart;
    let out: Buffer | undefined;
    let o = 0;
    let run = 0; // start of the input not yet copied to `out`
    let added = 0; // line-ending octets added (counted in the message size; stuffing is not)
    let lines = 0;
    let high = false;
    let i = 0;

    // Insert one byte before input[pos]; `out` is allocated only once something has to change.
    const insert = (pos: number, byte: number) => {
      if (!out) out = Buffer.allocUnsafe(n * 2 + 1); // each input byte causes at most one insertion
      out.set(input.subarray(run, pos), o);
      o += pos - run;
      out[o++] = byte;
      run = pos;
    };

    if (this.pendingCR) {
      this.pendingCR = false;
      lines++;
      atLineStart = true;
      if (input[0] === LF) i = 1;
      else {
        insert(0, LF);
        added++;
      }
    }
    for (; i < n; i++) {
      const b = input[i]!;
      if (b > CR) {
        if (b > 0x7f) high = true;
        if (atLineStart) {
          atLineStart = false;
          if (b === DOT && dotStuff) insert(i, DOT);
        }
      } else if (b === LF) {
        insert(i, CR); // bare LF (an LF after CR is consumed with its CR below)
        added++;
        lines++;
        atLineStart = true;
      } else if (b === CR) {
        if (i + 1 === n) {
          this.pendingCR = true;
        } else if (input[i + 1] === LF) {
          i++;
          lines++;
          atLineStart = true;
        } else {
          insert(i + 1, LF); // bare CR
          added++;
          lines++;
          atLineStart = true;
        }
      } else {
        atLineStart = false;
      }
    }
    this.atLineStart = atLineStart;
    if (high) this.eightBit = true;
    this.octets += n + added;
    this.lines += lines;
    if (!out) return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, n);
    const rest: Buffer = out;
    rest.set(input.subarray(run, n), o);
    return rest.subarray(0, o + n - run);
  }

  /** The end: the missing final line ending, then ".\r\n" when terminating. */
  finish(): Buffer {
    let ending: Buffer = EMPTY;
    if (this.pendingCR) {
      this.pendingCR = false;
      ending = this.terminate ? LF_TERMINATOR : CRLF.subarray(1);
      this.octets += 1;
      this.lines += 1;
    } else if (!this.atLineStart) {
      ending = this.terminate ? CRLF_TERMINATOR : CRLF;
      this.octets += 2;
      this.lines += 1;
    } else if (this.terminate) {
      ending = TERMINATOR;
    }
    this.atLineStart = true;
    return ending;
  }
}

/** Encodes a whole in-memory body in one go (the fast path for prebuilt messages). */
export function encodeData(body: string | Uint8Array, options?: DataEncoderOptions) {
  const encoding = new DataEncoding(options);
  const bytes = encoding.encode(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  const end = encoding.finish();
  return {
    bytes: end.length === 0 ? bytes : Buffer.concat([bytes, end]),
    octets: encoding.octets,
    lines: encoding.lines,
    eightBit: encoding.eightBit,
  };
}

/** A Transform that encodes a message stream for DATA (or BDAT with `{ dotStuff: false }`). */
export function createDataEncoder(
  options?: DataEncoderOptions,
): Transform & { readonly encoding: DataEncoding } {
  const encoding = new DataEncoding(options);
  const transform = new Transform({
    transform(chunk: Buffer | string, _enc: BufferEncoding, callback: TransformCallback) {
      const out = encoding.encode(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      callback(null, out.length > 0 ? out : undefined);
    },
    flush(callback: TransformCallback) {
      const end = encoding.finish();
      callback(null, end.length > 0 ? end : undefined);
    },
  });
  return Object.assign(transform, { encoding });
}

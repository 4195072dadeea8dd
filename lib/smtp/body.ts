// A message body on its way out, as one async generator of encoded chunks that DATA and BDAT both read.
// The encoder (DataEncoding): every line ending (CRLF, bare LF, bare CR) leaves as CRLF — never a bare CR or
// LF, the SMTP-smuggling defence — and, for DATA, a line starting with "." is dot-stuffed (RFC 5321 §4.5.2)
// and the body ends with CRLF.CRLF. It works on Buffers chunk by chunk with two flags of state, so memory does
// not grow with the message; a chunk that needs no change is passed through without a copy. An in-memory
// body is encoded up front (its size is then known: SIZE=, `BDAT n LAST`); a stream as it is read.
import { isAscii } from 'node:buffer';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { SmtpError } from './errors.ts';
import type { MessageBody } from './types.ts';

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
    let atLineStart = this.atLineStart;
    let out: Buffer | undefined;
    let o = 0;
    let run = 0; // start of the input not yet copied to `out`
    let added = 0; // line-ending octets added (counted in the message size; stuffing is not)
    let lines = 0;
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
        if (b > 0x7f) this.eightBit = true;
        if (atLineStart) {
          atLineStart = false;
          if (b === DOT && this.dotStuff) insert(i, DOT);
        }
      } else if (b === CR && i + 1 === n) {
        this.pendingCR = true; // CRLF or a bare CR: the next chunk's first byte says
      } else if (b === CR && input[i + 1] === LF) {
        i++;
        lines++;
        atLineStart = true;
      } else if (b === LF || b === CR) {
        // A bare LF gets its CR before it, a bare CR its LF after it.
        if (b === LF) insert(i, CR);
        else insert(i + 1, LF);
        added++;
        lines++;
        atLineStart = true;
      } else {
        atLineStart = false;
      }
    }
    this.atLineStart = atLineStart;
    this.octets += n + added;
    this.lines += lines;
    if (!out) return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, n);
    (out as Buffer).set(input.subarray(run, n), o);
    return (out as Buffer).subarray(0, o + n - run);
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

export type Source = AsyncIterable<Uint8Array | string>;

function isSource(body: unknown): body is Source {
  return (
    body instanceof Readable || (typeof body === 'object' && body !== null && Symbol.asyncIterator in body)
  );
}

const toBuffer = (chunk: Uint8Array | string) =>
  typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;

/** A body ready to be sent: its encoded bytes, and what is known of them. */
export class OutgoingBody {
  /** Octets on the wire (stuffed and terminated for DATA), when known up front: an in-memory body. */
  readonly length: number | undefined;
  private constructor(
    private readonly input: Buffer[] | Source,
    private readonly encoding: DataEncoding,
    private readonly stage: 'data' | 'bdat',
  ) {
    this.length = Array.isArray(input) ? input.reduce((sum, chunk) => sum + chunk.length, 0) : undefined;
  }

  /** Encodes an in-memory body at once for DATA (dot-stuffed, terminated) or BDAT; a stream is read later. */
  static prepare(body: MessageBody, dotStuff: boolean): OutgoingBody {
    const encoding = new DataEncoding({ dotStuff });
    const stage = dotStuff ? 'data' : 'bdat';
    if (typeof body === 'string' || body instanceof Uint8Array) {
      const chunks = [encoding.encode(toBuffer(body)), encoding.finish()].filter((c) => c.length > 0);
      return new OutgoingBody(chunks, encoding, stage);
    }
    if (isSource(body)) return new OutgoingBody(body, encoding, stage);
    throw new SmtpError('SMTP_INVALID_ARGUMENT', 'body must be a string, bytes or a stream', {
      stage: 'data',
    });
  }

  /** Octets of the normalised message (no stuffing, no terminator): its SIZE. Final once `chunks` is done. */
  get octets(): number {
    return this.encoding.octets;
  }

  /** Line endings in the message. Final once `chunks` is done. */
  get lines(): number {
    return this.encoding.lines;
  }

  /** The body has octets above 127 (known up front for an in-memory body only). */
  get eightBit(): boolean {
    return this.encoding.eightBit;
  }

  /** The encoded bytes, ending with the end of the body (the missing final CRLF; ".\r\n" for DATA). Read
   *  once. A stream that fails is SMTP_BODY (transient): the message cannot be ended without sending a
   *  truncated one, so the caller breaks the connection. */
  async *chunks(): AsyncGenerator<Buffer> {
    if (Array.isArray(this.input)) {
      yield* this.input;
      return;
    }
    try {
      for await (const chunk of this.input) {
        const out = this.encoding.encode(toBuffer(chunk));
        if (out.length > 0) yield out;
      }
    } catch (error) {
      throw new SmtpError('SMTP_BODY', `reading the message body failed: ${(error as Error).message}`, {
        stage: this.stage,
        cause: error,
        transient: true,
      });
    }
    const end = this.encoding.finish();
    if (end.length > 0) yield end;
  }
}

/** Chunks gathered into groups of at least `limit` octets (the last one may be smaller), each flagged `last`:
 *  one write for DATA, one BDAT chunk for BDAT. A group leaves once the chunk after it arrives, so the last
 *  one is known to be last; at most one group and one chunk are held. */
export async function* groups(
  chunks: AsyncIterable<Buffer>,
  limit: number,
): AsyncGenerator<{ parts: Buffer[]; octets: number; last: boolean }> {
  let parts: Buffer[] = [];
  let octets = 0;
  for await (const chunk of chunks) {
    if (octets >= limit) {
      yield { parts, octets, last: false };
      parts = [];
      octets = 0;
    }
    parts.push(chunk);
    octets += chunk.length;
  }
  yield { parts, octets, last: true };
}

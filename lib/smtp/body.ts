// Message bodies on their way out: in-memory bodies encoded up front (their size is then known), streams
// encoded chunk by chunk with backpressure, and what the transcript keeps of either.
import { Readable } from 'node:stream';
import { DataEncoding } from './data-encoder.ts';
import { SmtpError } from './errors.ts';
import { broken, type Session } from './session.ts';
import { describeMessage, PayloadRecorder } from './transcript.ts';
import type { MessageBody, SmtpStage } from './types.ts';

export type Source = AsyncIterable<Uint8Array | string>;
/** An in-memory body is encoded up front: its size is known (SIZE=, BDAT n) and it leaves in one write. */
export type Body = { chunks: Buffer[]; length: number; octets: number; lines: number } | { source: Source };

function isSource(body: unknown): body is Source {
  return (
    body instanceof Readable || (typeof body === 'object' && body !== null && Symbol.asyncIterator in body)
  );
}

/** Encodes an in-memory body for DATA (dot-stuffed, terminated) or BDAT; a stream is kept for later. */
export function prepareBody(body: MessageBody, dotStuff: boolean): { body: Body; eightBit: boolean } {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const encoding = new DataEncoding({ dotStuff });
    const chunks = [
      encoding.encode(typeof body === 'string' ? Buffer.from(body, 'utf8') : body),
      encoding.finish(),
    ];
    const length = chunks[0]!.length + chunks[1]!.length;
    return {
      body: { chunks, length, octets: encoding.octets, lines: encoding.lines },
      eightBit: encoding.eightBit,
    };
  }
  if (isSource(body)) return { body: { source: body }, eightBit: false };
  throw new SmtpError('SMTP_INVALID_ARGUMENT', 'body must be a string, bytes or a stream', { stage: 'data' });
}

/** The transcript's view of an in-memory body: its summary, or its lines with transcriptData. */
export function describe(session: Session, chunks: Buffer[], octets: number, lines: number): void {
  const { wire, options } = session;
  if (!wire.transcript) return;
  if (!options.transcriptData) {
    wire.note('C', describeMessage(octets, lines));
    return;
  }
  const recorder = new PayloadRecorder((kind, text) => wire.note(kind, text));
  for (const chunk of chunks) recorder.push(chunk);
  recorder.end();
}

/** The same for a streamed body, once its end is known. */
export function finishRecord(
  session: Session,
  recorder: PayloadRecorder | undefined,
  end: Buffer,
  encoding: DataEncoding,
) {
  if (recorder) {
    recorder.push(end);
    recorder.end();
  } else {
    session.wire.note('C', describeMessage(encoding.octets, encoding.lines));
  }
}

/** A recorder for the payload lines when the caller asked for them (transcriptData); else undefined. */
export function payloadRecorder(session: Session): PayloadRecorder | undefined {
  const { wire, options } = session;
  return options.transcriptData && wire.transcript
    ? new PayloadRecorder((kind, text) => wire.note(kind, text))
    : undefined;
}

/** Streams a body through the encoder with backpressure; a source error breaks the session (the DATA
 *  cannot be abandoned without delivering a truncated message). Without `onChunk` the encoded bytes are
 *  written here and recorded (returns the recorder); with it, `onChunk` writes them and records them in wire
 *  order (after the BDAT command that carries them), so nothing is recorded here. */
export async function streamBody(
  session: Session,
  source: Source,
  encoding: DataEncoding,
  stage: SmtpStage,
  onChunk?: (chunk: Buffer) => Promise<void>,
): Promise<PayloadRecorder | undefined> {
  const { wire, options } = session;
  const recorder = onChunk ? undefined : payloadRecorder(session);
  // Corked, the many small chunks a MIME composer emits leave as one write (up to the high-water mark).
  const socket = wire.socket;
  if (!onChunk) socket.cork();
  try {
    for await (const chunk of source) {
      const out = encoding.encode(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      if (out.length === 0) continue;
      recorder?.push(out);
      if (onChunk) await onChunk(out);
      else if (!wire.write(out)) {
        socket.uncork();
        await wire.waitDrain(stage, options.timeouts.data);
        socket.cork();
      }
    }
  } catch (error) {
    if (error instanceof SmtpError) throw error;
    throw broken(
      wire,
      new SmtpError('SMTP_BODY', `reading the message body failed: ${(error as Error).message}`, {
        stage,
        cause: error,
        transient: true,
      }),
    );
  } finally {
    if (!onChunk) socket.uncork();
  }
  return recorder;
}

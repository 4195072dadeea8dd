// Where an attachment's bytes come from, and how each createStream call gets them (again).
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * Attachment bytes: in memory, a one-shot stream, a stream factory (called once per createStream, so a
 * retry can re-read it), or a file path (opened anew on every createStream).
 */
export type AttachmentSource = Uint8Array | Readable | (() => Readable) | { path: string };

export function isAttachmentSource(source: unknown): source is AttachmentSource {
  if (source instanceof Uint8Array || typeof source === 'function') return true;
  if (typeof source !== 'object' || source === null) return false;
  return (
    typeof (source as Readable).pipe === 'function' || typeof (source as { path?: unknown }).path === 'string'
  );
}

/** Gives an attachment's content to one createStream call after another. */
export interface SourceOpener {
  /** A stream given as it is: it can be read once only. */
  readonly oneShot: boolean;
  /** A one-shot stream that an earlier call already took: it cannot be opened again. */
  spent(): boolean;
  open(): Buffer | Readable;
}

export function sourceOpener(source: AttachmentSource): SourceOpener {
  if (source instanceof Uint8Array) {
    const bytes = Buffer.isBuffer(source)
      ? source
      : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    return { oneShot: false, spent: () => false, open: () => bytes };
  }
  if (typeof source === 'function') return { oneShot: false, spent: () => false, open: source };
  // fs.ReadStream has a `path` too, but it is a one-shot stream like any other.
  if (!('pipe' in source)) {
    const { path } = source;
    return { oneShot: false, spent: () => false, open: () => createReadStream(path) };
  }
  let taken = false;
  return {
    oneShot: true,
    spent: () => taken,
    open: () => {
      taken = true;
      return source;
    },
  };
}

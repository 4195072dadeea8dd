import { Readable } from 'node:stream';

/**
 * A stream whose source is built on its first read, and never built when it is destroyed unread: a message
 * queued behind others on one SMTP connection then holds no composed bytes (MailComposer starts filling its
 * buffers as soon as its stream exists). `onUnread` releases what was taken for a source never built.
 */
export function lazyStream(build: () => Readable, onUnread?: () => void): Readable {
  let source: Readable | undefined;
  return new Readable({
    read() {
      if (source) {
        source.resume();
        return;
      }
      try {
        source = build();
      } catch (error) {
        this.destroy(error as Error);
        return;
      }
      source.on('data', (chunk: Buffer) => {
        if (!this.push(chunk)) source?.pause();
      });
      source.once('end', () => this.push(null));
      source.once('error', (error) => this.destroy(error));
    },
    destroy(error, callback) {
      if (source) source.destroy();
      else onUnread?.();
      callback(error);
    },
  });
}

// Files the benchmark clients read: prebuilt messages and the large attachment, in a temp dir.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { textBody } from './clients/body.ts';

export const FROM = 'bench@smtpq.test';
export const TO = ['one@sink.test', 'two@sink.test'];

export interface Fixtures {
  dir: string;
  /** Prebuilt message file by body size in octets. */
  prebuilt: Map<number, string>;
  attachment: string;
  remove(): Promise<void>;
}

/** A complete RFC 5322 message (CRLF) whose text body is about `bodyBytes`, as any composer would emit. */
function prebuiltMessage(bodyBytes: number): string {
  const headers = [
    `From: Bench <${FROM}>`,
    `To: ${TO.join(', ')}`,
    `Subject: Benchmark message, ${bodyBytes} octets`,
    'Date: Sat, 28 Nov 2026 10:00:00 +0000',
    `Message-ID: <bench-${bodyBytes}@smtpq.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
  ];
  return `${headers.join('\r\n')}\r\n\r\n${textBody(bodyBytes)}`;
}

/** Random (incompressible) octets, written in 1 MiB pieces so the runner's memory stays flat. */
async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  const piece = 1024 * 1024;
  for (let written = 0; written < bytes; written += piece) {
    if (!out.write(randomBytes(Math.min(piece, bytes - written)))) {
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
  }
  out.end();
  await finished(out);
}

export async function createFixtures(
  bodySizes: readonly number[],
  attachmentBytes: number,
): Promise<Fixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'smtpq-bench-'));
  const prebuilt = new Map<number, string>();
  for (const size of bodySizes) {
    const path = join(dir, `message-${size}.eml`);
    await writeFile(path, prebuiltMessage(size));
    prebuilt.set(size, path);
  }
  const attachment = join(dir, 'attachment.bin');
  await writeRandomFile(attachment, attachmentBytes);
  return { dir, prebuilt, attachment, remove: () => rm(dir, { recursive: true, force: true }) };
}

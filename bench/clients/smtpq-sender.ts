// smtpq's own SMTP client (lib/smtp) on one connection, for the benchmark client smtpq.ts.
// Concurrent send() calls are pipelined by the client; the prebuilt body is the same bytes every time.
import { createReadStream, readFileSync } from 'node:fs';
import type { composeMessage } from '../../lib/message/compose.ts';
import { SmtpConnection } from '../../lib/smtp/index.ts';
import type { Envelope, MessageBody } from '../../lib/smtp/types.ts';
import { textBody } from './body.ts';
import type { Sender } from './measure.ts';
import type { ClientJob } from './protocol.ts';

export async function openSmtpq(job: ClientJob, compose: typeof composeMessage): Promise<Sender> {
  const connection = await SmtpConnection.connect({
    host: job.host,
    port: job.port,
    tls: 'none',
    chunking: job.chunking ?? true,
  });
  const { workload, from, to } = job;
  let message: (index: number) => { envelope: Envelope; body: MessageBody };
  switch (workload.kind) {
    case 'prebuilt': {
      const raw = readFileSync(workload.messageFile);
      const envelope = { from, to, size: raw.length };
      message = () => ({ envelope, body: raw });
      break;
    }
    case 'composed': {
      const text = textBody(workload.bodyBytes);
      message = (index) => {
        const composed = compose({ from, to, subject: `Benchmark message ${index}`, text });
        return { envelope: composed.envelope, body: composed.createStream() };
      };
      break;
    }
    case 'attachment': {
      const { file, source } = workload;
      message = () => {
        const composed = compose({
          from,
          to,
          subject: 'Benchmark attachment',
          text: 'See the attachment.',
          attachments: [
            {
              filename: 'attachment.bin',
              contentType: 'application/octet-stream',
              content: source === 'stream' ? createReadStream(file) : readFileSync(file),
            },
          ],
        });
        return { envelope: composed.envelope, body: composed.createStream() };
      };
    }
  }
  return {
    send: async (index) => {
      const { envelope, body } = message(index);
      const result = await connection.send(envelope, body);
      const refused = result.recipients.filter((recipient) => recipient.status !== 'accepted');
      if (refused.length > 0 || result.data === undefined || result.data.code >= 400) {
        throw new Error(`not accepted: ${JSON.stringify(result)}`);
      }
    },
    close: async () => {
      await connection.quit();
    },
  };
}

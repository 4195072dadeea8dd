// Benchmark client: Nodemailer, pooled on one connection (the peer), in a process of its own.
import { createReadStream, readFileSync } from 'node:fs';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import { textBody } from './body.ts';
import { measure, readJob, type Sender } from './measure.ts';
import type { ClientJob } from './protocol.ts';

async function open(job: ClientJob): Promise<Sender> {
  const options: SMTPPool.Options = {
    pool: true,
    maxConnections: 1,
    // The default (100) would reconnect during the run; the bench measures one reused connection.
    maxMessages: Number.POSITIVE_INFINITY,
    host: job.host,
    port: job.port,
    secure: false,
    ignoreTLS: true,
  };
  const transport = nodemailer.createTransport(options);
  const { workload, from, to } = job;
  const envelope = { from, to };
  let mail: (index: number) => SendMailOptions;
  switch (workload.kind) {
    case 'prebuilt': {
      const raw = readFileSync(workload.messageFile);
      mail = () => ({ envelope, raw });
      break;
    }
    case 'composed': {
      const text = textBody(workload.bodyBytes);
      mail = (index) => ({ from, to, subject: `Benchmark message ${index}`, text });
      break;
    }
    case 'attachment': {
      const { file, source } = workload;
      mail = () => ({
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
    }
  }
  return {
    send: async (index) => {
      const info = await transport.sendMail(mail(index));
      if (info.rejected.length > 0) throw new Error(`rejected: ${info.rejected.join(', ')}`);
    },
    close: async () => transport.close(),
  };
}

await measure(readJob(), open);

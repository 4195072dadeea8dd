// One measured send: a message with a file attachment of the given size (read from disk on every pass),
// signed with DKIM or not, sent through lib/smtp to an in-process sink that discards the data. Prints the
// process's peak RSS and the bytes sent as JSON.
import { generateKeyPairSync } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import { signedBody } from '../../lib/message/dkim.ts';
import { composeMessage } from '../../lib/message/index.ts';
import { SmtpConnection } from '../../lib/smtp/index.ts';

const [file, mode] = process.argv.slice(2) as [string, 'signed' | 'unsigned'];
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = {
  domain: 'bench.test',
  selector: 's',
  privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
};

let received = 0;
const sink = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  size: 0,
  onData(stream, _session, callback) {
    stream.on('data', (chunk: Buffer) => (received += chunk.length));
    stream.on('end', () => callback());
  },
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const port = (sink.server.address() as { port: number }).port;

const composed = composeMessage({
  from: 'a@bench.test',
  to: 'b@example.org',
  subject: 'dkim memory',
  text: 'attached',
  attachments: [{ filename: 'data.bin', content: { path: file } }],
});
const body = mode === 'signed' ? signedBody(() => composed.createStream(), key)() : composed.createStream();
const connection = await SmtpConnection.connect({ host: '127.0.0.1', port, tls: 'none', name: 'bench.test' });
const result = await connection.send({ ...composed.envelope }, body);
await connection.quit();
sink.close();
if (!result.recipients.every((r) => r.status === 'accepted')) throw new Error('not accepted');
console.log(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS, received }));

// Plaintext sessions of lib/smtp with the in-process smtp-server (./smtp-server.ts) for tests that look at
// what one connection does: each test's servers and connections are closed after it.
import { afterEach } from 'vitest';
import { createTranscript, type SmtpClientOptions, SmtpConnection } from '../../lib/smtp/index.ts';
import { startTestSmtpServer, type TestSmtpServer, type TestSmtpServerOptions } from './smtp-server.ts';

/** Registers an afterEach that closes what the returned functions opened (call it at the top of the file). */
export function smtpSessionsPerTest() {
  const servers: TestSmtpServer[] = [];
  const connections: SmtpConnection[] = [];
  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.close();
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  /** A test server without STARTTLS unless `options` says otherwise. */
  async function startServer(options: TestSmtpServerOptions = {}): Promise<TestSmtpServer> {
    const server = await startTestSmtpServer({ tls: 'none', ...options });
    servers.push(server);
    return server;
  }

  /** A server as `startServer` gives it and a plaintext connection to it that records its transcript. */
  async function connect(
    serverOptions: TestSmtpServerOptions = {},
    clientOptions: Partial<SmtpClientOptions> = {},
  ) {
    const server = await startServer(serverOptions);
    const transcript = createTranscript();
    const connection = await SmtpConnection.connect({
      host: '127.0.0.1',
      port: server.port,
      tls: 'none',
      transcript,
      ...clientOptions,
    });
    connections.push(connection);
    return { server, connection, transcript };
  }

  return { startServer, connect };
}

// An in-process `smtp-server` on 127.0.0.1, port 0, for integration tests: plain, STARTTLS or implicit TLS with
// the local test CA, optional AUTH (PLAIN/LOGIN/XOAUTH2) for one fixed user, extension switches, and hooks that
// answer chosen stages or recipients with a 4xx/5xx. Every accepted message is captured with its envelope.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions } from 'smtp-server';
import { type LocalCa, sharedLocalCa } from '../../scripts/local/certs.ts';

/** The one account the test server knows. */
export const TEST_USER = {
  user: 'tester@example.test',
  pass: 'correct horse battery staple',
  accessToken: 'ya29.test-access-token',
} as const;

/** A reply a hook wants the server to send instead of accepting. */
export interface HookReply {
  code: number;
  message: string;
}

export interface HookContext {
  /** The address the command names (MAIL FROM / RCPT TO), or undefined for connect and data. */
  address?: string;
  /** How many times this hook has been asked so far on this server (1 for the first call), all connections. */
  count: number;
  /** How many times this hook has been asked for this address (1 for the first), all connections. */
  countForAddress: number;
  /** The message bytes, for the data hook. */
  raw?: Buffer;
}

export type Hook = (context: HookContext) => HookReply | undefined;

export interface TestSmtpServerOptions {
  /** Default 'starttls' (STARTTLS offered); 'none' hides STARTTLS; 'implicit' is TLS from the first byte. */
  tls?: 'none' | 'starttls' | 'implicit';
  /** Require AUTH with TEST_USER using these mechanisms (true: PLAIN, LOGIN, XOAUTH2). */
  auth?: boolean | Array<'PLAIN' | 'LOGIN' | 'XOAUTH2'>;
  /** Let AUTH happen before TLS (smtp-server refuses it otherwise). */
  allowInsecureAuth?: boolean;
  hidePipelining?: boolean;
  hideSize?: boolean;
  hide8BitMime?: boolean;
  hideSmtpUtf8?: boolean;
  /** Offer DSN (RFC 3461; smtp-server hides it unless asked). */
  dsn?: boolean;
  /** Offer REQUIRETLS (RFC 8689) once the connection is TLS (smtp-server hides it unless asked). */
  requireTls?: boolean;
  /** Message size limit in octets (SIZE advertises it; larger messages get 552 after the data). */
  size?: number;
  /** Answer the stage with the hook's reply when it returns one. */
  hooks?: { connect?: Hook; mail?: Hook; rcpt?: Hook; data?: Hook };
  /** Certificates to serve; default the shared local CA of this process. */
  ca?: LocalCa;
}

export interface ReceivedMessage {
  mailFrom: string;
  rcptTo: string[];
  /** MAIL FROM parameters as the server parsed them (SIZE, BODY, SMTPUTF8 …), keys upper-cased. */
  mailParams: Record<string, string | boolean>;
  /** Each RCPT TO's parameters (NOTIFY, ORCPT …, values xtext-decoded), in rcptTo order, keys upper-cased. */
  rcptParams: Array<Record<string, string | boolean>>;
  /** The message as received, after dot-unstuffing, before any parsing. */
  raw: Buffer;
  secure: boolean;
  user?: string;
}

export interface TestSmtpServer {
  host: string;
  port: number;
  /** The CA that signed the server certificate (PEM), for the client's `ca` option. */
  caPem: string;
  messages: ReceivedMessage[];
  /** Successful logins: the mechanism and the user. */
  logins: Array<{ method: string; user: string }>;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

function replyError({ code, message }: HookReply): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

function counter() {
  let total = 0;
  const perAddress = new Map<string, number>();
  return (address?: string) => {
    total += 1;
    const key = address ?? '';
    const forAddress = (perAddress.get(key) ?? 0) + 1;
    perAddress.set(key, forAddress);
    return { count: total, countForAddress: forAddress };
  };
}

function upperKeys(args: SMTPServerAddress['args']): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  if (args && typeof args === 'object') for (const [k, v] of Object.entries(args)) out[k.toUpperCase()] = v;
  return out;
}

export async function startTestSmtpServer(options: TestSmtpServerOptions = {}): Promise<TestSmtpServer> {
  const ca = options.ca ?? (await sharedLocalCa());
  const tlsMode = options.tls ?? 'starttls';
  const hooks = options.hooks ?? {};
  const count = { connect: counter(), mail: counter(), rcpt: counter(), data: counter() };
  const messages: ReceivedMessage[] = [];
  const logins: TestSmtpServer['logins'] = [];
  const mailParams = new Map<string, Record<string, string | boolean>>();
  let connections = 0;

  const authMethods =
    options.auth === true ? ['PLAIN', 'LOGIN', 'XOAUTH2'] : Array.isArray(options.auth) ? options.auth : [];

  const serverOptions: SMTPServerOptions = {
    secure: tlsMode === 'implicit',
    key: ca.keyPem,
    cert: ca.certPem,
    hideSTARTTLS: tlsMode === 'none',
    hidePIPELINING: options.hidePipelining ?? false,
    hideSize: options.hideSize ?? false,
    hide8BITMIME: options.hide8BitMime ?? false,
    hideSMTPUTF8: options.hideSmtpUtf8 ?? false,
    hideDSN: !options.dsn,
    hideREQUIRETLS: !options.requireTls,
    size: options.size,
    logger: false,
    // A test that left a client connected must not hold close() for smtp-server's default 30 s.
    closeTimeout: 1000,
    banner: 'smtpq test server',
    authOptional: authMethods.length === 0,
    authMethods: authMethods.length > 0 ? authMethods : ['PLAIN'],
    allowInsecureAuth: options.allowInsecureAuth ?? false,
    onConnect(_session, callback) {
      connections += 1;
      const reply = hooks.connect?.({ ...count.connect() });
      callback(reply ? replyError(reply) : null);
    },
    onAuth(auth, _session, callback) {
      const userOk = auth.username === TEST_USER.user;
      const secretOk =
        auth.method === 'XOAUTH2'
          ? auth.accessToken === TEST_USER.accessToken
          : auth.password === TEST_USER.pass;
      if (userOk && secretOk) {
        logins.push({ method: auth.method, user: auth.username ?? '' });
        return callback(null, { user: auth.username });
      }
      if (auth.method === 'XOAUTH2') {
        // RFC 7628 §3.2.2: a failure is a 334 challenge with a JSON status, then 535 after the client's empty line.
        return callback(null, { data: { status: '401', schemes: 'bearer', scope: 'mail' } });
      }
      return callback(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 }));
    },
    onMailFrom(address, session, callback) {
      const reply = hooks.mail?.({ address: address.address, ...count.mail(address.address) });
      if (reply) return callback(replyError(reply));
      mailParams.set(session.id, upperKeys(address.args));
      callback();
    },
    onRcptTo(address, _session, callback) {
      const reply = hooks.rcpt?.({ address: address.address, ...count.rcpt(address.address) });
      callback(reply ? replyError(reply) : null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
          return callback(
            replyError({ code: 552, message: '5.3.4 Error: message exceeds fixed maximum message size' }),
          );
        }
        const reply = hooks.data?.({ raw, ...count.data() });
        if (reply) return callback(replyError(reply));
        messages.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          mailParams: mailParams.get(session.id) ?? {},
          rcptParams: session.envelope.rcptTo.map((r) => upperKeys(r.args)),
          raw,
          secure: session.secure,
          user: typeof session.user === 'string' ? session.user : undefined,
        });
        callback(null, `2.0.0 Ok: queued as m${messages.length}`);
      });
    },
  };

  const server = new SMTPServer(serverOptions);
  server.on('error', () => {}); // connection-level errors (a client that hangs up) are part of the tests
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    host: '127.0.0.1',
    port,
    caPem: ca.caPem,
    messages,
    logins,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

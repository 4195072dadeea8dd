// An SMTP session as a small state machine: connect → greeting → EHLO (HELO on 5xx) → STARTTLS → EHLO again
// → AUTH → ready for any number of transactions → QUIT. One method per step; the transaction itself lives in
// transaction.ts. A session that failed is marked broken and never reused.
import net from 'node:net';
import tls from 'node:tls';
import { maySendCredentials } from './credential-policy.ts';
import { SmtpError } from './errors.ts';
import { noExtensions, parseExtensions } from './extensions.ts';
import { ehloName, type ResolvedOptions, resolveOptions } from './options.ts';
import { chooseMechanism } from './sasl.ts';
import type { Session } from './session.ts';
import { transaction } from './transaction.ts';
import { REDACTED } from './transcript.ts';
import { WriteTurn } from './turn.ts';
import type {
  Envelope,
  Extensions,
  MessageBody,
  Reply,
  SendOptions,
  SendResult,
  SmtpClientOptions,
} from './types.ts';
import { type Socket, Wire } from './wire.ts';

/** At most this many SASL challenges: a server that keeps asking is misbehaving. */
const MAX_AUTH_STEPS = 5;

function tlsOptions(options: ResolvedOptions): tls.ConnectionOptions {
  return {
    host: options.host,
    // SNI carries host names only (RFC 6066 §3); for an IP the certificate is checked against the IP.
    servername: options.servername ?? (net.isIP(options.host) ? undefined : options.host),
    ca: options.ca,
    rejectUnauthorized: options.rejectUnauthorized,
    minVersion: 'TLSv1.2',
  };
}

/** `TLS 1.3 TLS_AES_256_GCM_SHA384, certificate verified for mail.example.org` */
function describeTls(socket: tls.TLSSocket, options: ResolvedOptions): string {
  const protocol = (socket.getProtocol() ?? 'TLS').replace(/^TLSv/, 'TLS ');
  const cipher = socket.getCipher();
  const peer = options.servername ?? options.host;
  const check = socket.authorized
    ? `certificate verified for ${peer}`
    : `certificate NOT verified (${String(socket.authorizationError)})`;
  return `${protocol} ${cipher.standardName ?? cipher.name}, ${check}`;
}

function openSocket(options: ResolvedOptions): Promise<Socket> {
  const { host, port } = options;
  const timeout = options.timeouts.connect;
  return new Promise<Socket>((resolve, reject) => {
    const implicit = options.tls === 'implicit';
    const socket = implicit ? tls.connect({ ...tlsOptions(options), port }) : net.connect({ host, port });
    let tcpUp = false;
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(
        new SmtpError('SMTP_TIMEOUT', `connect to ${host}:${port} not done within ${timeout} ms`, {
          stage: 'connect',
        }),
      );
    }, timeout);
    const onTcp = () => {
      tcpUp = true;
    };
    const onReady = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(
        implicit && tcpUp
          ? new SmtpError('SMTP_TLS', `TLS failed: ${error.message}`, { stage: 'connect', cause: error })
          : new SmtpError('SMTP_CONNECTION', `connect to ${host}:${port} failed: ${error.message}`, {
              stage: 'connect',
              cause: error,
            }),
      );
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeListener('connect', onTcp);
      socket.removeListener(implicit ? 'secureConnect' : 'connect', onReady);
      socket.removeListener('error', onError);
    };
    socket.setNoDelay(true); // pipelined groups must not wait for Nagle
    socket.on('connect', onTcp);
    socket.once(implicit ? 'secureConnect' : 'connect', onReady);
    socket.once('error', onError);
  });
}

export class SmtpConnection {
  private readonly wire: Wire;
  private readonly options: ResolvedOptions;
  private ext: Extensions = noExtensions();
  private readonly session: Session;
  private quitting = false;
  private quitted: Promise<void> | undefined;

  private constructor(wire: Wire, options: ResolvedOptions) {
    this.wire = wire;
    this.options = options;
    const connection = this;
    this.session = {
      wire,
      options,
      turn: new WriteTurn(),
      needsReset: false,
      inFlight: 0,
      get extensions() {
        return connection.ext;
      },
      get secure() {
        return connection.secure;
      },
    };
  }

  /** Connects and runs the session up to "ready": greeting, EHLO, STARTTLS + EHLO, AUTH. */
  static async connect(options: SmtpClientOptions): Promise<SmtpConnection> {
    const resolved = resolveOptions(options);
    const { transcript } = resolved;
    transcript?.add('*', `connecting to ${resolved.host}:${resolved.port} (tls: ${resolved.tls})`);
    let socket: Socket;
    try {
      socket = await openSocket(resolved);
    } catch (error) {
      transcript?.add('*', `error ${(error as SmtpError).code} at connect: ${(error as Error).message}`);
      throw error;
    }
    transcript?.add('*', `connected to ${socket.remoteAddress}:${socket.remotePort}`);
    if (socket instanceof tls.TLSSocket) transcript?.add('*', describeTls(socket, resolved));
    const connection = new SmtpConnection(new Wire(socket, transcript), resolved);
    try {
      await connection.handshake();
    } catch (error) {
      connection.abandon(error);
      throw error;
    }
    return connection;
  }

  /** What the server offers (after STARTTLS: what it offered over TLS). */
  get extensions(): Extensions {
    return this.ext;
  }

  /** TLS is on: implicit, or STARTTLS succeeded. */
  get secure(): boolean {
    return this.wire.socket instanceof tls.TLSSocket && this.wire.socket.encrypted === true;
  }

  /** False once the session failed, timed out, was closed or quit: open a new connection then. */
  get usable(): boolean {
    return !this.wire.broken && !this.quitting;
  }

  /** Epoch ms that no reply wait may run past (used by sendWithRetry); undefined for none. */
  set deadline(value: number | undefined) {
    this.wire.deadline = value;
  }

  /** One message. Resolves with an outcome per recipient while the session stays usable; rejects with an
   *  SmtpError when it breaks (421, timeout, connection loss, protocol error) or the input is invalid. */
  send(envelope: Envelope, body: MessageBody, options?: SendOptions): Promise<SendResult> {
    if (this.quitting) {
      return Promise.reject(new SmtpError('SMTP_CONNECTION', 'connection is quitting', { stage: 'mail' }));
    }
    return transaction(this.session, envelope, body, options);
  }

  rset(): Promise<Reply> {
    return this.simple('RSET', 'rset', () => {
      this.session.needsReset = false;
    });
  }

  noop(): Promise<Reply> {
    return this.simple('NOOP', 'noop');
  }

  /** Waits for queued transactions, says QUIT and closes. Never throws: a dead session is simply closed. */
  quit(): Promise<void> {
    if (this.quitted) return this.quitted;
    if (this.quitting || this.wire.broken) {
      this.close();
      return Promise.resolve();
    }
    this.quitted = this.sayQuit();
    return this.quitted;
  }

  private async sayQuit(): Promise<void> {
    this.quitting = true;
    const { turn } = this.session;
    const carry = await turn.acquire();
    try {
      if (carry) for (const chunk of carry) this.wire.write(chunk);
      await this.wire.command('QUIT', 'quit', this.options.timeouts.command);
    } catch {
      // the server hung up first: nothing left to say
    } finally {
      turn.release();
      this.wire.close('closed after QUIT');
    }
  }

  /** Closes at once, without QUIT; anything waiting rejects with SMTP_CONNECTION. */
  close(): void {
    this.quitting = true;
    this.wire.close('closed by the client');
  }

  private async simple(verb: string, stage: 'rset' | 'noop', onOk?: () => void): Promise<Reply> {
    const { turn } = this.session;
    const carry = await turn.acquire();
    try {
      if (this.wire.failure) throw this.wire.failure;
      if (carry) for (const chunk of carry) this.wire.write(chunk);
      const reply = await this.wire.command(verb, stage, this.options.timeouts.command);
      if (reply.code >= 200 && reply.code < 300) onOk?.();
      return reply;
    } finally {
      turn.release();
    }
  }

  private async handshake(): Promise<void> {
    const { timeouts } = this.options;
    const greeting = await this.wire.expect('greeting', timeouts.greeting);
    if (greeting.code !== 220) throw SmtpError.fromReply('greeting', greeting, 'server refused the session');
    await this.hello();
    if (this.options.tls === 'starttls') await this.startTls();
    if (this.options.auth) await this.authenticate();
  }

  /** EHLO; HELO when EHLO gets a 5xx (a server without ESMTP). */
  private async hello(): Promise<void> {
    const { timeouts } = this.options;
    // No usable host name: our address as the server sees it (RFC 5321 §4.1.4). localAddress is only missing
    // on a socket already closed, where the command fails anyway; the loopback literal keeps the line well-formed.
    const name = this.options.name ?? ehloName(this.wire.socket.localAddress ?? '') ?? '[127.0.0.1]';
    const ehlo = await this.wire.command(`EHLO ${name}`, 'ehlo', timeouts.command);
    if (ehlo.code === 250) {
      this.ext = parseExtensions(ehlo);
      return;
    }
    if (ehlo.code < 500) throw SmtpError.fromReply('ehlo', ehlo);
    const helo = await this.wire.command(`HELO ${name}`, 'helo', timeouts.command);
    if (helo.code !== 250) throw SmtpError.fromReply('helo', helo);
    this.ext = noExtensions();
  }

  private async startTls(): Promise<void> {
    const { requireTLS, timeouts } = this.options;
    if (!this.ext.starttls) {
      if (requireTLS) {
        throw new SmtpError('SMTP_TLS_REQUIRED', 'TLS is required and the server does not offer STARTTLS', {
          stage: 'starttls',
        });
      }
      this.wire.note('*', 'STARTTLS not offered: continuing without TLS');
      return;
    }
    const reply = await this.wire.command('STARTTLS', 'starttls', timeouts.command);
    if (reply.code !== 220) {
      if (requireTLS) {
        throw new SmtpError('SMTP_TLS_REQUIRED', `TLS is required and STARTTLS was refused: ${reply.code}`, {
          stage: 'starttls',
          reply,
        });
      }
      this.wire.note('*', `STARTTLS refused (${reply.code}): continuing without TLS`);
      return;
    }
    const socket = await this.wire.upgrade(tlsOptions(this.options), timeouts.command);
    this.wire.note('*', describeTls(socket, this.options));
    // RFC 3207 §4.2: everything learnt before TLS is forgotten and asked again.
    this.ext = noExtensions();
    await this.hello();
  }

  private async authenticate(): Promise<void> {
    const { auth, authMethod, allowInsecureAuth, timeouts } = this.options;
    if (!auth) return;
    const link = { secure: this.secure, allowInsecureAuth, peerAddress: this.wire.socket.remoteAddress };
    if (!maySendCredentials(link)) {
      throw new SmtpError(
        'SMTP_TLS_REQUIRED',
        'refusing to send credentials over an unencrypted connection (set allowInsecureAuth to allow it)',
        { stage: 'auth' },
      );
    }
    const mechanism = chooseMechanism(auth, this.ext.auth, authMethod);
    if (!mechanism) {
      const offered = this.ext.auth.join(' ') || 'none';
      throw new SmtpError('SMTP_AUTH', `no usable AUTH mechanism (server offers: ${offered})`, {
        stage: 'auth',
      });
    }
    const initial = mechanism.start();
    const verb = `AUTH ${mechanism.name}`;
    let reply = await this.wire.command(
      initial ? `${verb} ${initial.length > 0 ? initial.toString('base64') : '='}` : verb,
      'auth',
      timeouts.command,
    );
    for (let step = 0; reply.code === 334; step++) {
      if (step === MAX_AUTH_STEPS) {
        throw new SmtpError('SMTP_PROTOCOL', 'protocol error: too many AUTH challenges', {
          stage: 'auth',
          reply,
        });
      }
      const challenge = Buffer.from(reply.lines[0] ?? '', 'base64');
      const response = mechanism.next(challenge).toString('base64');
      reply = await this.wire.command(response, 'auth', timeouts.command, REDACTED);
    }
    if (reply.code !== 235) {
      throw new SmtpError(
        'SMTP_AUTH',
        `authentication failed: ${reply.code} ${reply.lines[0] ?? ''}`.trimEnd(),
        {
          stage: 'auth',
          reply,
        },
      );
    }
  }

  /** After a failed handshake: a polite QUIT when the wire still works, then the socket is gone. */
  private abandon(error: unknown): void {
    if (!this.wire.broken) {
      try {
        this.wire.note('C', 'QUIT');
        this.wire.write('QUIT\r\n');
      } catch {
        // already closed
      }
    }
    this.wire.fail(
      error instanceof SmtpError
        ? error
        : new SmtpError('SMTP_CONNECTION', String(error), { stage: 'connect', cause: error }),
    );
  }
}

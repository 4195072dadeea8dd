// An SMTP connection (RFC 5321's "session"): connect → greeting → EHLO (HELO on 5xx) → STARTTLS → EHLO again
// → AUTH → ready for any number of transactions → QUIT. One method per step; its life is one state on the wire
// (ConnectionState, types.ts). Each transaction's shape is chosen here: BDAT when the server offers CHUNKING
// and PIPELINING, else DATA, pipelined when it can be. A connection that failed is broken and never reused.
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { authenticate } from './auth.ts';
import { bdatTransaction } from './bdat-transaction.ts';
import { OutgoingBody } from './body.ts';
import { dataTransaction } from './data-transaction.ts';
import { envelopeLines } from './envelope.ts';
import { SmtpError } from './errors.ts';
import { noExtensions, parseExtensions } from './extensions.ts';
import { ehloName, type ResolvedOptions, resolveOptions } from './options.ts';
import type { TransactionContext } from './pipeline.ts';
import { isPermanent, isPositive } from './reply.ts';
import { describeTls, openSocket, type Socket, tlsOptions } from './socket.ts';
import type {
  ConnectionState,
  Envelope,
  Extensions,
  MessageBody,
  Reply,
  SendOptions,
  SendResult,
  SmtpClientOptions,
} from './types.ts';
import { Wire } from './wire.ts';

export class SmtpConnection {
  private readonly wire: Wire;
  private readonly options: ResolvedOptions;
  private ext: Extensions = noExtensions();
  private readonly context: TransactionContext;
  /** The QUIT under way, for a second quit() to wait on. */
  private quitting: Promise<void> | undefined;

  private constructor(wire: Wire, options: ResolvedOptions) {
    this.wire = wire;
    this.options = options;
    this.context = { wire, options, needsReset: false, inFlight: 0 };
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
      connection.wire.enter('ready');
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

  /** Where the connection is in its life: `ready` until it quits, is closed or breaks. */
  get state(): ConnectionState {
    return this.wire.state;
  }

  /** False once the session failed, timed out, was closed or quit: open a new connection then. */
  get usable(): boolean {
    return this.wire.state === 'ready';
  }

  /** Epoch ms that no reply wait may run past (used by sendWithRetry); undefined for none. */
  set deadline(value: number | undefined) {
    this.wire.deadline = value;
  }

  /** One message. Resolves with an outcome per recipient while the session stays usable; rejects with an
   *  SmtpError when it breaks (421, timeout, connection loss, protocol error) or the input is invalid. */
  send(envelope: Envelope, body: MessageBody, options: SendOptions = {}): Promise<SendResult> {
    if (this.wire.state === 'quitting' || this.wire.state === 'closed') {
      return Promise.reject(new SmtpError('SMTP_CONNECTION', 'connection is quitting', { stage: 'mail' }));
    }
    return this.transaction(envelope, body, options.tag);
  }

  rset(): Promise<Reply> {
    return this.simple('RSET', 'rset', () => {
      this.context.needsReset = false;
    });
  }

  noop(): Promise<Reply> {
    return this.simple('NOOP', 'noop');
  }

  /** Waits for queued transactions, says QUIT and closes. Never throws: a dead session is simply closed. */
  quit(): Promise<void> {
    if (this.quitting) return this.quitting;
    if (this.wire.state !== 'ready') {
      this.close();
      return Promise.resolve();
    }
    this.wire.enter('quitting');
    this.quitting = this.sayQuit();
    return this.quitting;
  }

  /** Closes at once, without QUIT; anything waiting rejects with SMTP_CONNECTION. */
  close(): void {
    this.wire.close('closed by the client');
  }

  /** A stream body belongs to the transaction: read to the end, or destroyed when it is not needed (MAIL or
   *  every RCPT refused, invalid envelope, broken session), so that a file or socket behind it is released. */
  private async transaction(envelope: Envelope, body: MessageBody, tag: string | undefined) {
    try {
      if (this.wire.failure) throw this.wire.failure;
      const pipelined = this.options.pipelining && this.ext.pipelining;
      // BDAT only with PIPELINING too: without it every chunk would cost a round trip, which DATA does not.
      const chunked = pipelined && this.options.chunking && this.ext.chunking;
      const outgoing = OutgoingBody.prepare(body, !chunked);
      const size = outgoing.length === undefined ? undefined : outgoing.octets;
      const link = { tls: this.secure, verified: this.options.rejectUnauthorized };
      const lines = envelopeLines(envelope, this.ext, { size, eightBit: outgoing.eightBit }, link);
      for (const note of lines.notes) this.wire.transcript?.add('*', note, tag);
      return chunked
        ? await bdatTransaction(this.context, lines, outgoing, tag)
        : await dataTransaction(this.context, lines, outgoing, pipelined, tag);
    } finally {
      if (body instanceof Readable && !body.readableEnded && !body.destroyed) body.destroy();
    }
  }

  private async sayQuit(): Promise<void> {
    const endTurn = await this.wire.turn(undefined);
    try {
      await this.wire.command('QUIT', 'quit', this.options.timeouts.command);
    } catch {
      // the server hung up first: nothing left to say
    } finally {
      endTurn();
      this.wire.close('closed after QUIT');
    }
  }

  private async simple(verb: string, stage: 'rset' | 'noop', onOk?: () => void): Promise<Reply> {
    const endTurn = await this.wire.turn(undefined);
    try {
      if (this.wire.failure) throw this.wire.failure;
      const reply = await this.wire.command(verb, stage, this.options.timeouts.command);
      if (isPositive(reply)) onOk?.();
      return reply;
    } finally {
      endTurn();
    }
  }

  private async handshake(): Promise<void> {
    const { timeouts } = this.options;
    const greeting = await this.wire.expect('greeting', timeouts.greeting);
    if (greeting.code !== 220) throw SmtpError.fromReply('greeting', greeting, 'server refused the session');
    await this.hello();
    if (this.options.tls === 'starttls') await this.startTls();
    if (this.options.auth) await authenticate(this.wire, this.options, this.ext.auth, this.secure);
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
    if (!isPermanent(ehlo)) throw SmtpError.fromReply('ehlo', ehlo);
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

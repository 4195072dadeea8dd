// The byte pipe under a connection, and the connection's life. Writes go out one transaction at a time (the
// write turn, in call order); the end of a pipelined message is carried into the next write, so that it
// leaves with the next transaction's commands or the QUIT (RFC 2920 §3.1: one round trip per message).
// Replies are read by Replies (replies.ts). Every failure — socket error, close, timeout, malformed or
// unsolicited reply, 421 — breaks the wire for good with one SmtpError that rejects everything waiting
// (lettre's habit: never reuse a broken link). Every C: and S: transcript line is written here, redacted here.
import type net from 'node:net';
import type tls from 'node:tls';
import { SmtpError } from './errors.ts';
import { Replies, type Waiting } from './replies.ts';
import { replyLines } from './reply.ts';
import { type Socket, secured, tlsOver } from './socket.ts';
import type { ConnectionState, Reply, SmtpStage, Transcript } from './types.ts';

export const REDACTED = '<redacted>';

/** How a command line appears in the transcript: AUTH arguments become `<redacted>`. */
export function redactCommand(line: string): string {
  const match = /^(AUTH [A-Za-z0-9_-]+)( .*)?$/i.exec(line);
  if (match) return match[2] ? `${match[1]} ${REDACTED}` : match[1]!;
  return line;
}

/** Every transition of ConnectionState (types.ts); `end` and `enter` allow no other. */
const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  opening: ['ready', 'closed', 'broken'],
  ready: ['quitting', 'closed', 'broken'],
  quitting: ['closed', 'broken'],
  closed: [],
  broken: [],
};

export class Wire {
  socket: Socket;
  /** The tag of the transaction holding the write turn: its lines are marked with it (SendOptions.tag). */
  tag: string | undefined;
  readonly transcript: Transcript | undefined;
  private current: ConnectionState = 'opening';
  /** Why the wire can no longer be used (state closed or broken). */
  private ended: SmtpError | undefined;
  private readonly replies = new Replies({
    received: (reply, head) => this.record(reply, head),
    broken: (error) => this.fail(error),
  });
  /** Undefined while nobody holds the write turn; else the transactions waiting for it, in call order. */
  private turnQueue: Array<() => void> | undefined;
  /** The end of a pipelined message, to leave with the next write (or at once when nobody is next). */
  private carried: Buffer[] | undefined;
  private drainWaiter: ((error: SmtpError) => void) | undefined;

  constructor(socket: Socket, transcript: Transcript | undefined) {
    this.socket = socket;
    this.transcript = transcript;
    this.attach(socket);
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** The reason this wire can no longer be used, once it is closed or broken. */
  get failure(): SmtpError | undefined {
    return this.ended;
  }

  get broken(): boolean {
    return this.ended !== undefined;
  }

  /** Epoch ms that no reply wait may run past (sendWithRetry's deadline). */
  set deadline(value: number | undefined) {
    this.replies.deadline = value;
  }

  /** opening → ready (the handshake is done), ready → quitting (QUIT is under way). */
  enter(state: 'ready' | 'quitting'): void {
    if (!TRANSITIONS[this.current].includes(state)) {
      throw new SmtpError('SMTP_CONNECTION', `connection is ${this.current}`, { stage: this.replies.stage });
    }
    this.current = state;
  }

  /** Waits for this caller's turn to write; returns the function that ends the turn (calling it again does
   *  nothing). A turn that ends with the end of a message carried and nobody next writes it at once. */
  async turn(tag: string | undefined): Promise<() => void> {
    if (this.turnQueue) await new Promise<void>((resolve) => this.turnQueue!.push(resolve));
    else this.turnQueue = [];
    this.tag = tag;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.tag = undefined;
      const next = this.turnQueue!.shift();
      if (next) return next();
      this.turnQueue = undefined;
      if (this.carried && !this.ended) this.write();
    };
  }

  /** Keeps the end of a pipelined message for the next write: the next transaction's group, or QUIT. */
  carry(end: Buffer[]): void {
    this.carried = end;
  }

  /** Writes the carried end of the last message, if any, and `parts` in one write (corked); false means the
   *  socket's buffer is full (await waitDrain). */
  write(...parts: Array<Buffer | string>): boolean {
    if (this.ended) throw this.ended;
    const all = this.carried ? [...this.carried, ...parts] : parts;
    this.carried = undefined;
    if (all.length === 1) return this.socket.write(all[0]!);
    let flowing = true;
    this.socket.cork();
    try {
      for (const part of all) flowing = this.socket.write(part);
    } finally {
      this.socket.uncork();
    }
    return flowing;
  }

  note(kind: 'C' | '*', text: string): void {
    this.transcript?.add(kind, text, this.tag);
  }

  /** The next reply, in order, with the stage's timeout counted from when it becomes the oldest awaited. */
  expect(stage: SmtpStage, timeout: number, beforeTls = false): Promise<Reply> {
    if (this.ended) return Promise.reject(this.ended);
    return this.replies.expect(stage, timeout, beforeTls, this.tag);
  }

  /** One command line and its reply. The transcript gets `shown`: by default the line with any AUTH
   *  argument redacted, so no call site can leak one; a SASL continuation passes REDACTED itself. */
  command(line: string, stage: SmtpStage, timeout: number, shown = redactCommand(line)): Promise<Reply> {
    this.note('C', shown);
    this.write(`${line}\r\n`);
    return this.expect(stage, timeout, stage === 'starttls');
  }

  /** Resolves when the socket accepts more data; fails the wire if it does not within `timeout`. */
  waitDrain(stage: SmtpStage, timeout: number): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    this.replies.lastStage = stage;
    return new Promise<void>((resolve, reject) => {
      const stalled = `${stage}: no data accepted for ${timeout} ms`;
      const timer = setTimeout(
        () => this.fail(new SmtpError('SMTP_TIMEOUT', stalled, { stage })),
        this.replies.clamp(timeout),
      );
      const settle = (error?: SmtpError) => {
        clearTimeout(timer);
        this.socket.removeListener('drain', onDrain);
        this.drainWaiter = undefined;
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => settle();
      this.drainWaiter = settle;
      this.socket.once('drain', onDrain);
    });
  }

  /** STARTTLS's second half: hands the TCP socket to TLS and resumes on the encrypted stream. */
  async upgrade(options: tls.ConnectionOptions, timeout: number): Promise<tls.TLSSocket> {
    if (this.ended) throw this.ended;
    const raw = this.socket as net.Socket;
    // From here the TLS socket reports errors and close; the TCP socket's own listeners would misname them.
    raw.removeListener('error', this.onError);
    raw.removeListener('close', this.onClose);
    raw.on('error', () => {});
    const secure = tlsOver(raw, options);
    // TLS owns the TCP stream now: a plain byte injected from here on can only break the handshake.
    raw.removeListener('data', this.onPlainAfterStartTls);
    this.socket = secure;
    try {
      await secured(secure, 'starttls', this.replies.clamp(timeout));
    } catch (error) {
      this.fail(error as SmtpError);
      throw error;
    }
    this.attach(secure);
    return secure;
  }

  /** Breaks the wire: rejects everything waiting with `error`, destroys the socket. Idempotent. */
  fail(error: SmtpError, noted = true): void {
    this.end('broken', error, noted);
  }

  /** Ends the connection on purpose (after QUIT, or by the caller). */
  close(reason: string): void {
    if (this.ended) return;
    this.note('*', reason);
    const error = new SmtpError('SMTP_CONNECTION', `connection ${reason}`, {
      stage: this.replies.lastStage,
      transient: true,
    });
    this.end('closed', error, false);
  }

  /** The one way into `closed` or `broken`: nothing waiting survives it, and the socket is destroyed. */
  private end(state: 'closed' | 'broken', error: SmtpError, noted: boolean): void {
    if (this.ended) return;
    this.ended = error;
    this.current = state;
    this.carried = undefined;
    if (noted) {
      const tag = this.replies.oldestTag ?? this.tag;
      this.transcript?.add('*', `error ${error.code} at ${error.stage}: ${error.message}`, tag);
    }
    this.replies.rejectAll(error);
    this.drainWaiter?.(error);
    this.socket.destroy();
  }

  private record(reply: Reply, head: Waiting | undefined): void {
    if (!this.transcript) return;
    // SASL challenges can carry secrets (and XOAUTH2 error details): never recorded.
    if (head?.stage === 'auth' && reply.code === 334) this.transcript.add('S', `334 ${REDACTED}`);
    else for (const line of replyLines(reply)) this.transcript.add('S', line, head?.tag);
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.ended) return;
    if (!this.replies.receive(chunk)) return;
    // The 220 to STARTTLS: the next byte in plain text would be injected (see onPlainAfterStartTls).
    this.socket.removeListener('data', this.onData);
    this.socket.on('data', this.onPlainAfterStartTls);
  };

  /** Plain bytes between the STARTTLS 220 and the TLS takeover: the response injection, caught a little
   *  later (replies.ts catches the ones in the same read as the 220). */
  private readonly onPlainAfterStartTls = (): void => {
    this.fail(
      new SmtpError('SMTP_PROTOCOL', 'protocol error: data after the STARTTLS 220, before TLS', {
        stage: 'starttls',
      }),
    );
  };

  private readonly onError = (error: Error & { code?: string }): void => {
    const message = `connection error: ${error.message}`;
    this.fail(
      new SmtpError('SMTP_CONNECTION', message, { stage: this.replies.stage, cause: error, transient: true }),
    );
  };

  private readonly onClose = (): void => {
    this.fail(
      new SmtpError('SMTP_CONNECTION', 'connection closed by the server', {
        stage: this.replies.stage,
        transient: true,
      }),
    );
  };
}

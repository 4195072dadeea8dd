// The byte pipe under a connection: writes commands, matches each reply to the oldest command still waiting
// for one (so pipelined replies pair up in order), runs the timeout of that oldest command, and turns every
// failure — socket error, close, timeout, malformed or unsolicited reply, 421 — into one SmtpError that
// rejects everything waiting and leaves the wire broken for good (lettre's habit: never reuse a broken link).
import type net from 'node:net';
import tls from 'node:tls';
import { SmtpError } from './errors.ts';
import { ReplyParser, replyLines } from './reply.ts';
import { REDACTED, redactCommand } from './transcript.ts';
import type { Reply, SmtpStage, Transcript } from './types.ts';

interface Waiting {
  stage: SmtpStage;
  timeout: number;
  resolve(reply: Reply): void;
  reject(error: SmtpError): void;
  /** STARTTLS: a 220 must be the last byte the server sends in plain text (RFC 3207 §6). */
  beforeTls: boolean;
  /** The transaction that sent the command: its reply lines carry the same transcript tag. */
  tag: string | undefined;
}

export type Socket = net.Socket | tls.TLSSocket;

/** A handshake failure (certificate, protocol version, peer hung up mid-handshake). */
function tlsFailure(stage: SmtpStage, error: Error & { code?: string }): SmtpError {
  return new SmtpError('SMTP_TLS', `TLS failed: ${error.message}`, { stage, cause: error });
}

export class Wire {
  socket: Socket;
  /** Set once: the reason this wire can no longer be used. */
  failure: SmtpError | undefined;
  /** Epoch ms that no reply wait may run past (sendWithRetry's deadline). */
  deadline: number | undefined;
  /** The tag of the transaction holding the write turn: its lines are marked with it (SendOptions.tag). */
  tag: string | undefined;
  readonly transcript: Transcript | undefined;
  private parser = new ReplyParser();
  private readonly waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerMs = 0;
  private drainWaiter: { resolve(): void; reject(error: SmtpError): void } | undefined;
  private closing = false;
  /** The stage of the last command sent: names failures that happen while nothing is awaited. */
  private lastStage: SmtpStage = 'greeting';

  constructor(socket: Socket, transcript: Transcript | undefined) {
    this.socket = socket;
    this.transcript = transcript;
    this.attach(socket);
  }

  get broken(): boolean {
    return this.failure !== undefined;
  }

  /** Writes bytes (a command group, body data); false means the socket's buffer is full (await drain). */
  write(data: Buffer | string): boolean {
    if (this.failure) throw this.failure;
    return this.socket.write(data);
  }

  note(kind: 'C' | '*', text: string): void {
    this.transcript?.add(kind, text, this.tag);
  }

  /** The next reply, in order, with the stage's timeout counted from when it becomes the oldest awaited. */
  expect(stage: SmtpStage, timeout: number, beforeTls = false): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    this.lastStage = stage;
    const reply = new Promise<Reply>((resolve, reject) => {
      this.waiting.push({ stage, timeout, resolve, reject, beforeTls, tag: this.tag });
      if (this.waiting.length === 1) this.armTimer();
    });
    // Pipelined replies are awaited one after another; when the wire fails they all reject at once, and the
    // ones nobody awaits any more must not surface as unhandled rejections.
    reply.catch(() => {});
    return reply;
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
    if (this.failure) return Promise.reject(this.failure);
    this.lastStage = stage;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.fail(new SmtpError('SMTP_TIMEOUT', `${stage}: no data accepted for ${timeout} ms`, { stage })),
        this.clamp(timeout),
      );
      const done = () => {
        clearTimeout(timer);
        this.socket.removeListener('drain', onDrain);
        this.drainWaiter = undefined;
      };
      const onDrain = () => {
        done();
        resolve();
      };
      this.drainWaiter = {
        resolve: onDrain,
        reject: (error) => {
          done();
          reject(error);
        },
      };
      this.socket.once('drain', onDrain);
    });
  }

  /** STARTTLS's second half: hands the TCP socket to TLS and resumes on the encrypted stream. */
  async upgrade(options: tls.ConnectionOptions, timeout: number): Promise<tls.TLSSocket> {
    if (this.failure) throw this.failure;
    const raw = this.socket;
    // From here the TLS socket reports errors and close; the TCP socket's own listeners would misname them.
    raw.removeListener('error', this.onError);
    raw.removeListener('close', this.onClose);
    raw.on('error', () => {});
    const secure = tls.connect({ ...options, socket: raw });
    // TLS owns the TCP stream now: a plain byte injected from here on can only break the handshake.
    raw.removeListener('data', this.onPlainAfterStartTls);
    this.socket = secure;
    try {
      await secured(secure, 'starttls', this.clamp(timeout));
    } catch (error) {
      this.fail(error as SmtpError);
      throw error;
    }
    this.attach(secure);
    return secure;
  }

  /** Breaks the wire: rejects everything waiting with `error`, destroys the socket. Idempotent. */
  fail(error: SmtpError, noted = true): void {
    if (this.failure) return;
    this.failure = error;
    if (noted)
      this.transcript?.add(
        '*',
        `error ${error.code} at ${error.stage}: ${error.message}`,
        this.waiting[0]?.tag ?? this.tag,
      );
    this.stopTimer();
    const waiting = this.waiting.splice(0);
    for (const w of waiting) w.reject(error);
    this.drainWaiter?.reject(error);
    this.socket.destroy();
  }

  /** Ends the connection on purpose (after QUIT, or by the caller). */
  close(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    if (!this.failure) this.note('*', reason);
    this.fail(
      new SmtpError('SMTP_CONNECTION', `connection ${reason}`, { stage: this.lastStage, transient: true }),
      false,
    );
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private detach(socket: Socket): void {
    socket.removeListener('data', this.onData);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failure) return;
    let replies: Reply[];
    try {
      replies = this.parser.push(chunk, this.waiting[0]?.stage ?? this.lastStage);
    } catch (error) {
      this.fail(error as SmtpError);
      return;
    }
    for (let i = 0; i < replies.length; i++) {
      const reply = replies[i]!;
      const head = this.waiting.shift();
      if (this.transcript) {
        // SASL challenges can carry secrets (and XOAUTH2 error details): never recorded.
        if (head?.stage === 'auth' && reply.code === 334) this.transcript.add('S', `334 ${REDACTED}`);
        else for (const line of replyLines(reply)) this.transcript.add('S', line, head?.tag);
      }
      if (!head) {
        // RFC 5321 §3.8: a server may announce 421 at any time and close; anything else unasked is a violation.
        const message = reply.code === 421 ? 'server closing the connection' : 'reply to no command';
        this.fail(
          reply.code === 421
            ? SmtpError.fromReply(this.lastStage, reply, message)
            : new SmtpError('SMTP_PROTOCOL', `protocol error: ${message}: ${reply.code}`, {
                stage: this.lastStage,
                reply,
              }),
        );
        return;
      }
      if (reply.code === 421) {
        this.waiting.unshift(head);
        this.fail(SmtpError.fromReply(head.stage, reply, 'server closing the connection'));
        return;
      }
      if (head.beforeTls && reply.code === 220) {
        // Anything after the 220 was sent before the handshake: the STARTTLS response injection (RFC 3207 §6,
        // "NO STARTTLS", USENIX Security 2021). It must never be read as a reply: fail instead.
        if (i < replies.length - 1 || this.parser.buffered > 0) {
          this.waiting.unshift(head);
          this.fail(
            new SmtpError('SMTP_PROTOCOL', 'protocol error: data after the STARTTLS 220, before TLS', {
              stage: 'starttls',
              reply,
            }),
          );
          return;
        }
        this.detach(this.socket);
        this.socket.on('data', this.onPlainAfterStartTls);
        this.stopTimer();
        head.resolve(reply);
        return;
      }
      head.resolve(reply);
    }
    // Only a complete reply moves the clock: the next awaited reply's wait starts now. Part of a reply
    // does not extend the wait (a server trickling a byte at a time must not keep a 500 ms timeout alive
    // for minutes).
    if (replies.length > 0) this.armTimer();
  };

  /** Plain bytes between the STARTTLS 220 and the TLS takeover: the same injection, caught a little later. */
  private readonly onPlainAfterStartTls = (): void => {
    this.fail(
      new SmtpError('SMTP_PROTOCOL', 'protocol error: data after the STARTTLS 220, before TLS', {
        stage: 'starttls',
      }),
    );
  };

  private readonly onError = (error: Error & { code?: string }): void => {
    const stage = this.waiting[0]?.stage ?? this.lastStage;
    this.fail(
      new SmtpError('SMTP_CONNECTION', `connection error: ${error.message}`, {
        stage,
        cause: error,
        transient: true,
      }),
    );
  };

  private readonly onClose = (): void => {
    const stage = this.waiting[0]?.stage ?? this.lastStage;
    this.fail(
      new SmtpError('SMTP_CONNECTION', 'connection closed by the server', { stage, transient: true }),
    );
  };

  private readonly onTimeout = (): void => {
    const head = this.waiting[0];
    if (!head) return;
    this.fail(
      new SmtpError('SMTP_TIMEOUT', `no reply to ${head.stage} within ${this.timerMs} ms`, {
        stage: head.stage,
      }),
    );
  };

  private clamp(ms: number): number {
    return this.deadline === undefined ? ms : Math.max(1, Math.min(ms, this.deadline - Date.now()));
  }

  private armTimer(): void {
    const head = this.waiting[0];
    if (!head) {
      this.stopTimer();
      return;
    }
    const ms = this.clamp(head.timeout);
    if (this.timer && this.timerMs === ms) {
      this.timer.refresh();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerMs = ms;
    this.timer = setTimeout(this.onTimeout, ms);
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Waits for a TLS handshake: SMTP_TLS on failure, SMTP_TIMEOUT if it takes longer than `timeout`. */
export function secured(socket: tls.TLSSocket, stage: SmtpStage, timeout: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new SmtpError('SMTP_TIMEOUT', `TLS handshake not done within ${timeout} ms`, { stage }));
    }, timeout);
    const onSecure = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(tlsFailure(stage, error));
    };
    const onClose = () => onError(new Error('connection closed during the TLS handshake'));
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeListener('secureConnect', onSecure);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
    };
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

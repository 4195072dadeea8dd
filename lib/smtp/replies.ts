// The read side of the wire: bytes → replies (ReplyParser, RFC 5321 §4.2; enhanced codes RFC 3463), each
// reply matched to the oldest command still waiting for one, so pipelined replies pair up in order, and the
// clock of that oldest command. What breaks the rules — malformed bytes, a reply to no command, a 421, bytes
// after the STARTTLS 220 — is handed to the wire as the SmtpError that breaks it.
import { SmtpError } from './errors.ts';
import type { Reply, SmtpStage } from './types.ts';

/** RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets; we tolerate far more before calling it an attack. */
export const MAX_REPLY_LINE = 4096;
/** A multi-line reply with more lines than this is treated as a protocol violation (EHLO sends ~15). */
export const MAX_REPLY_LINES = 256;

const LF = 0x0a;
const CR = 0x0d;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

export class ReplyParser {
  /** Bytes of a line whose LF has not arrived yet. */
  private partial: Buffer | undefined;
  /** Lines of a multi-line reply whose last line has not arrived yet. */
  private lines: string[] = [];
  private code = 0;
  private failed: SmtpError | undefined;

  /** Octets held for a reply that is not complete yet (0 between replies). */
  get buffered(): number {
    return (this.partial?.length ?? 0) + (this.lines.length > 0 ? 1 : 0);
  }

  /** Parses every reply completed by `chunk`. `stage` only labels the error if the bytes are malformed. */
  push(chunk: Uint8Array, stage: SmtpStage = 'greeting'): Reply[] {
    if (this.failed) throw this.failed;
    let data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.partial) {
      data = Buffer.concat([this.partial, data]);
      this.partial = undefined;
    }
    const replies: Reply[] = [];
    let start = 0;
    for (;;) {
      const lf = data.indexOf(LF, start);
      if (lf < 0) break;
      const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
      if (end - start > MAX_REPLY_LINE) this.fail(stage, `reply line longer than ${MAX_REPLY_LINE} octets`);
      const reply = this.line(data, start, end, stage);
      if (reply) replies.push(reply);
      start = lf + 1;
    }
    if (start < data.length) {
      if (data.length - start > MAX_REPLY_LINE)
        this.fail(stage, `reply line longer than ${MAX_REPLY_LINE} octets`);
      this.partial = data.subarray(start);
    }
    return replies;
  }

  private line(data: Buffer, start: number, end: number, stage: SmtpStage): Reply | undefined {
    const length = end - start;
    const d0 = data[start]! - 0x30;
    const d1 = data[start + 1]! - 0x30;
    const d2 = data[start + 2]! - 0x30;
    // Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 §4.2).
    if (length < 3 || !(d0 >= 2 && d0 <= 5) || !(d1 >= 0 && d1 <= 5) || !(d2 >= 0 && d2 <= 9)) {
      this.fail(
        stage,
        `malformed reply line ${JSON.stringify(data.toString('latin1', start, Math.min(end, start + 40)))}`,
      );
    }
    const separator = length > 3 ? data[start + 3] : 0x20;
    if (separator !== 0x20 && separator !== 0x2d)
      this.fail(stage, 'reply code not followed by space or hyphen');
    const code = d0 * 100 + d1 * 10 + d2;
    if (this.lines.length > 0 && code !== this.code) {
      this.fail(stage, `multi-line reply changed its code from ${this.code} to ${code}`);
    }
    this.code = code;
    this.lines.push(length > 4 ? data.toString('utf8', start + 4, end) : '');
    if (separator === 0x2d) {
      if (this.lines.length >= MAX_REPLY_LINES)
        this.fail(stage, `reply has more than ${MAX_REPLY_LINES} lines`);
      return undefined;
    }
    const lines = this.lines;
    this.lines = [];
    const match = ENHANCED.exec(lines[0]!);
    // An enhanced code counts only when its class agrees with the reply code (RFC 3463 §2, RFC 2034 §4).
    if (match && Number(match[1]) === d0)
      return { code, enhanced: `${match[1]}.${match[2]}.${match[3]}`, lines };
    return { code, lines };
  }

  private fail(stage: SmtpStage, message: string): never {
    this.partial = undefined;
    this.lines = [];
    this.failed = new SmtpError('SMTP_PROTOCOL', `protocol error: ${message}`, { stage });
    throw this.failed;
  }
}

/** A command waiting for its reply. */
export interface Waiting {
  stage: SmtpStage;
  timeout: number;
  resolve(reply: Reply): void;
  reject(error: SmtpError): void;
  /** STARTTLS: a 220 must be the last byte the server sends in plain text (RFC 3207 §6). */
  beforeTls: boolean;
  /** The transaction that sent the command: its reply lines carry the same transcript tag. */
  tag: string | undefined;
}

export interface ReplyEvents {
  /** Each reply as it is matched (`head` undefined for a reply to no command), before it settles anything. */
  received(reply: Reply, head: Waiting | undefined): void;
  /** The reply stream broke a rule or timed out: break the wire with `error`. */
  broken(error: SmtpError): void;
}

export class Replies {
  /** Epoch ms that no reply wait may run past (sendWithRetry's deadline). */
  deadline: number | undefined;
  /** The stage of the last command sent: names failures that happen while nothing is awaited. */
  lastStage: SmtpStage = 'greeting';
  private readonly parser = new ReplyParser();
  private readonly waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerMs = 0;

  constructor(private readonly events: ReplyEvents) {}

  /** The stage an error now belongs to: the oldest awaited command's, else the last one sent. */
  get stage(): SmtpStage {
    return this.waiting[0]?.stage ?? this.lastStage;
  }

  /** The tag of the oldest command still waiting for its reply. */
  get oldestTag(): string | undefined {
    return this.waiting[0]?.tag;
  }

  /** The next reply, in order, with the stage's timeout counted from when it becomes the oldest awaited. */
  expect(stage: SmtpStage, timeout: number, beforeTls: boolean, tag: string | undefined): Promise<Reply> {
    this.lastStage = stage;
    const reply = new Promise<Reply>((resolve, reject) => {
      this.waiting.push({ stage, timeout, resolve, reject, beforeTls, tag });
      if (this.waiting.length === 1) this.armTimer();
    });
    // Pipelined replies are awaited one after another; when the wire fails they all reject at once, and the
    // ones nobody awaits any more must not surface as unhandled rejections.
    reply.catch(() => {});
    return reply;
  }

  /** Bytes from the server. True when they ended with the 220 to STARTTLS: plain-text reading stops there. */
  receive(chunk: Buffer): boolean {
    let replies: Reply[];
    try {
      replies = this.parser.push(chunk, this.stage);
    } catch (error) {
      this.events.broken(error as SmtpError);
      return false;
    }
    for (let i = 0; i < replies.length; i++) {
      const reply = replies[i]!;
      const head = this.waiting.shift();
      this.events.received(reply, head);
      const more = i < replies.length - 1 || this.parser.buffered > 0;
      const problem = this.violation(reply, head, more);
      if (problem) {
        if (head) this.waiting.unshift(head);
        this.events.broken(problem);
        return false;
      }
      head!.resolve(reply);
      if (head!.beforeTls && reply.code === 220) {
        this.stopTimer();
        return true;
      }
    }
    // Only a complete reply moves the clock: the next awaited reply's wait starts now. Part of a reply
    // does not extend the wait (a server trickling a byte at a time must not keep a 500 ms timeout alive
    // for minutes).
    if (replies.length > 0) this.armTimer();
    return false;
  }

  /** Rejects every waiting command with `error` and stops the clock. */
  rejectAll(error: SmtpError): void {
    this.stopTimer();
    for (const waiting of this.waiting.splice(0)) waiting.reject(error);
  }

  /** `ms`, shortened so that it ends by the deadline. */
  clamp(ms: number): number {
    return this.deadline === undefined ? ms : Math.max(1, Math.min(ms, this.deadline - Date.now()));
  }

  /** Why `reply` breaks the session, if it does. `more`: bytes followed it in the same read. */
  private violation(reply: Reply, head: Waiting | undefined, more: boolean): SmtpError | undefined {
    const closing = 'server closing the connection';
    // RFC 5321 §3.8: a server may announce 421 at any time and close; anything else unasked is a violation.
    if (!head) {
      return reply.code === 421
        ? SmtpError.fromReply(this.lastStage, reply, closing)
        : new SmtpError('SMTP_PROTOCOL', `protocol error: reply to no command: ${reply.code}`, {
            stage: this.lastStage,
            reply,
          });
    }
    if (reply.code === 421) return SmtpError.fromReply(head.stage, reply, closing);
    // Anything after the 220 was sent before the handshake: the STARTTLS response injection (RFC 3207 §6,
    // "NO STARTTLS", USENIX Security 2021). It must never be read as a reply: fail instead.
    if (head.beforeTls && reply.code === 220 && more) {
      return new SmtpError('SMTP_PROTOCOL', 'protocol error: data after the STARTTLS 220, before TLS', {
        stage: 'starttls',
        reply,
      });
    }
    return undefined;
  }

  private readonly onTimeout = (): void => {
    const head = this.waiting[0];
    if (!head) return;
    this.events.broken(
      new SmtpError('SMTP_TIMEOUT', `no reply to ${head.stage} within ${this.timerMs} ms`, {
        stage: head.stage,
      }),
    );
  };

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

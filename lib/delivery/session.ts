// One SMTP connection per invocation, reused across the records of a batch: one reconnect when the
// connection breaks, and each record's lines routed to that record's own transcript. (The RSET after a
// transaction that did not complete is lib/smtp's: SmtpConnection starts the next transaction with it.)

import {
  type Envelope,
  type MessageBody,
  type SendResult,
  type SmtpClientOptions,
  type Transcript,
  type TranscriptEntry,
  withDeadline,
} from '../smtp/index.ts';
import type { SmtpSender } from './deliver.ts';
import { describeFailure, toSmtpFailure } from './outcome.ts';

/** The part of lib/smtp's SmtpConnection the session uses. */
export interface SmtpConnectionLike {
  readonly usable: boolean;
  /** Epoch ms that no reply wait may run past. */
  deadline?: number | undefined;
  send(envelope: Envelope, body: MessageBody): Promise<SendResult>;
  quit(): Promise<unknown>;
  close(): void;
}

export type Connect = (options: SmtpClientOptions) => Promise<SmtpConnectionLike>;

/** Connections one invocation may open: the first, and one reconnect after a break. */
const CONNECTION_BUDGET = 2;

/** Raised instead of a third connection attempt: the record is deferred at once, without waiting on the relay. */
class SessionExhaustedError extends Error {
  readonly code = 'SESSION_EXHAUSTED';
  readonly stage = 'connect';
  readonly transient = true;
}

export class SmtpSession implements SmtpSender {
  private connection: SmtpConnectionLike | undefined;
  private connectionsOpened = 0;
  private transactionsOnConnection = 0;
  private lastConnectFailure: string | undefined;
  private sink: Transcript | undefined;
  /** The `*` events of the current connection's setup (TCP, TLS), repeated in later records' transcripts. */
  private setupEvents: string[] = [];
  private recordingSetup = false;
  /** Epoch ms that no SMTP wait of this session may run past (the invocation's end, less time to record). */
  private deadline: number | undefined;

  constructor(
    private readonly connect: Connect,
    private readonly options: Omit<SmtpClientOptions, 'transcript'>,
  ) {}

  /** From now on, connecting and every reply wait end by `deadline` (epoch ms) with an SMTP_TIMEOUT. */
  setDeadline(deadline: number | undefined): void {
    this.deadline = deadline;
    if (this.connection) this.connection.deadline = deadline;
  }

  /** Routes the session's lines to `transcript` until the next call (one transcript per record attempt). */
  attach(transcript: Transcript): void {
    this.sink = transcript;
    if (this.connection?.usable) {
      transcript.add(
        '*',
        `reusing the connection to ${this.relayName()} (${this.transactionsOnConnection} transactions so far)`,
      );
      for (const event of this.setupEvents) transcript.add('*', `earlier on this connection: ${event}`);
    }
  }

  async send(envelope: Envelope, createBody: () => MessageBody): Promise<SendResult> {
    const reused = this.connection?.usable === true;
    const connection = await this.ready();
    try {
      return await this.transaction(connection, envelope, createBody);
    } catch (thrown) {
      // A connection that sat idle between records may have been closed by the relay; the first command
      // then fails before anything of this transaction was accepted, so one retry on a new connection is safe.
      const failure = toSmtpFailure(thrown);
      const nothingAccepted = failure.stage === 'mail' || failure.stage === 'rset';
      if (!reused || connection.usable || !nothingAccepted || this.connectionsOpened >= CONNECTION_BUDGET)
        throw thrown;
      this.note(`the reused connection broke (${describeFailure(failure)}); reconnecting`);
      return this.transaction(await this.ready(), envelope, createBody);
    }
  }

  /** QUIT (politely, best effort) and close. */
  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    if (!connection) return;
    try {
      if (connection.usable) await connection.quit();
    } catch {
      // The session is over either way; a failed QUIT changes nothing for any recipient.
    } finally {
      connection.close();
    }
  }

  private async transaction(
    connection: SmtpConnectionLike,
    envelope: Envelope,
    createBody: () => MessageBody,
  ): Promise<SendResult> {
    this.transactionsOnConnection += 1;
    return connection.send(envelope, createBody());
  }

  private async ready(): Promise<SmtpConnectionLike> {
    if (this.connection?.usable) return this.connection;
    if (this.connection) {
      this.connection.close();
      this.connection = undefined;
    }
    if (this.connectionsOpened >= CONNECTION_BUDGET) {
      const reason = `not connecting again: ${this.connectionsOpened} connections to ${this.relayName()} already failed or broke in this invocation (last: ${this.lastConnectFailure ?? 'connection lost'})`;
      this.note(reason);
      throw new SessionExhaustedError(reason);
    }
    this.connectionsOpened += 1;
    this.transactionsOnConnection = 0;
    this.setupEvents = [];
    this.recordingSetup = true;
    try {
      const options = { ...this.options, transcript: this.relayTranscript() };
      this.connection = await this.connect(
        this.deadline === undefined ? options : withDeadline(options, this.deadline),
      );
      this.connection.deadline = this.deadline;
      return this.connection;
    } catch (thrown) {
      this.lastConnectFailure = describeFailure(toSmtpFailure(thrown));
      this.note(`connection to ${this.relayName()} failed: ${this.lastConnectFailure}`);
      throw thrown;
    } finally {
      this.recordingSetup = false;
    }
  }

  private note(text: string): void {
    this.sink?.add('*', text);
  }

  private relayName(): string {
    return `${this.options.host}${this.options.port ? `:${this.options.port}` : ''}`;
  }

  /** The transcript lib/smtp writes into: it forwards to whichever record is attached right now. */
  private relayTranscript(): Transcript {
    const session = this;
    return {
      get entries(): readonly TranscriptEntry[] {
        return session.sink?.entries ?? [];
      },
      add(kind, text) {
        if (session.recordingSetup && kind === '*') session.setupEvents.push(text);
        session.sink?.add(kind, text);
      },
      toString() {
        return session.sink?.toString() ?? '';
      },
    };
  }
}

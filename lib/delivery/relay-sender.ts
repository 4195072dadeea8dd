// The SMTP side of one worker invocation: one connection, shared by every message of the batch (their
// transactions are pipelined on it), one reconnect when it breaks, and one transcript per connection whose
// lines carry each message's tag, so a message's part can be cut out of it (transcriptPart).
// (The RSET after a transaction that did not complete is lib/smtp's: SmtpConnection starts the next
// transaction with it.)

import {
  createTranscript,
  type Envelope,
  type MessageBody,
  type SendOptions,
  type SendResult,
  type SmtpClientOptions,
  SmtpError,
  type Transcript,
  type TranscriptEntry,
  withDeadline,
} from '../smtp/index.ts';
import type { SmtpSender } from './deliver.ts';
import { describeFailure } from './outcome.ts';
import { isThrottlingFailure } from './throttle.ts';

/** The part of lib/smtp's SmtpConnection the sender uses. */
export interface SmtpConnectionLike {
  readonly usable: boolean;
  /** Epoch ms that no reply wait may run past. */
  deadline?: number | undefined;
  send(envelope: Envelope, body: MessageBody, options?: SendOptions): Promise<SendResult>;
  quit(): Promise<unknown>;
  close(): void;
}

export type Connect = (options: SmtpClientOptions) => Promise<SmtpConnectionLike>;

/** One connection opened (or tried) by the sender, with its transcript. */
export interface ConnectionRecord {
  /** 1-based, in the order the sender opened them. */
  number: number;
  transcript: Transcript;
  /** The tags (messages) whose lines are in it. */
  tags: Set<string>;
}

/** Connections one invocation may open: the first, and one reconnect after a break. */
const CONNECTION_BUDGET = 2;

export class RelaySender implements SmtpSender {
  /** Every connection opened or tried, in order: their transcripts are stored when the sender is done. */
  readonly connections: ConnectionRecord[] = [];
  private connection: SmtpConnectionLike | undefined;
  /** The connect in progress: concurrent sends wait for the same one. */
  private connecting: Promise<SmtpConnectionLike> | undefined;
  private lastConnectFailure: string | undefined;
  /** A first line for each message's part (`delivery attempt 2 of message …`), written where it first appears. */
  private readonly headers = new Map<string, string>();
  /** Epoch ms that no SMTP wait of this sender may run past (the invocation's end, less time to record). */
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

  /** The line that opens `tag`'s part of a transcript. */
  describe(tag: string, header: string): void {
    this.headers.set(tag, header);
  }

  async send(envelope: Envelope, createBody: () => MessageBody, tag: string): Promise<SendResult> {
    const connection = await this.ready(tag);
    const record = this.current()!;
    try {
      return await connection.send(envelope, createBody(), { tag });
    } catch (thrown) {
      // The connection broke before this transaction was under way: it wrote nothing (another message's
      // failure ended the connection while this one waited its turn), or its MAIL failed with the connection
      // (a relay that closed an idle connection). Nothing of it was accepted, so one retry on a new
      // connection is safe — but not after throttling: the relay wants a pause, not another connection.
      const failure = thrown instanceof SmtpError ? thrown : undefined;
      const wrote = record.transcript.entries.some((e) => e.tag === tag && e.kind === 'C');
      const nothingAccepted = !wrote || failure?.stage === 'mail' || failure?.stage === 'rset';
      if (connection.usable || !nothingAccepted || isThrottlingFailure(failure ?? {})) throw thrown;
      record.transcript.add('*', `the connection broke (${describeFailure(thrown)}); reconnecting`, tag);
      const again = await this.ready(tag);
      return again.send(envelope, createBody(), { tag });
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
      // The invocation is over either way; a failed QUIT changes nothing for any recipient.
    } finally {
      connection.close();
    }
  }

  private current(): ConnectionRecord | undefined {
    return this.connections[this.connections.length - 1];
  }

  /** The open connection, or a new one; marks `tag` as present in that connection's transcript. */
  private async ready(tag: string): Promise<SmtpConnectionLike> {
    if (this.connection?.usable) {
      this.enter(this.current()!, tag);
      return this.connection;
    }
    if (!this.connecting && this.connections.length >= CONNECTION_BUDGET) {
      const last = this.current()!;
      const reason = `not connecting again: ${this.connections.length} connections to ${this.relayName()} already failed or broke in this invocation (last: ${this.lastConnectFailure ?? 'connection lost'})`;
      this.enter(last, tag);
      last.transcript.add('*', reason, tag);
      // Instead of a third connection attempt: the message is deferred at once, without waiting on the relay.
      throw new SmtpError('SESSION_EXHAUSTED', reason, { stage: 'connect' });
    }
    if (!this.connecting) this.connecting = this.open().finally(() => (this.connecting = undefined));
    try {
      const connection = await this.connecting;
      this.enter(this.current()!, tag);
      return connection;
    } catch (thrown) {
      const record = this.current();
      if (record) this.enter(record, tag);
      throw thrown;
    }
  }

  private async open(): Promise<SmtpConnectionLike> {
    if (this.connection) {
      this.connection.close();
      this.connection = undefined;
    }
    const record: ConnectionRecord = {
      number: this.connections.length + 1,
      transcript: createTranscript(),
      tags: new Set(),
    };
    this.connections.push(record);
    try {
      const options = { ...this.options, transcript: record.transcript };
      const connection = await this.connect(
        this.deadline === undefined ? options : withDeadline(options, this.deadline),
      );
      connection.deadline = this.deadline;
      this.connection = connection;
      return connection;
    } catch (thrown) {
      this.lastConnectFailure = describeFailure(thrown);
      record.transcript.add('*', `connection to ${this.relayName()} failed: ${this.lastConnectFailure}`);
      throw thrown;
    }
  }

  private enter(record: ConnectionRecord, tag: string): void {
    if (record.tags.has(tag)) return;
    record.tags.add(tag);
    const header = this.headers.get(tag);
    if (header) record.transcript.add('*', header, tag);
  }

  private relayName(): string {
    return `${this.options.host}${this.options.port ? `:${this.options.port}` : ''}`;
  }
}

/**
 * One message's part of a connection's transcript, as [first, last] runs of line numbers: the connection's
 * own (untagged) lines — connect, greeting, EHLO, TLS, AUTH, QUIT — and the lines tagged with `tag`.
 */
export function transcriptPart(entries: readonly TranscriptEntry[], tag: string): [number, number][] {
  const runs: [number, number][] = [];
  entries.forEach((entry, n) => {
    if (entry.tag !== undefined && entry.tag !== tag) return;
    const last = runs[runs.length - 1];
    if (last && last[1] === n - 1) last[1] = n;
    else runs.push([n, n]);
  });
  return runs;
}

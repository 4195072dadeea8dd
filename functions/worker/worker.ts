// The worker's core: SQSEvent → the whole batch delivered at once (lib/delivery/batch.ts) → SQSBatchResponse.
// index.ts wires it to AWS; tests wire it to moto and an in-process SMTP server.
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { ConfigError, type WorkerConfig } from '../../lib/config.ts';
import {
  type BatchRecord,
  type BatchReport,
  deliverBatch,
  markFailed,
  type RecordOutcome,
} from '../../lib/delivery/batch.ts';
import type { StatusStore, TranscriptStore } from '../../lib/delivery/ports.ts';
import {
  MalformedRecordError,
  type PayloadReader,
  type QueueMessage,
  queueDelaySeconds,
  readQueueMessage,
} from '../../lib/delivery/queue-message.ts';
import type { RelayGate } from '../../lib/delivery/relay-limit.ts';
import { type Connect, RelaySender } from '../../lib/delivery/relay-sender.ts';
import type { SuppressionStore } from '../../lib/delivery/suppression.ts';
import type { DkimKey } from '../../lib/message/dkim.ts';
import { resolveOptions, type SmtpClientOptions } from '../../lib/smtp/index.ts';
import { prepareMessage, type Signing, type UnsubscribeLinks } from './prepare.ts';

export interface QueuePort {
  changeVisibilityBatch(
    changes: readonly { receiptHandle: string; seconds: number }[],
  ): Promise<{ receiptHandle: string; error: string }[]>;
  /** Puts messages back on the queue (a scheduled message's next stretch of delay). */
  sendBatch(messages: readonly QueueMessage[]): Promise<({ ok: true } | { ok: false; error: string })[]>;
}

export interface WorkerDeps {
  config: WorkerConfig;
  status: StatusStore;
  suppressions: Pick<SuppressionStore, 'matching' | 'add'>;
  transcripts: TranscriptStore;
  payloads: PayloadReader;
  queue: QueuePort;
  /** The relay's shared rate limit and throttling pause. */
  gate: RelayGate;
  /** Opens an SMTP connection (lib/smtp's SmtpConnection.connect), credentials already filled in. */
  connect: Connect;
  /** The unsubscribe key (cached by its reader), for requests with `unsubscribe`; unset when not configured. */
  unsubscribeKey?: () => Promise<string>;
  /** The DKIM signing keys (cached by their reader); unset when signing is not configured. */
  dkimKeys?: () => Promise<DkimKey[]>;
  logger: Logger;
  metrics: Metrics;
  now?: () => Date;
  random?: () => number;
}

/** The key for this invocation's unsubscribe links; a key that cannot be read leaves those messages to a
 *  later retry (prepareMessage refuses to send them without their links). */
async function unsubscribeLinks(deps: WorkerDeps): Promise<UnsubscribeLinks | undefined> {
  if (!deps.unsubscribeKey) return undefined;
  try {
    return { key: await deps.unsubscribeKey(), baseUrl: deps.config.publicBaseUrl };
  } catch (error) {
    deps.logger.error('the unsubscribe key could not be read (UNSUBSCRIBE_SECRET_ARN)', { error });
    return undefined;
  }
}

async function signingKeys(deps: WorkerDeps): Promise<Signing> {
  if (!deps.dkimKeys) return undefined;
  try {
    return { keys: await deps.dkimKeys() };
  } catch (error) {
    deps.logger.error('the DKIM keys could not be read (DKIM_SECRET_ARN); messages wait for them', { error });
    return 'unavailable';
  }
}

/** Kept back from the invocation's end to record the outcomes and the transcripts: no SMTP wait runs into
 *  it, so a relay that stalls ends in a recorded SMTP_TIMEOUT (deferred), not in a Lambda killed mid-attempt. */
const RECORDING_TIME_MS = 5_000;
/** The lease outlives the invocation by this much, covering clock skew between workers. */
const LEASE_MARGIN_MS = 60_000;
/** Without a Lambda context (local runs), a lease as long as the longest Lambda run. */
const DEFAULT_LEASE_MS = 15 * 60_000;

export type WorkerHandler = (event: SQSEvent, context?: Partial<Context>) => Promise<SQSBatchResponse>;

export function createWorker(deps: WorkerDeps): WorkerHandler {
  checkSmtpOptions(deps.config);
  return async (event, context) => {
    const invocation = `${context?.awsRequestId ?? 'local'}-${randomUUID().slice(0, 8)}`;
    const remaining = () => context?.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;
    const sender = new RelaySender(deps.connect, smtpOptions(deps.config));
    if (Number.isFinite(remaining())) sender.setDeadline(Date.now() + remaining() - RECORDING_TIME_MS);
    const now = deps.now ?? (() => new Date());
    const day = now().toISOString().slice(0, 10);

    const failures: SQSBatchItemFailure[] = [];
    const visibility: { receiptHandle: string; seconds: number; record: SQSRecord; what: string }[] = [];
    const byKey = new Map<string, SQSRecord>();
    const notDue: SQSRecord[] = [];
    const [links, signing] = await Promise.all([unsubscribeLinks(deps), signingKeys(deps)]);
    // Bodies are read in parallel (a claim-check payload is an S3 read).
    const read = await Promise.all(
      event.Records.map(async (record): Promise<BatchRecord | undefined> => {
        byKey.set(record.messageId, record);
        try {
          const { id, request, record: initial } = await readQueueMessage(record.body, deps.payloads);
          if (queueDelaySeconds(initial, now()) > 0) {
            notDue.push(record);
            return undefined;
          }
          return {
            key: record.messageId,
            id,
            receiveCount: receiveCountOf(record),
            enqueuedAt: enqueuedAtOf(record),
            initial,
            prepare: (ledger) => prepareMessage(request, ledger, links, signing),
          };
        } catch (error) {
          if (error instanceof MalformedRecordError) {
            await malformed(deps, record, error.message, error.id);
            visibility.push({
              receiptHandle: record.receiptHandle,
              seconds: 0,
              record,
              what: 'visibility 0',
            });
          } else {
            // S3 unavailable and the like: the record is fine, try it again later.
            deps.logger.error('queue record not read; it will be tried again', {
              sqsMessageId: record.messageId,
              error,
            });
          }
          failures.push({ itemIdentifier: record.messageId });
          return undefined;
        }
      }),
    );
    const toDeliver = read.filter((r): r is BatchRecord => r !== undefined);

    try {
      await putBack(deps, notDue, failures);
      if (toDeliver.length > 0) {
        const leaseMs = Number.isFinite(remaining()) ? remaining() + LEASE_MARGIN_MS : DEFAULT_LEASE_MS;
        let report: BatchReport;
        try {
          report = await deliverBatch(
            {
              status: deps.status,
              suppressions: deps.suppressions,
              transcripts: deps.transcripts,
              sender,
              gate: deps.gate,
              retry: deps.config.retry,
              transcriptKey: (n) => `transcripts/${day}/${invocation}-${n}.log`,
              owner: invocation,
              leaseMs,
              recordWriteGraceMs: deps.config.recordWriteGraceMs,
              timeLeft: () => remaining() - RECORDING_TIME_MS,
              now: deps.now,
              random: deps.random,
            },
            toDeliver,
          );
        } finally {
          await sender.close();
        }
        settleRecords(deps, report, byKey, failures, visibility);
      }
      await applyVisibility(deps, visibility);
    } finally {
      if (deps.metrics.hasStoredMetrics()) deps.metrics.publishStoredMetrics();
    }
    return { batchItemFailures: failures };
  };
}

/**
 * Scheduled messages not due yet (SQS delays stop at 15 minutes) go back on the queue for the next stretch,
 * as they are: the ledger is not read, a cancel is seen when they are due. A new message rather than a
 * longer visibility, so that waiting does not count receives against the queue's MaxReceiveCount. One that
 * cannot be put back is kept (reported) and comes back after the queue's visibility timeout.
 */
async function putBack(
  deps: WorkerDeps,
  records: SQSRecord[],
  failures: SQSBatchItemFailure[],
): Promise<void> {
  if (records.length === 0) return;
  const results = await deps.queue
    .sendBatch(records.map((r) => JSON.parse(r.body) as QueueMessage))
    .catch((error: unknown) => records.map(() => ({ ok: false as const, error: String(error) })));
  results.forEach((result, i) => {
    const record = records[i]!;
    if (result.ok) {
      deps.logger.debug('scheduled message not due: put back on the queue', {
        sqsMessageId: record.messageId,
      });
      return;
    }
    deps.logger.warn('scheduled message not put back; it comes back after the visibility timeout', {
      sqsMessageId: record.messageId,
      error: result.error,
    });
    failures.push({ itemIdentifier: record.messageId });
  });
}

/** Each record's outcome → delete it (not reported), or keep it (reported) hidden for its back-off. */
function settleRecords(
  deps: WorkerDeps,
  report: BatchReport,
  byKey: Map<string, SQSRecord>,
  failures: SQSBatchItemFailure[],
  visibility: { receiptHandle: string; seconds: number; record: SQSRecord; what: string }[],
): void {
  const counts: Record<string, number> = {};
  for (const [key, outcome] of report.outcomes) {
    const record = byKey.get(key)!;
    const log = { sqsMessageId: key, receiveCount: receiveCountOf(record), id: outcome.id };
    counts[outcomeName(outcome)] = (counts[outcomeName(outcome)] ?? 0) + 1;
    recordMetrics(deps.metrics, outcome);
    if (outcome.kind === 'done') {
      deps.logger.info('delivery attempt', { ...log, ...summarize(outcome) });
      continue;
    }
    failures.push({ itemIdentifier: key });
    if (outcome.kind === 'malformed') {
      deps.logger.error('malformed queue record: left for the dead-letter queue', {
        ...log,
        reason: outcome.reason,
      });
      deps.metrics.addMetric('MalformedRecords', MetricUnit.Count, 1);
      visibility.push({ receiptHandle: record.receiptHandle, seconds: 0, record, what: 'visibility 0' });
      continue;
    }
    if (outcome.why === 'error') {
      deps.logger.error('delivery attempt broke off; the record will be tried again', {
        ...log,
        error: outcome.error,
      });
    } else {
      deps.logger.info('delivery attempt', { ...log, ...summarize(outcome) });
    }
    if (outcome.delaySeconds !== undefined)
      visibility.push({
        receiptHandle: record.receiptHandle,
        seconds: outcome.delaySeconds,
        record,
        what: 'the back-off',
      });
  }
  for (const { key, error } of report.transcriptErrors) {
    deps.logger.error('transcript not stored; the outcomes are in the status records', { key, error });
  }
  for (const { address, error } of report.suppressionErrors) {
    deps.logger.error('bounced address not added to the suppression list', { address, error });
  }
  if (report.pausedUntil) {
    deps.logger.warn('relay throttling: paused for every worker', {
      pausedUntil: report.pausedUntil.toISOString(),
    });
    deps.metrics.addMetric('RelayPauses', MetricUnit.Count, 1);
  }
  deps.logger.info('batch done', { records: report.outcomes.size, outcomes: counts });
}

/**
 * A record whose body no retry can fix: logged, and the message (if the body names one) failed with the
 * reason. The record is reported with visibility 0, so it is received again at once and the queue's redrive
 * moves it to the DLQ after maxReceiveCount receives — in seconds, not maxReceiveCount × the visibility timeout.
 */
async function malformed(
  deps: WorkerDeps,
  record: SQSRecord,
  reason: string,
  id: string | undefined,
): Promise<void> {
  deps.logger.error('malformed queue record: left for the dead-letter queue', {
    sqsMessageId: record.messageId,
    receiveCount: receiveCountOf(record),
    id,
    reason,
  });
  deps.metrics.addMetric('MalformedRecords', MetricUnit.Count, 1);
  if (!id) return;
  const at = deps.now?.() ?? new Date();
  if (!(await markFailed(deps.status, id, `malformed queue record: ${reason}`, at)))
    deps.logger.warn('could not mark the message failed', { id });
}

/** All visibility changes of the batch in one go; a change that fails leaves the queue's own timeout. */
async function applyVisibility(
  deps: WorkerDeps,
  changes: { receiptHandle: string; seconds: number; record: SQSRecord; what: string }[],
): Promise<void> {
  if (changes.length === 0) return;
  let failed: { receiptHandle: string; error: string }[];
  try {
    failed = await deps.queue.changeVisibilityBatch(changes);
  } catch (error) {
    failed = changes.map((c) => ({ receiptHandle: c.receiptHandle, error: String(error) }));
  }
  for (const f of failed) {
    const change = changes.find((c) => c.receiptHandle === f.receiptHandle);
    deps.logger.warn(`could not set ${change?.what ?? 'the'} visibility; the queue's own timeout applies`, {
      sqsMessageId: change?.record.messageId,
      error: f.error,
    });
  }
}

/** SQS SentTimestamp (epoch ms); a record without one counts as just sent, which leaves it the longest grace. */
function enqueuedAtOf(record: SQSRecord): Date {
  const sent = Number(record.attributes?.SentTimestamp);
  return new Date(Number.isFinite(sent) && sent > 0 ? sent : Date.now());
}

function receiveCountOf(record: SQSRecord): number {
  return Math.max(1, Number.parseInt(record.attributes?.ApproximateReceiveCount ?? '1', 10) || 1);
}

/** The relay settings as lib/smtp will judge them on connect, judged once at cold start instead. */
function checkSmtpOptions(config: WorkerConfig): void {
  try {
    resolveOptions(smtpOptions(config));
  } catch (error) {
    throw new ConfigError(`invalid SMTP configuration: ${(error as Error).message}`);
  }
}

function smtpOptions(config: WorkerConfig): Omit<SmtpClientOptions, 'transcript'> {
  const { host, port, tls, requireTLS, name, ca, timeouts } = config.smtp;
  return { host, port, tls, requireTLS, name, ca, timeouts };
}

function outcomeName(outcome: RecordOutcome): string {
  if (outcome.kind === 'retry') return outcome.why;
  return outcome.kind === 'done' ? outcome.state : 'malformed';
}

function recordMetrics(metrics: Metrics, outcome: RecordOutcome): void {
  if (outcome.kind === 'malformed' || !outcome.results) return;
  const counts = { delivered: 0, deferred: 0, failed: 0 };
  for (const r of outcome.results.values()) counts[r.state] += 1;
  metrics.addMetric('RecipientsDelivered', MetricUnit.Count, counts.delivered);
  metrics.addMetric('RecipientsDeferred', MetricUnit.Count, counts.deferred);
  metrics.addMetric('RecipientsFailed', MetricUnit.Count, counts.failed);
  for (const ms of outcome.transactionMs ?? [])
    metrics.addMetric('SmtpTransactionLatency', MetricUnit.Milliseconds, ms);
}

/** What a log line says about an attempt: counts and states, never addresses' replies in full or bodies. */
function summarize(outcome: Exclude<RecordOutcome, { kind: 'malformed' }>): Record<string, unknown> {
  const states: Record<string, number> = {};
  for (const r of outcome.results?.values() ?? []) states[r.state] = (states[r.state] ?? 0) + 1;
  return outcome.kind === 'done'
    ? { outcome: outcome.state, attempt: outcome.attempt, recipients: states, reason: outcome.reason }
    : {
        outcome: outcome.why,
        attempt: outcome.attempt,
        recipients: states,
        retryInSeconds: outcome.delaySeconds,
      };
}

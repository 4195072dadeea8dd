// The worker's core: SQSEvent → per-record delivery attempts → SQSBatchResponse. index.ts wires it to AWS;
// tests wire it to moto and an in-process SMTP server.
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { ConfigError, type WorkerConfig } from '../../lib/config.ts';
import { type AttemptResult, runAttempt } from '../../lib/delivery/attempt.ts';
import { failMessage, isFinal } from '../../lib/delivery/ledger.ts';
import { type StatusStore, type TranscriptStore, VersionConflictError } from '../../lib/delivery/ports.ts';
import { type Connect, SmtpSession } from '../../lib/delivery/session.ts';
import { MessageError } from '../../lib/message/index.ts';
import { resolveOptions, type SmtpClientOptions, type Transcript } from '../../lib/smtp/index.ts';
import { prepareMessage } from './prepare.ts';
import { MalformedRecordError, type PayloadReader, readQueueRecord } from './queue-record.ts';

export interface VisibilityPort {
  changeVisibility(receiptHandle: string, seconds: number): Promise<void>;
}

export interface WorkerDeps {
  config: WorkerConfig;
  status: StatusStore;
  transcripts: TranscriptStore;
  payloads: PayloadReader;
  queue: VisibilityPort;
  /** Opens an SMTP connection (lib/smtp's SmtpConnection.connect), credentials already filled in. */
  connect: Connect;
  createTranscript: () => Transcript;
  logger: Logger;
  metrics: Metrics;
  now?: () => Date;
  random?: () => number;
}

/** No new record is started with less time left than this: it goes back to the queue untouched. */
const MIN_REMAINING_MS = 10_000;
/** Kept back from the invocation's end to record the outcome and the transcript: no SMTP wait runs into it,
 *  so a relay that stalls ends in a recorded SMTP_TIMEOUT (deferred), not in a Lambda killed mid-attempt. */
const RECORDING_TIME_MS = 5_000;
/** The lease outlives the invocation by this much, covering clock skew between workers. */
const LEASE_MARGIN_MS = 60_000;
/** Without a Lambda context (local runs), a lease as long as the longest Lambda run. */
const DEFAULT_LEASE_MS = 15 * 60_000;

export type WorkerHandler = (event: SQSEvent, context?: Partial<Context>) => Promise<SQSBatchResponse>;

export function createWorker(deps: WorkerDeps): WorkerHandler {
  checkSmtpOptions(deps.config);
  return async (event, context) => {
    const invocation = `${context?.awsRequestId ?? 'local'}:${randomUUID().slice(0, 8)}`;
    const remaining = () => context?.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;
    const session = new SmtpSession(deps.connect, smtpOptions(deps.config));
    if (Number.isFinite(remaining())) session.setDeadline(Date.now() + remaining() - RECORDING_TIME_MS);
    const failures: SQSBatchItemFailure[] = [];
    try {
      for (const record of event.Records) {
        if (remaining() < MIN_REMAINING_MS) {
          deps.logger.warn('out of time: record left for a later delivery', {
            sqsMessageId: record.messageId,
          });
          failures.push({ itemIdentifier: record.messageId });
          continue;
        }
        const leaseMs = Number.isFinite(remaining()) ? remaining() + LEASE_MARGIN_MS : DEFAULT_LEASE_MS;
        const ok = await processRecord(deps, session, record, `${invocation}:${record.messageId}`, leaseMs);
        if (!ok) failures.push({ itemIdentifier: record.messageId });
      }
    } finally {
      await session.close();
      if (deps.metrics.hasStoredMetrics()) deps.metrics.publishStoredMetrics();
    }
    return { batchItemFailures: failures };
  };
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

/** True when the record is finished with (SQS may delete it); false to report it in batchItemFailures. */
async function processRecord(
  deps: WorkerDeps,
  session: SmtpSession,
  record: SQSRecord,
  owner: string,
  leaseMs: number,
): Promise<boolean> {
  const receiveCount = Math.max(
    1,
    Number.parseInt(record.attributes?.ApproximateReceiveCount ?? '1', 10) || 1,
  );
  const log = { sqsMessageId: record.messageId, receiveCount };
  let id: string | undefined;
  try {
    const content = await readQueueRecord(record, deps.payloads);
    id = content.id;
    const { request } = content;
    const result = await runAttempt(
      {
        status: deps.status,
        transcripts: deps.transcripts,
        session,
        createTranscript: deps.createTranscript,
        retry: deps.config.retry,
        now: deps.now,
        random: deps.random,
      },
      { id: content.id, receiveCount, owner, leaseMs, prepare: (ledger) => prepareMessage(request, ledger) },
    );
    if (result.kind === 'missing') {
      return malformed(deps, record, log, `no status record for message ${content.id}`, undefined);
    }
    recordMetrics(deps.metrics, result);
    deps.logger.info('delivery attempt', { ...log, id: content.id, ...summarize(result) });
    if (result.transcriptError) {
      deps.logger.error('transcript of the attempt not stored; its outcome is in the status record', {
        ...log,
        id: content.id,
        reason: result.transcriptError,
      });
    }
    if (result.kind === 'done') return true;
    await setVisibility(deps, record, result.delaySeconds, 'the back-off');
    return false;
  } catch (error) {
    if (error instanceof MalformedRecordError) return malformed(deps, record, log, error.message, error.id);
    // The request passed validation but cannot be composed: as malformed as a bad body.
    if (error instanceof MessageError) return malformed(deps, record, log, error.message, id);
    deps.logger.error('delivery attempt broke off; the record will be tried again', { ...log, id, error });
    return false;
  }
}

/**
 * A record no retry can fix: logged, the message (if the record names one) failed with the reason, and the
 * record reported with visibility 0, so it is received again at once and the queue's redrive policy moves it
 * to the DLQ after maxReceiveCount receives — in seconds, not maxReceiveCount × the queue's visibility
 * timeout (40 × 1085 s ≈ 12 h with the deployed defaults). Returns false (reported).
 */
async function malformed(
  deps: WorkerDeps,
  record: SQSRecord,
  log: Record<string, unknown>,
  reason: string,
  id: string | undefined,
): Promise<false> {
  deps.logger.error('malformed queue record: left for the dead-letter queue', { ...log, id, reason });
  deps.metrics.addMetric('MalformedRecords', MetricUnit.Count, 1);
  if (id) await markFailed(deps, id, `malformed queue record: ${reason}`);
  await setVisibility(deps, record, 0, 'visibility 0 (straight back for the redrive)');
  return false;
}

/** Hides the record for `seconds`; if that fails the queue's own timeout applies (logged). */
async function setVisibility(
  deps: WorkerDeps,
  record: SQSRecord,
  seconds: number,
  what: string,
): Promise<void> {
  try {
    await deps.queue.changeVisibility(record.receiptHandle, seconds);
  } catch (error) {
    deps.logger.warn(`could not set ${what} as visibility timeout; the queue's own timeout applies`, {
      sqsMessageId: record.messageId,
      error,
    });
  }
}

async function markFailed(deps: WorkerDeps, id: string, reason: string): Promise<void> {
  const now = deps.now?.() ?? new Date();
  try {
    const current = await deps.status.get(id);
    if (!current || isFinal(current.value)) return;
    await deps.status.update(failMessage(current.value, reason, now), current.version);
  } catch (error) {
    // Another delivery wrote meanwhile, or S3 failed: the record still reaches the DLQ, which is what counts.
    const level = error instanceof VersionConflictError ? 'warn' : 'error';
    deps.logger[level]('could not mark the message failed', { id, error });
  }
}

function recordMetrics(metrics: Metrics, result: AttemptResult): void {
  if (result.kind === 'missing' || !result.results) return;
  const counts = { delivered: 0, deferred: 0, failed: 0 };
  for (const r of result.results.values()) counts[r.state] += 1;
  metrics.addMetric('RecipientsDelivered', MetricUnit.Count, counts.delivered);
  metrics.addMetric('RecipientsDeferred', MetricUnit.Count, counts.deferred);
  metrics.addMetric('RecipientsFailed', MetricUnit.Count, counts.failed);
  for (const ms of result.transactionMs ?? [])
    metrics.addMetric('SmtpTransactionLatency', MetricUnit.Milliseconds, ms);
}

/** What a log line says about an attempt: counts and states, never addresses' replies in full or bodies. */
function summarize(result: Exclude<AttemptResult, { kind: 'missing' }>): Record<string, unknown> {
  const states: Record<string, number> = {};
  for (const r of result.results?.values() ?? []) states[r.state] = (states[r.state] ?? 0) + 1;
  return result.kind === 'done'
    ? { outcome: result.state, attempt: result.attempt, recipients: states, reason: result.reason }
    : {
        outcome: result.why,
        attempt: result.attempt,
        recipients: states,
        retryInSeconds: result.delaySeconds,
      };
}

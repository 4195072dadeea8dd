// The relay's rate limit and pause in the ledger table, shared by every worker (lib/delivery/relay-limit.ts
// has the rules; this file only stores them). One item per relay:
//   pk = relay#<name>, tatMs, pausedUntilMs, pauseLevel, pauseReason?, v
// Every change is a read-modify-write guarded by the version `v` (`attribute_not_exists(pk)` creates the item,
// `v = :expected` replaces it), so of two workers acting on the same state exactly one wins and the other
// starts again from the winner's state. DynamoDB returns that state with the refusal
// (ReturnValuesOnConditionCheckFailure ALL_OLD, moto 5.2 too), so losing a race costs no extra read.
//
// Cost per acquire: the gate remembers the last state it saw, so a worker alone on the relay pays one
// conditional write; a worker that lost a race pays one more. A cached state that already says "no permit
// now" (paused, or the burst used up) is answered without any request: `tatMs` and `pausedUntilMs` only
// ever grow, so the real state can only be further ahead than a stale copy, never behind it. With no rate
// limit there is nothing to count: acquire only reads the pause (one eventually consistent GetItem, half a
// read unit, no write), so an unlimited relay pays no write per batch.
//
// moto vs AWS: real DynamoDB applies a single-item conditional write atomically. moto 5.2.5 does not: its
// UpdateItem reads the item, checks the condition and applies the update in a threaded server with no lock
// around the three (moto/dynamodb/models/__init__.py update_item), and 16 writers racing on one version had
// two winners once in 1,500 rounds here. Nothing in this file can tell; test/integration/aws-relay-gate.test.ts
// sends its racing gates' requests one at a time to get AWS's guarantee back. ReturnValuesOnConditionCheckFailure
// behaves as in AWS: the Item comes back in AttributeValue form, and none when the item does not exist.
import type { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  type AcquireResult,
  initialRelayState,
  permitsWithin,
  type RelayGate,
  type RelayLimitSettings,
  type RelayState,
  type RelayStatus,
  recoverFromPause,
  relayStatus,
  startPause,
  takePermits,
} from '../delivery/relay-limit.ts';
import { KEY, relayKey } from './ledger-table.ts';

export interface DynamoRelayGateOptions {
  /** Conditional writes per call before acquire gives up for now (granted 0). Default 5. */
  maxAttempts?: number;
  /** A pause must not be lost to contention: it gets this many attempts. Default 20. */
  maxPauseAttempts?: number;
  /** For tests: jitter source in [0, 1). */
  random?: () => number;
}

/** The item's version and state; version 0: the item does not exist. */
interface Known {
  state: RelayState;
  version: number;
}

/** retryAfterMs after losing every attempt to other workers: short, jittered, so they spread out. */
const CONTENTION_RETRY_MIN_MS = 10;
const CONTENTION_RETRY_SPREAD_MS = 40;

export class DynamoRelayGate implements RelayGate {
  private known: Known | undefined;
  /** The end of a pause this instance decided but could not store (contention): it still honours it. */
  private localPauseUntilMs = 0;
  private readonly pk: string;
  private readonly maxAttempts: number;
  private readonly maxPauseAttempts: number;
  private readonly random: () => number;

  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly table: string,
    relayName: string,
    private readonly settings: RelayLimitSettings,
    options: DynamoRelayGateOptions = {},
  ) {
    this.pk = relayKey(relayName);
    this.maxAttempts = options.maxAttempts ?? 5;
    this.maxPauseAttempts = options.maxPauseAttempts ?? 20;
    this.random = options.random ?? Math.random;
  }

  async acquire(wanted: number, now: Date = new Date()): Promise<AcquireResult> {
    const nowMs = now.getTime();
    if (nowMs < this.localPauseUntilMs) {
      return {
        granted: 0,
        retryAfterMs: Math.ceil(this.localPauseUntilMs - nowMs),
        pausedUntil: new Date(this.localPauseUntilMs),
      };
    }
    if (this.settings.ratePerSecond === undefined) {
      // Unlimited: nothing to count, only a pause to respect. Eventually consistent: a pause another worker
      // set a moment ago may be seen a moment late, which costs at most one more throttled batch.
      const known = await this.read(false);
      const { granted, retryAfterMs, pausedUntil } = takePermits(known.state, wanted, nowMs, this.settings);
      return { granted, retryAfterMs, ...(pausedUntil ? { pausedUntil } : {}) };
    }
    if (this.known) {
      // Sound without a request: the stored state is at least as far ahead as this copy (file comment).
      const cached = takePermits(this.known.state, wanted, nowMs, this.settings);
      if (cached.granted === 0) return withoutState(cached);
    }
    const outcome = await this.change(
      (state) => takePermits(state, wanted, nowMs, this.settings),
      this.maxAttempts,
    );
    if (outcome) return withoutState(outcome.result);
    return {
      granted: 0,
      retryAfterMs: CONTENTION_RETRY_MIN_MS + Math.floor(this.random() * CONTENTION_RETRY_SPREAD_MS),
    };
  }

  async pause(reason: string, now: Date = new Date()): Promise<Date> {
    const nowMs = now.getTime();
    const outcome = await this.change(
      (state) => ({ state: startPause(state, reason, nowMs, this.settings) }),
      this.maxPauseAttempts,
    );
    if (outcome) return new Date(outcome.result.state.pausedUntilMs);
    // Every attempt lost to other writers: this worker still pauses; the others will see their own 421s.
    const fallback = startPause(this.known?.state ?? initialRelayState(), reason, nowMs, this.settings);
    this.localPauseUntilMs = Math.max(this.localPauseUntilMs, fallback.pausedUntilMs);
    return new Date(fallback.pausedUntilMs);
  }

  async recovered(now: Date = new Date()): Promise<void> {
    const nowMs = now.getTime();
    // A cached level 0 needs no request: at worst another worker paused since, and its level stays.
    if (this.known && recoverFromPause(this.known.state, nowMs) === this.known.state) return;
    await this.change((state) => ({ state: recoverFromPause(state, nowMs) }), this.maxAttempts);
  }

  permitsWithin(ms: number): number {
    return permitsWithin(this.settings, ms);
  }

  async status(now: Date = new Date()): Promise<RelayStatus> {
    const known = await this.read(false);
    return relayStatus(known.state, now.getTime());
  }

  /**
   * Read-modify-write: applies `decide` to the newest state known and stores the result when it differs (the
   * same object means "no change": nothing is written). Undefined after `attempts` lost races.
   */
  private async change<R extends { state: RelayState }>(
    decide: (state: RelayState) => R,
    attempts: number,
  ): Promise<{ result: R } | undefined> {
    let known = this.known ?? (await this.read(true));
    for (let attempt = 0; attempt < attempts; attempt++) {
      const result = decide(known.state);
      if (result.state === known.state) return { result };
      const stored = await this.write(result.state, known.version);
      if (stored === 'written') return { result };
      known = stored ?? (await this.read(true));
    }
    return undefined;
  }

  /** 'written', or the state that won (undefined when DynamoDB did not say: read it). */
  private async write(state: RelayState, expected: number): Promise<'written' | Known | undefined> {
    const version = expected + 1;
    const values: Record<string, unknown> = {
      ':tat': state.tatMs,
      ':until': state.pausedUntilMs,
      ':level': state.pauseLevel,
      ':v': version,
    };
    let update = 'SET tatMs = :tat, pausedUntilMs = :until, pauseLevel = :level, v = :v';
    if (state.pauseReason !== undefined) {
      update += ', pauseReason = :reason';
      values[':reason'] = state.pauseReason;
    }
    if (expected > 0) values[':expected'] = expected;
    try {
      await this.documents.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [KEY]: this.pk },
          UpdateExpression: update,
          ConditionExpression: expected > 0 ? 'v = :expected' : `attribute_not_exists(${KEY})`,
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      this.remember({ state, version });
      return 'written';
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      // The item as it is now, strongly consistent. The document client does not convert an exception's
      // Item: it is in AttributeValue form.
      const current = (error as ConditionalCheckFailedException).Item;
      if (current) return this.remember(fromAttributeValues(current), true);
      // No item came back: with `v = :expected` that means it is gone (deleted by hand); start afresh.
      if (expected > 0) return this.remember({ state: initialRelayState(), version: 0 }, true);
      return undefined;
    }
  }

  private async read(consistent: boolean): Promise<Known> {
    const response = await this.documents.send(
      new GetCommand({ TableName: this.table, Key: { [KEY]: this.pk }, ConsistentRead: consistent }),
    );
    const item = response.Item;
    if (!item) return this.remember({ state: initialRelayState(), version: 0 }, consistent);
    return this.remember(fromItem(item), consistent);
  }

  /**
   * Keeps the newest state seen (versions only grow; an eventually consistent read may be older than what
   * this instance wrote). `authoritative`: a consistent answer that replaces the copy even when older (the
   * item was deleted and recreated).
   */
  private remember(seen: Known, authoritative = false): Known {
    if (authoritative || !this.known || seen.version >= this.known.version) this.known = seen;
    return this.known;
  }
}

function withoutState({ granted, retryAfterMs, pausedUntil }: AcquireResult & { state: RelayState }) {
  return { granted, retryAfterMs, ...(pausedUntil ? { pausedUntil } : {}) };
}

function fromItem(item: Record<string, unknown>): Known {
  const number = (name: string): number => {
    const value = item[name];
    return typeof value === 'number' && Number.isFinite(value) ? value : 0;
  };
  const reason = item.pauseReason;
  return {
    state: {
      tatMs: number('tatMs'),
      pausedUntilMs: number('pausedUntilMs'),
      pauseLevel: number('pauseLevel'),
      ...(typeof reason === 'string' ? { pauseReason: reason } : {}),
    },
    version: number('v'),
  };
}

/** The few attribute types this item holds (N, S), from DynamoDB's wire form. */
function fromAttributeValues(item: Record<string, { N?: string; S?: string }>): Known {
  const plain: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(item)) {
    if (value.N !== undefined) plain[name] = Number(value.N);
    else if (value.S !== undefined) plain[name] = value.S;
  }
  return fromItem(plain);
}

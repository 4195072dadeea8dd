// Idempotency keys in the ledger table: `pk = idem#<sha256(key)>` holding { id, createdAt, fingerprint? },
// claimed with one conditional write, so of two requests racing with one key exactly one gets to submit.
// The claim carries the fingerprint of the request that made it, so a loser can tell a retry from a reuse of
// the key with another body at once, before the winner has written anything else.
// A claim older than the TTL (24 h) is free again: the condition accepts an item whose expiresAt has passed
// (DynamoDB's TTL deletes expired items only eventually, within about two days).
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  type ClaimResult,
  IdempotencyContentionError,
  type IdempotencyStore,
} from '../delivery/idempotency.ts';
import { idempotencyItemKey, KEY, TTL_ATTRIBUTE } from './ledger-table.ts';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Rounds of claim / read before giving up; each round loses only to another writer. */
const maxRounds = 5;

export interface IdempotencyRecord {
  id: string;
  createdAt: string;
  /** The claiming request's fingerprint (functions/api/fingerprint.ts). */
  fingerprint?: string;
  /** Set once the claimant's message is on the queue: such a claim is never taken over. */
  enqueued?: boolean;
}

export class DynamoIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly ttlMs: number = IDEMPOTENCY_TTL_MS,
  ) {}

  /**
   * Claims `clientKey` for message `id` (stored with the request's `fingerprint`); if a live claim exists,
   * returns the id that holds it and its fingerprint.
   */
  async claim(
    clientKey: string,
    id: string,
    now: Date = new Date(),
    fingerprint?: string,
  ): Promise<ClaimResult> {
    const pk = idempotencyItemKey(clientKey);
    const nowSeconds = Math.floor(now.getTime() / 1000);
    for (let round = 0; round < maxRounds; round++) {
      try {
        await this.documents.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              [KEY]: pk,
              id,
              createdAt: now.toISOString(),
              ...(fingerprint !== undefined ? { fingerprint } : {}),
              [TTL_ATTRIBUTE]: Math.ceil((now.getTime() + this.ttlMs) / 1000),
            },
            ConditionExpression: 'attribute_not_exists(#pk) OR #exp <= :now',
            ExpressionAttributeNames: { '#pk': KEY, '#exp': TTL_ATTRIBUTE },
            ExpressionAttributeValues: { ':now': nowSeconds },
          }),
        );
        return { claimed: true };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const { Item } = await this.documents.send(
        new GetCommand({ TableName: this.table, Key: { [KEY]: pk }, ConsistentRead: true }),
      );
      // Released or expired in between: claim again.
      if (!Item || Number(Item[TTL_ATTRIBUTE]) <= nowSeconds) continue;
      return {
        claimed: false,
        id: String(Item.id),
        createdAt: String(Item.createdAt),
        ...(typeof Item.fingerprint === 'string' ? { fingerprint: Item.fingerprint } : {}),
        ...(Item.enqueued === true ? { enqueued: true } : {}),
      };
    }
    throw new IdempotencyContentionError(`idempotency key still contended after ${maxRounds} rounds`);
  }

  /** Marks the claim of `id` as enqueued: from now on it is replayed, never taken over as abandoned. */
  async markEnqueued(clientKey: string, id: string): Promise<void> {
    try {
      await this.documents.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [KEY]: idempotencyItemKey(clientKey) },
          UpdateExpression: 'SET enqueued = :yes',
          ConditionExpression: '#id = :id',
          ExpressionAttributeNames: { '#id': 'id' },
          ExpressionAttributeValues: { ':id': id, ':yes': true },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /** Frees the key if `id` still holds it (the submit failed, so a retry must be able to claim it). */
  async release(clientKey: string, id: string): Promise<boolean> {
    try {
      await this.documents.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { [KEY]: idempotencyItemKey(clientKey) },
          ConditionExpression: '#id = :id',
          ExpressionAttributeNames: { '#id': 'id' },
          ExpressionAttributeValues: { ':id': id },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string }).name === 'ConditionalCheckFailedException';
}

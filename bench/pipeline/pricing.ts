// AWS list prices (us-east-1, on-demand, no free tier) and what one run's counted calls cost at them.
import type { RunResult } from './measure.ts';
import type { LambdaFacts } from './trees.ts';

export const PRICES = {
  /** S3 Standard: PUT, COPY, POST, LIST requests, per 1,000. */
  s3Tier1PerThousand: 0.005,
  /** S3 Standard: GET, HEAD and all other requests, per 1,000 (DELETE is free). */
  s3Tier2PerThousand: 0.0004,
  /** DynamoDB on-demand: per million write / read request units. */
  dynamoWritePerMillion: 0.625,
  dynamoReadPerMillion: 0.125,
  /** DynamoDB Streams: per 100,000 read request units (one per GetRecords call). */
  streamsReadPer100k: 0.02,
  /** SQS standard queue: per million requests (each 64 KiB of a payload is a request). */
  sqsPerMillion: 0.4,
  /** EventBridge Pipes: per million requests (events after filtering; an EventBridge bus would be $1). */
  pipesPerMillion: 0.4,
  /** Secrets Manager: per 10,000 API calls. */
  secretsPer10k: 0.05,
  /** Lambda: per million requests, and per GB-second by architecture. */
  lambdaRequestsPerMillion: 0.2,
  lambdaGbSecond: { arm64: 0.0000133334, x86_64: 0.0000166667 } as Record<string, number>,
} as const;

/** S3 operations billed at the PUT/COPY/POST/LIST rate; DELETE and abort are free; the rest at the GET rate. */
const S3_TIER1 = /^(Put|Copy|Post|List|Create|Complete|Upload|Restore)/;
const S3_FREE = /^(Delete|Abort)/;

export interface CostLine {
  item: string;
  unitPrice: string;
  /** Dollars for the run's N messages. */
  dollars: number;
}

export function costLines(result: RunResult): CostLine[] {
  let s3Tier1 = 0;
  let s3Tier2 = 0;
  let secrets = 0;
  let streamReads = 0;
  for (const [label, count] of Object.entries(result.calls)) {
    const [service, operation = ''] = label.split('.');
    if (service === 'S3') {
      if (S3_TIER1.test(operation)) s3Tier1 += count;
      else if (!S3_FREE.test(operation)) s3Tier2 += count;
    }
    if (service === 'SecretsManager') secrets += count;
    if (service === 'DynamoDBStreams' && operation === 'GetRecords') streamReads += count;
  }
  const lambdaRequests = result.worker.invocations + result.api.requests;
  return [
    {
      item: 'S3 PUT/COPY/POST/LIST',
      unitPrice: '$0.005 / 1k',
      dollars: (s3Tier1 * PRICES.s3Tier1PerThousand) / 1e3,
    },
    { item: 'S3 GET/HEAD', unitPrice: '$0.0004 / 1k', dollars: (s3Tier2 * PRICES.s3Tier2PerThousand) / 1e3 },
    {
      item: 'DynamoDB write units (table)',
      unitPrice: '$0.625 / M WRU',
      dollars: (result.dynamo.write * PRICES.dynamoWritePerMillion) / 1e6,
    },
    {
      item: 'DynamoDB write units (indexes)',
      unitPrice: '$0.625 / M WRU',
      dollars: (result.dynamo.indexWrite * PRICES.dynamoWritePerMillion) / 1e6,
    },
    {
      item: 'DynamoDB read units',
      unitPrice: '$0.125 / M RRU',
      dollars: (result.dynamo.read * PRICES.dynamoReadPerMillion) / 1e6,
    },
    {
      item: 'DynamoDB Streams GetRecords',
      unitPrice: '$0.02 / 100k',
      dollars: (streamReads * PRICES.streamsReadPer100k) / 1e5,
    },
    {
      item: 'SQS requests (64 KiB chunks)',
      unitPrice: '$0.40 / M',
      dollars: (result.sqsBilled * PRICES.sqsPerMillion) / 1e6,
    },
    {
      item: 'Pipes events (stream INSERTs)',
      unitPrice: '$0.40 / M',
      dollars: (result.streamInserts * PRICES.pipesPerMillion) / 1e6,
    },
    {
      item: 'Secrets Manager calls',
      unitPrice: '$0.05 / 10k',
      dollars: (secrets * PRICES.secretsPer10k) / 1e4,
    },
    {
      item: 'Lambda requests (worker + API)',
      unitPrice: '$0.20 / M',
      dollars: (lambdaRequests * PRICES.lambdaRequestsPerMillion) / 1e6,
    },
  ];
}

/** AWS request cost per 1,000 emails (everything but Lambda duration). */
export function costPerThousand(result: RunResult): number {
  const dollars = costLines(result).reduce((n, line) => n + line.dollars, 0);
  return (dollars * 1000) / result.n;
}

/** The part of it that idle polls cost (empty ReceiveMessage / GetRecords). */
export function idleCostPerThousand(result: RunResult): number {
  let dollars = 0;
  for (const [label, count] of Object.entries(result.emptyPolls)) {
    if (label.startsWith('SQS.')) dollars += (count * PRICES.sqsPerMillion) / 1e6;
    if (label === 'DynamoDBStreams.GetRecords') dollars += (count * PRICES.streamsReadPer100k) / 1e5;
  }
  return (dollars * 1000) / result.n;
}

export function workerGbSecondsPerThousand(result: RunResult, lambda: LambdaFacts): number {
  return ((result.worker.busyMs / 1000) * (lambda.workerMemoryMiB / 1024) * 1000) / result.n;
}

export function apiGbSecondsPerThousand(result: RunResult, lambda: LambdaFacts): number {
  return ((result.api.busyMs / 1000) * (lambda.apiMemoryMiB / 1024) * 1000) / result.n;
}

export function gbSecondPrice(lambda: LambdaFacts): number {
  return PRICES.lambdaGbSecond[lambda.architecture] ?? PRICES.lambdaGbSecond.x86_64!;
}

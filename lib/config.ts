// Environment → typed configuration, validated once at cold start with a message that names the variable.
import { z } from 'zod';
// Type only: the signer (mailauth) stays out of the API's bundle; the worker checks the key (functions/worker/deps.ts).
import type { DkimKey } from './message/dkim.ts';
import type { TlsMode } from './smtp/types.ts';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number) => z.coerce.number().int().min(min);

const awsSchema = z.object({
  AWS_REGION: z.string().min(1).default('us-east-1'),
  /** LocalStack, moto or any emulator; unset for real AWS. */
  AWS_ENDPOINT_URL: z.url().optional(),
  BUCKET_NAME: z.string().min(3),
  /** The ledger (DynamoDB): status records, idempotency keys, the relay's rate limit. */
  LEDGER_TABLE: z.string().min(3),
  /** Days a status record (and, by the bucket's lifecycle, its transcripts) is kept. */
  RETENTION_DAYS: int(1).default(30),
});

/**
 * An ASCII host name (RFC 1123 labels: letters, digits, inner hyphens, 1–63 octets each; 253 in all).
 * lib/message/address.ts exports no host-name rule, hence this one: the Message-ID domain goes into
 * `<id@domain>` as it is, so a space or '>' would make every message fail in the worker.
 */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The one-click unsubscribe key (API and worker): the secret itself (local) or its Secrets Manager ARN. */
const unsubscribeSchema = {
  UNSUBSCRIBE_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  UNSUBSCRIBE_SECRET_ARN: z.string().min(1).optional(),
};

const apiSchema = awsSchema.extend({
  ...unsubscribeSchema,
  /** The send queue: the API enqueues first, then writes the status record. */
  QUEUE_URL: z.url(),
  /**
   * Decoded size limit of one send request (body + attachments). 4 MiB: API Gateway hands Lambda at most
   * 6 MB of request and base64 makes attachments 4/3 larger, so about 4.4 MiB decoded is the most that can
   * arrive; a larger limit would let API Gateway answer a bare 413 instead of the API's payload_too_large.
   */
  MAX_MESSAGE_BYTES: int(1).default(4 * 1024 * 1024),
  /** Domain of generated Message-IDs (`<id@domain>`): a host name. */
  MESSAGE_ID_DOMAIN: z
    .string()
    .regex(HOST_NAME, 'must be a host name (letters, digits, hyphens and dots)')
    .default('smtpq.local'),
  /**
   * Who may be the sender: `*` (anyone, only when given explicitly), or comma-separated domains — `example.com`
   * is that domain exactly, `*.example.com` any subdomain of it. No default: a deploy must choose.
   */
  ALLOWED_FROM_DOMAINS: z
    .string({ error: 'required: the domains senders may use (comma-separated), or * for any' })
    .transform((value, ctx) => {
      if (value.trim() === '*') return '*' as const;
      const domains = value.split(',').map((d) => d.trim().toLowerCase());
      for (const domain of domains)
        if (!HOST_NAME.test(domain.startsWith('*.') ? domain.slice(2) : domain))
          ctx.addIssue({ code: 'custom', message: `"${domain}" is not a domain (or *.domain, or *)` });
      return domains;
    }),
  /** IAM principals (ARNs, comma-separated) that may read every caller's messages; others read their own. */
  READ_ALL_PRINCIPALS: z
    .string()
    .optional()
    .transform((value) =>
      (value ?? '')
        .split(',')
        .map((arn) => arn.trim())
        .filter(Boolean),
    ),
});

const workerSchema = awsSchema.extend({
  ...unsubscribeSchema,
  /** DKIM signing locally: one key (PEM; literal \n escapes are read as line breaks). */
  DKIM_DOMAIN: z.string().min(1).optional(),
  DKIM_SELECTOR: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be a DNS label (a-z 0-9 - _)')
    .optional(),
  DKIM_PRIVATE_KEY: z.string().min(1).optional(),
  /** Or a Secrets Manager secret holding [{ "domain", "selector", "privateKey" }]. */
  DKIM_SECRET_ARN: z.string().min(1).optional(),
  /** The API's public URL, for the unsubscribe links (the template sets the HTTP API's). */
  PUBLIC_BASE_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .default('http://localhost:3000'),
  /** The queue the worker's records come from: back-off is their visibility timeout. */
  QUEUE_URL: z.url(),
  /** Messages per second to the relay across every worker (a token bucket in the ledger); unset: no limit. */
  SMTP_MAX_MESSAGES_PER_SECOND: z.coerce.number().positive().optional(),
  SMTP_HOST: z.string().min(1),
  SMTP_PORT: int(1).max(65535).optional(),
  SMTP_TLS: z.enum(['implicit', 'starttls', 'none']).default('starttls'),
  /** Default: true unless SMTP_TLS is 'none' (then there is no TLS to require). */
  SMTP_REQUIRE_TLS: bool.optional(),
  SMTP_EHLO_NAME: z.string().min(1).optional(),
  /** The CA(s) to trust (PEM text), for relays with a private CA: they replace Node's trust store. */
  SMTP_CA_PEM: z.string().optional(),
  /** Secrets Manager secret holding {"username": "...", "password": "..."}; unset for no AUTH. */
  SMTP_SECRET_ARN: z.string().min(1).optional(),
  SMTP_CONNECT_TIMEOUT_MS: int(1).default(10_000),
  SMTP_GREETING_TIMEOUT_MS: int(1).default(10_000),
  SMTP_COMMAND_TIMEOUT_MS: int(1).default(30_000),
  SMTP_DATA_TIMEOUT_MS: int(1).default(60_000),
  /** Queue back-off (RFC 5321 §4.5.4.1, Postfix minimal/maximal_backoff_time). */
  RETRY_BASE_SECONDS: int(0).default(300),
  /** At most SQS's 12 h visibility less a Lambda run and a batching window (lib/delivery/backoff.ts). */
  RETRY_MAX_SECONDS: int(0).max(42_000).default(14_400),
  RETRY_MAX_AGE_SECONDS: int(60).default(172_800),
  RETRY_MAX_ATTEMPTS: int(1).default(30),
  /**
   * How long a queue message's missing status record is left to the API before the worker writes it
   * itself: longer than the API can still be writing it (its function timeout, 15 s, and retries).
   */
  RECORD_WRITE_GRACE_SECONDS: int(0).default(60),
});

/** The events function: only the bus (its records come from the ledger's stream, not from a client). */
const eventsSchema = z.object({
  AWS_REGION: z.string().min(1).default('us-east-1'),
  AWS_ENDPOINT_URL: z.url().optional(),
  EVENT_BUS_NAME: z.string().min(1),
});

const webhookSchema = z.object({
  AWS_REGION: z.string().min(1).default('us-east-1'),
  AWS_ENDPOINT_URL: z.url().optional(),
  /** Where every event is POSTed, signed (Standard Webhooks). */
  WEBHOOK_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  /** Secrets Manager secret whose string is the signing secret (`whsec_…`); or the secret itself (local). */
  WEBHOOK_SECRET_ARN: z.string().min(1).optional(),
  WEBHOOK_SECRET: z.string().startsWith('whsec_', 'must start with whsec_').optional(),
  /** The webhook queue: a failed POST comes back from it after its back-off (visibility). */
  WEBHOOK_QUEUE_URL: z.url(),
  /** How long one POST may take before it counts as failed. */
  WEBHOOK_TIMEOUT_MS: int(1).default(10_000),
});

export interface AwsConfig {
  region: string;
  endpoint?: string;
  bucket: string;
  table: string;
  retentionDays: number;
}

/** Where the unsubscribe key is: given, or in Secrets Manager; undefined when neither is configured. */
export type UnsubscribeKeyConfig = { value: string } | { arn: string } | undefined;

export interface ApiConfig {
  aws: AwsConfig;
  unsubscribeKey: UnsubscribeKeyConfig;
  queueUrl: string;
  maxMessageBytes: number;
  messageIdDomain: string;
  /** '*' or lower-case domains (`*.example.com`: its subdomains). */
  allowedFromDomains: '*' | string[];
  readAllPrincipals: string[];
}

/** The DKIM keys: given (local, checked at load), or in a Secrets Manager secret; undefined: no signing. */
export type DkimConfig = { keys: DkimKey[] } | { arn: string } | undefined;

export interface WorkerConfig {
  aws: AwsConfig;
  dkim: DkimConfig;
  unsubscribeKey: UnsubscribeKeyConfig;
  publicBaseUrl: string;
  queueUrl: string;
  /** The relay's shared limit: messages per second across all workers (undefined: none). */
  relayMaxRate?: number;
  smtp: {
    host: string;
    port?: number;
    tls: TlsMode;
    requireTLS: boolean;
    name?: string;
    ca?: string;
    secretArn?: string;
    timeouts: { connect: number; greeting: number; command: number; data: number; dataEnd: number };
  };
  retry: { baseSeconds: number; maxSeconds: number; maxAgeSeconds: number; maxAttempts: number };
  /** RECORD_WRITE_GRACE_SECONDS, in milliseconds. */
  recordWriteGraceMs: number;
}

export interface EventsConfig {
  aws: Pick<AwsConfig, 'region' | 'endpoint'>;
  busName: string;
}

export interface WebhookConfig {
  aws: Pick<AwsConfig, 'region' | 'endpoint'>;
  url: string;
  secret: { arn: string } | { value: string };
  queueUrl: string;
  timeoutMs: number;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

function parse<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  return result.data;
}

function unsubscribeKey(e: {
  UNSUBSCRIBE_SECRET?: string;
  UNSUBSCRIBE_SECRET_ARN?: string;
}): UnsubscribeKeyConfig {
  if (e.UNSUBSCRIBE_SECRET !== undefined && e.UNSUBSCRIBE_SECRET_ARN !== undefined)
    throw new ConfigError('invalid configuration: set one of UNSUBSCRIBE_SECRET and UNSUBSCRIBE_SECRET_ARN');
  if (e.UNSUBSCRIBE_SECRET !== undefined) return { value: e.UNSUBSCRIBE_SECRET };
  return e.UNSUBSCRIBE_SECRET_ARN !== undefined ? { arn: e.UNSUBSCRIBE_SECRET_ARN } : undefined;
}

function dkimConfig(e: {
  DKIM_DOMAIN?: string;
  DKIM_SELECTOR?: string;
  DKIM_PRIVATE_KEY?: string;
  DKIM_SECRET_ARN?: string;
}): DkimConfig {
  const local = [e.DKIM_DOMAIN, e.DKIM_SELECTOR, e.DKIM_PRIVATE_KEY].filter((v) => v !== undefined).length;
  if (local > 0 && e.DKIM_SECRET_ARN !== undefined)
    throw new ConfigError(
      'invalid configuration: set DKIM_DOMAIN/DKIM_SELECTOR/DKIM_PRIVATE_KEY or DKIM_SECRET_ARN, not both',
    );
  if (e.DKIM_SECRET_ARN !== undefined) return { arn: e.DKIM_SECRET_ARN };
  if (local === 0) return undefined;
  if (local < 3)
    throw new ConfigError(
      'invalid configuration: DKIM needs all of DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY',
    );
  const key = {
    domain: e.DKIM_DOMAIN!.toLowerCase(),
    selector: e.DKIM_SELECTOR!,
    privateKey: e.DKIM_PRIVATE_KEY!.replace(/\\n/g, '\n'),
  };
  return { keys: [key] };
}

function awsConfig(e: z.output<typeof awsSchema>): AwsConfig {
  return {
    region: e.AWS_REGION,
    endpoint: e.AWS_ENDPOINT_URL,
    bucket: e.BUCKET_NAME,
    table: e.LEDGER_TABLE,
    retentionDays: e.RETENTION_DAYS,
  };
}

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const e = parse(apiSchema, env);
  return {
    aws: awsConfig(e),
    unsubscribeKey: unsubscribeKey(e),
    queueUrl: e.QUEUE_URL,
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    messageIdDomain: e.MESSAGE_ID_DOMAIN,
    allowedFromDomains: e.ALLOWED_FROM_DOMAINS,
    readAllPrincipals: e.READ_ALL_PRINCIPALS,
  };
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = parse(workerSchema, env);
  return {
    aws: awsConfig(e),
    unsubscribeKey: unsubscribeKey(e),
    dkim: dkimConfig(e),
    publicBaseUrl: e.PUBLIC_BASE_URL,
    queueUrl: e.QUEUE_URL,
    relayMaxRate: e.SMTP_MAX_MESSAGES_PER_SECOND,
    smtp: {
      host: e.SMTP_HOST,
      port: e.SMTP_PORT,
      tls: e.SMTP_TLS,
      requireTLS: e.SMTP_REQUIRE_TLS ?? e.SMTP_TLS !== 'none',
      name: e.SMTP_EHLO_NAME,
      ca: e.SMTP_CA_PEM,
      secretArn: e.SMTP_SECRET_ARN,
      timeouts: {
        connect: e.SMTP_CONNECT_TIMEOUT_MS,
        greeting: e.SMTP_GREETING_TIMEOUT_MS,
        command: e.SMTP_COMMAND_TIMEOUT_MS,
        data: e.SMTP_DATA_TIMEOUT_MS,
        dataEnd: e.SMTP_DATA_TIMEOUT_MS,
      },
    },
    retry: {
      baseSeconds: e.RETRY_BASE_SECONDS,
      maxSeconds: e.RETRY_MAX_SECONDS,
      maxAgeSeconds: e.RETRY_MAX_AGE_SECONDS,
      maxAttempts: e.RETRY_MAX_ATTEMPTS,
    },
    recordWriteGraceMs: e.RECORD_WRITE_GRACE_SECONDS * 1000,
  };
}

export function loadEventsConfig(env: NodeJS.ProcessEnv = process.env): EventsConfig {
  const e = parse(eventsSchema, env);
  return { aws: { region: e.AWS_REGION, endpoint: e.AWS_ENDPOINT_URL }, busName: e.EVENT_BUS_NAME };
}

export function loadWebhookConfig(env: NodeJS.ProcessEnv = process.env): WebhookConfig {
  const e = parse(webhookSchema, env);
  if ((e.WEBHOOK_SECRET_ARN === undefined) === (e.WEBHOOK_SECRET === undefined))
    throw new ConfigError('invalid configuration: set one of WEBHOOK_SECRET_ARN and WEBHOOK_SECRET');
  return {
    aws: { region: e.AWS_REGION, endpoint: e.AWS_ENDPOINT_URL },
    url: e.WEBHOOK_URL,
    secret: e.WEBHOOK_SECRET_ARN ? { arn: e.WEBHOOK_SECRET_ARN } : { value: e.WEBHOOK_SECRET! },
    queueUrl: e.WEBHOOK_QUEUE_URL,
    timeoutMs: e.WEBHOOK_TIMEOUT_MS,
  };
}

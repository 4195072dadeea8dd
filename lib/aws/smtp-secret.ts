// Secrets from Secrets Manager. SMTP credentials: a JSON secret {"username": "...", "password": "..."}, read once and
// kept for a TTL, so warm invocations do not call Secrets Manager and a rotated secret is picked up in time.
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { UnsubscribeKeyConfig } from '../config.ts';

export interface SmtpCredentials {
  username: string;
  password: string;
}

export const SECRET_TTL_MS = 5 * 60 * 1000;

/** The secret exists but is not the expected JSON. The message never contains the secret's value. */
export class SecretFormatError extends Error {
  readonly code = 'SECRET_INVALID';
}

/** A secret's value, parsed by `parse`, read once and kept for the TTL. */
export class CachedSecret<T> {
  private cached?: { value: T; until: number };
  private inFlight?: Promise<T>;

  constructor(
    private readonly secrets: SecretsManagerClient,
    private readonly secretId: string,
    private readonly parse: (text: string | undefined, secretId: string) => T,
    private readonly ttlMs: number = SECRET_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value, from the cache while fresh; concurrent callers share one read. Failures are not cached. */
  async get(): Promise<T> {
    if (this.cached && this.now() < this.cached.until) return this.cached.value;
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async read(): Promise<T> {
    const result = await this.secrets.send(new GetSecretValueCommand({ SecretId: this.secretId }));
    const value = this.parse(result.SecretString, this.secretId);
    this.cached = { value, until: this.now() + this.ttlMs };
    return value;
  }
}

export class SmtpSecretReader extends CachedSecret<SmtpCredentials> {
  constructor(
    secrets: SecretsManagerClient,
    secretId: string,
    ttlMs: number = SECRET_TTL_MS,
    now: () => number = Date.now,
  ) {
    super(secrets, secretId, parseCredentials, ttlMs, now);
  }
}

/** A webhook signing secret: the SecretString itself, `whsec_` + base64 key bytes. */
export function parseWebhookSecret(text: string | undefined, secretId: string): string {
  const value = text?.trim();
  if (!value || !/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(value))
    throw new SecretFormatError(`secret ${secretId} must be a string whsec_<base64 key bytes>`);
  return value;
}

function parseCredentials(text: string | undefined, secretId: string): SmtpCredentials {
  const problem = `secret ${secretId} must be a JSON string {"username": "...", "password": "..."}`;
  if (text === undefined) throw new SecretFormatError(`${problem}; it has no SecretString`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SecretFormatError(`${problem}; it is not JSON`);
  }
  const { username, password } = (typeof value === 'object' && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  if (typeof username !== 'string' || username === '' || typeof password !== 'string' || password === '') {
    throw new SecretFormatError(`${problem}; username or password is missing or not a non-empty string`);
  }
  return { username, password };
}

/** The one-click unsubscribe key: the SecretString itself (the template generates it). */
export function parseUnsubscribeKey(text: string | undefined, secretId: string): string {
  const value = text?.trim();
  if (!value || value.length < 32)
    throw new SecretFormatError(`secret ${secretId} must be a string of at least 32 characters`);
  return value;
}

/** The unsubscribe key as configured: given (local), or read from Secrets Manager and cached. */
export function unsubscribeKeyReader(
  secrets: SecretsManagerClient,
  config: UnsubscribeKeyConfig,
): (() => Promise<string>) | undefined {
  if (!config) return undefined;
  if ('value' in config) return async () => config.value;
  const reader = new CachedSecret(secrets, config.arn, parseUnsubscribeKey);
  return () => reader.get();
}

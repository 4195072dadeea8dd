// SMTP credentials from Secrets Manager: a JSON secret {"username": "...", "password": "..."}, read once and
// kept for a TTL, so warm invocations do not call Secrets Manager and a rotated secret is picked up in time.
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

export interface SmtpCredentials {
  username: string;
  password: string;
}

export const SECRET_TTL_MS = 5 * 60 * 1000;

/** The secret exists but is not the expected JSON. The message never contains the secret's value. */
export class SecretFormatError extends Error {
  readonly code = 'SECRET_INVALID';
}

export class SmtpSecretReader {
  private cached?: { value: SmtpCredentials; until: number };
  private inFlight?: Promise<SmtpCredentials>;

  constructor(
    private readonly secrets: SecretsManagerClient,
    private readonly secretId: string,
    private readonly ttlMs: number = SECRET_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The credentials, from the cache while fresh; concurrent callers share one read. Failures are not cached. */
  async get(): Promise<SmtpCredentials> {
    if (this.cached && this.now() < this.cached.until) return this.cached.value;
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async read(): Promise<SmtpCredentials> {
    const result = await this.secrets.send(new GetSecretValueCommand({ SecretId: this.secretId }));
    const value = parseCredentials(result.SecretString, this.secretId);
    this.cached = { value, until: this.now() + this.ttlMs };
    return value;
  }
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

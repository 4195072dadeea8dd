// The worker's DKIM keys: from the configuration (local), or a Secrets Manager secret read once and cached.
// Apart from smtp-secret.ts so that the API's bundle never loads the signer.
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { DkimConfig } from '../config.ts';
import { type DkimKey, dkimKeyObject } from '../message/dkim.ts';
import { CachedSecret, SecretFormatError } from './smtp-secret.ts';

/** DKIM keys: a JSON secret [{ "domain", "selector", "privateKey" }], each key checked (RSA ≥ 2048, Ed25519). */
export function parseDkimKeys(text: string | undefined, secretId: string): DkimKey[] {
  const problem = `secret ${secretId} must be a JSON array [{"domain", "selector", "privateKey"}]`;
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    throw new SecretFormatError(`${problem}; it is not JSON`);
  }
  if (!Array.isArray(value) || value.length === 0)
    throw new SecretFormatError(`${problem}; it is not a non-empty array`);
  return value.map((entry: unknown, i) => {
    const { domain, selector, privateKey } = (
      typeof entry === 'object' && entry !== null ? entry : {}
    ) as Record<string, unknown>;
    if (
      typeof domain !== 'string' ||
      typeof selector !== 'string' ||
      typeof privateKey !== 'string' ||
      !domain ||
      !selector
    )
      throw new SecretFormatError(`${problem}; entry [${i}] lacks a string domain, selector or privateKey`);
    const key = { domain: domain.toLowerCase(), selector, privateKey };
    try {
      dkimKeyObject(key);
    } catch (error) {
      throw new SecretFormatError(`${problem}; entry [${i}]: ${(error as Error).message}`);
    }
    return key;
  });
}

/** The DKIM keys as configured: given (local), or read from Secrets Manager and cached. */
export function dkimKeysReader(
  secrets: SecretsManagerClient,
  config: DkimConfig,
): (() => Promise<DkimKey[]>) | undefined {
  if (!config) return undefined;
  if ('keys' in config) {
    for (const key of config.keys) dkimKeyObject(key);
    return async () => config.keys;
  }
  const reader = new CachedSecret(secrets, config.arn, parseDkimKeys);
  return () => reader.get();
}

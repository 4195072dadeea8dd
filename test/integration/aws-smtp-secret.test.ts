// SmtpSecretReader against moto: reads {username,password}, caches it for the TTL, rejects a malformed secret
// without ever printing its value.
import { CreateSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { SecretFormatError, SmtpSecretReader } from '../../lib/aws/index.ts';
import { createTestResources, type TestResources } from '../support/moto.ts';

let resources: TestResources;

beforeAll(async () => {
  resources = await createTestResources(inject('motoEndpoint'), {
    smtpCredentials: { username: 'relay-user', password: 'first-password' },
  });
});

async function createSecret(name: string, value: string): Promise<string> {
  const created = await resources.clients.secrets.send(
    new CreateSecretCommand({ Name: `${resources.bucket}/${name}`, SecretString: value }),
  );
  return created.ARN!;
}

describe('SmtpSecretReader', () => {
  it('reads the credentials from the secret', async () => {
    const reader = new SmtpSecretReader(resources.clients.secrets, resources.secretArn);
    expect(await reader.get()).toEqual({ username: 'relay-user', password: 'first-password' });
  });

  it('serves the cached value within the TTL and reads again after it', async () => {
    const arn = await createSecret('rotating', JSON.stringify({ username: 'u', password: 'old' }));
    let now = 1_000_000;
    const reader = new SmtpSecretReader(resources.clients.secrets, arn, 60_000, () => now);
    expect((await reader.get()).password).toBe('old');

    await resources.clients.secrets.send(
      new PutSecretValueCommand({
        SecretId: arn,
        SecretString: JSON.stringify({ username: 'u', password: 'new' }),
      }),
    );
    now += 59_000;
    expect((await reader.get()).password).toBe('old');
    now += 2_000;
    expect((await reader.get()).password).toBe('new');
  });

  it('rejects a secret that is not the expected JSON, naming the problem but not the value', async () => {
    const notJson = await createSecret('not-json', 'hunter2-plain');
    const noPassword = await createSecret('no-password', JSON.stringify({ username: 'u', pass: 'hunter2' }));

    for (const arn of [notJson, noPassword]) {
      const error = await new SmtpSecretReader(resources.clients.secrets, arn).get().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SecretFormatError);
      expect(String((error as Error).message)).not.toContain('hunter2');
    }
  });

  it('does not cache a failure: a secret fixed later is read', async () => {
    const arn = await createSecret('fixed-later', '{}');
    const reader = new SmtpSecretReader(resources.clients.secrets, arn);
    await expect(reader.get()).rejects.toBeInstanceOf(SecretFormatError);

    await resources.clients.secrets.send(
      new PutSecretValueCommand({
        SecretId: arn,
        SecretString: JSON.stringify({ username: 'u', password: 'p' }),
      }),
    );

    expect(await reader.get()).toEqual({ username: 'u', password: 'p' });
  });

  it('fails with the SDK error for a secret that does not exist', async () => {
    const reader = new SmtpSecretReader(
      resources.clients.secrets,
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:nope',
    );
    await expect(reader.get()).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

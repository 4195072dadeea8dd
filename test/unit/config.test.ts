import { describe, expect, it } from 'vitest';
import { ConfigError, loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';

const aws = { BUCKET_NAME: 'smtpq-test', QUEUE_URL: 'http://127.0.0.1:4566/000000000000/q' };
const worker = { ...aws, SMTP_HOST: 'relay.example.org' };

describe('lib/config: environment → typed config', () => {
  it('fills the defaults', () => {
    const config = loadWorkerConfig(worker);
    expect(config.smtp).toMatchObject({ host: 'relay.example.org', tls: 'starttls', requireTLS: true });
    expect(config.retry).toEqual({
      baseSeconds: 300,
      maxSeconds: 14_400,
      maxAgeSeconds: 172_800,
      maxAttempts: 30,
    });
    expect(loadApiConfig(aws)).toMatchObject({
      maxMessageBytes: 10 * 1024 * 1024,
      messageIdDomain: 'smtpq.local',
    });
  });

  it('requires TLS by default, except with SMTP_TLS=none where there is none to require', () => {
    expect(loadWorkerConfig({ ...worker, SMTP_TLS: 'implicit' }).smtp.requireTLS).toBe(true);
    expect(loadWorkerConfig({ ...worker, SMTP_TLS: 'none' }).smtp.requireTLS).toBe(false);
    expect(loadWorkerConfig({ ...worker, SMTP_REQUIRE_TLS: 'false' }).smtp.requireTLS).toBe(false);
  });

  it.each([
    [{ ...aws, SMTP_HOST: undefined }, 'SMTP_HOST'],
    [{ ...worker, SMTP_PORT: '70000' }, 'SMTP_PORT'],
    [{ ...worker, SMTP_TLS: 'ssl' }, 'SMTP_TLS'],
    [{ ...worker, SMTP_REQUIRE_TLS: 'yes' }, 'SMTP_REQUIRE_TLS'],
    // SQS refuses a visibility past 12 h after the receive; a run and a batching window come off it.
    [{ ...worker, RETRY_MAX_SECONDS: '43200' }, 'RETRY_MAX_SECONDS'],
    [{ ...worker, QUEUE_URL: 'not a url' }, 'QUEUE_URL'],
  ])('a bad value is a ConfigError naming the variable (%#)', (env, name) => {
    expect(() => loadWorkerConfig(env)).toThrow(ConfigError);
    expect(() => loadWorkerConfig(env)).toThrow(name);
  });
});

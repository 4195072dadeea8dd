import { describe, expect, it } from 'vitest';
import { ConfigError, loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';

const QUEUE_URL = 'http://127.0.0.1:4566/000000000000/q';
const aws = { BUCKET_NAME: 'smtpq-test', LEDGER_TABLE: 'smtpq-ledger', QUEUE_URL };
const worker = { ...aws, SMTP_HOST: 'relay.example.org' };
const api = { ...aws, ALLOWED_FROM_DOMAINS: '*' };

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
    expect(loadApiConfig(api)).toMatchObject({
      // 4 MiB: the most that fits API Gateway's 6 MB request once base64 has grown the attachments.
      maxMessageBytes: 4_194_304,
      messageIdDomain: 'smtpq.local',
    });
  });

  it('reads the ledger table and the queue into both configurations, records kept 30 days by default', () => {
    for (const config of [loadWorkerConfig(worker), loadApiConfig(api)]) {
      expect(config.aws).toMatchObject({ bucket: 'smtpq-test', table: 'smtpq-ledger', retentionDays: 30 });
      expect(config.queueUrl).toBe(QUEUE_URL);
    }
    expect(loadApiConfig({ ...api, RETENTION_DAYS: '7' }).aws.retentionDays).toBe(7);
  });

  it('requires ALLOWED_FROM_DOMAINS: * for any sender, or domains (*.domain for its subdomains)', () => {
    expect(() => loadApiConfig(aws)).toThrow(/ALLOWED_FROM_DOMAINS: required/);
    expect(loadApiConfig(api).allowedFromDomains).toBe('*');
    expect(
      loadApiConfig({ ...aws, ALLOWED_FROM_DOMAINS: 'Example.com, *.mail.example.org' }).allowedFromDomains,
    ).toEqual(['example.com', '*.mail.example.org']);
    expect(() => loadApiConfig({ ...aws, ALLOWED_FROM_DOMAINS: 'example.com,not a domain' })).toThrow(
      /"not a domain" is not a domain/,
    );
    expect(loadApiConfig(api).readAllPrincipals).toEqual([]);
    expect(
      loadApiConfig({ ...api, READ_ALL_PRINCIPALS: 'arn:aws:iam::1:role/Ops, arn:aws:iam::1:user/audit' })
        .readAllPrincipals,
    ).toEqual(['arn:aws:iam::1:role/Ops', 'arn:aws:iam::1:user/audit']);
  });

  it('leaves the relay unlimited by default and takes a rate in messages per second', () => {
    expect(loadWorkerConfig(worker).relayMaxRate).toBeUndefined();
    expect(loadWorkerConfig({ ...worker, SMTP_MAX_MESSAGES_PER_SECOND: '14' }).relayMaxRate).toBe(14);
    expect(loadWorkerConfig({ ...worker, SMTP_MAX_MESSAGES_PER_SECOND: '0.5' }).relayMaxRate).toBe(0.5);
  });

  it('requires TLS by default, except with SMTP_TLS=none where there is none to require', () => {
    expect(loadWorkerConfig({ ...worker, SMTP_TLS: 'implicit' }).smtp.requireTLS).toBe(true);
    expect(loadWorkerConfig({ ...worker, SMTP_TLS: 'none' }).smtp.requireTLS).toBe(false);
    expect(loadWorkerConfig({ ...worker, SMTP_REQUIRE_TLS: 'false' }).smtp.requireTLS).toBe(false);
  });

  it('takes a host name as MESSAGE_ID_DOMAIN', () => {
    for (const domain of ['example.com', 'mail-1.Example.ORG', 'localhost', `${'a'.repeat(63)}.example`]) {
      expect(loadApiConfig({ ...api, MESSAGE_ID_DOMAIN: domain }).messageIdDomain).toBe(domain);
    }
  });

  // Each would pass the API (202) and then make every message fail in the worker's <id@domain>.
  it.each([
    'mail example.com',
    'example.com>',
    '<example.com',
    'example.com\r\nX-Injected: 1',
    '',
    'example..com',
    '.example.com',
    'example.com.',
    '-example.com',
    'example-.com',
    'exa_mple.com',
    'exämple.com',
    '[192.0.2.1]',
    `${'a'.repeat(64)}.example`,
    `${'abc.'.repeat(63)}com`, // 255 octets
  ])('refuses MESSAGE_ID_DOMAIN %j at cold start with a ConfigError naming it', (domain) => {
    expect(() => loadApiConfig({ ...api, MESSAGE_ID_DOMAIN: domain })).toThrow(ConfigError);
    expect(() => loadApiConfig({ ...api, MESSAGE_ID_DOMAIN: domain })).toThrow('MESSAGE_ID_DOMAIN');
  });

  it.each([
    [{ ...aws, SMTP_HOST: undefined }, 'SMTP_HOST'],
    [{ ...worker, SMTP_PORT: '70000' }, 'SMTP_PORT'],
    [{ ...worker, SMTP_TLS: 'ssl' }, 'SMTP_TLS'],
    [{ ...worker, SMTP_REQUIRE_TLS: 'yes' }, 'SMTP_REQUIRE_TLS'],
    // SQS refuses a visibility past 12 h after the receive; a run and a batching window come off it.
    [{ ...worker, RETRY_MAX_SECONDS: '43200' }, 'RETRY_MAX_SECONDS'],
    [{ ...worker, QUEUE_URL: 'not a url' }, 'QUEUE_URL'],
    [{ ...worker, QUEUE_URL: undefined }, 'QUEUE_URL'],
    [{ ...worker, LEDGER_TABLE: undefined }, 'LEDGER_TABLE'],
    [{ ...worker, RETENTION_DAYS: '0' }, 'RETENTION_DAYS'],
    [{ ...worker, SMTP_MAX_MESSAGES_PER_SECOND: '0' }, 'SMTP_MAX_MESSAGES_PER_SECOND'],
    [{ ...worker, SMTP_MAX_MESSAGES_PER_SECOND: 'fast' }, 'SMTP_MAX_MESSAGES_PER_SECOND'],
  ])('a bad value is a ConfigError naming the variable (%#)', (env, name) => {
    expect(() => loadWorkerConfig(env)).toThrow(ConfigError);
    expect(() => loadWorkerConfig(env)).toThrow(name);
  });

  it.each(['LEDGER_TABLE', 'QUEUE_URL'])('the API refuses to start without %s', (name) => {
    const env = { ...aws, [name]: undefined };
    expect(() => loadApiConfig(env)).toThrow(ConfigError);
    expect(() => loadApiConfig(env)).toThrow(name);
  });
});

// Invariants of infra/template.yaml that a reviewer would otherwise check by eye: the queue outlives a worker
// invocation, redrive and partial batch responses are wired, the API is IAM-protected, the environment
// matches lib/config.ts, and every policy is scoped to this stack's resources.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type CollectionTag, parse, type ScalarTag, type YAMLSeq } from 'yaml';
import { SQS_INLINE_LIMIT_BYTES } from '../../functions/api/claim-check.ts';
import { matchRoute } from '../../functions/api/routes.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import { resolveOptions } from '../../lib/smtp/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

// CloudFormation short forms (!Ref X, !GetAtt A.B, !If [...]) parsed into their long JSON forms.
const scalar = (tag: string, toValue: (text: string) => unknown): ScalarTag => ({
  tag: `!${tag}`,
  resolve: (text: string) => toValue(text) as string,
});
const sequence = (tag: string): CollectionTag => ({
  tag: `!${tag}`,
  collection: 'seq',
  resolve: (seq) => ({ [`Fn::${tag}`]: (seq as YAMLSeq).toJSON() }) as unknown as YAMLSeq,
});
const cloudFormationTags = [
  scalar('Ref', (text) => ({ Ref: text })),
  scalar('GetAtt', (text) => ({ 'Fn::GetAtt': text.split('.') })),
  scalar('Sub', (text) => ({ 'Fn::Sub': text })),
  ...['If', 'Not', 'Equals', 'Join', 'Select', 'Split', 'Sub', 'GetAtt', 'And', 'Or'].map(sequence),
];

// biome-ignore lint/suspicious/noExplicitAny: the parsed template is untyped JSON, navigated by known paths.
type Node = Record<string, any>;
const template = parse(readFileSync(`${root}infra/template.yaml`, 'utf8'), {
  customTags: cloudFormationTags,
}) as Node;
const resources = template.Resources as Node;
const globals = template.Globals.Function as Node;
const worker = resources.WorkerFunction as Node;
const api = resources.ApiFunction as Node;
const queue = resources.Queue.Properties as Node;
const queueEvent = Object.values(worker.Properties.Events as Node).find((e) => e.Type === 'SQS') as Node;

/**
 * A function's environment as CloudFormation would resolve it for the given parameter values (defaults for
 * the rest; SmtpHost, which has none, is relay.example.com): Ref, the template's Conditions (Equals, Not)
 * and Fn::If, with AWS::NoValue leaving the variable unset.
 */
function resolveEnv(env: Node, parameters: Record<string, string> = {}): NodeJS.ProcessEnv {
  const parameter = (name: string) =>
    parameters[name] ?? String(template.Parameters[name].Default ?? 'relay.example.com');
  const value = (node: unknown): unknown => {
    if (typeof node !== 'object' || node === null) return node;
    const n = node as Node;
    if (n.Ref === 'AWS::NoValue') return undefined;
    if (n.Ref === 'Queue') return 'https://sqs.eu-west-1.amazonaws.com/123456789012/smtpq-Queue';
    if (n.Ref === 'Bucket') return 'smtpq-bucket';
    if (n.Ref === 'SmtpSecret') return 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtpq-AbCdEf';
    if (n.Ref !== undefined) return parameter(n.Ref);
    if (n['Fn::Equals']) return value(n['Fn::Equals'][0]) === value(n['Fn::Equals'][1]);
    if (n['Fn::Not']) return !value(n['Fn::Not'][0]);
    if (n['Fn::If']) {
      const [condition, whenTrue, whenFalse] = n['Fn::If'];
      return value(value(template.Conditions[condition]) ? whenTrue : whenFalse);
    }
    throw new Error(`unresolved ${JSON.stringify(node)}`);
  };
  return Object.fromEntries(
    Object.entries(env).map(([name, node]) => {
      const resolved = value(node);
      return [name, resolved === undefined ? undefined : String(resolved)];
    }),
  );
}

const apiEnvOf = (parameters: Record<string, string> = {}) =>
  resolveEnv({ ...globals.Environment.Variables, ...api.Properties.Environment.Variables }, parameters);

const workerEnvOf = (parameters: Record<string, string> = {}) =>
  resolveEnv({ ...globals.Environment.Variables, ...worker.Properties.Environment.Variables }, parameters);

const ref = (name: string) => ({ Ref: name });
const getAtt = (resource: string, attribute: string) => ({ 'Fn::GetAtt': [resource, attribute] });
const defaultOf = (parameter: string) => Number(template.Parameters[parameter].Default);

describe('infra/template.yaml: queue and worker', () => {
  it('keeps the visibility timeout at least 6 x the worker timeout plus the batching window', () => {
    const timeout = worker.Properties.Timeout ?? globals.Timeout;
    const window = queueEvent.Properties.MaximumBatchingWindowInSeconds ?? 0;

    expect(typeof timeout).toBe('number');
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout + window);
  });

  it('redrives to the DLQ after MaxReceiveCount receives, above the worker’s own attempt limit', () => {
    expect(queue.RedrivePolicy).toEqual({
      deadLetterTargetArn: getAtt('DeadLetterQueue', 'Arn'),
      maxReceiveCount: ref('MaxReceiveCount'),
    });
    expect(worker.Properties.Environment.Variables.RETRY_MAX_ATTEMPTS).toEqual(ref('RetryMaxAttempts'));
    expect(defaultOf('MaxReceiveCount')).toBeGreaterThan(defaultOf('RetryMaxAttempts'));
  });

  it('lets both queues hold 1 MiB, which the API’s inline claim-check threshold assumes', () => {
    for (const name of ['Queue', 'DeadLetterQueue']) {
      expect(resources[name].Properties.MaximumMessageSize).toBe(1048576);
      expect(resources[name].Properties.MaximumMessageSize).toBeGreaterThan(SQS_INLINE_LIMIT_BYTES);
    }
  });

  it('encrypts both queues and keeps messages 14 days', () => {
    for (const name of ['Queue', 'DeadLetterQueue']) {
      expect(resources[name].Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 1209600,
      });
    }
  });

  it('wires the queue to the worker with partial batch responses and a concurrency cap parameter', () => {
    expect(queueEvent.Properties).toMatchObject({
      Queue: getAtt('Queue', 'Arn'),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: ref('WorkerMaxConcurrency') },
    });
    expect(queueEvent.Properties.BatchSize).toBeGreaterThanOrEqual(1);
  });

  it('alarms on messages in the DLQ', () => {
    const alarm = Object.values(resources).find((r: Node) => r.Type === 'AWS::CloudWatch::Alarm') as Node;
    expect(alarm.Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('DeadLetterQueue', 'QueueName') }],
    });
  });
});

describe('infra/template.yaml: functions', () => {
  it('runs both functions on nodejs24.x arm64, bundled by SAM esbuild as minified ESM with source maps', () => {
    expect(globals).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'] });
    for (const fn of [api, worker]) {
      expect(fn.Properties.Runtime ?? globals.Runtime).toBe('nodejs24.x');
      expect(fn.Metadata).toMatchObject({
        BuildMethod: 'esbuild',
        BuildProperties: { Format: 'esm', Minify: true, Sourcemap: true, OutExtension: ['.js=.mjs'] },
      });
      expect(fn.Properties.Handler).toBe('index.handler');
    }
  });

  it('points each build at an entry point that exists', () => {
    expect(api.Metadata.BuildProperties.EntryPoints).toEqual(['functions/api/index.ts']);
    expect(worker.Metadata.BuildProperties.EntryPoints).toEqual(['functions/worker/index.ts']);
    for (const fn of [api, worker]) {
      expect(
        existsSync(`${root}infra/${fn.Properties.CodeUri}${fn.Metadata.BuildProperties.EntryPoints[0]}`),
      ).toBe(true);
    }
  });

  it('sets exactly the environment variables lib/config.ts reads (plus Powertools and Node options)', () => {
    const configSource = readFileSync(`${root}lib/config.ts`, 'utf8');
    const known = new Set([...configSource.matchAll(/^\s+([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]));
    const extras = new Set(['POWERTOOLS_METRICS_NAMESPACE', 'NODE_OPTIONS']);
    for (const fn of [api, worker]) {
      const names = Object.keys({ ...globals.Environment.Variables, ...fn.Properties.Environment.Variables });
      for (const name of names) expect(known.has(name) || extras.has(name), name).toBe(true);
      // Lambda sets AWS_REGION itself and refuses a function that tries to.
      expect(names).not.toContain('AWS_REGION');
    }
  });

  it('gives configurations that lib/config.ts accepts once the references are resolved', () => {
    expect(loadApiConfig(apiEnvOf()).aws.bucket).toBe('smtpq-bucket');
    expect(loadWorkerConfig(workerEnvOf())).toMatchObject({
      smtp: { host: 'relay.example.com', tls: 'starttls' },
    });
  });

  it.each([
    ['starttls', {}, true],
    ['implicit', {}, true],
    // The default SmtpRequireTls 'true' must not reach the worker with no TLS: lib/smtp refuses the pair.
    ['none', {}, false],
    ['none', { SmtpRequireTls: 'true' }, false],
    ['starttls', { SmtpRequireTls: 'false' }, false],
  ])(
    'SmtpTlsMode %s with %o gives a worker whose SMTP options lib/smtp accepts (requireTLS %s)',
    (mode, more, requireTLS) => {
      const config = loadWorkerConfig(workerEnvOf({ SmtpTlsMode: mode, ...more }));

      expect(config.smtp).toMatchObject({ tls: mode, requireTLS });
      expect(() =>
        resolveOptions({ host: config.smtp.host, tls: config.smtp.tls, requireTLS }),
      ).not.toThrow();
    },
  );

  it('defaults MaxMessageBytes to lib/config.ts’s default, which still fits API Gateway’s 6 MB once base64', () => {
    const maxMessageBytes = defaultOf('MaxMessageBytes');
    // Lambda takes at most 6 MB of request from API Gateway; attachments arrive base64 (4/3) in the JSON,
    // and the rest of the request (addresses, subject, JSON syntax) gets a 64 KiB allowance.
    const lambdaRequestLimit = 6_000_000;

    expect(maxMessageBytes).toBe(loadApiConfig(apiEnvOf()).maxMessageBytes);
    expect(loadApiConfig({ ...apiEnvOf(), MAX_MESSAGE_BYTES: undefined }).maxMessageBytes).toBe(
      maxMessageBytes,
    );
    expect(Math.ceil(maxMessageBytes / 3) * 4 + 64 * 1024).toBeLessThanOrEqual(lambdaRequestLimit);
  });

  it('lets through as MessageIdDomain exactly the host names lib/config.ts accepts', () => {
    const { AllowedPattern, MaxLength } = template.Parameters.MessageIdDomain;
    const allowed = (domain: string) => new RegExp(AllowedPattern).test(domain) && domain.length <= MaxLength;
    const configAccepts = (domain: string) => {
      try {
        loadApiConfig({ ...apiEnvOf(), MESSAGE_ID_DOMAIN: domain });
        return true;
      } catch {
        return false;
      }
    };
    const domains = [
      template.Parameters.MessageIdDomain.Default,
      'mail-1.Example.ORG',
      'localhost',
      `${'a'.repeat(63)}.example`,
      `${'abc.'.repeat(62)}com`,
      'mail example.com',
      'example.com>',
      'example..com',
      'example.com.',
      '-example.com',
      'exa_mple.com',
      'exämple.com',
      `${'a'.repeat(64)}.example`,
      `${'abc.'.repeat(63)}com`,
    ];
    for (const domain of domains) expect(allowed(domain), domain).toBe(configAccepts(domain));
    expect(domains.filter(allowed)).toHaveLength(5);
  });

  it('logs each function as JSON to its own log group with a retention', () => {
    for (const fn of [api, worker]) {
      const { LogFormat, LogGroup } = fn.Properties.LoggingConfig;
      expect(LogFormat).toBe('JSON');
      expect(resources[LogGroup.Ref].Type).toBe('AWS::Logs::LogGroup');
      expect(resources[LogGroup.Ref].Properties.RetentionInDays).toEqual(ref('LogRetentionDays'));
    }
  });

  it('routes the four API paths and a /v1 catch-all to the API function through the IAM-authorised HTTP API', () => {
    expect(resources.HttpApi.Properties.Auth).toEqual({
      EnableIamAuthorizer: true,
      DefaultAuthorizer: 'AWS_IAM',
    });
    const routes = Object.values(api.Properties.Events as Node).map((e) => {
      expect(e.Type).toBe('HttpApi');
      expect(e.Properties.ApiId).toEqual(ref('HttpApi'));
      expect(e.Properties.Auth).toBeUndefined(); // no route opts out of IAM
      return `${e.Properties.Method} ${e.Properties.Path}`;
    });
    expect(routes.sort()).toEqual([
      'ANY /v1/{proxy+}',
      'GET /v1/messages/{id}',
      'GET /v1/messages/{id}/transcript',
      'POST /v1/messages',
      'POST /v1/messages/batch',
    ]);
  });

  it('leaves unknown paths and wrong methods under /v1 to the handler, which answers them 404/405', () => {
    // The paths API Gateway would route through the catch-all only: the handler must not match them.
    expect(matchRoute('GET', '/v1/nothing-here')).toEqual({ kind: 'not_found' });
    expect(matchRoute('DELETE', '/v1/messages')).toEqual({ kind: 'method_not_allowed', allow: ['POST'] });
    expect(matchRoute('PUT', '/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV')).toEqual({
      kind: 'method_not_allowed',
      allow: ['GET'],
    });
  });

  it('grants only SAM policy templates scoped to this stack’s bucket, queue and secret', () => {
    const allowed: Record<string, Node> = {
      S3CrudPolicy: { BucketName: ref('Bucket') },
      SQSSendMessagePolicy: { QueueName: getAtt('Queue', 'QueueName') },
      SQSPollerPolicy: { QueueName: getAtt('Queue', 'QueueName') },
      AWSSecretsManagerGetSecretValuePolicy: { SecretArn: ref('SmtpSecret') },
    };
    for (const fn of [api, worker]) {
      for (const policy of fn.Properties.Policies as Node[]) {
        const [name, scope] = Object.entries(policy)[0]!;
        expect(allowed[name], name).toBeDefined();
        expect(scope).toEqual(allowed[name]);
      }
    }
    expect(api.Properties.Policies.map((p: Node) => Object.keys(p)[0])).not.toContain(
      'AWSSecretsManagerGetSecretValuePolicy',
    );
  });
});

describe('infra/template.yaml: bucket', () => {
  const bucket = resources.Bucket.Properties as Node;

  it('is encrypted and blocks every kind of public access', () => {
    expect(
      bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault,
    ).toBeDefined();
    expect(Object.values(bucket.PublicAccessBlockConfiguration)).toEqual([true, true, true, true]);
  });

  it('denies any request that does not use TLS', () => {
    const policy = Object.values(resources).find((r: Node) => r.Type === 'AWS::S3::BucketPolicy') as Node;
    expect(policy.Properties.Bucket).toEqual(ref('Bucket'));
    expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('expires transcripts after the retention parameter and idempotency keys after 2 days', () => {
    const expiry = Object.fromEntries(
      (bucket.LifecycleConfiguration.Rules as Node[]).map((rule) => [rule.Prefix, rule.ExpirationInDays]),
    );
    expect(expiry['transcripts/']).toEqual(ref('TranscriptRetentionDays'));
    expect(expiry['idempotency/']).toBe(2);
    expect(expiry['messages/']).toBeUndefined(); // the status ledger is kept
  });
});

describe('infra/template.yaml: outputs', () => {
  it('outputs the API URL, the queue URL and the bucket name', () => {
    expect(Object.keys(template.Outputs)).toEqual(
      expect.arrayContaining(['ApiUrl', 'QueueUrl', 'BucketName']),
    );
  });
});

// Invariants of infra/template.yaml that a reviewer would otherwise check by eye: the queue outlives a worker
// invocation, redrive and partial batch responses are wired, the API is IAM-protected, the environment
// matches lib/config.ts, the ledger table has the shape of lib/aws/ledger-table.ts, the API can enqueue (the
// queue comes first: no pipe, no outbox), and every function gets only the actions it uses, on this stack's
// resources.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type CollectionTag, parse, type ScalarTag, type YAMLSeq } from 'yaml';
import { matchRoute } from '../../functions/api/routes.ts';
import { KEY, ledgerTableDefinition, STATE_INDEX, TTL_ATTRIBUTE } from '../../lib/aws/ledger-table.ts';
import { loadApiConfig, loadWorkerConfig } from '../../lib/config.ts';
import { SQS_INLINE_LIMIT_BYTES } from '../../lib/delivery/queue-message.ts';
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
    if (n.Ref === 'LedgerTable') return 'smtpq-LedgerTable-1A2B3C4D5E6F';
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
const sub = (text: string) => ({ 'Fn::Sub': text });
const defaultOf = (parameter: string) => Number(template.Parameters[parameter].Default);

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}
/** The statements of a function's inline policy documents (SAM policy templates are left out). */
const inlineStatements = (fn: Node): Statement[] =>
  (fn.Properties.Policies as Node[]).flatMap((policy) => (policy.Statement as Statement[] | undefined) ?? []);
/** The SAM policy templates a function uses, by name. */
const policyTemplates = (fn: Node): string[] =>
  (fn.Properties.Policies as Node[]).filter((policy) => !policy.Statement).map((p) => Object.keys(p)[0]!);
const asList = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
/**
 * The actions of one service a set of statements allows, keyed by resource (JSON of the resource node), each
 * list sorted: `{ '{"Fn::GetAtt":["LedgerTable","Arn"]}': ['dynamodb:GetItem', ...] }`.
 */
function grants(statements: Statement[], service: string): Record<string, string[]> {
  const byResource: Record<string, Set<string>> = {};
  for (const statement of statements) {
    expect(statement.Effect).toBe('Allow');
    const actions = asList(statement.Action).filter((a) => a.startsWith(`${service}:`));
    for (const resource of asList(statement.Resource)) {
      if (actions.length === 0) continue;
      const key = JSON.stringify(resource);
      byResource[key] ??= new Set();
      for (const action of actions) byResource[key].add(action);
    }
  }
  return Object.fromEntries(Object.entries(byResource).map(([key, actions]) => [key, [...actions].sort()]));
}
const onResource = (entries: [unknown, string[]][]) =>
  Object.fromEntries(entries.map(([resource, actions]) => [JSON.stringify(resource), [...actions].sort()]));

const tableArn = getAtt('LedgerTable', 'Arn');
const stateIndexArn = sub(`\${LedgerTable.Arn}/index/${STATE_INDEX}`);
const objects = (prefix: string) => sub(`\${Bucket.Arn}/${prefix}/*`);
const bucketArn = getAtt('Bucket', 'Arn');

/**
 * Whether CloudFormation would accept the parameter values under the template's Rules (defaults for the
 * rest): a rule whose RuleCondition holds (or that has none) needs every Assert to hold. Parameter values
 * are strings there, as CloudFormation passes them.
 */
function rulesAccept(parameters: Record<string, string>): boolean {
  const value = (node: unknown): unknown => {
    if (typeof node !== 'object' || node === null) return node;
    if (Array.isArray(node)) return node.map(value);
    const n = node as Node;
    if (n.Ref !== undefined) return parameters[n.Ref] ?? String(template.Parameters[n.Ref].Default);
    if (n['Fn::Equals']) return String(value(n['Fn::Equals'][0])) === String(value(n['Fn::Equals'][1]));
    if (n['Fn::Not']) return !value(n['Fn::Not'][0]);
    if (n['Fn::And']) return (n['Fn::And'] as unknown[]).every((c) => value(c));
    if (n['Fn::Or']) return (n['Fn::Or'] as unknown[]).some((c) => value(c));
    if (n['Fn::Contains']) {
      const [list, item] = n['Fn::Contains'];
      return (value(list) as unknown[]).map(String).includes(String(value(item)));
    }
    throw new Error(`unresolved ${JSON.stringify(node)}`);
  };
  return Object.values(template.Rules as Node).every(
    (rule) =>
      (rule.RuleCondition !== undefined && !value(rule.RuleCondition)) ||
      (rule.Assertions as Node[]).every((assertion) => value(assertion.Assert) === true),
  );
}

describe('infra/template.yaml: queue and worker', () => {
  it('keeps the visibility timeout at least 6 x the worker timeout plus the largest batching window', () => {
    const timeout = worker.Properties.Timeout ?? globals.Timeout;
    // The window is a parameter: the queue must outlast an invocation with the largest value it allows.
    expect(queueEvent.Properties.MaximumBatchingWindowInSeconds).toEqual(
      ref('MaximumBatchingWindowInSeconds'),
    );
    const window = template.Parameters.MaximumBatchingWindowInSeconds.MaxValue;

    expect(typeof timeout).toBe('number');
    expect(window).toBe(300); // Lambda's own maximum for SQS event sources
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout + window);
    expect(queue.VisibilityTimeout).toBeLessThanOrEqual(43_200); // SQS's maximum (12 h)
  });

  it('redrives to the DLQ after MaxReceiveCount receives, above the worker’s own attempt limit', () => {
    expect(queue.RedrivePolicy).toEqual({
      deadLetterTargetArn: getAtt('DeadLetterQueue', 'Arn'),
      maxReceiveCount: ref('MaxReceiveCount'),
    });
    expect(worker.Properties.Environment.Variables.RETRY_MAX_ATTEMPTS).toEqual(ref('RetryMaxAttempts'));
    expect(defaultOf('MaxReceiveCount')).toBeGreaterThan(defaultOf('RetryMaxAttempts'));
  });

  it('lets both queues hold 1 MiB, SQS’s maximum: the API puts requests of up to its inline limit on the queue', () => {
    // The queue message carries the initial status record and the request inline up to SQS_INLINE_LIMIT_BYTES
    // (functions/api/claim-check.ts), above it only the payloads/ key: a queue left at 256 KiB would refuse
    // the larger inline ones. The DLQ must take whatever the queue redrives to it.
    for (const name of ['Queue', 'DeadLetterQueue']) {
      expect(resources[name].Properties.MaximumMessageSize).toBe(1048576);
      expect(resources[name].Properties.MaximumMessageSize).toBeGreaterThan(SQS_INLINE_LIMIT_BYTES);
    }
  });

  it('has exactly two queues, the delivery queue and its DLQ, encrypted and keeping messages 14 days', () => {
    const queues = Object.keys(resources).filter((name) => resources[name].Type === 'AWS::SQS::Queue');
    expect(queues.sort()).toEqual(['DeadLetterQueue', 'Queue']);
    for (const name of queues) {
      expect(resources[name].Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 1209600,
      });
    }
  });

  it('denies any request to the queues that does not use TLS', () => {
    const policy = resources.QueuesTlsOnlyPolicy.Properties as Node;
    const names = ['Queue', 'DeadLetterQueue'];
    expect(policy.Queues).toEqual(names.map(ref));
    expect(policy.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Resource: names.map((name) => getAtt(name, 'Arn')),
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
  });

  it('wires the queue to the worker with partial batch responses, batch parameters and the connection cap', () => {
    expect(queueEvent.Properties).toEqual({
      Queue: getAtt('Queue', 'Arn'),
      BatchSize: ref('BatchSize'),
      MaximumBatchingWindowInSeconds: ref('MaximumBatchingWindowInSeconds'),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      // One SMTP connection per invocation: the bound on connections to the relay.
      ScalingConfig: { MaximumConcurrency: ref('RelayMaxConnections') },
    });
  });

  it('declares the delivery parameters with their defaults and the ranges SQS and Lambda allow', () => {
    const parameters = template.Parameters as Node;
    expect(parameters.BatchSize).toMatchObject({
      Type: 'Number',
      Default: 100,
      MinValue: 1,
      MaxValue: 10000,
    });
    expect(parameters.MaximumBatchingWindowInSeconds).toMatchObject({
      Type: 'Number',
      Default: 1,
      MinValue: 0,
      MaxValue: 300,
    });
    expect(parameters.RelayMaxConnections).toMatchObject({
      Type: 'Number',
      Default: 10,
      MinValue: 2, // ScalingConfig.MaximumConcurrency's own range
      MaxValue: 1000,
    });
    expect(parameters.RelayMaxRate).toMatchObject({ Type: 'String', Default: '' });
    expect(parameters.RetentionDays).toMatchObject({ Type: 'Number', Default: 30, MinValue: 3 });
    // Replaced by RelayMaxConnections and RetentionDays.
    expect(parameters.WorkerMaxConcurrency).toBeUndefined();
    expect(parameters.TranscriptRetentionDays).toBeUndefined();
  });

  it('refuses, in its Rules, a BatchSize above 10 without a batching window, as Lambda does', () => {
    // Lambda's rule for standard queues: a batch of more than 10 records needs a window of at least 1 s.
    const lambdaAccepts = (batch: number, window: number) => batch <= 10 || window >= 1;

    expect(rulesAccept({})).toBe(true); // the defaults
    for (const batch of [1, 2, 9, 10, 11, 100, 9999, 10000]) {
      for (const window of [0, 1, 2, 300]) {
        const values = { BatchSize: String(batch), MaximumBatchingWindowInSeconds: String(window) };
        expect(rulesAccept(values), JSON.stringify(values)).toBe(lambdaAccepts(batch, window));
      }
    }
    const rule = template.Rules.LargeBatchesNeedABatchingWindow as Node;
    expect(rule.Assertions[0].AssertDescription).toMatch(
      /BatchSize above 10 needs MaximumBatchingWindowInSeconds/,
    );
  });

  it('keeps RetentionDays, even at its minimum, above the worker’s give-up age', () => {
    // A message still being retried needs its ledger record and its payloads/ object (both expire after
    // RetentionDays); the worker gives up RETRY_MAX_AGE_SECONDS after the message was accepted.
    const { maxAgeSeconds } = loadWorkerConfig(workerEnvOf()).retry;
    expect(maxAgeSeconds).toBe(2 * 86_400);
    expect(template.Parameters.RetentionDays.MinValue * 86_400).toBeGreaterThan(maxAgeSeconds);
    expect(worker.Properties.Environment.Variables.RETRY_MAX_AGE_SECONDS).toBeUndefined(); // the default
  });

  it('alarms on messages in the dead-letter queue, its only alarm', () => {
    const alarms = Object.values(resources).filter(
      (r: Node) => r.Type === 'AWS::CloudWatch::Alarm',
    ) as Node[];
    expect(alarms).toHaveLength(1);
    expect(alarms[0]?.Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('DeadLetterQueue', 'QueueName') }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });
});

describe('infra/template.yaml: ledger table', () => {
  const table = resources.LedgerTable as Node;
  const definition = ledgerTableDefinition('smtpq-ledger');

  it('has the keys, index and stream of lib/aws/ledger-table.ts', () => {
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    expect(table.Properties.KeySchema).toEqual(definition.KeySchema);
    expect(table.Properties.KeySchema).toEqual([{ AttributeName: KEY, KeyType: 'HASH' }]);
    expect(table.Properties.AttributeDefinitions).toEqual(definition.AttributeDefinitions);
    expect(table.Properties.GlobalSecondaryIndexes).toEqual(definition.GlobalSecondaryIndexes);
    expect(table.Properties.GlobalSecondaryIndexes.map((i: Node) => i.IndexName)).toEqual([STATE_INDEX]);
    expect(definition.StreamSpecification?.StreamEnabled).toBe(true);
    expect(table.Properties.StreamSpecification).toEqual({
      StreamViewType: definition.StreamSpecification?.StreamViewType,
    });
    expect(table.Properties.StreamSpecification.StreamViewType).toBe('NEW_AND_OLD_IMAGES');
  });

  it('bills on demand and expires items by the TTL attribute the code writes', () => {
    expect(table.Properties.BillingMode).toBe(definition.BillingMode);
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.TimeToLiveSpecification).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
  });

  it('is encrypted, recoverable to a point in time, protected from deletion and kept with the stack', () => {
    expect(table.Properties).toMatchObject({
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
    });
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.UpdateReplacePolicy).toBe('Retain');
  });
});

describe('infra/template.yaml: queue first, no outbox', () => {
  /** Every node of the template, depth first. */
  const nodes = (node: unknown): unknown[] =>
    typeof node === 'object' && node !== null
      ? [node, ...Object.values(node as Node).flatMap((child) => nodes(child))]
      : [];
  const streamArn = getAtt('LedgerTable', 'StreamArn');

  it('has no pipe, no role of its own and nothing that reads the ledger’s stream: the API enqueues', () => {
    const types = new Set(Object.values(resources).map((r: Node) => r.Type as string));
    expect([...types].filter((type) => /^AWS::(Pipes|IAM)::/.test(type))).toEqual([]);
    expect(types.has('AWS::Lambda::EventSourceMapping')).toBe(false);
    // The stream stays on for event consumers (a later issue); in this stack only the output names it.
    const readers = Object.entries(resources).filter(([, r]) =>
      nodes(r).some((n) => JSON.stringify(n) === JSON.stringify(streamArn)),
    );
    expect(readers).toEqual([]);
    expect(template.Outputs.LedgerStreamArn.Value).toEqual(streamArn);
    // The worker's only event source is the queue.
    expect(Object.values(worker.Properties.Events as Node).map((e) => e.Type)).toEqual(['SQS']);
  });

  it('refers only to resources, parameters and conditions it declares', () => {
    const declared = new Set([...Object.keys(resources), ...Object.keys(template.Parameters)]);
    const known = (name: string) => name.startsWith('AWS::') || declared.has(name);
    const names: string[] = [];
    for (const node of nodes(template) as Node[]) {
      if (typeof node.Ref === 'string') names.push(node.Ref);
      if (Array.isArray(node['Fn::GetAtt'])) names.push(node['Fn::GetAtt'][0]);
      if (typeof node['Fn::Sub'] === 'string') {
        for (const [, name] of node['Fn::Sub'].matchAll(/\$\{([^}!]+)\}/g)) names.push(name!.split('.')[0]!);
      }
      if (Array.isArray(node['Fn::If'])) {
        expect(template.Conditions[node['Fn::If'][0]], node['Fn::If'][0]).toBeDefined();
      }
    }
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((name) => !known(name))).toEqual([]);
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
    const aws = { bucket: 'smtpq-bucket', table: 'smtpq-LedgerTable-1A2B3C4D5E6F', retentionDays: 30 };
    const queueUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/smtpq-Queue';
    expect(loadApiConfig(apiEnvOf())).toMatchObject({ aws, queueUrl });
    expect(loadWorkerConfig(workerEnvOf())).toMatchObject({
      aws,
      queueUrl,
      relayMaxRate: undefined,
      smtp: { host: 'relay.example.com', tls: 'starttls' },
    });
    expect(loadWorkerConfig(workerEnvOf({ RetentionDays: '7' })).aws.retentionDays).toBe(7);
  });

  it('gives both functions the bucket, the ledger table, the retention and the queue', () => {
    for (const env of [apiEnvOf(), workerEnvOf()]) {
      expect(env).toMatchObject({
        BUCKET_NAME: 'smtpq-bucket',
        LEDGER_TABLE: 'smtpq-LedgerTable-1A2B3C4D5E6F',
        RETENTION_DAYS: '30',
        QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/smtpq-Queue',
      });
    }
    expect(globals.Environment.Variables).toMatchObject({
      LEDGER_TABLE: ref('LedgerTable'),
      RETENTION_DAYS: ref('RetentionDays'),
    });
    // The API enqueues first, then writes the ledger item; the worker defers records on the same queue.
    expect(api.Properties.Environment.Variables.QUEUE_URL).toEqual(ref('Queue'));
    expect(worker.Properties.Environment.Variables.QUEUE_URL).toEqual(ref('Queue'));
    // lib/config.ts refuses either function without its queue or its table, so neither may go missing here.
    for (const name of ['QUEUE_URL', 'LEDGER_TABLE']) {
      expect(() => loadApiConfig({ ...apiEnvOf(), [name]: undefined }), name).toThrow(name);
      expect(() => loadWorkerConfig({ ...workerEnvOf(), [name]: undefined }), name).toThrow(name);
    }
    expect(Object.keys(apiEnvOf()).filter((name) => /^(SMTP|RETRY)_/.test(name))).toEqual([]);
  });

  it('defaults RetentionDays to lib/config.ts’s RETENTION_DAYS default', () => {
    expect(loadApiConfig({ ...apiEnvOf(), RETENTION_DAYS: undefined }).aws.retentionDays).toBe(
      defaultOf('RetentionDays'),
    );
  });

  it('leaves SMTP_MAX_MESSAGES_PER_SECOND unset (no limit) when RelayMaxRate is empty, and sets it otherwise', () => {
    // AWS::NoValue: the variable is absent from the function's environment, not empty.
    expect(workerEnvOf().SMTP_MAX_MESSAGES_PER_SECOND).toBeUndefined();
    expect(worker.Properties.Environment.Variables.SMTP_MAX_MESSAGES_PER_SECOND).toEqual({
      'Fn::If': ['HasRelayMaxRate', ref('RelayMaxRate'), ref('AWS::NoValue')],
    });
    expect(workerEnvOf({ RelayMaxRate: '14' }).SMTP_MAX_MESSAGES_PER_SECOND).toBe('14');
    expect(loadWorkerConfig(workerEnvOf({ RelayMaxRate: '0.5' })).relayMaxRate).toBe(0.5);
  });

  it('lets through as RelayMaxRate only positive numbers, which lib/config.ts reads as the same rate, or empty', () => {
    const { AllowedPattern } = template.Parameters.RelayMaxRate;
    const allowed = (value: string) => new RegExp(AllowedPattern).test(value);
    const accepted = ['', '1', '14', '250', '007', '0.5', '.5', '5.', '10.25', '0.001'];
    const refused = ['0', '00', '0.0', '.', '-1', '+1', '1e3', ' 5', '5 ', 'abc', '0x10', 'Infinity', '1,5'];

    for (const value of accepted) {
      expect(allowed(value), value).toBe(true);
      const rate = loadWorkerConfig(workerEnvOf({ RelayMaxRate: value })).relayMaxRate;
      expect(rate, value).toBe(value === '' ? undefined : Number(value));
      if (rate !== undefined) expect(rate).toBeGreaterThan(0);
    }
    for (const value of refused) expect(allowed(value), value).toBe(false);
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

  it('uses only SAM policy templates scoped to this stack’s queue and secret', () => {
    const allowed: Record<string, Node> = {
      // The API: SendMessage (which also authorises SendMessageBatch) on the queue, nothing that receives.
      SQSSendMessagePolicy: { QueueName: getAtt('Queue', 'QueueName') },
      // Receive, delete and ChangeMessageVisibility(Batch) on the queue: the event source and the back-off.
      SQSPollerPolicy: { QueueName: getAtt('Queue', 'QueueName') },
      AWSSecretsManagerGetSecretValuePolicy: { SecretArn: ref('SmtpSecret') },
    };
    for (const fn of [api, worker]) {
      for (const policy of (fn.Properties.Policies as Node[]).filter((p) => !p.Statement)) {
        expect(Object.keys(policy)).toHaveLength(1);
        const [name, scope] = Object.entries(policy)[0]!;
        expect(allowed[name], name).toBeDefined();
        expect(scope).toEqual(allowed[name]);
      }
    }
    expect(policyTemplates(api)).toEqual(['SQSSendMessagePolicy']);
    expect(policyTemplates(worker).sort()).toEqual([
      'AWSSecretsManagerGetSecretValuePolicy',
      'SQSPollerPolicy',
    ]);
  });

  it('gives the API exactly its DynamoDB actions: items on the table, Query on the state index', () => {
    expect(grants(inlineStatements(api), 'dynamodb')).toEqual(
      onResource([
        [
          tableArn,
          [
            'dynamodb:PutItem',
            'dynamodb:GetItem',
            'dynamodb:DeleteItem',
            'dynamodb:UpdateItem',
            'dynamodb:BatchWriteItem',
            'dynamodb:BatchGetItem',
          ],
        ],
        [stateIndexArn, ['dynamodb:Query']],
      ]),
    );
  });

  it('gives the worker exactly its DynamoDB actions on the table (ledger items, the rate-limit item)', () => {
    expect(grants(inlineStatements(worker), 'dynamodb')).toEqual(
      onResource([
        [tableArn, ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem']],
      ]),
    );
  });

  it('gives each function only its S3 prefixes, and ListBucket on the bucket so a missing key is a 404', () => {
    // Without s3:ListBucket S3 answers a GetObject of a missing key 403 AccessDenied, not 404 NoSuchKey: a
    // transcript (API) or a claim-check payload (worker) that is gone would read as forbidden.
    expect(grants(inlineStatements(api), 's3')).toEqual(
      onResource([
        [objects('transcripts'), ['s3:GetObject']],
        [bucketArn, ['s3:ListBucket']],
        [objects('payloads'), ['s3:PutObject']],
      ]),
    );
    expect(grants(inlineStatements(worker), 's3')).toEqual(
      onResource([
        [objects('transcripts'), ['s3:PutObject']],
        [objects('payloads'), ['s3:GetObject']],
        [bucketArn, ['s3:ListBucket']],
      ]),
    );
  });

  it('gives each function inline statements for DynamoDB and S3 only (its SQS access is a policy template)', () => {
    for (const fn of [api, worker]) {
      const statements = inlineStatements(fn);
      const actions = statements.flatMap((s) => asList(s.Action));
      expect(new Set(actions.map((a) => a.split(':')[0]))).toEqual(new Set(['dynamodb', 's3']));
      expect(grants(statements, 'sqs')).toEqual({});
    }
  });

  it('allows no scan and no wildcard anywhere in the template, and nothing account-, table- or bucket-wide', () => {
    // Every Allow statement of the template: the functions' inline policies, and any other policy document.
    const allowsIn = (node: unknown): Statement[] => {
      if (typeof node !== 'object' || node === null) return [];
      const n = node as Node;
      const own = n.Effect === 'Allow' && n.Action !== undefined ? [n as Statement] : [];
      return [...own, ...Object.values(n).flatMap(allowsIn)];
    };
    const allows = allowsIn(resources);
    expect(allows).toEqual([...inlineStatements(api), ...inlineStatements(worker)]);
    for (const statement of allows) {
      expect(Object.keys(statement)).not.toContain('NotAction');
      expect(Object.keys(statement)).not.toContain('NotResource');
      const actions = asList(statement.Action);
      expect(actions.filter((a) => a.includes('*') || a === 'dynamodb:Scan')).toEqual([]);
      for (const resource of asList(statement.Resource)) {
        // Only object keys under one prefix end in a wildcard; the bucket itself only for ListBucket.
        const text = JSON.stringify(resource);
        expect(text, text).toMatch(
          /^\{"Fn::GetAtt":\["(LedgerTable|Bucket)","Arn"\]\}$|^\{"Fn::Sub":"\$\{LedgerTable\.Arn\}\/index\/[A-Za-z]+"\}$|^\{"Fn::Sub":"\$\{Bucket\.Arn\}\/[a-z]+\/\*"\}$/,
        );
        if (text === JSON.stringify(bucketArn)) expect(actions).toEqual(['s3:ListBucket']);
      }
    }
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

  it('expires transcripts and payloads after RetentionDays, with the ledger records that point to them', () => {
    const expiry = Object.fromEntries(
      (bucket.LifecycleConfiguration.Rules as Node[]).map((rule) => [rule.Prefix, rule.ExpirationInDays]),
    );
    expect(expiry['transcripts/']).toEqual(ref('RetentionDays'));
    expect(expiry['payloads/']).toEqual(ref('RetentionDays'));
    // Left by a stack of the previous version (idempotency keys honoured 24 h): cleared, nothing new.
    expect(expiry['idempotency/']).toBe(2);
    // Status records of the previous version (S3 ledger) are the record of what was sent: never expired.
    expect(expiry['messages/']).toBeUndefined();
  });
});

describe('infra/template.yaml: outputs', () => {
  it('outputs the API URL, the queue URL, the bucket name, the ledger table and its stream', () => {
    expect(Object.keys(template.Outputs)).toEqual(
      expect.arrayContaining(['ApiUrl', 'QueueUrl', 'BucketName', 'LedgerTableName', 'LedgerStreamArn']),
    );
    expect(template.Outputs.LedgerTableName.Value).toEqual(ref('LedgerTable'));
    expect(template.Outputs.LedgerStreamArn.Value).toEqual(getAtt('LedgerTable', 'StreamArn'));
  });
});

// Invariants of infra/template.yaml that a reviewer would otherwise check by eye: the queue outlives a worker
// invocation, redrive and partial batch responses are wired, the API is IAM-protected, the environment
// matches lib/config.ts, the ledger table has the shape of lib/aws/ledger-table.ts, the API can enqueue (the
// queue comes first: no pipe, no outbox), the ledger's stream reaches the event bus in order, the webhook
// retries and dead-letters, everything of the webhook exists only with a WebhookUrl, and every function gets
// only the actions it uses, on this stack's resources.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type CollectionTag, parse, type ScalarTag, type YAMLSeq } from 'yaml';
import { matchRoute } from '../../functions/api/routes.ts';
import { WEBHOOK_MAX_TRIES, WEBHOOK_RETRY_SECONDS } from '../../functions/webhook/handler.ts';
import { EVENT_SOURCE } from '../../lib/aws/event-publisher.ts';
import {
  idempotencyItemKey,
  KEY,
  ledgerTableDefinition,
  messageKey,
  relayKey,
  STATE_INDEX,
  TTL_ATTRIBUTE,
} from '../../lib/aws/ledger-table.ts';
import { loadApiConfig, loadEventsConfig, loadWebhookConfig, loadWorkerConfig } from '../../lib/config.ts';
import { SQS_INLINE_LIMIT_BYTES } from '../../lib/delivery/queue-message.ts';
import { resolveOptions } from '../../lib/smtp/index.ts';
// @ts-expect-error: scripts/build.mjs is plain JavaScript without type declarations.
import { FUNCTIONS } from '../../scripts/build.mjs';

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
const events = resources.EventsFunction as Node;
const webhook = resources.WebhookFunction as Node;
const functions = [api, worker, events, webhook];
const queue = resources.Queue.Properties as Node;
const queueEvent = Object.values(worker.Properties.Events as Node).find((e) => e.Type === 'SQS') as Node;
const streamEvent = Object.values(events.Properties.Events as Node).find(
  (e) => e.Type === 'DynamoDB',
) as Node;
const webhookEvent = Object.values(webhook.Properties.Events as Node).find((e) => e.Type === 'SQS') as Node;
const webhookQueue = resources.WebhookQueue.Properties as Node;

/** A webhook that CloudFormation would accept (the Rules: a URL needs a secret). */
const webhookParameters = {
  WebhookUrl: 'https://hooks.example.com/smtpq',
  WebhookSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtpq/webhook-AbCdEf',
};

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
    if (n.Ref === 'UnsubscribeSecret')
      return 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtpq-unsub-AbCdEf';
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub string, not JavaScript's
    if (n['Fn::Sub'] === 'https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}')
      return 'https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com';
    if (n.Ref === 'EventBus') return 'smtpq-events';
    if (n.Ref === 'WebhookQueue')
      return 'https://sqs.eu-west-1.amazonaws.com/123456789012/smtpq-WebhookQueue';
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

const eventsEnvOf = (parameters: Record<string, string> = {}) =>
  resolveEnv({ ...globals.Environment.Variables, ...events.Properties.Environment.Variables }, parameters);

const webhookEnvOf = (parameters: Record<string, string> = webhookParameters) =>
  resolveEnv({ ...globals.Environment.Variables, ...webhook.Properties.Environment.Variables }, parameters);

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

  it('has exactly its five queues, encrypted, each keeping messages as long as its job needs', () => {
    const queues = Object.keys(resources).filter((name) => resources[name].Type === 'AWS::SQS::Queue');
    const days = (n: number) => n * 86_400;
    // The webhook queue only needs to outlast its ~27.5 h of retries; the others keep 14 days, SQS's maximum.
    const retention: Record<string, number> = {
      Queue: days(14),
      DeadLetterQueue: days(14),
      EventsFailureQueue: days(14),
      WebhookQueue: days(4),
      WebhookDLQ: days(14),
    };
    expect(queues.sort()).toEqual(Object.keys(retention).sort());
    for (const name of queues) {
      expect(resources[name].Properties, name).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: retention[name],
      });
    }
  });

  it('denies any request to the queues that does not use TLS, every queue under one policy', () => {
    // A queue has one policy (the last one set wins): each queue is in exactly one QueuePolicy, and that
    // policy denies insecure transport for it.
    const policies = Object.values(resources).filter(
      (r: Node) => r.Type === 'AWS::SQS::QueuePolicy',
    ) as Node[];
    const queues = Object.keys(resources).filter((name) => resources[name].Type === 'AWS::SQS::Queue');
    const covered = policies.flatMap((policy) => policy.Properties.Queues as Node[]);
    expect(covered.map((q) => q.Ref).sort()).toEqual(queues.sort());
    for (const policy of policies) {
      const names = (policy.Properties.Queues as Node[]).map((q) => q.Ref as string);
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Principal: '*',
          Action: 'sqs:*',
          Resource: names.map((name) => getAtt(name, 'Arn')),
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
    expect(resources.QueuesTlsOnlyPolicy.Properties.Queues).toEqual(
      ['Queue', 'DeadLetterQueue', 'EventsFailureQueue'].map(ref),
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

  it('alarms on any message in a dead-letter or failure queue, one alarm each and no other', () => {
    const alarmed: Record<string, string> = {
      DeadLetterQueueAlarm: 'DeadLetterQueue',
      EventsFailureAlarm: 'EventsFailureQueue',
      WebhookDLQAlarm: 'WebhookDLQ',
    };
    const alarms = Object.keys(resources).filter((name) => resources[name].Type === 'AWS::CloudWatch::Alarm');
    expect(alarms.sort()).toEqual(Object.keys(alarmed).sort());
    for (const [alarm, queueName] of Object.entries(alarmed)) {
      expect(resources[alarm].Properties, alarm).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: getAtt(queueName, 'QueueName') }],
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: { 'Fn::If': ['HasAlarmTopic', [ref('AlarmTopicArn')], ref('AWS::NoValue')] },
      });
    }
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

  it('has no pipe and no role of its own; only the events function reads the ledger’s stream, and not into the queue', () => {
    const types = new Set(Object.values(resources).map((r: Node) => r.Type as string));
    expect([...types].filter((type) => /^AWS::(Pipes|IAM)::/.test(type))).toEqual([]);
    expect(types.has('AWS::Lambda::EventSourceMapping')).toBe(false);
    // The stream is for events only: the events function (its event source and its read statement) and the
    // output name it, nothing else.
    const readers = Object.entries(resources).filter(([, r]) =>
      nodes(r).some((n) => JSON.stringify(n) === JSON.stringify(streamArn)),
    );
    expect(readers.map(([name]) => name)).toEqual(['EventsFunction']);
    expect(template.Outputs.LedgerStreamArn.Value).toEqual(streamArn);
    // The stream does not feed delivery: the events function can touch no delivery queue.
    expect(nodes(events).some((n) => JSON.stringify(n) === JSON.stringify(ref('Queue')))).toBe(false);
    expect(nodes(events).some((n) => JSON.stringify(n) === JSON.stringify(getAtt('Queue', 'Arn')))).toBe(
      false,
    );
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
    for (const [name, node] of [...Object.entries(resources), ...Object.entries(template.Outputs as Node)]) {
      if (node.Condition !== undefined) expect(template.Conditions[node.Condition], name).toBeDefined();
    }
  });

  it('refers to a conditional resource only from resources and outputs under the same condition', () => {
    // Otherwise a deploy without the condition fails: the reference points at a resource that is not there.
    const conditionOf = (name: string): string | undefined => resources[name]?.Condition;
    const referenced = (node: unknown): string[] =>
      (nodes(node) as Node[]).flatMap((n) => {
        if (typeof n.Ref === 'string') return [n.Ref];
        if (Array.isArray(n['Fn::GetAtt'])) return [n['Fn::GetAtt'][0] as string];
        if (typeof n['Fn::Sub'] === 'string')
          return [...n['Fn::Sub'].matchAll(/\$\{([^}!.]+)/g)].map((m) => m[1] as string);
        return [];
      });
    const conditional = Object.keys(resources).filter((name) => conditionOf(name) !== undefined);
    expect(conditional.length).toBeGreaterThan(0);
    for (const [name, node] of [...Object.entries(resources), ...Object.entries(template.Outputs as Node)]) {
      for (const target of referenced(node).filter((t) => conditionOf(t) !== undefined)) {
        expect(node.Condition, `${name} -> ${target}`).toBe(conditionOf(target));
      }
    }
  });
});

describe('infra/template.yaml: functions', () => {
  it('runs every function on nodejs24.x arm64, bundled by SAM esbuild as minified ESM with source maps', () => {
    expect(globals).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'] });
    const serverless = Object.values(resources).filter((r: Node) => r.Type === 'AWS::Serverless::Function');
    expect(serverless).toHaveLength(functions.length);
    for (const fn of functions) {
      expect(fn.Properties.Runtime ?? globals.Runtime).toBe('nodejs24.x');
      expect(fn.Metadata).toMatchObject({
        BuildMethod: 'esbuild',
        BuildProperties: { Format: 'esm', Minify: true, Sourcemap: true, OutExtension: ['.js=.mjs'] },
      });
      expect(fn.Properties.Handler).toBe('index.handler');
    }
  });

  it('points each build at an entry point that exists, the ones npm run build bundles', () => {
    expect(api.Metadata.BuildProperties.EntryPoints).toEqual(['functions/api/index.ts']);
    expect(worker.Metadata.BuildProperties.EntryPoints).toEqual(['functions/worker/index.ts']);
    expect(events.Metadata.BuildProperties.EntryPoints).toEqual(['functions/events/index.ts']);
    expect(webhook.Metadata.BuildProperties.EntryPoints).toEqual(['functions/webhook/index.ts']);
    for (const fn of functions) {
      expect(
        existsSync(`${root}infra/${fn.Properties.CodeUri}${fn.Metadata.BuildProperties.EntryPoints[0]}`),
      ).toBe(true);
    }
    // scripts/build.mjs bundles functions/<name>/index.ts for each name, as SAM does for a deploy.
    expect(FUNCTIONS.map((name: string) => `functions/${name}/index.ts`).sort()).toEqual(
      functions.map((fn) => fn.Metadata.BuildProperties.EntryPoints[0]).sort(),
    );
  });

  it('sets exactly the environment variables lib/config.ts reads (plus Powertools and Node options)', () => {
    const configSource = readFileSync(`${root}lib/config.ts`, 'utf8');
    const known = new Set([...configSource.matchAll(/^\s+([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]));
    const extras = new Set(['POWERTOOLS_METRICS_NAMESPACE', 'NODE_OPTIONS']);
    for (const fn of functions) {
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
    expect(loadEventsConfig(eventsEnvOf())).toMatchObject({ busName: 'smtpq-events' });
    expect(loadWebhookConfig(webhookEnvOf())).toMatchObject({
      url: webhookParameters.WebhookUrl,
      secret: { arn: webhookParameters.WebhookSecretArn },
      queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/smtpq-WebhookQueue',
    });
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
    const groups = functions.map((fn) => fn.Properties.LoggingConfig.LogGroup.Ref as string);
    expect(new Set(groups).size).toBe(functions.length);
    for (const fn of functions) {
      const { LogFormat, LogGroup } = fn.Properties.LoggingConfig;
      expect(LogFormat).toBe('JSON');
      expect(resources[LogGroup.Ref].Type).toBe('AWS::Logs::LogGroup');
      expect(resources[LogGroup.Ref].Properties.RetentionInDays).toEqual(ref('LogRetentionDays'));
      expect(resources[LogGroup.Ref].Condition).toBe(fn.Condition);
    }
  });

  it('routes the six API paths and a /v1 catch-all to the API function through the IAM-authorised HTTP API', () => {
    expect(resources.HttpApi.Properties.Auth).toEqual({
      EnableIamAuthorizer: true,
      DefaultAuthorizer: 'AWS_IAM',
    });
    const routes = Object.values(api.Properties.Events as Node).map((e) => {
      expect(e.Type).toBe('HttpApi');
      expect(e.Properties.ApiId).toEqual(ref('HttpApi'));
      const route = `${e.Properties.Method} ${e.Properties.Path}`;
      // No route opts out of IAM but RFC 8058's one-click unsubscribe, which mailbox providers call.
      if (route === 'POST /v1/unsubscribe/{token}') expect(e.Properties.Auth).toEqual({ Authorizer: 'NONE' });
      else expect(e.Properties.Auth).toBeUndefined();
      return route;
    });
    expect(routes.sort()).toEqual([
      'ANY /v1/{proxy+}',
      'GET /v1/messages',
      'GET /v1/messages/{id}',
      'GET /v1/messages/{id}/transcript',
      'POST /v1/messages',
      'POST /v1/messages/batch',
      'POST /v1/messages/{id}/cancel',
      'POST /v1/unsubscribe/{token}',
    ]);
    expect(resources.HttpApi.Properties.RouteSettings['POST /v1/unsubscribe/{token}']).toBeDefined();
    // Each explicit route is one the handler serves (the catch-all aside).
    const id = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    for (const route of routes.filter((r) => !r.startsWith('ANY '))) {
      const [method, path] = route.replace('{id}', id).replace('{token}', 'x.y').split(' ') as [
        string,
        string,
      ];
      expect(matchRoute(method, path).kind, route).toBe('route');
    }
  });

  it('leaves unknown paths and wrong methods under /v1 to the handler, which answers them 404/405', () => {
    // The paths API Gateway would route through the catch-all only: the handler must not match them.
    expect(matchRoute('GET', '/v1/nothing-here')).toEqual({ kind: 'not_found' });
    expect(matchRoute('DELETE', '/v1/messages')).toEqual({
      kind: 'method_not_allowed',
      allow: ['POST', 'GET'],
    });
    expect(matchRoute('PUT', '/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV')).toEqual({
      kind: 'method_not_allowed',
      allow: ['GET'],
    });
  });

  it('uses only SAM policy templates scoped to this stack’s queues and secrets', () => {
    const queueName = (name: string) => ({ QueueName: getAtt(name, 'QueueName') });
    // Per function, each template it uses and the one resource it is scoped to.
    const allowed = new Map<Node, Record<string, Node>>([
      // The API: SendMessage (which also authorises SendMessageBatch) on the queue, nothing that receives.
      // …and the unsubscribe key, to verify the one-click links.
      [
        api,
        {
          SQSSendMessagePolicy: queueName('Queue'),
          AWSSecretsManagerGetSecretValuePolicy: { SecretArn: ref('UnsubscribeSecret') },
        },
      ],
      [
        worker,
        {
          // Receive, delete and ChangeMessageVisibility(Batch) on the queue: the event source and the back-off.
          SQSPollerPolicy: queueName('Queue'),
          // Chained delays: a scheduled message goes back on the same queue with up to 900 s of delay.
          SQSSendMessagePolicy: queueName('Queue'),
          // The relay's credentials, and the key that signs the unsubscribe links.
          AWSSecretsManagerGetSecretValuePolicy: [
            { SecretArn: ref('SmtpSecret') },
            { SecretArn: ref('UnsubscribeSecret') },
            // The DKIM keys, with a DkimSecretArn only.
            { SecretArn: ref('DkimSecretArn') },
          ],
        },
      ],
      // The events function has inline statements only.
      [events, {}],
      [
        webhook,
        {
          // Receive and delete for the event source, ChangeMessageVisibility(Batch) for the retry schedule.
          SQSPollerPolicy: queueName('WebhookQueue'),
          AWSSecretsManagerGetSecretValuePolicy: { SecretArn: ref('WebhookSecretArn') },
        },
      ],
    ]);
    for (const [fn, templates] of allowed) {
      // A conditional policy (Fn::If [condition, policy, AWS::NoValue]) counts as the policy it grants.
      const used = (fn.Properties.Policies as Node[])
        .map((p): Node => (p['Fn::If'] ? p['Fn::If'][1] : p))
        .filter((p) => !p.Statement);
      for (const policy of used) expect(Object.keys(policy)).toHaveLength(1);
      // A template used twice (the worker's two secrets) is listed with both of its scopes.
      const scopes = new Map<string, Node[]>();
      for (const [name, scope] of used.map((policy) => Object.entries(policy)[0]!))
        scopes.set(name, [...(scopes.get(name) ?? []), scope]);
      const grouped = Object.fromEntries(
        [...scopes].map(([name, list]) => [name, list.length === 1 ? list[0] : list]),
      );
      expect(grouped).toEqual(templates);
    }
    expect(policyTemplates(api).sort()).toEqual([
      'AWSSecretsManagerGetSecretValuePolicy',
      'SQSSendMessagePolicy',
    ]);
    expect(policyTemplates(webhook).sort()).toEqual([
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
    // The one resource policy that allows anything: EventBridge, for this stack's webhook rule only.
    const queuePolicy = resources.WebhookQueuePolicy.Properties.PolicyDocument.Statement as Statement[];
    const fromRule = queuePolicy.filter((statement) => statement.Effect === 'Allow');
    expect(fromRule).toHaveLength(1);
    expect(allows).toEqual([...functions.flatMap(inlineStatements), ...fromRule]);
    for (const statement of allows) {
      expect(Object.keys(statement)).not.toContain('NotAction');
      expect(Object.keys(statement)).not.toContain('NotResource');
      const actions = asList(statement.Action);
      expect(actions.filter((a) => a.includes('*') || a === 'dynamodb:Scan')).toEqual([]);
      for (const resource of asList(statement.Resource)) {
        // Only object keys under one prefix end in a wildcard, and the table's streams for ListStreams alone;
        // the bucket itself only for ListBucket.
        const text = JSON.stringify(resource);
        expect(text, text).toMatch(
          /^\{"Fn::GetAtt":\["(LedgerTable|Bucket|EventBus|EventsFailureQueue|WebhookQueue)","Arn"\]\}$|^\{"Fn::GetAtt":\["LedgerTable","StreamArn"\]\}$|^\{"Fn::Sub":"\$\{LedgerTable\.Arn\}\/(index\/[A-Za-z]+|stream\/\*)"\}$|^\{"Fn::Sub":"\$\{Bucket\.Arn\}\/[a-z]+\/\*"\}$/,
        );
        if (text === JSON.stringify(bucketArn)) expect(actions).toEqual(['s3:ListBucket']);
        if (text.includes('/stream/*')) expect(actions).toEqual(['dynamodb:ListStreams']);
      }
    }
  });
});

describe('infra/template.yaml: events (the ledger’s stream to the bus)', () => {
  it('has one bus, named after the stack, and outputs its name and ARN', () => {
    const buses = Object.keys(resources).filter((name) => resources[name].Type === 'AWS::Events::EventBus');
    expect(buses).toEqual(['EventBus']);
    expect(resources.EventBus.Properties).toEqual({ Name: sub(`\${AWS::StackName}-events`) });
    expect(template.Outputs.EventBusName.Value).toEqual(ref('EventBus'));
    expect(template.Outputs.EventBusArn.Value).toEqual(getAtt('EventBus', 'Arn'));
  });

  it('reads the stream in order, retries from the first failed record and sends what it gives up on to its failure queue', () => {
    expect(streamEvent.Properties).toEqual({
      Stream: getAtt('LedgerTable', 'StreamArn'),
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
      // One batch per shard at a time: an item key is in one shard, so a message's events stay in order.
      ParallelizationFactor: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      FilterCriteria: expect.any(Object),
      // No Type: SAM would add a grant of its own; the function's RecordFailedBatches statement is that grant.
      DestinationConfig: { OnFailure: { Destination: getAtt('EventsFailureQueue', 'Arn') } },
    });
    expect(Object.values(events.Properties.Events as Node)).toHaveLength(1);
    // A bounded number of retries (not -1): a poison record must not hold its shard back for a day.
    expect(streamEvent.Properties.MaximumRecordAgeInSeconds).toBeUndefined();
  });

  it('invokes the function only for written message items, the only changes that make events', () => {
    const filters = streamEvent.Properties.FilterCriteria.Filters as Node[];
    expect(filters).toHaveLength(1);
    // Idempotency keys and the relay's rate limit make no events; nor does a TTL deletion (REMOVE).
    expect(JSON.parse(filters[0]!.Pattern)).toEqual({
      eventName: ['INSERT', 'MODIFY'],
      dynamodb: { Keys: { [KEY]: { S: [{ prefix: messageKey('') }] } } },
    });
    expect(relayKey('relay.example.com:587').startsWith(messageKey(''))).toBe(false);
    expect(idempotencyItemKey('order-1234').startsWith(messageKey(''))).toBe(false);
  });

  it('gives the events function exactly PutEvents on the bus, reads of this table’s stream and SendMessage to its failure queue', () => {
    const statements = inlineStatements(events);
    expect(policyTemplates(events)).toEqual([]);
    expect(new Set(statements.flatMap((s) => asList(s.Action)).map((a) => a.split(':')[0]))).toEqual(
      new Set(['events', 'dynamodb', 'sqs']),
    );
    expect(grants(statements, 'events')).toEqual(
      onResource([[getAtt('EventBus', 'Arn'), ['events:PutEvents']]]),
    );
    expect(grants(statements, 'dynamodb')).toEqual(
      onResource([
        [
          getAtt('LedgerTable', 'StreamArn'),
          ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
        ],
        [sub(`\${LedgerTable.Arn}/stream/*`), ['dynamodb:ListStreams']],
      ]),
    );
    expect(grants(statements, 'sqs')).toEqual(
      onResource([[getAtt('EventsFailureQueue', 'Arn'), ['sqs:SendMessage']]]),
    );
  });

  it('gives the events function the bus’s name and nothing else of its own', () => {
    expect(events.Properties.Environment.Variables).toEqual({ EVENT_BUS_NAME: ref('EventBus') });
    expect(events.Properties.Handler).toBe('index.handler');
    expect(events.Condition).toBeUndefined(); // events exist with or without a webhook
  });
});

describe('infra/template.yaml: webhooks', () => {
  // The Standard Webhooks schedule: each retry after the previous try failed, by the function setting the
  // message's visibility; the first try is at once.
  const retryDelays = WEBHOOK_RETRY_SECONDS;
  const webhookResources = [
    'WebhookRule',
    'WebhookQueue',
    'WebhookDLQ',
    'WebhookDLQAlarm',
    'WebhookQueuePolicy',
    'WebhookFunction',
    'WebhookLogGroup',
  ];

  it('declares WebhookUrl and WebhookSecretArn, empty by default, letting through only https URLs and full secret ARNs', () => {
    const { WebhookUrl, WebhookSecretArn } = template.Parameters as Node;
    expect(WebhookUrl).toMatchObject({ Type: 'String', Default: '' });
    expect(WebhookSecretArn).toMatchObject({ Type: 'String', Default: '' });
    const url = (value: string) => new RegExp(WebhookUrl.AllowedPattern).test(value);
    const arn = (value: string) => new RegExp(WebhookSecretArn.AllowedPattern).test(value);

    for (const value of ['', 'https://hooks.example.com', 'https://hooks.example.com/smtpq?team=1'])
      expect(url(value), value).toBe(true);
    for (const value of ['http://hooks.example.com', 'https://', 'https:// x', 'hooks.example.com', ' '])
      expect(url(value), value).toBe(false);
    for (const value of ['', webhookParameters.WebhookSecretArn]) expect(arn(value), value).toBe(true);
    for (const value of [
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtpq/webhook', // no suffix: IAM would not match
      'arn:aws:s3:::bucket',
      'smtpq/webhook',
    ])
      expect(arn(value), value).toBe(false);
  });

  it('refuses, in its Rules, a WebhookUrl without a WebhookSecretArn', () => {
    expect(rulesAccept({ WebhookUrl: webhookParameters.WebhookUrl })).toBe(false);
    expect(rulesAccept(webhookParameters)).toBe(true);
    expect(rulesAccept({})).toBe(true); // no webhook at all
    expect(template.Rules.WebhookNeedsASecret.Assertions[0].AssertDescription).toMatch(
      /WebhookUrl needs WebhookSecretArn/,
    );
  });

  it('creates every webhook resource, and the webhook DLQ’s output, only under HasWebhook (a WebhookUrl)', () => {
    expect(template.Conditions.HasWebhook).toEqual({
      'Fn::Not': [{ 'Fn::Equals': [ref('WebhookUrl'), ''] }],
    });
    expect(
      Object.keys(resources)
        .filter((name) => name.startsWith('Webhook'))
        .sort(),
    ).toEqual([...webhookResources].sort());
    for (const name of webhookResources) expect(resources[name].Condition, name).toBe('HasWebhook');
    // Only the webhook resources are conditional: mail and events do not depend on a webhook.
    expect(
      Object.keys(resources)
        .filter((name) => resources[name].Condition !== undefined)
        .sort(),
    ).toEqual([...webhookResources].sort());
    expect(template.Outputs.WebhookDLQUrl).toEqual({
      Condition: 'HasWebhook',
      Description: expect.any(String),
      Value: ref('WebhookDLQ'),
    });
  });

  it('sends every smtpq event on the bus to the webhook queue', () => {
    expect(resources.WebhookRule.Properties).toMatchObject({
      EventBusName: ref('EventBus'),
      EventPattern: { source: [EVENT_SOURCE] },
      State: 'ENABLED',
      Targets: [{ Id: expect.any(String), Arn: getAtt('WebhookQueue', 'Arn') }],
    });
    // No RoleArn: EventBridge sends to SQS under the queue's policy.
    expect(resources.WebhookRule.Properties.Targets[0].RoleArn).toBeUndefined();
  });

  it('lets only the webhook rule send to the webhook queue', () => {
    const policy = resources.WebhookQueuePolicy.Properties as Node;
    expect(policy.Queues).toEqual([ref('WebhookQueue'), ref('WebhookDLQ')]);
    const allows = (policy.PolicyDocument.Statement as Node[]).filter((s) => s.Effect === 'Allow');
    expect(allows).toEqual([
      {
        Sid: expect.any(String),
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: getAtt('WebhookQueue', 'Arn'),
        Condition: { ArnEquals: { 'aws:SourceArn': getAtt('WebhookRule', 'Arn') } },
      },
    ]);
  });

  it('retries on the queue: 8 receives over ~27.5 h, then the DLQ; visibility and retention fit the schedule', () => {
    const timeout = webhook.Properties.Timeout;
    const schedule = retryDelays.reduce((sum, delay) => sum + delay, 0);

    expect(timeout).toBe(30);
    expect(webhookQueue.VisibilityTimeout).toBe(6 * timeout); // no batching window
    expect(webhookQueue.RedrivePolicy).toEqual({
      deadLetterTargetArn: getAtt('WebhookDLQ', 'Arn'),
      // Each try is one receive: the redrive neither cuts the function's schedule short nor adds a try.
      maxReceiveCount: WEBHOOK_MAX_TRIES,
    });
    expect(webhookQueue.RedrivePolicy.maxReceiveCount).toBe(8);
    expect(schedule).toBe(99_305);
    expect(schedule / 3600).toBeCloseTo(27.5, 0);
    // Each delay is a visibility timeout, at most SQS's 12 h.
    for (const delay of retryDelays) expect(delay).toBeLessThanOrEqual(43_200);
    expect(webhookQueue.MessageRetentionPeriod).toBe(4 * 86_400);
    expect(webhookQueue.MessageRetentionPeriod).toBeGreaterThan(schedule + retryDelays.length * 6 * timeout);
    // A message keeps its first enqueue time in the DLQ: there it still has 14 days less the schedule.
    expect(resources.WebhookDLQ.Properties.MessageRetentionPeriod).toBe(14 * 86_400);
  });

  it('wires the webhook queue to the function with partial batch responses and at most 2 invocations at once', () => {
    expect(webhookEvent.Properties).toEqual({
      Queue: getAtt('WebhookQueue', 'Arn'),
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
    expect(Object.values(webhook.Properties.Events as Node)).toHaveLength(1);
  });

  it('gives the webhook function its queue (receive, delete, visibility) and the webhook secret, nothing else', () => {
    // SQSPollerPolicy: ChangeMessageVisibility(Batch) for the schedule, receive/delete for the event source.
    expect(webhook.Properties.Policies).toEqual([
      { SQSPollerPolicy: { QueueName: getAtt('WebhookQueue', 'QueueName') } },
      { AWSSecretsManagerGetSecretValuePolicy: { SecretArn: ref('WebhookSecretArn') } },
    ]);
    expect(inlineStatements(webhook)).toEqual([]);
  });

  it('gives the webhook function its URL, its secret and its queue', () => {
    expect(webhook.Properties.Environment.Variables).toEqual({
      WEBHOOK_URL: ref('WebhookUrl'),
      WEBHOOK_SECRET_ARN: ref('WebhookSecretArn'),
      WEBHOOK_QUEUE_URL: ref('WebhookQueue'),
    });
    expect(webhookEnvOf()).toMatchObject({
      WEBHOOK_URL: webhookParameters.WebhookUrl,
      WEBHOOK_SECRET_ARN: webhookParameters.WebhookSecretArn,
    });
  });
});

describe('infra/template.yaml: scheduled messages', () => {
  it('lets the worker send to its own queue, and to no other (chained delays of up to 900 s)', () => {
    expect(worker.Properties.Policies).toContainEqual({
      SQSSendMessagePolicy: { QueueName: getAtt('Queue', 'QueueName') },
    });
    const sends = (worker.Properties.Policies as Node[]).filter((p) => p.SQSSendMessagePolicy);
    expect(sends).toHaveLength(1);
    expect(grants(inlineStatements(worker), 'sqs')).toEqual({});
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
  it('outputs the API URL, the queue URL, the bucket name, the ledger table and its stream, the bus', () => {
    expect(Object.keys(template.Outputs)).toEqual(
      expect.arrayContaining([
        'ApiUrl',
        'QueueUrl',
        'BucketName',
        'LedgerTableName',
        'LedgerStreamArn',
        'EventBusName',
        'EventBusArn',
        'EventsFailureQueueUrl',
        'WebhookDLQUrl',
      ]),
    );
    expect(template.Outputs.LedgerTableName.Value).toEqual(ref('LedgerTable'));
    expect(template.Outputs.LedgerStreamArn.Value).toEqual(getAtt('LedgerTable', 'StreamArn'));
  });
});

describe('infra/template.yaml: who may call, send and read', () => {
  const httpApi = template.Resources.HttpApi.Properties;

  it('requires AllowedFromDomains (no default) and passes it and ReadAllPrincipals to the API as lib/config reads them', () => {
    expect(template.Parameters.AllowedFromDomains.Default).toBeUndefined();
    const pattern = new RegExp(template.Parameters.AllowedFromDomains.AllowedPattern);
    for (const ok of ['*', 'example.com', 'example.com,*.mail.example.org'])
      expect(pattern.test(ok), ok).toBe(true);
    for (const bad of ['', 'example.com, other.org', '*,example.com', 'exa mple.com', '**.x.com'])
      expect(pattern.test(bad), bad).toBe(false);
    const env = apiEnvOf({
      AllowedFromDomains: 'example.com,*.mail.example.org',
      ReadAllPrincipals: 'arn:aws:iam::1:role/Ops',
    });
    expect(env).toMatchObject({
      ALLOWED_FROM_DOMAINS: 'example.com,*.mail.example.org',
      READ_ALL_PRINCIPALS: 'arn:aws:iam::1:role/Ops',
    });
    expect(loadApiConfig(env)).toMatchObject({
      allowedFromDomains: ['example.com', '*.mail.example.org'],
      readAllPrincipals: ['arn:aws:iam::1:role/Ops'],
    });
    expect(template.Parameters.ReadAllPrincipals.Default).toBe('');
  });

  it('throttles the default route from parameters, and writes a JSON access log with the IAM caller and no body', () => {
    expect(httpApi.DefaultRouteSettings).toEqual({
      ThrottlingRateLimit: ref('ApiThrottleRateLimit'),
      ThrottlingBurstLimit: ref('ApiThrottleBurstLimit'),
    });
    expect(httpApi.AccessLogSettings.DestinationArn).toEqual(getAtt('ApiAccessLogGroup', 'Arn'));
    const format = JSON.parse(httpApi.AccessLogSettings.Format) as Record<string, string>;
    expect(format).toMatchObject({
      requestId: '$context.requestId',
      routeKey: '$context.routeKey',
      status: '$context.status',
      userArn: '$context.identity.userArn',
      accountId: '$context.identity.accountId',
      accessKey: '$context.identity.accessKey',
    });
    expect(httpApi.AccessLogSettings.Format).not.toMatch(/requestBody|\$input|\$request\.header/);
    expect(template.Resources.ApiAccessLogGroup.Properties.RetentionInDays).toEqual(ref('LogRetentionDays'));
  });
});

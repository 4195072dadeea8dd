// `npm run dev`: the whole of smtpq on one machine. It starts (or finds) an AWS emulator, creates the queue,
// DLQ, bucket and secret, runs the real API handler behind a local API Gateway, the real worker handler behind
// the SQS event-source poller, and a dev SMTP server the worker delivers to over STARTTLS with AUTH.
// startDev() is also the programmatic entry of the e2e tests: every port may be 0, and the chosen ones come back.
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AwsClients, createAwsClients } from '../../lib/aws/clients.ts';
import { DynamoLedger } from '../../lib/aws/ledger-store.ts';
import { loadOrCreateLocalCa } from './certs.ts';
import { type DevEvents, startDevEvents } from './dev-events.ts';
import { type DevResources, ensureDevResources, type SmtpSecretValue } from './dev-resources.ts';
import { type DevSmtpServer, type MailStore, startDevSmtp } from './dev-smtp.ts';
import {
  drainQueues,
  mirrorBucket,
  mirrorTable,
  RetainedRecords,
  restoreSnapshot,
  type SnapshotTarget,
} from './dev-snapshot.ts';
import { type ApiHandler, createGateway, listen } from './http-gateway.ts';
import { createInbox, type Inbox } from './inbox/server.ts';
import { startMoto } from './moto.ts';
import { parseSmtpUrl, type SmtpRelay } from './smtp-url.ts';
import { startSqsPoller } from './sqs-poller.ts';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The user's own AWS settings, as they were when this module loaded. startDev() writes its settings into
 * process.env for the handlers, and a second stack in the same process must not take them for the user's.
 */
const userEnv = {
  AWS_ENDPOINT_URL: process.env.AWS_ENDPOINT_URL,
  BUCKET_NAME: process.env.BUCKET_NAME,
  QUEUE_URL: process.env.QUEUE_URL,
  LEDGER_TABLE: process.env.LEDGER_TABLE,
  UNSUBSCRIBE_SECRET: process.env.UNSUBSCRIBE_SECRET,
  UNSUBSCRIBE_SECRET_ARN: process.env.UNSUBSCRIBE_SECRET_ARN,
  PUBLIC_BASE_URL: process.env.PUBLIC_BASE_URL,
};

export interface DevOptions {
  /** API + inbox port (PORT, default 3000); 0 for any free port. */
  port?: number;
  /** Interface the API and the dev SMTP server bind to. Default 127.0.0.1: the dev stack has no auth. */
  host?: string;
  /** Dev SMTP server port (SMTP_DEV_PORT, default 2525); 0 for any free port. */
  smtpPort?: number;
  /** Where mail, certificates and the emulator snapshot live (SMTPQ_DATA_DIR, default <project>/.smtpq). */
  dataDir?: string;
  /** An existing emulator, e.g. LocalStack (AWS_ENDPOINT_URL); unset: start moto. */
  awsEndpoint?: string;
  /** Real AWS in AWS_REGION with the credentials of the AWS chain (SMTPQ_REAL_AWS=1), instead of an emulator. */
  realAws?: boolean;
  /** A real relay instead of the dev SMTP server (SMTP_URL). */
  smtpUrl?: string;
  /** Name prefix of the queue, DLQ, bucket, secret and event bus. Default smtpq-dev. */
  resourcePrefix?: string;
  /** Where every event is POSTed, signed (WEBHOOK_URL); unset: no webhook. */
  webhookUrl?: string;
  /** The webhook signing secret, `whsec_…` (WEBHOOK_SECRET); unset: generated once into the data dir. */
  webhookSecret?: string;
  /** Print the banner and progress lines. Default true. */
  log?: (line: string) => void;
}

export interface DevStack {
  apiUrl: string;
  inboxUrl: string;
  port: number;
  /** The dev SMTP server's port; undefined when SMTP_URL points at a real relay. */
  smtpPort?: number;
  /** The emulator's URL; undefined for real AWS. */
  awsEndpoint?: string;
  dataDir: string;
  resources: DevResources;
  /** Credentials of the dev SMTP server (also in the secret). */
  smtpCredentials?: SmtpSecretValue;
  mail?: MailStore;
  clients: AwsClients;
  /** The event bus and the webhook; undefined on existing resources (their stack publishes its own). */
  events?: DevEvents;
  stop(): Promise<void>;
}

/**
 * Deliveries of a message before the dev worker gives up and records 'failed' (RETRY_MAX_ATTEMPTS, production
 * 30): with the dev back-off (30 s, 60 s, 120 s) a recipient deferred every time shows 'failed' within minutes.
 */
const DEV_RETRY_MAX_ATTEMPTS = 4;

/**
 * The dev queue's MaxReceiveCount is RETRY_MAX_ATTEMPTS plus this: well above it, as infra/README.md requires,
 * so the worker — not the redrive policy — gives up on a deferred message and records 'failed' (in the DLQ its
 * ledger would stay 'deferred'). Every return that sent nothing is a receive too (a relay pause, the rate
 * limit, a lease held elsewhere, a record the API is still writing): a margin of a few would send a
 * rate-limited backlog to the DLQ.
 */
const DEV_RECEIVE_MARGIN = 30;

/** SQS allows a MaxReceiveCount of at most 1000. */
const MAX_RECEIVE_COUNT = 1000;

function retryMaxAttempts(env: string | undefined): number {
  if (env === undefined || env === '') return DEV_RETRY_MAX_ATTEMPTS;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1 || n + DEV_RECEIVE_MARGIN > MAX_RECEIVE_COUNT)
    throw new Error(
      `RETRY_MAX_ATTEMPTS must be a whole number from 1 to ${MAX_RECEIVE_COUNT - DEV_RECEIVE_MARGIN}, got "${env}"`,
    );
  return n;
}

function intOption(
  value: number | undefined,
  env: string | undefined,
  fallback: number,
  name: string,
): number {
  if (value !== undefined) return value;
  if (env === undefined || env === '') return fallback;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`${name} must be a port number (0-65535), got "${env}"`);
  return n;
}

/** The dev SMTP server's credentials: generated once, kept in the data dir (mode 0600), put in the secret. */
async function devCredentials(dataDir: string): Promise<SmtpSecretValue> {
  const file = path.join(dataDir, 'dev-smtp-credentials.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as SmtpSecretValue;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const credentials = { username: 'smtpq-dev', password: randomBytes(18).toString('base64url') };
  await writeFile(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return credentials;
}

/** The dev unsubscribe key: generated once, kept in the data dir (mode 0600). */
async function devUnsubscribeKey(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'dev-unsubscribe-key');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32).toString('base64url');
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** BUCKET_NAME + QUEUE_URL + LEDGER_TABLE name existing resources (a deployed stack's) on an endpoint the user chose. */
function existingResources(
  ownMoto: boolean,
): { bucket: string; queueUrl: string; table: string } | undefined {
  const { BUCKET_NAME: bucket, QUEUE_URL: queueUrl, LEDGER_TABLE: table } = userEnv;
  if (ownMoto || (!bucket && !queueUrl && !table)) return undefined;
  if (!bucket || !queueUrl || !table)
    throw new Error('set all of BUCKET_NAME, QUEUE_URL and LEDGER_TABLE to use existing resources, or none');
  return { bucket, queueUrl, table };
}

/** A positive whole number from the environment, or the fallback. */
function countOption(env: string | undefined, fallback: number, name: string, max: number): number {
  if (env === undefined || env === '') return fallback;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`${name} must be a whole number from 1 to ${max}, got "${env}"`);
  return n;
}

function setEnv(env: NodeJS.ProcessEnv, values: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
}

function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return (
    host === 'localhost' ||
    host === '127.0.0.1' ||
    host === '[::1]' ||
    host.endsWith('.localhost.localstack.cloud')
  );
}

export async function startDev(options: DevOptions = {}): Promise<DevStack> {
  // The handlers read process.env at cold start, so the dev stack configures them through it.
  const env = process.env;
  const log = options.log ?? ((line: string) => console.log(line));
  // Not $HOST: zsh sets that to the machine's name.
  const host = options.host ?? env.SMTPQ_HOST ?? '127.0.0.1';
  const port = intOption(options.port, env.PORT, 3000, 'PORT');
  const smtpPortWanted = intOption(options.smtpPort, env.SMTP_DEV_PORT, 2525, 'SMTP_DEV_PORT');
  const dataDir = path.resolve(options.dataDir ?? env.SMTPQ_DATA_DIR ?? path.join(projectRoot, '.smtpq'));
  const prefix = options.resourcePrefix ?? env.SMTPQ_RESOURCE_PREFIX ?? 'smtpq-dev';
  const relay: SmtpRelay | undefined =
    (options.smtpUrl ?? env.SMTP_URL) ? parseSmtpUrl(options.smtpUrl ?? env.SMTP_URL!) : undefined;
  const maxAttempts = retryMaxAttempts(env.RETRY_MAX_ATTEMPTS);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });

  const cleanups: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error(`[dev] while stopping: ${(error as Error).message}`);
      }
    }
  };

  try {
    // The HTTP port first: a port in use is the most common start-up failure, so it fails before anything slow.
    let api: ApiHandler | undefined;
    let inbox: Inbox | undefined;
    const gateway: Server = createGateway({
      region: env.AWS_REGION ?? 'us-east-1',
      handler: async (event, context) =>
        api
          ? api(event, context)
          : {
              statusCode: 503,
              headers: { 'content-type': 'application/json', 'retry-after': '2' },
              body: JSON.stringify({
                error: 'starting',
                message: 'smtpq dev is starting (the AWS emulator and the handlers); retry in a few seconds',
              }),
            },
      inbox: async (req, res, url) => (inbox ? inbox.handle(req, res, url) : false),
      onApiWrite: () => inbox?.notify(),
      // A name the user chose to bind to (SMTPQ_HOST) is ours too; the loopback names always are.
      hostNames: hostNamesFor(host),
    });
    const apiPort = await listen(gateway, port, host, 'API (PORT)');
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          gateway.close(() => resolve());
          gateway.closeAllConnections();
        }),
    );
    const urlHost = host === '127.0.0.1' || host === '::1' || host === '0.0.0.0' ? 'localhost' : host;
    const apiUrl = `http://${urlHost}:${apiPort}`;

    // AWS: the given endpoint, or our own moto (state kept in <dataDir>/state between runs).
    const realAws = options.realAws ?? /^(1|true)$/.test(env.SMTPQ_REAL_AWS ?? '');
    const external = options.awsEndpoint ?? userEnv.AWS_ENDPOINT_URL;
    if (realAws && external)
      throw new Error('SMTPQ_REAL_AWS and AWS_ENDPOINT_URL exclude each other: pick one');
    let awsEndpoint = external;
    let ownMoto = false;
    if (!awsEndpoint && !realAws) {
      log('starting moto (AWS emulator; the first run installs it into .venv)…');
      const moto = await startMoto();
      cleanups.push(() => moto.stop());
      awsEndpoint = moto.endpoint;
      ownMoto = true;
    }
    // Emulators accept any credentials, but the SDK needs some to sign with. Real AWS uses the usual chain.
    if (awsEndpoint && isLoopback(awsEndpoint)) {
      env.AWS_ACCESS_KEY_ID ??= 'test';
      env.AWS_SECRET_ACCESS_KEY ??= 'test';
    }
    const region = env.AWS_REGION ?? 'us-east-1';
    if (realAws && !env.AWS_REGION)
      throw new Error('SMTPQ_REAL_AWS needs AWS_REGION (where the queue and bucket live)');
    const clients = createAwsClients({ region, endpoint: awsEndpoint });

    const ca = relay ? undefined : await loadOrCreateLocalCa(path.join(dataDir, 'certs'));
    const smtpCredentials = relay ? undefined : await devCredentials(dataDir);
    const secret = relay ? relay.credentials : smtpCredentials;
    const resources = await ensureDevResources(clients, {
      prefix,
      maxReceiveCount: maxAttempts + DEV_RECEIVE_MARGIN,
      visibilityTimeoutSeconds: 120,
      secret: secret ?? { username: '', password: '' },
      existing: existingResources(ownMoto),
      region,
      globalBucketName: realAws,
    });
    const { bucket, queueUrl, table } = resources;

    const snapshot: SnapshotTarget = {
      clients,
      bucket,
      table,
      // Only our own moto is snapshotted, and its queues always have the DLQ we created.
      queues: { main: queueUrl, dlq: resources.dlqUrl ?? '' },
      dir: path.join(dataDir, 'state'),
    };
    if (ownMoto) {
      const restored = await restoreSnapshot(snapshot);
      if (restored.objects + restored.messages > 0) {
        log(
          `restored ${restored.objects} objects and ${restored.messages} queued messages from ${snapshot.dir}`,
        );
      }
    }

    // Before the handlers exist: the stream is read from its latest change, and no change may come before.
    const webhookUrl = options.webhookUrl ?? (env.WEBHOOK_URL || undefined);
    const webhookSecret = options.webhookSecret ?? (env.WEBHOOK_SECRET || undefined);
    if (webhookSecret !== undefined && !webhookSecret.startsWith('whsec_'))
      throw new Error('WEBHOOK_SECRET must be a Standard Webhooks secret: whsec_ followed by base64');
    let events: DevEvents | undefined;
    if (resources.streamArn) {
      events = await startDevEvents({
        clients,
        region,
        endpoint: awsEndpoint,
        prefix,
        dataDir,
        streamArn: resources.streamArn,
        webhookUrl,
        webhookSecret,
        onChange: () => inbox?.notify(),
      });
      cleanups.push(() => events!.stop());
    } else if (webhookUrl) {
      log('WEBHOOK_URL is ignored with existing resources: their stack posts its own webhooks');
    }

    let smtp: DevSmtpServer | undefined;
    if (ca && smtpCredentials) {
      smtp = await startDevSmtp({
        dir: path.join(dataDir, 'mail'),
        host,
        port: smtpPortWanted,
        keyPem: ca.keyPem,
        certPem: ca.certPem,
        credentials: smtpCredentials,
      });
      cleanups.push(() => smtp!.stop());
    }

    // The handlers read their configuration from the environment at cold start, so it is set before they load.
    setEnv(env, {
      AWS_REGION: region,
      AWS_ENDPOINT_URL: awsEndpoint,
      BUCKET_NAME: bucket,
      QUEUE_URL: queueUrl,
      LEDGER_TABLE: table,
      ...(relay
        ? relayEnv(relay, resources.secretArn)
        : {
            // 127.0.0.1 rather than localhost: the certificate names both, and the server listens on IPv4 only.
            SMTP_HOST: host === '0.0.0.0' ? '127.0.0.1' : host,
            SMTP_PORT: String(smtp!.port),
            SMTP_TLS: 'starttls',
            SMTP_REQUIRE_TLS: 'true',
            SMTP_CA_PEM: ca!.caPem,
            SMTP_SECRET_ARN: resources.secretArn,
          }),
    });
    // Any sender locally, unless the user limits it as a deployment must (ALLOWED_FROM_DOMAINS).
    env.ALLOWED_FROM_DOMAINS ??= '*';
    // One-click unsubscribe links point at this API, signed with a key generated once into the data dir.
    setEnv(env, {
      UNSUBSCRIBE_SECRET: userEnv.UNSUBSCRIBE_SECRET_ARN
        ? undefined
        : (userEnv.UNSUBSCRIBE_SECRET ?? (await devUnsubscribeKey(dataDir))),
      UNSUBSCRIBE_SECRET_ARN: userEnv.UNSUBSCRIBE_SECRET_ARN,
      PUBLIC_BASE_URL: userEnv.PUBLIC_BASE_URL ?? apiUrl,
    });
    // Quicker retries than production (minutes, not tens of minutes), unless set explicitly.
    env.RETRY_BASE_SECONDS ??= '30';
    env.RETRY_MAX_SECONDS ??= '600';
    env.RETRY_MAX_ATTEMPTS = String(maxAttempts);
    // The handlers' JSON logs and EMF metrics would bury the banner; POWERTOOLS_LOG_LEVEL=INFO shows them.
    env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
    env.POWERTOOLS_METRICS_DISABLED ??= 'true';

    // The same factories the Lambda entries call at cold start (functions/*/index.ts), with the env just set;
    // built here rather than imported as module singletons, so a second stack in one process gets its own.
    const { loadApiConfig, loadWorkerConfig } = await import('../../lib/config.ts');
    const { createApiHandler } = await import('../../functions/api/app.ts');
    const { createDeps } = await import('../../functions/api/index.ts');
    const { createWorker } = await import('../../functions/worker/worker.ts');
    const { createWorkerDeps } = await import('../../functions/worker/deps.ts');
    const run = createApiHandler(createDeps(loadApiConfig(env)));
    api = (event) => run(event);
    const workerDeps = createWorkerDeps(loadWorkerConfig(env));
    const worker = createWorker(workerDeps);
    const relayView = () => workerDeps.gate.status();

    inbox = createInbox({
      ledger: new DynamoLedger(clients.documents, table, Number(env.RETENTION_DAYS ?? 30)),
      relay: relayView,
      mail: smtp?.store,
      timeline: events ? (id) => events.log.timeline(id) : undefined,
      stack: { region, awsEndpoint, busName: events?.busName },
    });
    cleanups.push(async () => inbox?.close());

    const retained = new RetainedRecords();
    const invocationLog = env.SMTPQ_DEV_INVOCATION_LOG;
    const poller = await startSqsPoller({
      sqs: clients.sqs,
      queueUrl,
      region,
      // As the template's event source: BatchSize, MaximumBatchingWindowInSeconds, MaximumConcurrency.
      batchSize: countOption(env.WORKER_BATCH_SIZE, 100, 'WORKER_BATCH_SIZE', 10_000),
      batchingWindowSeconds: countOption(
        env.WORKER_BATCHING_WINDOW_SECONDS,
        1,
        'WORKER_BATCHING_WINDOW_SECONDS',
        300,
      ),
      concurrency: countOption(env.SMTP_MAX_CONNECTIONS, 2, 'SMTP_MAX_CONNECTIONS', 1000),
      onBatch: (report) => {
        retained.track(report);
        // For the pipeline benchmark: the workers' busy time (Lambda GB-s).
        if (invocationLog)
          appendFileSync(
            invocationLog,
            `${JSON.stringify({ records: report.event.Records.length, ms: report.durationMs })}\n`,
          );
      },
      handler: async (event, context) => {
        try {
          return await worker(event, context);
        } finally {
          inbox?.notify();
        }
      },
    });
    cleanups.push(() => poller.stop());

    if (ownMoto) {
      // Mirrored while running too, so a crash loses at most a few seconds of status. One mirror at a time:
      // with thousands of objects a pass can take longer than the interval.
      let mirroring: Promise<void> | undefined;
      const timer = setInterval(() => {
        mirroring ??= Promise.all([mirrorBucket(snapshot), mirrorTable(snapshot)])
          .then(() => {})
          .catch((error: Error) => console.error(`[dev] snapshot: ${error.message}`))
          .finally(() => {
            mirroring = undefined;
          });
      }, 5_000);
      timer.unref();
      // Registered before poller.stop() runs (cleanups run in reverse): first the poller stops, then this saves.
      cleanups.splice(cleanups.length - 1, 0, async () => {
        clearInterval(timer);
        await mirroring;
        await mirrorBucket(snapshot);
        await mirrorTable(snapshot);
        await retained.release(snapshot);
        const saved = await drainQueues(snapshot);
        if (saved > 0) log(`saved ${saved} queued messages to ${snapshot.dir}`);
      });
    }

    // Stop order: the API first (no new work), then the poller, the snapshot, the servers, the emulator.
    cleanups.push(...cleanups.splice(0, 1));

    const stack: DevStack = {
      apiUrl,
      inboxUrl: `${apiUrl}/_inbox/`,
      port: apiPort,
      smtpPort: smtp?.port,
      awsEndpoint,
      dataDir,
      resources,
      smtpCredentials,
      mail: smtp?.store,
      clients,
      events,
      stop: stopAll,
    };
    log(banner(stack, { ownMoto, relay }));
    return stack;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * The names a request may give in its Host header besides the loopback ones: the interface the user bound to
 * (SMTPQ_HOST); for every interface (0.0.0.0, ::), this machine's name and addresses.
 */
function hostNamesFor(host: string): string[] {
  const bracket = (address: string) => (address.includes(':') ? `[${address}]` : address);
  if (host !== '0.0.0.0' && host !== '::') return [bracket(host)];
  const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  return [hostname(), ...addresses.map(bracket)];
}

/** The worker's relay settings for SMTP_URL. Unset values are removed, so no stale SMTP_* setting mixes in. */
function relayEnv(relay: SmtpRelay, secretArn: string): Record<string, string | undefined> {
  return {
    SMTP_HOST: relay.host,
    SMTP_PORT: relay.port === undefined ? undefined : String(relay.port),
    SMTP_TLS: relay.tls,
    SMTP_REQUIRE_TLS: relay.tls === 'none' ? 'false' : 'true',
    SMTP_SECRET_ARN: relay.credentials ? secretArn : undefined,
  };
}

function banner(stack: DevStack, info: { ownMoto: boolean; relay?: SmtpRelay }): string {
  const rows: Array<[string, string]> = [
    [
      'API',
      `${stack.apiUrl}   (POST /v1/messages[/batch], GET /v1/messages[/{id}[/transcript]], POST /v1/messages/{id}/cancel)`,
    ],
    ['Dev inbox', stack.inboxUrl],
    [
      'AWS',
      stack.awsEndpoint === undefined
        ? `real AWS, ${process.env.AWS_REGION} (SMTPQ_REAL_AWS; credentials from the AWS chain)`
        : `${stack.awsEndpoint}${info.ownMoto ? '   (moto, started by smtpq)' : '   (AWS_ENDPOINT_URL)'}`,
    ],
    ['Queue', stack.resources.queueUrl],
    ['DLQ', stack.resources.dlqUrl ?? '(none: the queue has no redrive policy)'],
    ['Bucket', stack.resources.bucket],
    ['Ledger', `${stack.resources.table}   (DynamoDB)`],
  ];
  if (stack.events) {
    rows.push(['Events', `${stack.events.busName}   (EventBridge bus; smtpq events --follow)`]);
    const hook = stack.events.webhook;
    rows.push([
      'Webhook',
      hook
        ? `${hook.url}   (signed with ${hook.secret}; DLQ ${hook.dlqUrl})`
        : '(none: set WEBHOOK_URL to receive every event, signed)',
    ]);
  }
  if (info.relay) {
    rows.push([
      'SMTP relay',
      `${info.relay.host}:${info.relay.port ?? '(default)'} ${info.relay.tls} (SMTP_URL)`,
    ]);
  } else {
    rows.push([
      'Dev SMTP',
      `localhost:${stack.smtpPort}   STARTTLS (CA: ${path.join(stack.dataDir, 'certs', 'ca.pem')}), AUTH ${stack.smtpCredentials!.username} / ${stack.smtpCredentials!.password}`,
    ]);
  }
  rows.push([
    'Data',
    `${stack.dataDir}   (mail/, certs/${info.ownMoto ? ', state/ = the emulator snapshot' : ''})`,
  ]);
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`);
  const curl =
    `  curl -X POST ${stack.apiUrl}/v1/messages -H 'content-type: application/json' \\\n` +
    `    -d '{"from":"me@example.com","to":["you@example.com"],"subject":"Hello","text":"Hi!"}'`;
  return [
    '',
    'smtpq dev is running',
    '',
    ...lines,
    '',
    'Try it:',
    curl,
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

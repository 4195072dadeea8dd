// One `npm run dev` stack of a given tree as a child process (`node scripts/smtpq.mjs dev`), pointed at the
// counting proxy (AWS_ENDPOINT_URL) and the relay sink (SMTP_URL), with a free API port, its own data dir
// and resource prefix. Its API URL is read from the banner it prints once it is up. Every child runs in a
// process group of its own, which stop() — or the exit of this process — ends.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

export interface DevChild {
  apiUrl: string;
  pid: number;
  /** The last lines of its stdout and stderr. */
  output(): string;
  /** Lines it wrote to stderr since start (the handlers log errors there). */
  stderrLines(): number;
  stop(): Promise<void>;
}

export interface DevChildOptions {
  dir: string;
  awsEndpoint: string;
  smtpUrl: string;
  resourcePrefix: string;
  dataDir: string;
  /** SMTPQ_DEV_INVOCATION_LOG: where a dev stack that supports it logs each worker invocation. */
  invocationLog: string;
  region: string;
  /** Give up when the banner has not appeared after this long. */
  startTimeoutMs: number;
  /** Extra environment (e.g. the user's RETRY_* or batch settings). */
  env?: Record<string, string>;
}

const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Gone already.
  }
}

/** SIGKILLs every dev child still running (for process exit; synchronous). */
export function killDevChildren(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
}

/** The environment of the child: ours without any AWS, SMTP or smtpq setting, then the stack's. */
function childEnv(options: DevChildOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(AWS_|SMTP_|SMTPQ_|POWERTOOLS_|RETRY_)|^(BUCKET_NAME|QUEUE_URL|LEDGER_TABLE|PORT)$/.test(name))
      continue;
    env[name] = value;
  }
  return {
    ...env,
    AWS_ENDPOINT_URL: options.awsEndpoint,
    AWS_REGION: options.region,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    SMTP_URL: options.smtpUrl,
    PORT: '0',
    SMTP_DEV_PORT: '0',
    SMTPQ_DATA_DIR: options.dataDir,
    SMTPQ_RESOURCE_PREFIX: options.resourcePrefix,
    SMTPQ_DEV_INVOCATION_LOG: options.invocationLog,
    ...options.env,
  };
}

export function startDevChild(options: DevChildOptions): Promise<DevChild> {
  const child = spawn(process.execPath, [path.join(options.dir, 'scripts', 'smtpq.mjs'), 'dev'], {
    cwd: options.dir,
    env: childEnv(options),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let stdout = '';
  let tail = '';
  let stderrLines = 0;
  const keep = (text: string) => {
    tail = (tail + text).slice(-6000);
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => {
    if (stdout.length < 20_000) stdout += text;
    keep(text);
  });
  child.stderr!.on('data', (text: string) => {
    stderrLines += text.split('\n').length - 1;
    keep(text);
  });

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };

  return new Promise<DevChild>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      clearInterval(watch);
      killGroup(child, 'SIGKILL');
      const output = tail.trim();
      reject(
        new Error(
          `the dev stack of ${options.dir} ${why}; ${output ? `its last output:\n${output}` : 'it printed nothing'}`,
        ),
      );
    };
    const timer = setTimeout(
      () => fail(`did not print its banner within ${options.startTimeoutMs / 1000} s`),
      options.startTimeoutMs,
    );
    child.once('error', (error) => fail(`could not be started: ${error.message}`));
    child.once('exit', (code, signal) => fail(`exited (${signal ?? code}) before it was up`));
    // The banner ends with this line; the API URL is on its "API" row.
    const watch = setInterval(() => {
      if (!/Ctrl-C stops everything/.test(stdout)) return;
      const match = /^\s*API\s+(https?:\/\/\S+)/m.exec(stdout);
      if (!match) return fail('printed a banner without an API row');
      clearTimeout(timer);
      clearInterval(watch);
      child.removeAllListeners('exit');
      child.on('exit', () => live.delete(child));
      // The stack binds 127.0.0.1 and prints localhost, which may resolve to ::1 first.
      const apiUrl = match[1]!.replace('//localhost:', '//127.0.0.1:');
      resolve({ apiUrl, pid: child.pid!, output: () => tail, stderrLines: () => stderrLines, stop });
    }, 50);
  });
}

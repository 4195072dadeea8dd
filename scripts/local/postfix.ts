// Postfix pieces on loopback for the interop tests and the benchmark, each owned by the caller:
// - startSmtpSink(): Postfix's `smtp-sink` test server (accepts and discards; no CHUNKING);
// - startPostfix(): a private Postfix instance (own config, queue and data directories in a temp dir) whose
//   smtpd listens on 127.0.0.1:<port> (PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8) and either writes every
//   delivered message to a directory the caller reads, or discards it.
// Both need the Debian package `postfix` (installed by .ci/run); the private instance also needs root,
// because the Postfix master switches to the `postfix` user itself. The Debian package's own instance
// (config in /etc/postfix) is never touched.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const SMTP_SINK = '/usr/sbin/smtp-sink';
const POSTFIX = '/usr/sbin/postfix';
const MASTER = '/usr/lib/postfix/sbin/master';
const LOOPBACK = '127.0.0.1';

/** Why Postfix cannot run here, or undefined when it can. */
export function postfixUnavailable(): string | undefined {
  for (const file of [SMTP_SINK, POSTFIX, MASTER]) {
    if (!existsSync(file)) return `${file} is missing (apt-get install postfix; .ci/run does it)`;
  }
  if (process.getuid?.() !== 0)
    return 'a private Postfix instance needs root (its master drops privileges itself)';
  return undefined;
}

export interface LocalSmtpServer {
  host: string;
  port: number;
  /** Kills every process this server started and removes its files. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** Extra smtp-sink flags, e.g. ['-p'] (no PIPELINING) or ['-Q', 'RCPT'] (421 after RCPT). */
  args?: string[];
}

/** Starts `smtp-sink` on a free loopback port. It accepts everything and keeps nothing. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<LocalSmtpServer> {
  return startOnFreePort(async (port) => {
    // -u: required as root (smtp-sink drops to this user after binding); -4: IPv4 only; backlog 256.
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    const child = spawn(
      SMTP_SINK,
      [...user, '-4', '-h', 'smtp-sink.localhost', ...(options.args ?? []), `${LOOPBACK}:${port}`, '256'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const stderr = collect(child);
    await waitForGreeting(port, child, stderr);
    return { host: LOOPBACK, port, stop: () => killProcess(child) };
  });
}

export interface DeliveredMessage {
  /** Postfix queue id and recipient, as in the file name. */
  queueId: string;
  recipient: string;
  /** The message as delivered: Postfix's Received header, then what the client sent, un-stuffed, with LF line
   * endings (the pipe agent writes Unix text). */
  raw: Buffer;
}

export interface PostfixOptions {
  /** 'file' (default): every delivery becomes one file under `deliveryDir`; 'discard': thrown away. */
  delivery?: 'file' | 'discard';
  /** message_size_limit in octets (default 0: no limit). */
  messageSizeLimit?: number;
  /** Offer STARTTLS with this key and certificate (PEM), e.g. from scripts/local/certs.ts. Default: no TLS. */
  tls?: { keyPem: string; certPem: string };
  /** Extra main.cf settings, applied last. */
  mainCf?: Record<string, string>;
}

export interface PostfixInstance extends LocalSmtpServer {
  /** The instance's root (config/, queue/, data/, delivered/, maillog). */
  dir: string;
  /** Where 'file' delivery writes `<queue id>.<recipient>.eml` files. */
  deliveryDir: string;
  /** Every delivered message so far. */
  delivered(): Promise<DeliveredMessage[]>;
  /** Waits (polling every 100 ms) until at least `count` messages are delivered. */
  waitForDelivered(count: number, timeoutMs?: number): Promise<DeliveredMessage[]>;
  /** The instance's log (maillog_file), for diagnosing a failed test. */
  log(): Promise<string>;
}

/**
 * Starts a private Postfix instance on a free loopback port. Recipients of every domain are accepted
 * from 127.0.0.0/8 (nothing is relayed outside: the only transport writes files or discards).
 */
export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  const reason = postfixUnavailable();
  if (reason) throw new Error(`cannot start Postfix: ${reason}`);
  return startOnFreePort(async (port) => {
    const dir = await mkdtemp(join(tmpdir(), 'smtpq-postfix-'));
    const paths = {
      config: join(dir, 'config'),
      queue: join(dir, 'queue'),
      data: join(dir, 'data'),
      delivery: join(dir, 'delivered'),
      log: join(dir, 'maillog'),
    };
    // The postfix user must reach the queue and data directories, and `nobody` (the delivery agent's
    // user) must write the delivery directory.
    await chmod(dir, 0o755);
    for (const path of [paths.config, paths.queue, paths.data, paths.delivery])
      await mkdir(path, { mode: 0o755 });
    await chmod(paths.delivery, 0o1777);
    const { uid: postfixUid } = await userIds('postfix');
    await chown(paths.data, postfixUid, -1);
    if (options.tls) {
      // smtpd reads its key as root at start-up, before it drops privileges: root-only is enough.
      await writeFile(
        join(paths.config, 'tls-chain.pem'),
        `${options.tls.keyPem.trim()}\n${options.tls.certPem.trim()}\n`,
        {
          mode: 0o600,
        },
      );
    }
    await writeFile(join(paths.config, 'main.cf'), mainCf(paths, options));
    const saveScript = join(dir, 'save-message.sh');
    await writeFile(saveScript, saveMessageScript(paths.delivery), { mode: 0o755 });
    await writeFile(join(paths.config, 'master.cf'), masterCf(port, saveScript));

    let master: ChildProcess | undefined;
    const stop = async () => {
      if (master) await killProcess(master);
      await rm(dir, { recursive: true, force: true });
    };
    try {
      // `postfix check` creates the queue's sub-directories with the owners and modes Postfix expects.
      await run(POSTFIX, ['-c', paths.config, 'check']);
      // -d: stay in the foreground as our child, so stop() can end it (it stops its own children).
      master = spawn(MASTER, ['-c', paths.config, '-d'], { stdio: ['ignore', 'ignore', 'pipe'] });
      const stderr = collect(master);
      await waitForGreeting(port, master, stderr, () => readFile(paths.log, 'utf8').catch(() => ''));
    } catch (error) {
      await stop();
      throw error;
    }

    const delivered = async (): Promise<DeliveredMessage[]> => {
      const names = (await readdir(paths.delivery)).filter((name) => name.endsWith('.eml')).sort();
      return Promise.all(
        names.map(async (name) => {
          const stem = name.slice(0, -'.eml'.length);
          const dot = stem.indexOf('.'); // queue ids have no dot; recipients may
          return {
            queueId: stem.slice(0, dot),
            recipient: stem.slice(dot + 1),
            raw: await readFile(join(paths.delivery, name)),
          };
        }),
      );
    };
    const log = () => readFile(paths.log, 'utf8').catch(() => '');
    return {
      host: LOOPBACK,
      port,
      dir,
      deliveryDir: paths.delivery,
      stop,
      delivered,
      async waitForDelivered(count, timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const messages = await delivered();
          if (messages.length >= count) return messages;
          if (Date.now() > deadline) {
            throw new Error(`${messages.length} of ${count} messages delivered; log:\n${await log()}`);
          }
          await sleep(100);
        }
      },
      log,
    };
  });
}

function mainCf(
  paths: { config: string; queue: string; data: string; log: string },
  options: PostfixOptions,
): string {
  const settings: Record<string, string> = {
    compatibility_level: '3.6',
    config_directory: paths.config,
    queue_directory: paths.queue,
    data_directory: paths.data,
    maillog_file: paths.log,
    maillog_file_prefixes: paths.log, // Postfix refuses a log file outside these prefixes (default /var)
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: 'postfix.smtpq.localhost',
    mydomain: 'smtpq.localhost',
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    // Nothing is local; every recipient goes to default_transport, which never leaves this machine.
    mydestination: '',
    relay_domains: '',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    default_transport: options.delivery === 'discard' ? 'discard:' : 'savefile',
    savefile_destination_recipient_limit: '1',
    message_size_limit: String(options.messageSizeLimit ?? 0),
    mailbox_size_limit: '0',
    smtputf8_enable: 'yes',
    biff: 'no',
    // The tests and the benchmark send quickly from one address; no throttling, no DNS.
    smtpd_client_connection_rate_limit: '0',
    smtpd_client_message_rate_limit: '0',
    smtpd_error_sleep_time: '0',
    smtp_host_lookup: 'native',
    disable_dns_lookups: 'yes',
    ...(options.tls
      ? { smtpd_tls_security_level: 'may', smtpd_tls_chain_files: join(paths.config, 'tls-chain.pem') }
      : {}),
    ...options.mainCf,
  };
  return `${Object.entries(settings)
    .map(([name, value]) => `${name} = ${value}`)
    .join('\n')}\n`;
}

/** A master.cf with only the services this instance uses, none chrooted (the temp dir has no /etc copy). */
function masterCf(port: number, saveScript: string): string {
  const services = [
    `${LOOPBACK}:${port} inet n - n - - smtpd`,
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
    'tlsmgr unix - - n 1000? 1 tlsmgr',
    // One file per delivery (see saveScript); the pipe agent runs it as `nobody`, without a shell.
    'savefile unix - n n - - pipe',
    `  flags= user=nobody argv=${saveScript} \${queue_id} \${recipient}`,
  ];
  return `${services.join('\n')}\n`;
}

/** Writes the message on stdin to `<queue id>.<recipient>.eml`, renamed into place when complete. */
function saveMessageScript(deliveryDir: string): string {
  return `#!/bin/sh
set -e
tmp="${deliveryDir}/.$1.$2.tmp"
cat > "$tmp"
mv "$tmp" "${deliveryDir}/$1.$2.eml"
`;
}

/**
 * Runs `start(port)` on a port that was free a moment ago. Postfix's master and smtp-sink take a port
 * number, not an open socket, so there is a small race between closing our probe socket and their bind;
 * when another process wins it, start() fails and we try again with a new port.
 */
async function startOnFreePort<T>(start: (port: number) => Promise<T>, tries = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await start(port);
    } catch (error) {
      if (attempt >= tries) throw error;
    }
  }
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, LOOPBACK, () => resolve());
  });
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Polls until the server on `port` sends a 220 greeting; fails early if the process exits. */
async function waitForGreeting(
  port: number,
  child: ChildProcess,
  stderr: () => string,
  log: () => Promise<string> = async () => '',
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${child.spawnfile} exited (${child.exitCode ?? child.signalCode}): ${stderr()}${await log()}`,
      );
    }
    if (await greets(port)) return;
    await sleep(100);
  }
  await killProcess(child);
  throw new Error(`${child.spawnfile} did not greet on port ${port}: ${stderr()}${await log()}`);
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, LOOPBACK);
    let seen = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      if (seen.includes('\n')) {
        // Say goodbye politely so the server does not log a lost connection.
        if (seen.startsWith('220')) socket.end('QUIT\r\n');
        done(seen.startsWith('220'));
      }
    });
  });
}

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk) => {
    if (text.length < 10_000) text += chunk;
  });
  return () => text;
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
    run('id', ['-u', name]),
    run('id', ['-g', name]),
  ]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

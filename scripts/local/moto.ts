// moto server (a local AWS API emulator: S3, SQS, Secrets Manager) for the tests and `npm run dev`.
// moto lives in a project-local virtualenv (.venv) that ensureMoto() creates on first use (through
// ensure-venv.sh), so a clean clone needs nothing but python3.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The virtualenv (SMTPQ_VENV_DIR, default <project>/.venv), built whole or not at all by ensure-venv.sh. */
const venvDir = process.env.SMTPQ_VENV_DIR || join(projectRoot, '.venv');
const venvPython = join(venvDir, 'bin', 'python');
const ensureVenv = fileURLToPath(new URL('./ensure-venv.sh', import.meta.url));
const launcher = fileURLToPath(new URL('./moto-launcher.py', import.meta.url));
/** Pinned so every machine runs the emulator the tests were written against. */
export const MOTO_REQUIREMENT = 'moto[server]==5.2.5';
/** The HTTP server moto-launcher.py serves moto with (keep-alive, a thread pool; see there). */
export const WAITRESS_REQUIREMENT = 'waitress==3.0.2';
const IMPORTS = 'import moto.server, waitress';
const startTimeoutMs = 60_000;

export class MotoError extends Error {
  readonly code = 'MOTO_UNAVAILABLE';
}

export interface MotoServer {
  /** http://127.0.0.1:<port> — the value for AWS_ENDPOINT_URL. */
  endpoint: string;
  stop(): Promise<void>;
}

/** Runs a command to its end; rejects with its output when it fails. */
function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'ENOENT' ? ` (${command} not found: install Python 3 with venv)` : '';
      reject(new MotoError(`${command} ${args.join(' ')} failed: ${error.message}${hint}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new MotoError(`${command} ${args.join(' ')} exited with ${code}:\n${output.slice(-4000)}`));
    });
  });
}

async function motoInstalled(): Promise<boolean> {
  if (!existsSync(venvPython)) return false;
  return run(venvPython, ['-c', IMPORTS]).then(
    () => true,
    () => false,
  );
}

/**
 * Makes sure the virtualenv exists, whole, with moto[server] and waitress; returns its python. Idempotent and
 * quiet. An install interrupted at any moment leaves no half virtualenv behind (see ensure-venv.sh), and
 * concurrent callers (a dev server and a test run) take turns on its lock.
 */
export async function ensureMoto(): Promise<string> {
  if (existsSync(join(venvDir, '.smtpq-complete')) && (await motoInstalled())) return venvPython;
  try {
    await run('sh', [ensureVenv, IMPORTS, MOTO_REQUIREMENT, WAITRESS_REQUIREMENT]);
  } catch (error) {
    if (!(await commandExists('python3'))) {
      throw new MotoError('python3 is missing: moto server needs Python 3 (with the venv module) on PATH');
    }
    throw error;
  }
  if (!(await motoInstalled())) throw new MotoError(`moto is still not importable from ${venvPython}`);
  return venvPython;
}

function commandExists(command: string): Promise<boolean> {
  return run(command, ['--version']).then(
    () => true,
    () => false,
  );
}

/** Waits for the launcher's "PORT <n>" line. */
function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    const timer = setTimeout(
      () => reject(new MotoError(`moto did not start within ${startTimeoutMs} ms:\n${stderr}`)),
      startTimeoutMs,
    );
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const match = /^PORT (\d+)$/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      lines.close();
      resolve(Number(match[1]));
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new MotoError(`moto failed to start: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new MotoError(`moto exited with ${code} before listening:\n${stderr}`));
    });
  });
}

/** Polls until moto answers an HTTP request (it listens before the port is printed, so this is quick). */
async function waitUntilAnswering(endpoint: string): Promise<void> {
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${endpoint}/moto-api/data.json`);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch (error) {
      if (Date.now() > deadline) throw new MotoError(`moto at ${endpoint} does not answer: ${error}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Starts moto on 127.0.0.1 with an OS-chosen port. Stopped by stop(), and on exit of this process. */
export async function startMoto(): Promise<MotoServer> {
  const python = await ensureMoto();
  // Own process group (detached) so stop() ends moto's threads and anything it spawned; stdin stays a pipe
  // so the launcher exits by itself if this process dies without running its exit hook.
  const child = spawn(python, [launcher], {
    cwd: projectRoot,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const killOnExit = () => killGroup(child, 'SIGKILL');
  process.on('exit', killOnExit);
  let port: number;
  try {
    port = await readPort(child);
    await waitUntilAnswering(`http://127.0.0.1:${port}`);
  } catch (error) {
    killOnExit();
    process.off('exit', killOnExit);
    throw error;
  }
  // Keep draining output so a chatty moto never blocks on a full pipe.
  child.stdout?.resume();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    stop: async () => {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      child.stdin?.destroy();
    },
  };
}

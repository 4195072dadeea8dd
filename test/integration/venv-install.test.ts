// The virtualenv install (scripts/local/ensure-venv.sh, behind moto and cfn-lint) killed at several moments
// of a first run: the next run always succeeds, and no half-built virtualenv is ever taken for a whole one.
// A real install of a small pinned package from PyPI (pip's cache makes it quick) into a temporary venv dir.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = path.resolve(import.meta.dirname, '../../scripts/local/ensure-venv.sh');
const REQUIREMENT = 'waitress==3.0.2';
let dir: string;
let venv: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-venv-'));
  venv = path.join(dir, 'venv');
});
afterAll(async () => {
  for (const child of children) if (child.pid) process.kill(-child.pid, 'SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

function install(): ChildProcess {
  // Its own process group, so a kill takes python and pip with it, as Ctrl-C does.
  const child = spawn('sh', [script, 'import waitress', REQUIREMENT], {
    env: { ...process.env, SMTPQ_VENV_DIR: venv },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function finish(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

const partials = () => readdirSync(dir).filter((name) => name.startsWith('venv.partial.'));
const sitePackages = (root: string) => {
  const lib = path.join(root, 'lib');
  if (!existsSync(lib)) return undefined;
  const python = readdirSync(lib).find((name) => name.startsWith('python'));
  return python ? path.join(lib, python, 'site-packages') : undefined;
};

/** Waits (polling the file system, no clock) until `ready()` holds, then kills the install's process group. */
async function killWhen(child: ChildProcess, ready: () => boolean): Promise<void> {
  const exited = new Promise((resolve) => child.on('exit', resolve));
  for (;;) {
    if (ready()) break;
    if (child.exitCode !== null) throw new Error('the install finished before the moment to kill it');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  process.kill(-child.pid!, 'SIGKILL');
  await exited;
}

const imports = () =>
  new Promise<boolean>((resolve) =>
    execFile(path.join(venv, 'bin', 'python'), ['-c', 'import waitress'], (error) => resolve(!error)),
  );

describe('an interrupted first install', () => {
  const moments: Array<[string, () => boolean]> = [
    ['as soon as the new venv directory appears', () => partials().length > 0],
    [
      'once its python exists, before pip',
      () => partials().some((p) => existsSync(path.join(dir, p, 'bin', 'python'))),
    ],
    [
      'while pip installs the requirement',
      () =>
        partials().some((p) => {
          const site = sitePackages(path.join(dir, p));
          return site !== undefined && existsSync(path.join(site, 'pip')) && readdirSync(site).length > 0;
        }),
    ],
  ];

  it.each(moments)(
    'killed %s: no venv in place, and the next run builds it whole',
    async (_moment, ready) => {
      await rm(venv, { recursive: true, force: true });

      await killWhen(install(), ready);
      // Nothing half-built is in place.
      expect(existsSync(venv)).toBe(false);
      const again = await finish(install());

      expect(again.code, again.stderr).toBe(0);
      expect(existsSync(path.join(venv, '.smtpq-complete'))).toBe(true);
      expect(await imports()).toBe(true);
      expect(partials()).toEqual([]);
    },
    180_000,
  );

  it('rebuilds a venv without pip left by an older, interrupted smtpq, saying so', async () => {
    await rm(venv, { recursive: true, force: true });
    await new Promise<void>((resolve, reject) =>
      execFile('python3', ['-m', 'venv', '--without-pip', venv], (error) =>
        error ? reject(error) : resolve(),
      ),
    );

    const run = await finish(install());

    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/is incomplete .* building it again/);
    expect(await imports()).toBe(true);
  }, 180_000);

  it('leaves a whole venv as it is, and a second run only checks it', async () => {
    const run = await finish(install());
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    expect(await imports()).toBe(true);
  }, 60_000);
});

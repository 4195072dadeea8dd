// The two source trees the pipeline benchmark runs: a directory as it is (default: this checkout) or a
// commit checked out into a temporary `git worktree` (default for the previous worker), with node_modules
// linked from this checkout (the dependency set only grew). Also what the tree's template says about its
// Lambda functions (memory, architecture), for GB-s.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

export interface LambdaFacts {
  workerMemoryMiB: number;
  apiMemoryMiB: number;
  architecture: string;
  /** The worker's SQS event source, as the template sets it (the dev poller has its own settings). */
  workerBatchSize?: number;
  workerBatchingWindowSeconds?: number;
}

export interface Tree {
  name: 'previous' | 'current';
  dir: string;
  commit: string;
  /** Uncommitted changes in the directory (tracked or untracked files). */
  dirty: boolean;
  /** Checked out by the benchmark into a temporary worktree (removed by remove()). */
  worktree: boolean;
  lambda: LambdaFacts;
  /** One line for the report: `0c1ae3b (worktree)`, `/work/main at 0c1ae3b + uncommitted changes`. */
  description: string;
  remove(): Promise<void>;
}

const WORKTREE_PREFIX = 'smtpq-bench-tree-';

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Removes worktrees a crashed earlier run left behind (ours only: their path has our prefix). */
export function removeStaleWorktrees(repo: string): void {
  const list = git(repo, ['worktree', 'list', '--porcelain']);
  for (const line of list.split('\n')) {
    const dir = line.startsWith('worktree ') ? line.slice('worktree '.length) : undefined;
    if (dir?.includes(`${path.sep}${WORKTREE_PREFIX}`)) {
      try {
        git(repo, ['worktree', 'remove', '--force', dir]);
      } catch {
        // Already gone: prune below forgets it.
      }
    }
  }
  git(repo, ['worktree', 'prune']);
}

export async function prepareTree(name: Tree['name'], spec: string, repo: string): Promise<Tree> {
  const asDir = path.resolve(spec);
  if (existsSync(asDir) && statSync(asDir).isDirectory()) {
    const commit = git(asDir, ['rev-parse', 'HEAD']);
    const dirty = git(asDir, ['status', '--porcelain']).length > 0;
    return {
      name,
      dir: asDir,
      commit,
      dirty,
      worktree: false,
      lambda: await lambdaFacts(asDir),
      description: `${asDir} at ${commit.slice(0, 7)}${dirty ? ' + uncommitted changes' : ''}`,
      remove: async () => {},
    };
  }
  let commit: string;
  try {
    commit = git(repo, ['rev-parse', '--verify', `${spec}^{commit}`]);
  } catch {
    throw new Error(`--${name} ${spec}: neither a directory nor a commit of ${repo}`);
  }
  const parent = await mkdtemp(path.join(tmpdir(), WORKTREE_PREFIX));
  const dir = path.join(parent, 'tree');
  const remove = async () => {
    try {
      git(repo, ['worktree', 'remove', '--force', dir]);
    } catch {
      // Not registered (add failed) or gone already.
    }
    await rm(parent, { recursive: true, force: true });
    try {
      git(repo, ['worktree', 'prune']);
    } catch {}
  };
  try {
    git(repo, ['worktree', 'add', '--detach', dir, commit]);
    await symlink(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    return {
      name,
      dir,
      commit,
      dirty: false,
      worktree: true,
      lambda: await lambdaFacts(dir),
      description: `${commit.slice(0, 7)} (git worktree)`,
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

type Json = Record<string, unknown>;

/** MemorySize and Architectures of the worker (SQS event) and API (HTTP event) functions in infra/template.yaml. */
export async function lambdaFacts(dir: string): Promise<LambdaFacts> {
  const fallback: LambdaFacts = { workerMemoryMiB: 512, apiMemoryMiB: 512, architecture: 'arm64' };
  let template: Json;
  try {
    // CloudFormation's !Ref/!If tags are left unresolved (logLevel silent): only literal values are read.
    template = parse(await readFile(path.join(dir, 'infra', 'template.yaml'), 'utf8'), {
      logLevel: 'silent',
    }) as Json;
  } catch {
    return fallback;
  }
  const parameters = (template.Parameters ?? {}) as Record<string, { Default?: unknown }>;
  const value = (v: unknown) => (typeof v === 'string' && parameters[v] ? parameters[v].Default : v);
  const globals = ((template.Globals as Json | undefined)?.Function ?? {}) as Json;
  const functions = Object.values((template.Resources ?? {}) as Record<string, Json>).filter((r) =>
    /^AWS::(Serverless|Lambda)::Function$/.test(String(r.Type)),
  );
  const events = (fn: Json) =>
    Object.values(((fn.Properties as Json | undefined)?.Events ?? {}) as Record<string, Json>);
  const worker = functions.find((fn) => events(fn).some((e) => e.Type === 'SQS'));
  const api = functions.find((fn) => events(fn).some((e) => /^(HttpApi|Api)$/.test(String(e.Type))));
  const memory = (fn: Json | undefined) =>
    Number(value((fn?.Properties as Json | undefined)?.MemorySize ?? globals.MemorySize ?? 128));
  const arch = (fn: Json | undefined) =>
    ((value((fn?.Properties as Json | undefined)?.Architectures ?? globals.Architectures) as
      | string[]
      | undefined) ?? ['x86_64'])[0]!;
  const sqsEvent = worker
    ? (events(worker).find((e) => e.Type === 'SQS')?.Properties as Json | undefined)
    : undefined;
  const num = (v: unknown) => {
    const n = Number(value(v));
    return Number.isFinite(n) ? n : undefined;
  };
  return {
    workerMemoryMiB: memory(worker) || fallback.workerMemoryMiB,
    apiMemoryMiB: memory(api) || fallback.apiMemoryMiB,
    architecture: String(arch(worker)),
    workerBatchSize: num(sqsEvent?.BatchSize),
    workerBatchingWindowSeconds: num(sqsEvent?.MaximumBatchingWindowInSeconds),
  };
}

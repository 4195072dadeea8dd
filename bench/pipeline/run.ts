// `npm run bench:pipeline`: the whole product on the local stack — API, queue, worker, relay — for the
// current tree and the worker before issue 7 (commit PREVIOUS_COMMIT in a git worktree), in one run, with
// every AWS call counted and delayed by a proxy in front of moto. Writes the pipeline section of
// bench/RESULTS.md (a smaller run than the default writes bench/.build/RESULTS.pipeline.md instead) and
// prints a summary. See bench/README.md and the "How measured" paragraph it writes.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { MOTO_REQUIREMENT, startMoto } from '../../scripts/local/moto.ts';
import { machineFacts } from '../machine.ts';
import { type AwsProxy, startAwsProxy } from './aws-proxy.ts';
import { killDevChildren } from './dev-stack.ts';
import { measureRun, type RunResult, removeRunDirs } from './measure.ts';
import { type PipelineReport, renderSection, renderStdout } from './report.ts';
import { spliceSection } from './section.ts';
import { type RelaySink, startRelaySink } from './sink.ts';
import { prepareTree, removeStaleWorktrees, type Tree } from './trees.ts';

/** HEAD before issue 7's rewrite began: the worker that handles one SQS record at a time against S3. */
export const PREVIOUS_COMMIT = '0c1ae3b18e154b688ef5ecd9fe9e575db909f190';
const REGION = 'us-east-1';
const FULL = { messages: 300, runs: 3 };

const repo = fileURLToPath(new URL('../../', import.meta.url));
const benchDir = fileURLToPath(new URL('../', import.meta.url));

const positive = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number');
  return n;
};
const nonNegative = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number ≥ 0');
  return n;
};

const program = new Command('bench:pipeline')
  .description('the pipeline benchmark: current tree vs the previous worker on the local stack')
  .option('--messages <n>', 'messages per run (≥ 300 for the figures of issue 7)', positive, FULL.messages)
  .option('--runs <n>', 'runs per tree and latency', positive, FULL.runs)
  .option('--latencies <ms,…>', 'latencies added to every AWS call', '0,50')
  .option('--current <dir|commit>', 'the tree measured as "current" (default: this checkout as it is)', repo)
  .option('--previous <commit|dir>', 'the tree measured as "previous"', PREVIOUS_COMMIT)
  .option('--trees <names>', 'which trees to run: previous,current', 'previous,current')
  .option('--warmup <n>', 'warm-up messages per run, not counted', nonNegative, 1)
  .option('--idle-seconds <s>', 'idle interval measured before each submit', positive, 3)
  .option('--submit-concurrency <n>', 'batch requests in flight at once', positive, 1)
  .option('--timeout <s>', 'per run, from the first POST until every message is final', positive, 900)
  .option('--start-timeout <s>', 'for a dev stack to print its banner', positive, 120)
  .option(
    '--env <NAME=VALUE>',
    "extra environment for both trees' dev stacks (repeatable), e.g. WORKER_BATCH_SIZE=100",
    (value: string, previous: string[]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(value)) throw new InvalidArgumentError('expected NAME=VALUE');
      return [...previous, value];
    },
    [] as string[],
  )
  .option('--out <file>', 'markdown file to write the pipeline section into (default: see above)')
  .parse();

interface Options {
  messages: number;
  runs: number;
  latencies: string;
  current: string;
  previous: string;
  trees: string;
  warmup: number;
  idleSeconds: number;
  submitConcurrency: number;
  timeout: number;
  startTimeout: number;
  env: string[];
  out?: string;
}

const options = program.opts<Options>();
const latencies = options.latencies.split(',').map((s) => nonNegative(s.trim()));
const treeNames = options.trees.split(',').map((s) => s.trim()) as Tree['name'][];
if (!treeNames.every((t) => t === 'previous' || t === 'current'))
  program.error('--trees: previous and/or current');
const stackEnv = Object.fromEntries(
  options.env.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);
const fullSize = options.messages >= FULL.messages && options.runs >= FULL.runs;
const outFile = path.resolve(
  options.out ?? (fullSize ? `${benchDir}RESULTS.md` : `${benchDir}.build/RESULTS.pipeline.md`),
);

const startedAt = Date.now();
const log = (line: string) => {
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${seconds} s] ${line}\n`);
};

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    killDevChildren();
    removeRunDirs();
    for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
  })();
  return cleaning;
}
process.on('exit', () => {
  killDevChildren();
  removeRunDirs();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    log(`${signal}: stopping the stacks, moto and the worktree…`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const machine = machineFacts();
  removeStaleWorktrees(repo);
  log('moto…');
  const moto = await startMoto();
  cleanups.push(() => moto.stop());
  const proxy: AwsProxy = await startAwsProxy({ upstream: moto.endpoint, region: REGION });
  cleanups.push(() => proxy.close());
  const sink: RelaySink = await startRelaySink();
  cleanups.push(() => sink.close());

  const trees: Partial<Record<Tree['name'], Tree>> = {};
  for (const name of treeNames) {
    const tree = await prepareTree(name, name === 'current' ? options.current : options.previous, repo);
    cleanups.push(() => tree.remove());
    trees[name] = tree;
    log(`${name}: ${tree.description}`);
  }

  const results: RunResult[] = [];
  const failures: string[] = [];
  const failedInARow = new Map<string, number>();
  for (let run = 1; run <= options.runs; run++) {
    for (const latencyMs of latencies) {
      // The order of the trees alternates from run to run, so drift in the machine's load hits both alike.
      const order = run % 2 === 1 ? treeNames : [...treeNames].reverse();
      for (const name of order) {
        if ((failedInARow.get(name) ?? 0) >= 2) continue;
        try {
          results.push(
            await measureRun(
              {
                tree: trees[name]!,
                latencyMs,
                run,
                messages: options.messages,
                warmup: options.warmup,
                idleSeconds: options.idleSeconds,
                submitConcurrency: options.submitConcurrency,
                timeoutMs: options.timeout * 1000,
                startTimeoutMs: options.startTimeout * 1000,
                env: stackEnv,
              },
              { motoEndpoint: moto.endpoint, proxy, sink, region: REGION, log },
            ),
          );
          failedInARow.set(name, 0);
        } catch (error) {
          const message = `${name} ${latencyMs} ms run ${run}: ${error instanceof Error ? error.message : String(error)}`;
          log(`FAILED ${message}`);
          failures.push(message);
          failedInARow.set(name, (failedInARow.get(name) ?? 0) + 1);
          if ((failedInARow.get(name) ?? 0) >= 2) {
            failures.push(`${name}: skipped its remaining runs after two failures in a row`);
          }
        }
      }
    }
  }

  const report: PipelineReport = {
    machine,
    moto: `moto ${MOTO_REQUIREMENT.split('==')[1] ?? MOTO_REQUIREMENT}`,
    trees,
    messages: options.messages,
    runs: options.runs,
    latencies,
    warmup: options.warmup,
    submitConcurrency: options.submitConcurrency,
    idleSeconds: options.idleSeconds,
    env: stackEnv,
    results,
    failures,
    durationS: (Date.now() - startedAt) / 1000,
    loadAfter: loadavg(),
  };
  const section = renderSection(report);
  let existing = '';
  try {
    existing = await readFile(outFile, 'utf8');
  } catch {
    existing = fullSize
      ? ''
      : '# Pipeline benchmark (a smaller run than the default: figures not for RESULTS.md)\n';
  }
  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(outFile, spliceSection(existing, section));
  // Every run's raw figures, for a closer look (not committed).
  const rawFile = `${benchDir}.build/pipeline-runs.json`;
  await mkdir(path.dirname(rawFile), { recursive: true });
  await writeFile(rawFile, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${renderStdout(report)}\n`);
  log(
    `wrote ${path.relative(repo, outFile)} and ${path.relative(repo, rawFile)} in ${report.durationS.toFixed(0)} s`,
  );
  if (results.length === 0) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  log(`bench:pipeline failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}

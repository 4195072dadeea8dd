// One measured run of the pipeline benchmark: a fresh dev stack of one tree behind the proxy at one latency,
// a warm-up, an idle interval, then N messages submitted, delivered and confirmed final. What is counted:
//
// - The window runs from just before the first POST to the end of the last *write* call the proxy saw
//   before the status look-ups confirmed every message final (operations.ts isWrite: the outcome write, or
//   the poller's DeleteMessageBatch after the last invocation). Status look-ups start only once the sink has
//   all N messages and no write has come for a quiet interval, so they normally fall after the window; if
//   some message was not final yet (look-ups inside the window), their calls are subtracted using the cost
//   per look-up measured by the final round.
// - Calls the stack makes while idle (long polls, stream polls) inside the window are counted as they are.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { epochNow } from '../delay-proxy.ts';
import type { AwsProxy, CallRecord } from './aws-proxy.ts';
import { startDevChild } from './dev-stack.ts';
import type { DynamoUnits } from './dynamodb-units.ts';
import { FINAL_STATES, makeMessages, pollStates, submitAll } from './load.ts';
import type { RelaySink } from './sink.ts';
import type { Tree } from './trees.ts';

export interface RunSpec {
  tree: Tree;
  latencyMs: number;
  run: number;
  messages: number;
  warmup: number;
  idleSeconds: number;
  submitConcurrency: number;
  timeoutMs: number;
  startTimeoutMs: number;
  /** Extra environment of the dev stack (--env). */
  env?: Record<string, string>;
}

export interface RunContext {
  motoEndpoint: string;
  proxy: AwsProxy;
  sink: RelaySink;
  region: string;
  log: (line: string) => void;
}

export type BusySource = 'invocation log' | 'proxy spans' | 'end to end (upper bound)';

export interface RunResult {
  tree: Tree['name'];
  latencyMs: number;
  run: number;
  /** Messages the API accepted (queued). */
  n: number;
  /** The window: first POST → last write of the pipeline. */
  seconds: number;
  messagesPerSecond: number;
  /** First POST → the status look-ups confirmed every message final (includes the quiet wait and look-ups). */
  confirmedSeconds: number;
  calls: Record<string, number>;
  emptyPolls: Record<string, number>;
  /** Answers ≥ 400 (conditional-check failures, 404s of look-ups, throttles …), by operation. */
  errors: Record<string, number>;
  /** SQS requests as billed (every 64 KiB of a request or response is one). */
  sqsBilled: number;
  dynamo: DynamoUnits;
  streamRecords: number;
  streamInserts: number;
  worker: { busyMs: number; source: BusySource; invocations: number; records: number };
  api: { busyMs: number; requests: number };
  states: Record<string, number>;
  /** Sink: recipients that got a message more than once; accepted messages the sink never got. */
  duplicates: number;
  missing: number;
  /** SMTP connections the sink accepted during the window. */
  sinkConnections: number;
  /** AWS calls per status look-up (the final round), and look-ups that fell inside the window. */
  pollCost: Record<string, number>;
  pollsInWindow: number;
  /** Calls per second while idle, measured before the submit. */
  idlePerSecond: Record<string, number>;
  stderrLines: number;
  notes: string[];
}

/** Data dirs of the runs in progress, for removeRunDirs() when the process is interrupted. */
const runDirs = new Set<string>();

/** Removes the data dirs of runs still in progress (synchronous: for process exit). */
export function removeRunDirs(): void {
  for (const dir of runDirs) rmSync(dir, { recursive: true, force: true });
  runDirs.clear();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function countBy(calls: readonly CallRecord[], keep: (c: CallRecord) => boolean = () => true) {
  const counts: Record<string, number> = {};
  for (const call of calls) if (keep(call)) counts[call.label] = (counts[call.label] ?? 0) + 1;
  return counts;
}

async function resetMoto(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`moto reset answered ${response.status}`);
}

/** Polls until every id is final (warm-up only: its calls are not counted). */
async function waitFinal(apiUrl: string, ids: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await pollStates(apiUrl, ids);
    if ([...states.values()].every((s) => FINAL_STATES.has(s))) return;
    if (Date.now() > deadline) {
      throw new Error(
        `warm-up messages not final after ${timeoutMs / 1000} s: ${[...states.values()].join(', ')}`,
      );
    }
    await sleep(200);
  }
}

async function invocationLines(file: string): Promise<Array<Record<string, unknown>>> {
  try {
    const text = await readFile(file, 'utf8');
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  } catch {
    return [];
  }
}

/**
 * The worker's busy time from the proxy's log, for a stack without an invocation log: the dev poller is one
 * loop (receive → invoke → delete), so an invocation runs from the answer of the receive that brought its
 * records to the DeleteMessageBatch that follows. Receives without a following delete (every record failed)
 * are not timed, and said so.
 */
function proxySpans(calls: readonly CallRecord[]): {
  busyMs: number;
  invocations: number;
  records: number;
  unpaired: number;
} {
  let busyMs = 0;
  let invocations = 0;
  let records = 0;
  let unpaired = 0;
  let open: CallRecord | undefined;
  for (const call of calls) {
    if (call.service !== 'SQS' || call.queueUrl?.endsWith('-dlq')) continue;
    if (call.operation === 'ReceiveMessage' && (call.messages ?? 0) > 0) {
      if (open) unpaired++;
      open = call;
      invocations++;
      records += call.messages ?? 0;
    } else if ((call.operation === 'DeleteMessageBatch' || call.operation === 'DeleteMessage') && open) {
      busyMs += Math.max(0, call.arrivedAt - open.endedAt);
      open = undefined;
    }
  }
  return { busyMs, invocations, records, unpaired: unpaired + (open ? 1 : 0) };
}

export async function measureRun(spec: RunSpec, context: RunContext): Promise<RunResult> {
  const { proxy, sink, log } = context;
  const notes: string[] = [];
  const tag = `${spec.tree.name}-${spec.latencyMs}ms-${spec.run}`;
  await resetMoto(context.motoEndpoint);
  proxy.setLatency(0);
  proxy.clear();
  proxy.model.forget();
  sink.reset();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-bench-data-'));
  runDirs.add(dataDir);
  const invocationLog = path.join(dataDir, 'invocations.jsonl');
  const started = Date.now();
  const child = await startDevChild({
    dir: spec.tree.dir,
    awsEndpoint: proxy.url,
    smtpUrl: sink.url,
    resourcePrefix: `bench-${randomBytes(3).toString('hex')}`,
    dataDir: path.join(dataDir, 'data'),
    invocationLog,
    region: context.region,
    startTimeoutMs: spec.startTimeoutMs,
    env: spec.env,
  }).catch(async (error: unknown) => {
    await rm(dataDir, { recursive: true, force: true });
    runDirs.delete(dataDir);
    throw error;
  });
  try {
    log(`${tag}: stack up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${child.apiUrl}`);
    proxy.setLatency(spec.latencyMs);

    if (spec.warmup > 0) {
      const warm = await submitAll(
        child.apiUrl,
        makeMessages(spec.warmup, `warm-${spec.run}-`, 'pipeline-bench.test'),
      );
      await waitFinal(child.apiUrl, warm.ids, 60_000 + spec.latencyMs * 400);
    }
    proxy.clear();
    const idleStart = epochNow();
    await sleep(spec.idleSeconds * 1000);
    const idleCalls = countBy(proxy.calls(), (c) => c.arrivedAt >= idleStart);
    const idlePerSecond = Object.fromEntries(
      Object.entries(idleCalls).map(([k, v]) => [k, v / spec.idleSeconds]),
    );
    const logLinesBefore = (await invocationLines(invocationLog)).length;

    // The measured window.
    const prefix = `m${spec.run}-`;
    proxy.clear();
    sink.reset();
    const stderrBefore = child.stderrLines();
    const ownReadsBefore = proxy.model.ownReads;
    const t0 = epochNow();
    const submitted = await submitAll(
      child.apiUrl,
      makeMessages(spec.messages, prefix, 'pipeline-bench.test'),
      {
        concurrency: spec.submitConcurrency,
      },
    );
    if (submitted.rejected > 0)
      notes.push(`${submitted.rejected} of ${spec.messages} items not queued by the API`);
    const ids = submitted.ids;
    const quietMs = Math.max(1500, 20 * spec.latencyMs);
    const deadline = t0 + spec.timeoutMs;
    const pollPhases: Array<{ start: number; end: number; lookups: number }> = [];
    let states = new Map<string, string>();
    for (;;) {
      const now = epochNow();
      const sinceWrite = now - proxy.lastWriteEndedAt();
      const delivered = sink.distinct(prefix) >= ids.length;
      // All delivered and the writes have stopped; or nothing written for a long time (failures, back-off).
      if ((delivered && sinceWrite >= quietMs) || sinceWrite >= Math.max(quietMs, 10_000)) {
        const start = epochNow();
        states = await pollStates(child.apiUrl, ids);
        pollPhases.push({ start, end: epochNow(), lookups: ids.length });
        if ([...states.values()].every((s) => FINAL_STATES.has(s))) break;
      }
      if (epochNow() > deadline) {
        const open = [...states.values()].filter((s) => !FINAL_STATES.has(s)).length;
        throw new Error(
          `${tag}: not every message final after ${spec.timeoutMs / 1000} s (sink has ${sink.distinct(prefix)} of ` +
            `${ids.length}; ${open} not final at the last look-up; last write ${(sinceWrite / 1000).toFixed(1)} s ago)\n` +
            child.output().slice(-2000),
        );
      }
      await sleep(pollPhases.length > 0 ? 1000 : 50);
    }
    const confirmedAt = epochNow();
    const tEnd = proxy.lastWriteEndedAt();
    await proxy.settle();
    const all = [...proxy.calls()];

    // What one status look-up costs: the calls of the final round, after the window, per look-up.
    const final = pollPhases[pollPhases.length - 1]!;
    const roundCalls = countBy(
      all,
      (c) => c.arrivedAt >= final.start && c.arrivedAt <= final.end && c.arrivedAt > tEnd,
    );
    const pollCost: Record<string, number> = {};
    for (const [op, count] of Object.entries(roundCalls))
      if (count / final.lookups >= 0.5) pollCost[op] = count / final.lookups;
    const pollsInWindow = pollPhases.filter((p) => p.start < tEnd).reduce((n, p) => n + p.lookups, 0);
    if (pollsInWindow > 0)
      notes.push(
        `${pollsInWindow} status look-ups fell inside the window; their calls are subtracted (${JSON.stringify(pollCost)} each)`,
      );

    // Calls that overlap the window: a long poll that began before the first POST and brought its first
    // records belongs to it; so does one still in flight at its end.
    const inWindow = all.filter((c) => (c.endedAt === 0 || c.endedAt >= t0) && c.arrivedAt <= tEnd);
    const calls = countBy(inWindow);
    for (const [op, per] of Object.entries(pollCost)) {
      if (calls[op] !== undefined) calls[op] = Math.max(0, calls[op]! - Math.round(per * pollsInWindow));
    }
    const dynamo: DynamoUnits = { read: 0, write: 0, indexWrite: 0 };
    let sqsBilled = 0;
    let streamRecords = 0;
    let streamInserts = 0;
    let unitsMissing = 0;
    for (const call of inWindow) {
      if (call.units) {
        dynamo.read += call.units.read;
        dynamo.write += call.units.write;
        dynamo.indexWrite += call.units.indexWrite;
      } else if (
        call.service === 'DynamoDB' &&
        (proxy.model.isRead(call.operation) || proxy.model.isWrite(call.operation))
      )
        unitsMissing++;
      if (call.service === 'SQS')
        sqsBilled += Math.max(1, Math.ceil(Math.max(call.requestBytes, call.responseBytes) / 65536));
      streamRecords += call.streamRecords ?? 0;
      streamInserts += call.inserts ?? 0;
    }
    const ownReads = proxy.model.ownReads - ownReadsBefore;
    if (ownReads > 0) notes.push(`the proxy read ${ownReads} items from moto itself to size DynamoDB writes`);
    if (unitsMissing > 0) notes.push(`${unitsMissing} DynamoDB calls without a unit estimate`);
    if (proxy.model.problems.length > 0)
      notes.push(`DynamoDB sizing: ${proxy.model.problems.slice(0, 3).join('; ')}`);
    if (pollsInWindow > 0 && Object.keys(pollCost).some((op) => op.startsWith('DynamoDB')))
      notes.push('the read units of the look-ups inside the window are not subtracted');

    const seconds = (tEnd - t0) / 1000;
    // The worker's busy time: the dev stack's own log when it writes one, else the proxy's spans.
    const logged = (await invocationLines(invocationLog)).slice(logLinesBefore);
    let worker: RunResult['worker'];
    if (logged.length > 0) {
      worker = {
        busyMs: logged.reduce((n, l) => n + Number(l.ms ?? l.durationMs ?? 0), 0),
        source: 'invocation log',
        invocations: logged.length,
        records: logged.reduce((n, l) => n + Number(l.records ?? l.count ?? 0), 0),
      };
    } else {
      const spans = proxySpans(inWindow);
      if (spans.invocations > 0 && spans.unpaired === 0) worker = { ...spans, source: 'proxy spans' };
      else {
        if (spans.unpaired > 0)
          notes.push(`${spans.unpaired} invocations without a delete: busy time = end to end`);
        worker = {
          busyMs: seconds * 1000,
          source: 'end to end (upper bound)',
          invocations: spans.invocations,
          records: spans.records,
        };
      }
    }

    const deliveries = sink.deliveries();
    let duplicates = 0;
    let delivered = 0;
    for (const [address, count] of deliveries) {
      if (!address.startsWith(prefix)) continue;
      delivered++;
      if (count > 1) duplicates++;
    }
    const stateCounts: Record<string, number> = {};
    for (const s of states.values()) stateCounts[s] = (stateCounts[s] ?? 0) + 1;
    if (duplicates > 0) notes.push(`${duplicates} recipients got their message more than once`);

    const result: RunResult = {
      tree: spec.tree.name,
      latencyMs: spec.latencyMs,
      run: spec.run,
      n: ids.length,
      seconds,
      messagesPerSecond: ids.length / seconds,
      confirmedSeconds: (confirmedAt - t0) / 1000,
      calls,
      emptyPolls: countBy(inWindow, (c) => c.emptyPoll),
      errors: countBy(inWindow, (c) => c.status >= 400),
      sqsBilled,
      dynamo,
      streamRecords,
      streamInserts,
      worker,
      api: { busyMs: submitted.requestMs.reduce((a, b) => a + b, 0), requests: submitted.requestMs.length },
      states: stateCounts,
      duplicates,
      missing: ids.length - delivered,
      sinkConnections: sink.connections(),
      pollCost,
      pollsInWindow,
      idlePerSecond,
      stderrLines: child.stderrLines() - stderrBefore,
      notes,
    };
    const total = Object.values(calls).reduce((a, b) => a + b, 0);
    log(
      `${tag}: ${ids.length} messages in ${seconds.toFixed(2)} s = ${result.messagesPerSecond.toFixed(1)}/s, ` +
        `${(total / ids.length).toFixed(2)} AWS calls/msg${notes.length ? `; ${notes.join('; ')}` : ''}`,
    );
    return result;
  } finally {
    await child.stop();
    await rm(dataDir, { recursive: true, force: true });
    runDirs.delete(dataDir);
  }
}

// The pipeline section of bench/RESULTS.md (between markers, so `npm run bench` keeps it when it rewrites the
// client sections, and this benchmark replaces only its own part), and the summary printed to stdout.
import type { MachineFacts } from '../machine.ts';
import { formatNumber, formatRatio, type Summary, summarize } from '../stats.ts';
import type { RunResult } from './measure.ts';
import {
  apiGbSecondsPerThousand,
  costLines,
  costPerThousand,
  gbSecondPrice,
  idleCostPerThousand,
  workerGbSecondsPerThousand,
} from './pricing.ts';
import { BEGIN, END } from './section.ts';
import type { LambdaFacts, Tree } from './trees.ts';

export interface PipelineReport {
  machine: MachineFacts;
  moto: string;
  /** The trees that were run (--trees). */
  trees: Partial<Record<Tree['name'], Tree>>;
  messages: number;
  runs: number;
  latencies: number[];
  warmup: number;
  submitConcurrency: number;
  idleSeconds: number;
  /** --env settings given to both trees' dev stacks. */
  env: Record<string, string>;
  results: RunResult[];
  failures: string[];
  durationS: number;
  loadAfter: number[];
}

const TREES: Tree['name'][] = ['previous', 'current'];

type Cell = { tree: Tree['name']; latency: number };

function runsOf(report: PipelineReport, { tree, latency }: Cell): RunResult[] {
  return report.results.filter((r) => r.tree === tree && r.latencyMs === latency);
}

function summary(report: PipelineReport, cell: Cell, metric: (r: RunResult) => number): Summary | undefined {
  const runs = runsOf(report, cell);
  return runs.length === 0 ? undefined : summarize(runs.map(metric));
}

const fmt = (s: Summary | undefined, format: (n: number) => string = formatNumber) => {
  if (!s) return '–';
  return s.runs === 1 ? format(s.median) : `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
};
const dollars = (n: number) => `$${n < 0.0001 && n > 0 ? n.toExponential(1) : n.toFixed(4)}`;
const totalCalls = (r: RunResult) => Object.values(r.calls).reduce((a, b) => a + b, 0);

/** (T at the highest latency − T at 0) / latency / N, with the range from the runs' extremes. */
export function waits(report: PipelineReport, tree: Tree['name']): Summary | undefined {
  const high = Math.max(...report.latencies);
  if (high === 0 || !report.latencies.includes(0)) return undefined;
  const slow = runsOf(report, { tree, latency: high }).map((r) => r.seconds);
  const fast = runsOf(report, { tree, latency: 0 }).map((r) => r.seconds);
  const n = runsOf(report, { tree, latency: high })[0]?.n;
  if (slow.length === 0 || fast.length === 0 || !n) return undefined;
  const per = (seconds: number) => seconds / (high / 1000) / n;
  const s = summarize(slow);
  const f = summarize(fast);
  return {
    median: per(s.median - f.median),
    min: per(s.min - f.max),
    max: per(s.max - f.min),
    runs: Math.min(s.runs, f.runs),
  };
}

function lambdaOf(report: PipelineReport, tree: Tree['name']): LambdaFacts {
  return report.trees[tree]?.lambda ?? { workerMemoryMiB: 0, apiMemoryMiB: 0, architecture: 'arm64' };
}

function lambdaLine(report: PipelineReport, tree: Tree['name']): string | undefined {
  const lambda = report.trees[tree]?.lambda;
  if (!lambda) return undefined;
  return `${tree} worker ${lambda.workerMemoryMiB} MiB / API ${lambda.apiMemoryMiB} MiB (${lambda.architecture}, $${gbSecondPrice(lambda)} per GB-s)`;
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'not measured' : ok ? 'met' : '**missed**';
}

export function renderSection(report: PipelineReport): string {
  const high = Math.max(...report.latencies);
  const lat = report.latencies;
  const cells: Cell[] = TREES.flatMap((tree) => lat.map((latency) => ({ tree, latency })));
  const cellName = (c: Cell) => `${c.tree} ${c.latency} ms`;
  const med = (c: Cell, m: (r: RunResult) => number) => summary(report, c, m)?.median;
  const m = report.machine;
  const out: string[] = [
    BEGIN,
    '',
    '## Pipeline: API → queue → worker → relay on the local stack (issue 7)',
    '',
  ];
  out.push(
    `Written by \`npm run bench:pipeline\` (bench/pipeline/run.ts) on ${m.date} in ${report.durationS.toFixed(0)} s.`,
    '',
    `**Machine:** ${m.nproc} CPUs (${m.cpu}), ${m.memoryGiB} GiB RAM; Node ${m.node}; ${report.moto}. ` +
      `Load average before: ${m.loadBefore.map((l) => l.toFixed(2)).join(' / ')}; after: ${report.loadAfter.map((l) => l.toFixed(2)).join(' / ')}.`,
    '',
    `**Trees:** current = ${report.trees.current?.description ?? 'not run'}; previous = ${report.trees.previous?.description ?? 'not run'}` +
      ` (the worker before issue 7).`,
    '',
    `**Load:** ${report.messages} messages per run (1 KiB text, one recipient each) through \`POST /v1/messages/batch\`, ` +
      `100 per request, ${report.submitConcurrency === 1 ? 'one request at a time' : `${report.submitConcurrency} requests at a time`}; ` +
      `${report.runs} run${report.runs === 1 ? '' : 's'} per tree and latency (${lat.map((l) => `${l} ms`).join(', ')} added to every AWS call), interleaved; ` +
      `medians, with (min–max) of the runs.` +
      (Object.keys(report.env).length > 0
        ? ` Dev stack settings (both trees): ${Object.entries(report.env)
            .map(([k, v]) => `\`${k}=${v}\``)
            .join(', ')}.`
        : ' Dev stacks with their default settings.'),
    '',
  );
  if (report.failures.length > 0) {
    out.push('**Runs that failed:**', '', ...report.failures.map((f) => `- ${f.split('\n')[0]}`), '');
  }

  // Targets.
  const cw = waits(report, 'current');
  const pw = waits(report, 'previous');
  const costs = (tree: Tree['name']) => lat.map((l) => med({ tree, latency: l }, costPerThousand));
  const rateRatio =
    (med({ tree: 'current', latency: high }, (r) => r.messagesPerSecond) ?? 0) /
    (med({ tree: 'previous', latency: high }, (r) => r.messagesPerSecond) ?? Number.NaN);
  const lossTwice = (tree: Tree['name']) => {
    const runs = report.results.filter((r) => r.tree === tree);
    if (runs.length === 0) return undefined;
    const lost = runs.reduce((n, r) => n + r.missing + (r.n - (r.states.sent ?? 0)), 0);
    const twice = runs.reduce((n, r) => n + r.duplicates, 0);
    return { lost, twice };
  };
  const lt = (tree: Tree['name']) => {
    const x = lossTwice(tree);
    return x ? `${x.lost} not sent, ${x.twice} twice` : '–';
  };
  const currentCosts = costs('current');
  out.push(
    '### Targets (issue 7)',
    '',
    '| target | current | previous | verdict |',
    '|---|---:|---:|---|',
    `| ≤ 0.3 sequential AWS waits per message | ${fmt(cw)} | ${fmt(pw)} | ${
      cw && cw.median < 0
        ? 'inconclusive (T at the higher latency came out shorter: run-to-run noise exceeds the effect)'
        : verdict(cw && cw.median <= 0.3)
    } |`,
    `| ≤ $0.005 of AWS requests per 1,000 emails (${lat.map((l) => `${l} ms`).join(' / ')}) | ${currentCosts.map((c) => (c === undefined ? '–' : dollars(c))).join(' / ')} | ${costs(
      'previous',
    )
      .map((c) => (c === undefined ? '–' : dollars(c)))
      .join(
        ' / ',
      )} | ${verdict(currentCosts.every((c) => c !== undefined) ? currentCosts.every((c) => c! <= 0.005) : undefined)} |`,
    `| ≥ 20x the previous messages/s at ${high} ms per AWS call | ${Number.isFinite(rateRatio) ? `${rateRatio.toFixed(1)}x` : '–'} | 1x | ${verdict(Number.isFinite(rateRatio) ? rateRatio >= 20 : undefined)} |`,
    `| nothing lost or sent twice (all runs; "not sent": final state other than sent, or never at the sink) | ${lt('current')} | ${lt('previous')} | ${verdict(lossTwice('current') ? lossTwice('current')!.lost + lossTwice('current')!.twice === 0 : undefined)} |`,
    '',
  );

  // Summary.
  const row = (
    name: string,
    metric: (r: RunResult) => number,
    lower: boolean,
    format?: (n: number) => string,
  ) =>
    lat.map((l) => {
      const p = summary(report, { tree: 'previous', latency: l }, metric);
      const c = summary(report, { tree: 'current', latency: l }, metric);
      return `| ${name}, ${l} ms | ${fmt(p, format)} | ${fmt(c, format)} | ${formatRatio(c?.median, p?.median)}${lower ? '' : ''} |`;
    });
  const workerGb = (tree: Tree['name']) => (r: RunResult) =>
    workerGbSecondsPerThousand(r, lambdaOf(report, tree));
  const apiGb = (tree: Tree['name']) => (r: RunResult) => apiGbSecondsPerThousand(r, lambdaOf(report, tree));
  const treeRow = (
    name: string,
    metric: (tree: Tree['name']) => (r: RunResult) => number,
    format?: (n: number) => string,
  ) =>
    lat.map((l) => {
      const p = summary(report, { tree: 'previous', latency: l }, metric('previous'));
      const c = summary(report, { tree: 'current', latency: l }, metric('current'));
      return `| ${name}, ${l} ms | ${fmt(p, format)} | ${fmt(c, format)} | ${formatRatio(c?.median, p?.median)} |`;
    });
  const busySources = (tree: Tree['name']) =>
    [...new Set(report.results.filter((r) => r.tree === tree).map((r) => r.worker.source))].join(', ') || '–';
  out.push(
    '### Summary',
    '',
    '| | previous | current | current / previous |',
    '|---|---:|---:|---:|',
    ...row('messages/s end to end', (r) => r.messagesPerSecond, false),
    ...row(`seconds for ${report.messages} messages`, (r) => r.seconds, true),
    `| sequential AWS waits per message = (T at ${high} ms − T at 0 ms) / ${high} ms / N | ${fmt(pw)} | ${fmt(cw)} | ${formatRatio(cw?.median, pw?.median)} |`,
    ...row('AWS calls per message', (r) => totalCalls(r) / r.n, true),
    ...row('AWS request cost per 1,000 emails', costPerThousand, true, dollars),
    ...row('… of it idle polls (empty receives / GetRecords)', idleCostPerThousand, true, dollars),
    ...treeRow('worker Lambda GB-s per 1,000 emails', workerGb),
    ...treeRow('API Lambda GB-s per 1,000 emails', apiGb),
    ...row('worker invocations per 1,000 emails', (r) => (r.worker.invocations * 1000) / r.n, true),
    ...row(
      'records per worker invocation',
      (r) => (r.worker.invocations ? r.worker.records / r.worker.invocations : 0),
      false,
    ),
    '',
    `Lambda memory from each tree's infra/template.yaml: ${TREES.map((t) => lambdaLine(report, t))
      .filter((line) => line !== undefined)
      .join('; ')}. ` +
      `Worker busy time from: previous ${busySources('previous')}; current ${busySources('current')}.`,
    '',
  );

  // Calls per message by operation.
  const labels = [...new Set(report.results.flatMap((r) => Object.keys(r.calls)))].sort();
  const header = cells.map(cellName);
  out.push(
    '### AWS calls per message by operation',
    '',
    'Median over the runs of calls / N; in parentheses the part that were empty polls (nothing received).',
    '',
    `| operation | ${header.join(' | ')} |`,
    `|---|${header.map(() => '---:').join('|')}|`,
  );
  for (const op of labels) {
    const values = cells.map((c) => {
      const calls = med(c, (r) => (r.calls[op] ?? 0) / r.n);
      const empty = med(c, (r) => (r.emptyPolls[op] ?? 0) / r.n);
      if (calls === undefined) return '–';
      return `${calls.toFixed(3)}${empty ? ` (${empty.toFixed(3)})` : ''}`;
    });
    out.push(`| ${op} | ${values.join(' | ')} |`);
  }
  out.push(
    `| **all** | ${cells.map((c) => med(c, (r) => totalCalls(r) / r.n)?.toFixed(3) ?? '–').join(' | ')} |`,
    '',
  );
  const errorLabels = [...new Set(report.results.flatMap((r) => Object.keys(r.errors)))].sort();
  if (errorLabels.length > 0) {
    out.push(
      'Answers ≥ 400 among them (conditional writes that lost, look-ups of absent keys; counted and priced like the rest), per message:',
      '',
      `| operation | ${header.join(' | ')} |`,
      `|---|${header.map(() => '---:').join('|')}|`,
      ...errorLabels.map(
        (op) =>
          `| ${op} | ${cells.map((c) => med(c, (r) => (r.errors[op] ?? 0) / r.n)?.toFixed(3) ?? '–').join(' | ')} |`,
      ),
      '',
    );
  }

  // Cost by item.
  const itemNames = report.results[0]
    ? costLines(report.results[0]).map((l) => [l.item, l.unitPrice] as const)
    : [];
  out.push(
    '### AWS request cost per 1,000 emails by item',
    '',
    `| item | list price | ${header.join(' | ')} |`,
    `|---|---|${header.map(() => '---:').join('|')}|`,
    ...itemNames.map(
      ([item, price]) =>
        `| ${item} | ${price} | ${cells
          .map((c) => {
            const v = med(c, (r) => ((costLines(r).find((l) => l.item === item)?.dollars ?? 0) * 1000) / r.n);
            return v === undefined ? '–' : dollars(v);
          })
          .join(' | ')} |`,
    ),
    `| **total** | | ${cells.map((c) => (med(c, costPerThousand) === undefined ? '–' : dollars(med(c, costPerThousand)!))).join(' | ')} |`,
    '',
    ...dynamoNote(report, cells, cellName),
  );

  // Idle and status look-ups.
  const idleLabels = [...new Set(report.results.flatMap((r) => Object.keys(r.idlePerSecond)))].sort();
  out.push(
    `### While idle, and the excluded status look-ups`,
    '',
    `AWS calls per second of the stack with nothing to do (${report.idleSeconds} s after the warm-up, before the submit), and the calls one \`GET /v1/messages/{id}\` costs (measured on the final round of look-ups, after the window; not in any figure above):`,
    '',
    `| operation | ${header.map((h) => `idle/s ${h}`).join(' | ')} |`,
    `|---|${header.map(() => '---:').join('|')}|`,
    ...idleLabels.map(
      (op) =>
        `| ${op} | ${cells.map((c) => med(c, (r) => r.idlePerSecond[op] ?? 0)?.toFixed(2) ?? '–').join(' | ')} |`,
    ),
    '',
    ...TREES.map((tree) => {
      const r = report.results.find((x) => x.tree === tree);
      const cost = r
        ? Object.entries(r.pollCost)
            .map(([op, n]) => `${op} ${n.toFixed(2)}`)
            .join(', ')
        : '';
      return `- ${tree}: one status look-up = ${cost || '–'} call(s).`;
    }),
    '',
  );

  // Runs.
  out.push(
    '### Every run',
    '',
    '| tree | latency | run | N | T (s) | confirmed (s) | msg/s | calls/msg | cost / 1k | worker busy (s) | invocations | sink connections | stderr lines | notes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...report.results.map(
      (r) =>
        `| ${r.tree} | ${r.latencyMs} ms | ${r.run} | ${r.n} | ${r.seconds.toFixed(2)} | ${r.confirmedSeconds.toFixed(2)} | ${r.messagesPerSecond.toFixed(1)} | ${(totalCalls(r) / r.n).toFixed(2)} | ${dollars(costPerThousand(r))} | ${(r.worker.busyMs / 1000).toFixed(2)} (${r.worker.source}) | ${r.worker.invocations} | ${r.sinkConnections ?? '–'} | ${r.stderrLines} | ${
          [
            ...Object.entries(r.states)
              .filter(([s]) => s !== 'sent')
              .map(([s, n]) => `${n} ${s}`),
            ...r.notes,
          ].join('; ') || ''
        } |`,
    ),
    '',
  );

  out.push(...howMeasured(report), '', END);
  return out.join('\n');
}

/** DynamoDB request units and stream records per message, for the cells that used DynamoDB. */
function dynamoNote(report: PipelineReport, cells: Cell[], cellName: (c: Cell) => string): string[] {
  const med = (c: Cell, m: (r: RunResult) => number) => summary(report, c, m)?.median ?? 0;
  const used = cells.filter((c) => runsOf(report, c).some((r) => r.dynamo.read + r.dynamo.write > 0));
  if (used.length === 0) return [];
  const units = used.map(
    (c) =>
      `${cellName(c)}: ${med(c, (r) => r.dynamo.write / r.n).toFixed(2)} WRU table + ` +
      `${med(c, (r) => r.dynamo.indexWrite / r.n).toFixed(2)} WRU index, ${med(c, (r) => r.dynamo.read / r.n).toFixed(2)} RRU`,
  );
  const streams = cells.filter((c) => runsOf(report, c).some((r) => r.streamRecords > 0));
  const records = streams.map(
    (c) =>
      `${cellName(c)}: ${med(c, (r) => r.streamRecords / r.n).toFixed(2)} records, ` +
      `${med(c, (r) => r.streamInserts / r.n).toFixed(2)} INSERTs`,
  );
  return [
    `DynamoDB request units per message (estimated, see "How measured"): ${units.join('; ')}.` +
      (records.length > 0
        ? ` Stream records read per message: ${records.join('; ')} (INSERTs priced as Pipe events).`
        : ''),
    '',
  ];
}

function howMeasured(report: PipelineReport): string[] {
  const high = Math.max(...report.latencies);
  return [
    '### How measured',
    '',
    `One moto server (scripts/local/moto.ts) with a counting proxy in front of it (bench/pipeline/aws-proxy.ts); ` +
      `for every run a fresh \`node scripts/smtpq.mjs dev\` of the tree as a child process, with AWS_ENDPOINT_URL = the proxy, ` +
      `SMTP_URL = an in-process smtp-server on loopback that accepts everything (bench/pipeline/sink.ts; no TLS, no AUTH), PORT=0, ` +
      `a fresh SMTPQ_DATA_DIR and resource prefix; moto is reset between runs. The previous tree is its commit checked out in a ` +
      `temporary \`git worktree\` with this checkout's node_modules. Each run: the stack comes up, ${report.warmup} warm-up message(s) ` +
      `are sent and confirmed, the stack idles ${report.idleSeconds} s (the idle table), then the counters are cleared and the N ` +
      `messages are submitted. The proxy holds every request ${report.latencies.join(' or ')} ms before forwarding it.`,
    '',
    `**Time T** runs from just before the first POST to the response of the last write call (S3 PUT/DELETE, DynamoDB ` +
      `Put/Update/Delete/BatchWrite/TransactWrite, SQS Send/Delete/ChangeMessageVisibility) before every message was confirmed final ` +
      `(sent, failed or partially_sent) — the outcome write, or the poller's DeleteMessageBatch after the last invocation. ` +
      `messages/s = N / T. "confirmed" in the run table is the time until the look-ups had confirmed it (T + a quiet ` +
      `interval of max(1.5 s, 20 × latency) + the look-ups). **Sequential AWS waits per message** = (median T at ${high} ms − median ` +
      `T at 0 ms) / ${high} ms / N; its range pairs the extreme runs.`,
    '',
    `**Calls** are all requests the proxy received from the first POST to the end of T, by service and operation (X-Amz-Target ` +
      `for DynamoDB, Streams, SQS, Secrets Manager; Action= for the query protocol; S3 by method, bucket/object and query, or ` +
      `its ?x-id). They include what the stack does while idle during T (the SQS poller's long polls, stream polls), shown as ` +
      `empty polls. **Excluded:** the status look-ups that tell when every message is final — they start only after the sink ` +
      `has all N and no write has come for the quiet interval, i.e. after T (if a message was not final yet, the look-ups made ` +
      `inside T are subtracted at the per-look-up cost of the final round, and the run says so); the warm-up; start-up; and ` +
      `the proxy's own reads for sizing DynamoDB items.`,
    '',
    `**Cost** at us-east-1 list prices, no free tier: S3 PUT/COPY/POST/LIST $0.005 per 1,000, GET/HEAD $0.0004 per 1,000, ` +
      `DELETE free; SQS $0.40 per million requests, each 64 KiB of the larger of request and response body one request (empty ` +
      `long polls included); DynamoDB on-demand $0.625 per million WRU and $0.125 per million RRU; Streams $0.02 per 100,000 ` +
      `GetRecords; one Pipe event ($0.40 per million; $1 on an EventBridge bus) per INSERT record the dev stream poller read; ` +
      `Secrets Manager $0.05 per 10,000 calls; Lambda $0.20 per million requests (worker invocations + API requests). ` +
      `**DynamoDB units are estimated** (moto reports none), by bench/pipeline/dynamodb-units.ts: item sizes by AWS's rules; ` +
      `WRU = started KiB of the larger of the old and new image (×2 in TransactWriteItems; a failed condition pays for the ` +
      `existing item; BatchWriteItem per item), plus one write per started KiB of the projected entry for every global ` +
      `secondary index entry put or deleted (none when the index keys and projected attributes stay as they were); the old ` +
      `image is the last one the proxy saw: a PutItem's item, or an UpdateItem's new image, which the proxy asks moto for ` +
      `in the same call (ReturnValues ALL_NEW added when the caller asked for none, and taken out of the answer again, so ` +
      `moto gets no extra request); an item the proxy has not seen does not exist if its table was created through the ` +
      `proxy (every write to it passed the proxy), and is otherwise read from moto before the write (the run notes how ` +
      `many). RRU = started 4 KiB per item (×½ eventually consistent; GSI queries always; ` +
      `Query/Scan sum the items first; an item not found the minimum; a projection still pays for the whole item).`,
    '',
    `**Lambda GB-s** = worker busy time × MemorySize (from the tree's infra/template.yaml) per 1,000 emails. Busy time: the ` +
      `dev stack's SMTPQ_DEV_INVOCATION_LOG (one JSON line per invocation with its ms) when the tree writes one; else ` +
      `"proxy spans": the dev SQS poller is a single loop (receive → invoke → delete), so an invocation lasts from the answer of ` +
      `the ReceiveMessage that returned its records to the arrival of the DeleteMessageBatch that follows; else T (an upper ` +
      `bound). The API's is the wall time of its POSTs × its MemorySize. Both include the added latency: a Lambda waiting for ` +
      `AWS pays for the wait.`,
  ];
}

/** The summary table for stdout. */
export function renderStdout(report: PipelineReport): string {
  const high = Math.max(...report.latencies);
  const lines: string[] = [];
  const cols = [
    'tree',
    'latency',
    'runs',
    'msg/s',
    'T s',
    'calls/msg',
    '$/1k emails',
    'worker GB-s/1k',
    'waits/msg',
  ];
  const rows: string[][] = [];
  for (const tree of TREES) {
    for (const latency of report.latencies) {
      const c = { tree, latency };
      const runs = runsOf(report, c);
      if (runs.length === 0) continue;
      const w = waits(report, tree);
      rows.push([
        tree,
        `${latency} ms`,
        String(runs.length),
        fmt(summary(report, c, (r) => r.messagesPerSecond)),
        fmt(summary(report, c, (r) => r.seconds)),
        fmt(summary(report, c, (r) => totalCalls(r) / r.n)),
        fmt(summary(report, c, costPerThousand), dollars),
        fmt(summary(report, c, (r) => workerGbSecondsPerThousand(r, lambdaOf(report, tree)))),
        latency === high && w ? fmt(w) : '',
      ]);
    }
  }
  const widths = cols.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  lines.push(line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line));
  const ratio = (m: (r: RunResult) => number, latency: number) => {
    const p = summary(report, { tree: 'previous', latency }, m)?.median;
    const c = summary(report, { tree: 'current', latency }, m)?.median;
    return formatRatio(c, p);
  };
  lines.push(
    '',
    `current / previous: msg/s ${report.latencies.map((l) => `${ratio((r) => r.messagesPerSecond, l)} at ${l} ms`).join(', ')}; ` +
      `cost ${report.latencies.map((l) => `${ratio(costPerThousand, l)} at ${l} ms`).join(', ')}; ` +
      `waits ${formatRatio(waits(report, 'current')?.median, waits(report, 'previous')?.median)}`,
  );
  for (const f of report.failures) lines.push(`FAILED: ${f.split('\n')[0]}`);
  return lines.join('\n');
}

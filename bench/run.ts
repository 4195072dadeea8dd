// `npm run bench`: smtpq's SMTP client beside Nodemailer and Python's smtplib, in one run, against the
// same local Postfix sinks; writes bench/RESULTS.md. `--quick` checks the harness in a few seconds
// (figures meaningless); `--runs N` runs every cell N times (a shorter full-size run); `--profile` profiles
// smtpq even when it meets its targets.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type LocalSmtpServer, startPostfix, startSmtpSink } from '../scripts/local/postfix.ts';
import { buildClients } from './build-clients.ts';
import { type CellOutcome, type CellSpec, type ClientCommands, runCell, type Server } from './cells.ts';
import { runClient } from './child.ts';
import type { Workload } from './clients/protocol.ts';
import { type DelayProxy, startDelayProxy } from './delay-proxy.ts';
import { createFixtures, FROM, TO } from './fixtures.ts';
import { machineFacts } from './machine.ts';
import { existingSection, spliceSection } from './pipeline/section.ts';
import { hotSpots, type Profile } from './profile.ts';
import { median, metrics, type Row } from './report.ts';
import { type ProfiledCell, type Results, renderResults } from './results.ts';

const quick = process.argv.includes('--quick');
const forceProfile = process.argv.includes('--profile');
const benchDir = fileURLToPath(new URL('./', import.meta.url));

const KiB = 1024;
const MiB = 1024 * KiB;
/**
 * Sizes and repetitions, chosen to keep a full run within about five minutes on 2 shared cores.
 * slowRuns: cells whose runs take long (20 ms RTT, a real Postfix queue) and vary little.
 */
const plan = quick
  ? {
      runs: 1,
      slowRuns: 1,
      count: { prebuilt: { 1024: 50, 102400: 10 }, composed: { 1024: 50, 102400: 10 } },
      rttCount: { 1024: 5, 102400: 3 },
      smtpdCount: 20,
      rssRuns: 1,
      attachment: 5 * MiB,
    }
  : {
      runs: 5,
      slowRuns: 3,
      count: { prebuilt: { 1024: 2000, 102400: 300 }, composed: { 1024: 1000, 102400: 100 } },
      rttCount: { 1024: 100, 102400: 30 },
      smtpdCount: 200,
      rssRuns: 3,
      attachment: 50 * MiB,
    };
const runsFlag = process.argv.indexOf('--runs');
const runsOverride = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : undefined;
if (runsOverride !== undefined) {
  if (!Number.isInteger(runsOverride) || runsOverride < 1)
    throw new Error('--runs needs a positive whole number');
  Object.assign(plan, { runs: runsOverride, slowRuns: runsOverride, rssRuns: runsOverride });
}
const ONE_WAY_DELAY_MS = 10;
const RTT_MS = 2 * ONE_WAY_DELAY_MS;

const startedAt = Date.now();
const log = (line: string) => {
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(0).padStart(3);
  process.stderr.write(`[${seconds} s] ${line}\n`);
};

async function clientCommands(): Promise<ClientCommands> {
  const commands: ClientCommands = new Map();
  const built = await buildClients();
  for (const [client, bundle] of built) {
    const command =
      'file' in bundle
        ? { command: process.execPath, args: [bundle.file] }
        : { unavailable: `could not be built: ${bundle.error}` };
    commands.set(client, command);
    if (client === 'smtpq') commands.set('smtpq-data', command);
  }
  const python = spawnSync('python3', ['-c', 'import smtplib'], { encoding: 'utf8' });
  commands.set(
    'smtplib',
    python.status === 0
      ? { command: 'python3', args: [`${benchDir}clients/smtplib_client.py`] }
      : { unavailable: `python3 with smtplib not found (${python.error?.message ?? python.stderr.trim()})` },
  );
  return commands;
}

/** Starts a server, or returns why it could not be started (the rows that need it are skipped). */
async function tryStart<T>(what: string, start: () => Promise<T>): Promise<T | string> {
  try {
    return await start();
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    log(`${what} unavailable: ${reason}`);
    return `${what} could not be started: ${reason}`;
  }
}

/** The Lambda bundle sizes and cold import times (bench/bundles.ts), or why they could not be measured. */
async function bundlesSection(): Promise<string> {
  try {
    const { measureBundles } = await import('./bundles.ts');
    return await measureBundles(quick ? 1 : undefined);
  } catch (error) {
    return `## Lambda bundles\n\nNot measured: ${error instanceof Error ? error.message : String(error)}`;
  }
}

async function main(): Promise<void> {
  const machine = machineFacts();
  const commands = await clientCommands();
  log('fixtures…');
  const fixtures = await createFixtures([KiB, 100 * KiB], plan.attachment);
  const stops: Array<() => Promise<void>> = [];
  const results: Results = {
    machine,
    quick,
    runsOverride,
    rttMs: RTT_MS,
    attachmentMiB: plan.attachment / MiB,
    skipped: [],
  };
  const cell = (spec: CellSpec) => {
    log(spec.title);
    return runCell(spec, commands, log);
  };
  const prebuilt = (size: 1024 | 102400): Workload => ({
    kind: 'prebuilt',
    messageFile: fixtures.prebuilt.get(size)!,
  });
  const peers = ['smtpq', 'nodemailer', 'smtplib'] as const;
  try {
    const sink = await tryStart('Postfix smtp-sink', () => startSmtpSink());
    if (typeof sink === 'string') results.skipped.push(sink);
    else {
      stops.push(sink.stop);
      const direct: Server = { host: sink.host, port: sink.port };
      results.throughput = [];
      for (const kind of ['prebuilt', 'composed'] as const) {
        for (const size of [1024, 102400] as const) {
          const label = `${kind}, ${size / KiB} KiB`;
          const workload: Workload = kind === 'prebuilt' ? prebuilt(size) : { kind, bodyBytes: size };
          const spec = {
            title: `throughput ${label}`,
            server: direct,
            workload,
            count: plan.count[kind][size],
            runs: plan.runs,
            clients: [...peers],
          };
          results.throughput.push({ label, outcome: await cell(spec) });
        }
      }
      // The composed rows again with one send at a time: what having many messages queued costs a client.
      const oneAtATime = 'composed, 100 KiB, 1 send in flight';
      results.throughput.push({
        label: oneAtATime,
        outcome: await cell({
          title: `throughput ${oneAtATime}`,
          server: direct,
          workload: { kind: 'composed', bodyBytes: 100 * KiB },
          count: plan.count.composed[102400],
          inFlight: 1,
          runs: plan.slowRuns,
          clients: [...peers],
        }),
      });
      const proxy = await startDelayProxy({
        upstreamHost: sink.host,
        upstreamPort: sink.port,
        delayMs: ONE_WAY_DELAY_MS,
      });
      stops.push(proxy.close);
      const delayed: Server = { host: '127.0.0.1', port: sink.port, proxy, rttMs: RTT_MS };
      results.pipelining = [];
      for (const size of [1024, 102400] as const) {
        const label = `prebuilt, ${size / KiB} KiB`;
        const spec = {
          title: `${RTT_MS} ms RTT ${label}`,
          server: delayed,
          workload: prebuilt(size),
          count: plan.rttCount[size],
          runs: plan.slowRuns,
          clients: [...peers],
        };
        results.pipelining.push({ label, outcome: await cell(spec) });
      }
      results.rss = [];
      for (const [client, source, label] of [
        ['smtpq', 'stream', 'smtpq, attachment streamed from the file'],
        ['nodemailer', 'stream', 'Nodemailer, attachment streamed from the file'],
        ['nodemailer', 'buffer', 'Nodemailer, attachment read into a Buffer (reference)'],
      ] as const) {
        const workload: Workload = { kind: 'attachment', file: fixtures.attachment, source };
        const spec = {
          title: `peak RSS ${label}`,
          server: direct,
          workload,
          count: 1,
          runs: plan.rssRuns,
          clients: [client],
        };
        results.rss.push({ label, outcome: await cell(spec) });
      }
    }

    const smtpd = await tryStart('Postfix smtpd (private instance)', () =>
      startPostfix({ delivery: 'discard' }),
    );
    if (typeof smtpd === 'string') results.skipped.push(smtpd);
    else {
      stops.push(smtpd.stop);
      const chunkingClients = ['smtpq', 'smtpq-data', 'nodemailer', 'smtplib'] as const;
      const direct: Server = { host: smtpd.host, port: smtpd.port };
      const proxy: DelayProxy = await startDelayProxy({
        upstreamHost: smtpd.host,
        upstreamPort: smtpd.port,
        delayMs: ONE_WAY_DELAY_MS,
      });
      stops.push(proxy.close);
      const delayed: Server = { host: '127.0.0.1', port: smtpd.port, proxy, rttMs: RTT_MS };
      results.chunkingDirect = [
        {
          label: 'prebuilt, 1 KiB',
          outcome: await cell({
            title: 'smtpd prebuilt 1 KiB',
            server: direct,
            workload: prebuilt(1024),
            count: plan.smtpdCount,
            runs: plan.slowRuns,
            clients: [...chunkingClients],
          }),
        },
      ];
      results.chunkingDelayed = [
        {
          label: 'prebuilt, 1 KiB',
          outcome: await cell({
            title: `smtpd ${RTT_MS} ms RTT prebuilt 1 KiB`,
            server: delayed,
            workload: prebuilt(1024),
            count: plan.rttCount[1024],
            runs: plan.slowRuns,
            clients: [...chunkingClients],
          }),
        },
      ];
      results.smtpdLog = await smtpdWarnings(smtpd);
    }

    results.profiles = [];
    for (const cell of cellsToProfile(results.throughput ?? [])) {
      log(`profiling smtpq (${cell.label})…`);
      const row = results.throughput!.find((r) => r.label === cell.label)!;
      results.profiles.push({ ...cell, profile: await profileSmtpq(commands, row.outcome) });
    }
    const bdat = results.chunkingDirect?.[0];
    const bdatCpu = median(bdat?.outcome, 'smtpq', metrics.cpuMsPerMessage);
    const dataCpu = median(bdat?.outcome, 'smtpq-data', metrics.cpuMsPerMessage);
    if (bdat && bdatCpu !== undefined && dataCpu !== undefined && bdatCpu > 1.1 * dataCpu) {
      const label = `Postfix smtpd, ${bdat.label}, BDAT`;
      log(`profiling smtpq (${label})…`);
      const reason = `BDAT cost ${(bdatCpu / dataCpu).toFixed(2)}x the CPU per message of DATA here`;
      results.profiles.push({ label, reason, profile: await profileSmtpq(commands, bdat.outcome) });
    }
    log('bundles…');
    results.bundles = await bundlesSection();
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await fixtures.remove();
  }
  results.loadAfter = loadavg();
  results.durationS = (Date.now() - startedAt) / 1000;
  const file = quick ? `${benchDir}.build/RESULTS.quick.md` : `${benchDir}RESULTS.md`;
  // The pipeline section (npm run bench:pipeline) is kept as it is.
  const pipeline = await existingSection(file);
  const text = renderResults(results);
  await writeFile(file, pipeline ? spliceSection(text, pipeline) : text);
  log(`wrote ${file} in ${results.durationS.toFixed(0)} s`);
}

/**
 * Which throughput cells to profile: the headline (prebuilt 1 KiB) when smtpq misses its CPU or rate target
 * there (or with --profile), and the cell where smtpq spends the most CPU per message relative to Nodemailer
 * when that is more than Nodemailer spends.
 */
function cellsToProfile(rows: readonly Row[]): ProfiledCell[] {
  const chosen: ProfiledCell[] = [];
  const cpu = (row: Row, client: 'smtpq' | 'nodemailer') =>
    median(row.outcome, client, metrics.cpuMsPerMessage);
  const rate = (row: Row, client: 'smtpq' | 'nodemailer') =>
    median(row.outcome, client, metrics.messagesPerSecond);
  const headline = rows[0];
  if (headline && cpu(headline, 'smtpq') !== undefined) {
    const ownCpu = cpu(headline, 'smtpq')!;
    const ratio = (rate(headline, 'smtpq') ?? 0) / (rate(headline, 'nodemailer') ?? 0);
    const misses = ownCpu >= 0.4 || ratio < 3;
    if (misses || forceProfile) {
      chosen.push({ label: headline.label, reason: misses ? 'missed a target' : '--profile' });
    }
  }
  let worst: { row: Row; ratio: number } | undefined;
  for (const row of rows) {
    const ratio = (cpu(row, 'smtpq') ?? 0) / (cpu(row, 'nodemailer') ?? Number.POSITIVE_INFINITY);
    if (ratio > 1 && ratio > (worst?.ratio ?? 0)) worst = { row, ratio };
  }
  if (worst && !chosen.some((cell) => cell.label === worst.row.label)) {
    chosen.push({
      label: worst.row.label,
      reason: `smtpq used ${worst.ratio.toFixed(2)}x Nodemailer's CPU per message here`,
    });
  }
  return chosen;
}

async function profileSmtpq(commands: ClientCommands, outcome: CellOutcome): Promise<Profile | string> {
  const command = commands.get('smtpq');
  if (command === undefined || 'unavailable' in command) return 'smtpq client unavailable';
  const { spec } = outcome;
  const file = `${benchDir}.build/smtpq.cpuprofile`;
  const job = {
    host: spec.server.host,
    port: spec.server.port,
    from: FROM,
    to: TO,
    count: spec.count,
    inFlight: spec.inFlight,
  };
  try {
    await runClient(command, { ...job, workload: spec.workload }, { BENCH_CPU_PROFILE: file });
    return await hotSpots(file, 15);
  } catch (error) {
    return `profiling failed: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Postfix's own complaints during the run (a reject or a timeout would distort its rows). */
async function smtpdWarnings(server: LocalSmtpServer & { log(): Promise<string> }): Promise<string[]> {
  const lines = (await server.log()).split('\n');
  return lines.filter((line) => /warning|fatal|panic|reject/i.test(line)).slice(0, 10);
}

await main();

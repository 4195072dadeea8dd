// The measured phase of a Node benchmark client, shared by the smtpq and Nodemailer clients so both are
// timed the same way: one warm-up message (it opens the connection), then `count` messages with up to
// `inFlight` sends in flight (default 32), CPU from process.cpuUsage(), peak RSS from getrusage.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { ClientJob, ClientResult } from './protocol.ts';

/** Sends in flight at once by default: what a worker draining an SQS batch might hand one connection. */
const defaultInFlight = 32;

export interface Sender {
  /** Sends message number `index` (a fresh body each time) and resolves when the server accepted it. */
  send(index: number): Promise<void>;
  close(): Promise<void>;
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

async function sendAll(sender: Sender, count: number, inFlight: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await sender.send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
}

export async function measure(job: ClientJob, open: (job: ClientJob) => Promise<Sender>): Promise<void> {
  const baselineRssKiB = Math.round(process.memoryUsage.rss() / 1024);
  const sender = await open(job);
  const single = job.workload.kind === 'attachment';
  if (!single) await sender.send(-1);
  const profiler = await startProfiler();
  const startedAt = epochNow();
  const cpuBefore = process.cpuUsage();
  await sendAll(sender, single ? 1 : job.count, job.inFlight ?? defaultInFlight);
  const cpu = process.cpuUsage(cpuBefore);
  const endedAt = epochNow();
  await profiler?.stop();
  await sender.close();
  const result: ClientResult = {
    sent: single ? 1 : job.count,
    elapsedMs: endedAt - startedAt,
    cpuMs: (cpu.user + cpu.system) / 1000,
    startedAt,
    endedAt,
    baselineRssKiB,
    maxRssKiB: process.resourceUsage().maxRSS,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** With BENCH_CPU_PROFILE=FILE: a V8 CPU profile of the measured phase only, written to FILE. */
async function startProfiler(): Promise<{ stop(): Promise<void> } | undefined> {
  const file = process.env.BENCH_CPU_PROFILE;
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** The job from argv[2]; a bad argument is a usage error, not a stack trace. */
export function readJob(): ClientJob {
  const raw = process.argv[2];
  if (raw === undefined) {
    process.stderr.write('usage: client JOB_JSON\n');
    process.exit(64);
  }
  return JSON.parse(raw) as ClientJob;
}

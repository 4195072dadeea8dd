// The facts about the machine and tools that a reader needs to weigh the figures.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';

function commandOutput(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) return undefined;
  return `${result.stdout}${result.stderr}`.trim() || undefined;
}

export interface MachineFacts {
  date: string;
  cpu: string;
  nproc: number;
  memoryGiB: number;
  node: string;
  python?: string;
  postfix?: string;
  nodemailer: string;
  loadBefore: number[];
  /** RSS of a Node process that loaded nothing: the floor under every Node client's peak. */
  bareNodeRssMiB?: number;
}

function bareNodeRss(): number | undefined {
  const out = commandOutput(process.execPath, [
    '-e',
    'process.stdout.write(String(process.memoryUsage.rss()))',
  ]);
  return out === undefined ? undefined : Number(out) / 2 ** 20;
}

export function machineFacts(): MachineFacts {
  const require = createRequire(import.meta.url);
  const nodemailerVersion = (require('nodemailer/package.json') as { version: string }).version;
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    nproc: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    python: commandOutput('python3', ['--version']),
    postfix: commandOutput('/usr/sbin/postconf', ['-d', '-h', 'mail_version']),
    nodemailer: nodemailerVersion,
    loadBefore: loadavg(),
    bareNodeRssMiB: bareNodeRss(),
  };
}

// `npm run bench:dkim`: peak memory of sending a message with a 1, 20 and 50 MiB attachment, DKIM-signed
// (two passes over the stream) and unsigned, each in a process of its own, in one run; writes
// bench/RESULTS-dkim.md. The claim measured: signing adds a pass, not a copy — peak RSS does not grow with
// the message, signed or not.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const RUNS = Number(process.env.BENCH_DKIM_RUNS ?? 3);
const SIZES_MIB = [1, 20, 50];
const dir = mkdtempSync(path.join(tmpdir(), 'smtpq-bench-dkim-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const rows: { mib: number; unsigned: number; signed: number }[] = [];
try {
  for (const mib of SIZES_MIB) {
    const file = path.join(dir, `${mib}.bin`);
    writeFileSync(file, Buffer.alloc(mib * 1024 * 1024, 'smtpq bench '));
    const peak: Record<'signed' | 'unsigned', number[]> = { signed: [], unsigned: [] };
    for (let run = 0; run < RUNS; run++)
      for (const mode of ['unsigned', 'signed'] as const) {
        const out = execFileSync(
          process.execPath,
          ['--import', 'tsx', path.join(here, 'child.ts'), file, mode],
          {
            encoding: 'utf8',
          },
        );
        const { maxRssKiB, received } = JSON.parse(out.trim().split('\n').at(-1)!) as {
          maxRssKiB: number;
          received: number;
        };
        if (received < mib * 1024 * 1024)
          throw new Error(`${mode} ${mib} MiB: the sink got ${received} bytes`);
        peak[mode].push(maxRssKiB / 1024);
      }
    rows.push({ mib, unsigned: median(peak.unsigned), signed: median(peak.signed) });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const f = (x: number) => x.toFixed(1);
const first = rows[0]!;
const lines = [
  '# DKIM signing: peak memory',
  '',
  `Written by \`npm run bench:dkim\` (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, Node ${process.version}).`,
  `Each cell: the median of ${RUNS} processes, each sending one message with a file attachment of the size`,
  'given through lib/smtp to an in-process sink that discards it; peak RSS is `process.resourceUsage().maxRSS`',
  '(the whole process: Node, the SMTP client, the composer). Signed: rsa-sha256, 2048 bits, the body hash',
  'computed on a first pass over the stream and the message sent on a second (lib/message/dkim.ts).',
  '',
  '| attachment | peak RSS unsigned (MiB) | peak RSS signed (MiB) | signed / unsigned | signed / signed at 1 MiB |',
  '|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.mib} MiB | ${f(r.unsigned)} | ${f(r.signed)} | ${(r.signed / r.unsigned).toFixed(2)} | ${(r.signed / first.signed).toFixed(2)} |`,
  ),
  '',
];
writeFileSync(path.join(here, '..', 'RESULTS-dkim.md'), lines.join('\n'));
console.log(lines.join('\n'));

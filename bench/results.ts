// bench/RESULTS.md from one run's outcomes: machine, targets, one section per measurement, method.
import type { MachineFacts } from './machine.ts';
import type { Profile } from './profile.ts';
import { elapsedRoundTrips, failureNotes, figure, median, metrics, metricTable, type Row } from './report.ts';

/** A throughput cell that was profiled once more, and why. */
export interface ProfiledCell {
  label: string;
  reason: string;
}

export interface Results {
  machine: MachineFacts;
  quick: boolean;
  /** `--runs N` was given: every cell ran N times instead of the plan's counts. */
  runsOverride?: number;
  rttMs: number;
  attachmentMiB: number;
  skipped: string[];
  throughput?: Row[];
  pipelining?: Row[];
  rss?: Row[];
  chunkingDirect?: Row[];
  chunkingDelayed?: Row[];
  smtpdLog?: string[];
  profiles?: Array<ProfiledCell & { profile: Profile | string }>;
  bundles?: string;
  loadAfter?: number[];
  durationS?: number;
}

const runsNote = (rows: Row[] | undefined) => {
  const runs = rows?.[0]?.outcome.spec.runs ?? 0;
  const counts = [...new Set(rows?.map((row) => row.outcome.spec.count))].join(' / ');
  return `median (min–max) of ${runs} run${runs === 1 ? '' : 's'} of ${counts} messages each`;
};

function section(
  title: string,
  rows: Row[] | undefined,
  body: (rows: Row[]) => string[],
  moreRows: Row[] = [],
): string[] {
  if (rows === undefined) return [`## ${title}`, '', 'Not measured (see "Skipped" below).', ''];
  const notes = failureNotes([...rows, ...moreRows]);
  return [`## ${title}`, '', ...body(rows), ...(notes ? [notes, ''] : [])];
}

function targets(results: Results): string[] {
  const headline = results.throughput?.[0]?.outcome;
  const smtpqRate = median(headline, 'smtpq', metrics.messagesPerSecond);
  const nodemailerRate = median(headline, 'nodemailer', metrics.messagesPerSecond);
  const ratio = smtpqRate !== undefined && nodemailerRate ? smtpqRate / nodemailerRate : undefined;
  const cpu = median(headline, 'smtpq', metrics.cpuMsPerMessage);
  const pipelined = median(results.pipelining?.[0]?.outcome, 'smtpq', metrics.waitsPerMessage);
  const chunked = median(results.chunkingDelayed?.[0]?.outcome, 'smtpq', metrics.waitsPerMessage);
  const rss = median(results.rss?.[0]?.outcome, 'smtpq', metrics.peakRssMiB);
  const verdict = (value: number | undefined, ok: (v: number) => boolean) =>
    value === undefined ? 'not measured' : ok(value) ? 'met' : '**missed**';
  return [
    '## Targets (issue 2)',
    '',
    '| target | smtpq, median | verdict |',
    '|---|---:|---|',
    `| prebuilt 1 KiB over one connection: ≥ 3x Nodemailer's messages/s | ${figure(ratio, 'x')} (${figure(smtpqRate)} vs ${figure(nodemailerRate)} msg/s) | ${verdict(ratio, (v) => v >= 3)} |`,
    `| … at < 0.4 ms CPU per message | ${figure(cpu, ' ms')} | ${verdict(cpu, (v) => v < 0.4)} |`,
    `| ≤ 1 round trip per message at ${results.rttMs} ms RTT with PIPELINING (smtp-sink, 1 KiB) | ${figure(pipelined)} | ${verdict(pipelined, (v) => v <= 1.02)} |`,
    `| well under 1 round trip per message with CHUNKING (Postfix smtpd, 1 KiB) | ${figure(chunked)} | ${verdict(chunked, (v) => v <= 0.5)} |`,
    `| ≤ 64 MiB peak RSS sending a streamed ${results.attachmentMiB} MiB attachment | ${figure(rss, ' MiB')} | ${verdict(rss, (v) => v <= 64)} |`,
    '',
    'The pipelining verdict allows 1.02: N messages cost N + 1 waits (the last end of data has nothing to ride',
    'with), i.e. 1.01 at 100 messages. "Well under 1" is read as at most 0.5; with CHUNKING the figure also',
    'depends on how many sends the caller keeps in flight (32 here).',
    '',
  ];
}

/** This run's peer figures beside the ones the issue quotes for this kind of machine: how loaded it was. */
function calibration(results: Results): string[] {
  const t = results.throughput;
  const row = (label: string) => t?.find((r) => r.label === label)?.outcome;
  const rtt = results.pipelining?.[0]?.outcome;
  const rss = (label: string) => results.rss?.find((r) => r.label.startsWith(label))?.outcome;
  const wall = elapsedRoundTrips(results.rttMs);
  const lines: Array<[string, string, number | undefined]> = [
    [
      'Nodemailer, prebuilt 1 KiB, msg/s',
      '~990',
      median(row('prebuilt, 1 KiB'), 'nodemailer', metrics.messagesPerSecond),
    ],
    [
      'Nodemailer, composed 1 KiB, msg/s',
      '~800',
      median(row('composed, 1 KiB'), 'nodemailer', metrics.messagesPerSecond),
    ],
    [
      'Nodemailer, prebuilt 1 KiB, CPU ms/msg',
      '1.3–1.6',
      median(row('prebuilt, 1 KiB'), 'nodemailer', metrics.cpuMsPerMessage),
    ],
    [
      'Nodemailer, composed 1 KiB, CPU ms/msg',
      '1.3–1.6',
      median(row('composed, 1 KiB'), 'nodemailer', metrics.cpuMsPerMessage),
    ],
    [`Nodemailer, RTTs/msg at ${results.rttMs} ms (wall time)`, '2.2', median(rtt, 'nodemailer', wall)],
    [
      'Nodemailer, peak RSS, 50 MiB streamed (MiB)',
      '65',
      median(rss('Nodemailer, attachment streamed'), 'nodemailer', metrics.peakRssMiB),
    ],
    [
      'Nodemailer, peak RSS, 50 MiB from a Buffer (MiB)',
      '309',
      median(rss('Nodemailer, attachment read'), 'nodemailer', metrics.peakRssMiB),
    ],
    [
      'smtplib, prebuilt 1 KiB, msg/s',
      '~2,900',
      median(row('prebuilt, 1 KiB'), 'smtplib', metrics.messagesPerSecond),
    ],
    [`smtplib, RTTs/msg at ${results.rttMs} ms (wall time)`, '5', median(rtt, 'smtplib', wall)],
  ];
  return [
    "## Calibration: the peers against the issue's figures for this kind of machine",
    '',
    'When the peers come out far below these, the machine was busy during the run; the ratios above still',
    'compare like with like.',
    '',
    '| figure | issue 2 (2026-11, medians) | this run, median |',
    '|---|---:|---:|',
    ...lines.map(([label, reference, value]) => `| ${label} | ${reference} | ${figure(value)} |`),
    '',
  ];
}

function profileLines(cell: ProfiledCell & { profile: Profile | string }): string[] {
  const head = [`### ${cell.label} (profiled because ${cell.reason})`, ''];
  const { profile } = cell;
  if (typeof profile === 'string') return [...head, profile, ''];
  return [
    ...head,
    'Self time per function:',
    '',
    '| self ms | share | function | where |',
    '|---:|---:|---|---|',
    ...profile.functions.map(
      (h) => `| ${h.selfMs.toFixed(1)} | ${h.percent.toFixed(1)} % | \`${h.name}\` | ${h.location} |`,
    ),
    '',
    'Self time per file:',
    '',
    '| self ms | share | file |',
    '|---:|---:|---|',
    ...profile.files.map((f) => `| ${f.selfMs.toFixed(1)} | ${f.percent.toFixed(1)} % | ${f.file} |`),
    '',
  ];
}

function hotSpotLines(profiles: Results['profiles']): string[] {
  if (!profiles?.length) return [];
  return [
    '## Where smtpq spends its CPU',
    '',
    'One more run of a throughput cell with the V8 sampling profiler (100 µs interval, measured phase only,',
    'idle time left out; bundle positions mapped back to the TypeScript sources). "(native)" is time in V8',
    'and libuv themselves: socket writes (`writev`, `writeBuffer`), the garbage collector, and so on.',
    '',
    ...profiles.flatMap(profileLines),
  ];
}

function methodLines(results: Results): string[] {
  return [
    '## Method',
    '',
    '- **One process per client run.** The runner (bench/run.ts) starts every run of every client as a child',
    '  process of its own: Node clients as esbuild bundles (bench/build-clients.ts, npm packages external, so no',
    '  TypeScript loader runs in the measured process), smtplib as `python3 bench/clients/smtplib_client.py`.',
    "  CPU and memory figures are the child's own: `process.cpuUsage()` (user + system, all threads) and",
    '  `process.resourceUsage().maxRSS` for Node, `getrusage(RUSAGE_SELF)` for Python.',
    '- **Measured phase.** Each child connects, sends one warm-up message (it opens the connection and warms',
    '  the code paths), then the timed messages over that one connection, then QUIT (not timed). messages/s =',
    '  messages / wall time of the phase; CPU ms per message = CPU time of the phase / messages.',
    '- **Concurrency.** The Node clients are handed the messages with up to 32 sends in flight (a worker with',
    '  an SQS batch in hand): smtpq pipelines concurrent `send()` calls on its one connection; Nodemailer',
    '  (`pool: true, maxConnections: 1, maxMessages: Infinity`) queues them and sends one after the other.',
    '  smtplib is synchronous: one `sendmail()` after the other. The row "1 send in flight" repeats the',
    "  composed 100 KiB cell with one send at a time. smtpq's composed messages are built as lib/delivery",
    '  builds them: `composeMessage()` and `createStream()` when `send()` is called.',
    '- **Workloads.** *prebuilt*: the same RFC 5322 message file (headers + a 7bit text body of 1 KiB or',
    '  100 KiB in 74-character lines) given as bytes: `send(envelope, buffer)` for smtpq, `raw` for Nodemailer,',
    '  `sendmail()` for smtplib — the transport alone. *composed*: a text message composed for every send —',
    "  MailComposer for both Node clients (smtpq through lib/message `composeMessage`), Python's",
    '  `email.message.EmailMessage` for smtplib. Two recipients per message; `smtp-sink` and the Postfix',
    '  instance accept every recipient.',
    `- **Round trips.** bench/delay-proxy.ts relays each TCP chunk ${results.rttMs / 2} ms later in each direction`,
    `  (${results.rttMs} ms RTT) and logs when every chunk arrived and from which side. Two figures: *waits per`,
    "  message* counts the client's write bursts in the measured phase — a run of client chunks that starts",
    `  after ≥ ${(results.rttMs * 0.75).toFixed(0)} ms of client silence; the client only falls silent that long when it waits for a`,
    '  reply (bench/round-trips.ts) — divided by the messages; *RTTs per message from wall time* is the',
    `  measured phase's wall time / ${results.rttMs} ms / messages, which also contains transfer and server time.`,
    '- **CHUNKING.** `smtp-sink` does not offer CHUNKING, so that section uses a private Postfix instance',
    '  (scripts/local/postfix.ts: own config and queue in a temp dir, smtpd on loopback, `discard:` transport)',
    '  which offers PIPELINING and CHUNKING. "smtpq (DATA)" is smtpq with `chunking: false`, to separate what',
    '  BDAT adds from pipelining. Nodemailer and smtplib do not implement BDAT and use DATA there.',
    `- **Peak RSS.** One message with a ${results.attachmentMiB} MiB random attachment (base64 on the wire) to \`smtp-sink\`: smtpq`,
    '  composing with the attachment as a file stream, Nodemailer with the same stream, and Nodemailer with the',
    "  file read into a Buffer as the reference. The figure is the whole process's peak RSS, so it contains the",
    '  Node runtime and the loaded modules; "before connect" is the RSS once the client module was loaded.',
    '- **Runs.** Every cell is run several times, the client order rotating from run to run; tables show the',
    "  median and (min–max); ratios are smtpq's median over the peer's median from this same run (messages/s:",
    '  higher is better for smtpq; CPU, round trips, RSS: lower is better).',
    '',
  ];
}

export function renderResults(results: Results): string {
  const { machine } = results;
  const load = (values: number[] | undefined) => (values ?? []).map((v) => v.toFixed(2)).join(' / ');
  const lines: string[] = [
    '# smtpq SMTP client benchmark',
    '',
    ...(results.quick
      ? ['**Quick harness check (`--quick`): tiny counts, single runs — these figures mean nothing.**', '']
      : []),
    ...(results.runsOverride
      ? [
          `**A shorter run (\`--runs ${results.runsOverride}\`): every cell ran ${results.runsOverride} time(s).**`,
          '',
        ]
      : []),
    `Written by \`npm run bench\` (bench/run.ts) on ${machine.date} in ${results.durationS?.toFixed(0) ?? '?'} s.`,
    '',
    `**Machine:** ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB RAM; Node ${machine.node};`,
    `${machine.python ?? 'no Python'}; Postfix ${machine.postfix ?? 'not installed'}; Nodemailer ${machine.nodemailer}.`,
    `Load average (1/5/15 min) before: ${load(machine.loadBefore)}; after: ${load(results.loadAfter)}.`,
    '',
    '> The machine is shared (other builds and test runs were going on at the same time) and noisy: absolute',
    '> figures move by tens of percent from run to run. Compare within a table — all clients ran in the same',
    '> bench run, interleaved — and prefer CPU per message and round trips over wall-clock rates.',
    '',
    ...targets(results),
    ...section(
      '1. Throughput over one connection — Postfix smtp-sink (PIPELINING)',
      results.throughput,
      (rows) => [
        `Messages per second, ${runsNote(rows)} (higher is better):`,
        '',
        metricTable(rows, metrics.messagesPerSecond),
        '',
        'Client CPU ms per message (lower is better):',
        '',
        metricTable(rows, metrics.cpuMsPerMessage),
        '',
        'Peak RSS of the client process, MiB (lower is better; Node clients include the runtime and modules):',
        '',
        metricTable(rows, metrics.peakRssMiB),
        '',
      ],
    ),
    ...section(
      `2. Round trips per message at ${results.rttMs} ms RTT — smtp-sink (PIPELINING) through the delay proxy`,
      results.pipelining,
      (rows) => [
        `Waits for the server per message, ${runsNote(rows)} (lower is better):`,
        '',
        metricTable(rows, metrics.waitsPerMessage),
        '',
        `RTTs per message from wall time (elapsed / ${results.rttMs} ms / messages):`,
        '',
        metricTable(rows, elapsedRoundTrips(results.rttMs)),
        '',
      ],
    ),
    ...section(
      '3. CHUNKING — private Postfix smtpd on loopback, discard transport',
      results.chunkingDirect,
      (rows) => [
        `Direct (no added latency), messages per second, ${runsNote(rows)}:`,
        '',
        metricTable(rows, metrics.messagesPerSecond),
        '',
        'Client CPU ms per message:',
        '',
        metricTable(rows, metrics.cpuMsPerMessage),
        '',
        ...(results.chunkingDelayed
          ? [
              `Through the delay proxy (${results.rttMs} ms RTT), waits for the server per message, ${runsNote(results.chunkingDelayed)}:`,
              '',
              metricTable(results.chunkingDelayed, metrics.waitsPerMessage),
              '',
              'RTTs per message from wall time:',
              '',
              metricTable(results.chunkingDelayed, elapsedRoundTrips(results.rttMs)),
              '',
            ]
          : []),
        ...(results.smtpdLog?.length
          ? ['Postfix warnings during the run:', '', '```', ...results.smtpdLog, '```', '']
          : []),
      ],
      results.chunkingDelayed,
    ),
    ...section(
      `4. Peak RSS sending one ${results.attachmentMiB} MiB attachment — smtp-sink`,
      results.rss,
      (rows) => [
        `MiB, ${runsNote(rows).replace(/ of 1 messages each/, '')}:`,
        '',
        '| client and body source | peak RSS | RSS before connect | growth (peak − before) |',
        '|---|---:|---:|---:|',
        ...rows.map((row) => {
          const client = row.outcome.spec.clients[0]!;
          const peak = median(row.outcome, client, metrics.peakRssMiB);
          const base = median(row.outcome, client, metrics.baselineRssMiB);
          const growth = peak !== undefined && base !== undefined ? peak - base : undefined;
          const failed = row.outcome.errors.has(client) ? 'failed¹' : figure(peak);
          return `| ${row.label} | ${failed} | ${figure(base)} | ${figure(growth)} |`;
        }),
        '',
        `For scale: a Node process that loaded nothing has ${figure(results.machine.bareNodeRssMiB, ' MiB')} resident here.`,
        '"Before connect" is that plus the client\'s modules (for smtpq: lib/smtp and lib/message with its',
        'dependencies — MailComposer; not the request schema and zod, which live in lib/message/schema.ts).',
        '',
      ],
    ),
    ...calibration(results),
    ...hotSpotLines(results.profiles),
    ...(results.bundles ? [results.bundles.trim(), ''] : []),
    ...methodLines(results),
    ...(results.skipped.length ? ['## Skipped', '', ...results.skipped.map((s) => `- ${s}`), ''] : []),
  ];
  return `${lines.join('\n')}\n`;
}

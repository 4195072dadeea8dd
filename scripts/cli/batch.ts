// `smtpq batch FILE`: submits every row of a CSV or JSONL file through the API, with a progress bar (rate, ETA),
// a summary, and a failures file in the input's own format (each row plus `_error` and `_idempotency_key`
// columns) to fix and feed back in. Ctrl-C stops cleanly; running the same command again resumes where it
// stopped, and nothing is ever sent twice: every row has a deterministic Idempotency-Key (see batch-state.ts),
// and a row from a failures file keeps the key it was first sent with (the API may have accepted it).
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { ApiClient, ApiError } from './api-client.ts';
import {
  BatchInputError,
  failureLine,
  failuresHeader,
  formatOf,
  type InputRow,
  readBatchInput,
} from './batch-input.ts';
import { openState, rowKey, StateMismatchError } from './batch-state.ts';
import { loadTemplate, RowError, requestFromRow, type Template } from './batch-template.ts';
import { appendHistory } from './history.ts';
import { EXIT } from './send-report.ts';
import { reportError } from './submit.ts';

interface BatchOptions {
  template?: string;
  format?: string;
  api?: string;
  concurrency: string;
  state?: string;
  failures?: string;
  restart?: boolean;
}

/** Transient failures (network, 429, 5xx) are retried this many times per row, with a growing pause. */
const RETRIES = 5;

export function register(program: Command): void {
  program
    .command('batch')
    .description('submit every row of a CSV or JSONL file (messages, or recipients for --template)')
    .argument('<file>', 'a .csv or .jsonl file')
    .option('--template <file>', 'a JSON send request with {{column}} placeholders; rows are then recipients')
    .option('--format <format>', 'csv or jsonl (default: from the file extension)')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .option('--concurrency <n>', 'requests in flight', '8')
    .option('--state <file>', 'progress file for resuming (default FILE.progress.jsonl)')
    .option('--failures <file>', 'where failed rows go (default FILE.failed.csv|jsonl)')
    .option('--restart', 'ignore an earlier progress file and start over')
    .addHelpText(
      'after',
      '\nCSV with --template: one row per recipient; columns "to" (or "email"), optional "name", and any\n' +
        'variables the template uses, and an optional "sendAt" (RFC 3339) that schedules that message. Without\n' +
        '--template each row is a request (CSV: to/cc/bcc split on ";"; a "sendAt" column schedules it too).',
    )
    .action(async (file: string, options: BatchOptions) => {
      try {
        process.exitCode = await runBatch(file, options);
      } catch (error) {
        process.exitCode = reportBatchError(error);
      }
    });
}

/** Input problems found before anything is sent: a message and EX_USAGE, never a stack trace. */
function reportBatchError(error: unknown): number {
  const code = (error as NodeJS.ErrnoException).code;
  if (error instanceof BatchInputError || error instanceof StateMismatchError || error instanceof RowError) {
    console.error(`smtpq batch: ${error.message}`);
    return EXIT.usage;
  }
  if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
    console.error(`smtpq batch: ${(error as Error).message}`);
    return EXIT.usage;
  }
  return reportError(error);
}

async function runBatch(file: string, options: BatchOptions): Promise<number> {
  const concurrency = Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    console.error('--concurrency must be an integer from 1 to 64');
    return EXIT.usage;
  }
  const format = formatOf(file, options.format);
  const loaded = options.template ? await loadTemplate(options.template) : undefined;
  const input = await readBatchInput(file, format, loaded?.text);
  const client = new ApiClient({ api: options.api });
  const base = path.join(path.dirname(file), path.basename(file, path.extname(file)));
  const stateFile = options.state ?? `${base}.progress.jsonl`;
  const failuresFile = options.failures ?? `${base}.failed.${format}`;
  const state = openState(stateFile, input.hash, input.rows.length, options.restart === true);
  const todo = input.rows.filter((row) => !state.done.has(row.n));
  if (state.done.size > 0)
    console.error(`resuming: ${state.done.size} of ${input.rows.length} rows were sent before`);

  const failures: Array<{ row: InputRow; reason: string; transient: boolean; key?: string }> = [];
  const accepted: string[] = [];
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: leave now (idempotency keys still protect a rerun)
    interrupted = true;
    process.stderr.write('\nstopping after the requests in flight… (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);

  const started = Date.now();
  let sent = 0;
  let scheduled = 0;
  const bar = new cliProgress.SingleBar(
    {
      format:
        'batch [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} | failed {failed}',
      stream: process.stderr,
      noTTYOutput: true,
      notTTYSchedule: 1_000,
      etaBuffer: 50,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(input.rows.length, state.done.size, { rate: '0.0', failed: 0 });
  const tick = () => {
    const seconds = (Date.now() - started) / 1000;
    bar.increment(1, { rate: (sent / Math.max(seconds, 0.001)).toFixed(1), failed: failures.length });
  };

  let next = 0;
  const worker = async () => {
    while (!interrupted && next < todo.length) {
      const row = todo[next++]!;
      const outcome = await submitRow(
        client,
        row,
        loaded?.template,
        format === 'csv',
        input.hash,
        () => interrupted,
      );
      if ('id' in outcome) {
        state.record(row.n, outcome.id);
        accepted.push(outcome.id);
        sent++;
        if (outcome.status === 'scheduled') scheduled++;
      } else failures.push({ row, reason: outcome.error, transient: outcome.transient, key: outcome.key });
      tick();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
  bar.stop();
  process.off('SIGINT', onSigint);
  await appendHistory(accepted);

  failures.sort((a, b) => a.row.n - b.row.n);
  if (failures.length > 0) {
    const header = failuresHeader(input);
    const lines = failures.map((f) => failureLine(input, f.row, f.reason, f.key));
    writeFileSync(failuresFile, `${[...(header ? [header] : []), ...lines].join('\n')}\n`);
  } else rmSync(failuresFile, { force: true });

  const seconds = (Date.now() - started) / 1000;
  const remaining = input.rows.length - state.done.size;
  console.log(
    `${interrupted ? 'interrupted' : 'done'}: ${sent} submitted${scheduled > 0 ? ` (${scheduled} scheduled)` : ''} in ${seconds.toFixed(1)} s ` +
      `(${(sent / Math.max(seconds, 0.001)).toFixed(1)}/s), ${state.done.size}/${input.rows.length} rows submitted in all, ` +
      `${failures.length} failed`,
  );
  for (const f of failures.slice(0, 10)) console.log(`  row ${f.row.n}: ${f.reason}`);
  if (failures.length > 10) console.log(`  … and ${failures.length - 10} more`);
  if (failures.length > 0)
    console.log(`failed rows: ${failuresFile} (fix them and run smtpq batch on that file)`);
  if (interrupted) {
    console.log(`${remaining} rows left; run the same command again to resume (progress: ${stateFile})`);
    return 130;
  }
  if (failures.length === 0) return EXIT.ok;
  return failures.some((f) => f.transient) ? EXIT.tempfail : EXIT.unavailable;
}

async function submitRow(
  client: ApiClient,
  row: InputRow,
  template: Template | undefined,
  fromCsv: boolean,
  inputHash: string,
  stopping: () => boolean,
): Promise<{ id: string; status: string } | { error: string; transient: boolean; key?: string }> {
  // A row that never reaches the API passes on the key it came with (if any): an earlier run may have sent it.
  if (!row.parsed.ok) return { error: row.parsed.error, transient: false, key: row.key };
  let request: Record<string, unknown>;
  try {
    request = requestFromRow(row.parsed.row, template, fromCsv);
  } catch (error) {
    if (error instanceof RowError) return { error: error.message, transient: false, key: row.key };
    throw error;
  }
  const key = row.key ?? rowKey(inputHash, row.n);
  for (let attempt = 0; ; attempt++) {
    try {
      const { id, status } = await client.submit(request, key);
      return { id, status };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (!error.transient || attempt >= RETRIES || stopping()) {
        return { error: error.describe(), transient: error.transient, key };
      }
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
    }
  }
}

// The progress file of `smtpq batch`: an append-only JSONL log, one line per row the API accepted
// (`{"n":12,"id":"…"}`), after a first line naming the input. Appends survive Ctrl-C and crashes; a torn last
// line is ignored. A resumed run skips the rows in it. A row that was sent but not yet logged when the run
// died is sent again with the same Idempotency-Key, so the API answers with the same id and enqueues nothing.
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export class StateMismatchError extends Error {
  readonly code = 'BATCH_STATE_MISMATCH';
}

export interface BatchState {
  /** Rows already accepted: row number → message id. */
  done: Map<number, string>;
  record(n: number, id: string): void;
}

/** The deterministic Idempotency-Key of one row of one input (file + template). */
export function rowKey(inputHash: string, n: number): string {
  return `smtpq-batch-${createHash('sha256').update(`${inputHash}:${n}`).digest('hex').slice(0, 48)}`;
}

export function openState(file: string, inputHash: string, total: number, restart: boolean): BatchState {
  const done = new Map<number, string>();
  if (existsSync(file) && !restart) {
    const lines = readFileSync(file, 'utf8').split('\n');
    const head = safeParse(lines[0] ?? '') as { hash?: string } | undefined;
    if (head?.hash !== inputHash) {
      throw new StateMismatchError(
        `${file} belongs to another input (the file or the template changed since that run); ` +
          'pass --restart to start over, or --state to keep both',
      );
    }
    for (const line of lines.slice(1)) {
      const entry = safeParse(line) as { n?: number; id?: string } | undefined;
      if (entry && typeof entry.n === 'number' && typeof entry.id === 'string') done.set(entry.n, entry.id);
    }
  } else {
    writeFileSync(file, `${JSON.stringify({ v: 1, hash: inputHash, total })}\n`);
  }
  return {
    done,
    record(n, id) {
      done.set(n, id);
      appendFileSync(file, `${JSON.stringify({ n, id })}\n`);
    },
  };
}

function safeParse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

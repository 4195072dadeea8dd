// The input of `smtpq batch`: a CSV or JSONL file whose rows are either whole send requests, or recipients
// (with their own variables) for a template. Each row becomes one request or a per-row error; nothing is
// dropped, and row numbers are stable so a resumed run skips exactly the rows already sent.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export type Row = Record<string, unknown>;

export interface InputRow {
  /** 1-based data row number (CSV: not counting the header; JSONL: not counting blank lines). */
  n: number;
  /** The original line(s), written back to the failures file unchanged. */
  raw: string;
  /** The parsed row, or why it could not be parsed. */
  parsed: { ok: true; row: Row } | { ok: false; error: string };
  /**
   * The Idempotency-Key a failures file carries for this row: the one it was first sent with. The API may
   * have accepted that send (a timeout, a 5xx), so a rerun of the failures file must not use a new key.
   */
  key?: string;
}

export interface BatchInput {
  format: 'csv' | 'jsonl';
  rows: InputRow[];
  /** CSV column names (without the error column), for the failures file. */
  columns?: string[];
  /** Hash of the file and the template: a resumed run must see the same input. */
  hash: string;
}

export class BatchInputError extends Error {
  readonly code = 'BATCH_INPUT_INVALID';
}

/** Column/key of the failures file with the reason; ignored when the failures file is fed back in. */
export const ERROR_FIELD = '_error';

/** Column/key of the failures file with the row's original Idempotency-Key; reused, never sent as data. */
export const KEY_FIELD = '_idempotency_key';

/** What the API takes as an Idempotency-Key (functions/api/idempotency-key.ts): 1–256 printable ASCII. */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,256}$/;
const BAD_KEY = `${KEY_FIELD} must be 1 to 256 printable ASCII characters`;

export function formatOf(file: string, forced?: string): 'csv' | 'jsonl' {
  const format = forced ?? path.extname(file).slice(1).toLowerCase();
  if (format === 'csv') return 'csv';
  if (format === 'jsonl' || format === 'ndjson') return 'jsonl';
  throw new BatchInputError(
    `cannot tell the format of ${file}: name it .csv or .jsonl, or pass --format csv|jsonl`,
  );
}

export async function readBatchInput(
  file: string,
  format: 'csv' | 'jsonl',
  template?: string,
): Promise<BatchInput> {
  const bytes = await readFile(file);
  const hash = createHash('sha256')
    .update(bytes)
    .update('\0')
    .update(template ?? '')
    .digest('hex');
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  return format === 'csv' ? { format, hash, ...parseCsv(text) } : { format, hash, rows: parseJsonl(text) };
}

function parseJsonl(text: string): InputRow[] {
  const rows: InputRow[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const n = rows.length + 1;
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        rows.push({ n, raw: line, parsed: { ok: false, error: 'the line is not a JSON object' } });
      } else {
        const { [ERROR_FIELD]: _ignored, [KEY_FIELD]: key, ...row } = value as Row;
        if (key === undefined) rows.push({ n, raw: line, parsed: { ok: true, row } });
        else if (typeof key === 'string' && IDEMPOTENCY_KEY.test(key))
          rows.push({ n, raw: line, parsed: { ok: true, row }, key });
        else rows.push({ n, raw: line, parsed: { ok: false, error: BAD_KEY } });
      }
    } catch (error) {
      rows.push({ n, raw: line, parsed: { ok: false, error: `not JSON: ${(error as Error).message}` } });
    }
  }
  return rows;
}

/** RFC 4180 records: quoted fields may hold commas, quotes ("") and line breaks. */
function csvRecords(text: string): Array<{ fields: string[]; raw: string }> {
  const records: Array<{ fields: string[]; raw: string }> = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let start = 0;
  let i = 0;
  const endRecord = (end: number) => {
    fields.push(field);
    const raw = text.slice(start, end);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ fields, raw });
    fields = [];
    field = '';
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      endRecord(i);
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      start = i;
      continue;
    } else field += c;
    i++;
  }
  if (quoted) throw new BatchInputError('the CSV ends inside a quoted field (a missing closing quote)');
  if (field !== '' || fields.length > 0) endRecord(text.length);
  return records;
}

export function parseCsv(text: string): { rows: InputRow[]; columns: string[] } {
  const [head, ...records] = csvRecords(text);
  if (!head) throw new BatchInputError('the CSV is empty (it needs a header row)');
  const names = head.fields.map((name) => name.trim());
  const errorColumn = names.indexOf(ERROR_FIELD);
  const keyColumn = names.indexOf(KEY_FIELD);
  const isData = (column: number) => column !== errorColumn && column !== keyColumn;
  const rows = records.map((record, index): InputRow => {
    const n = index + 1;
    if (record.fields.length !== names.length) {
      return {
        n,
        raw: record.raw,
        parsed: {
          ok: false,
          error: `row has ${record.fields.length} fields, the header has ${names.length}`,
        },
      };
    }
    const row: Row = {};
    names.forEach((name, column) => {
      if (isData(column) && name !== '') row[name] = record.fields[column];
    });
    const key = keyColumn < 0 ? '' : record.fields[keyColumn]!;
    if (key === '') return { n, raw: record.raw, parsed: { ok: true, row } };
    if (!IDEMPOTENCY_KEY.test(key)) return { n, raw: record.raw, parsed: { ok: false, error: BAD_KEY } };
    return { n, raw: record.raw, parsed: { ok: true, row }, key };
  });
  return { rows, columns: names.filter((_, column) => isData(column)) };
}

/** A CSV field, quoted when it has to be. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The first line of the failures file (CSV only): the input's columns plus the error and key columns. */
export function failuresHeader(input: BatchInput): string | undefined {
  return input.columns ? [...input.columns, ERROR_FIELD, KEY_FIELD].map(csvField).join(',') : undefined;
}

/**
 * One failures-file line: the original row with the reason added, so the file can be fed back in, and the
 * Idempotency-Key the row was sent with (`key`; none for a row that never reached the API), reused then.
 */
export function failureLine(input: BatchInput, row: InputRow, reason: string, key?: string): string {
  const { parsed } = row;
  if (input.format === 'jsonl') {
    return JSON.stringify({
      ...(parsed.ok ? parsed.row : { raw: row.raw }),
      [ERROR_FIELD]: reason,
      ...(key === undefined ? {} : { [KEY_FIELD]: key }),
    });
  }
  if (!parsed.ok) return [row.raw, csvField(reason), csvField(key ?? '')].join(',');
  const values = input.columns!.map((name) => String(parsed.row[name] ?? ''));
  return [...values, reason, key ?? ''].map(csvField).join(',');
}

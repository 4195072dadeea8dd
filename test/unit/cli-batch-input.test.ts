// smtpq batch input: CSV (RFC 4180 quoting), JSONL, templates, failures lines that can be fed back in,
// and deterministic idempotency keys.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchInputError,
  csvField,
  failureLine,
  failuresHeader,
  formatOf,
  parseCsv,
  readBatchInput,
} from '../../scripts/cli/batch-input.ts';
import { rowKey } from '../../scripts/cli/batch-state.ts';
import { RowError, requestFromRow } from '../../scripts/cli/batch-template.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'smtpq-batch-unit-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function input(name: string, text: string, template?: string) {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return readBatchInput(file, formatOf(file), template);
}

describe('CSV input', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks, CRLF rows and a BOM', async () => {
    const parsed = await input(
      'a.csv',
      '\uFEFFemail,name,note\r\nx@example.com,"Doe, Jane","said ""hi""\nthen left"\r\ny@example.com,Bob,\r\n',
    );
    expect(parsed.columns).toEqual(['email', 'name', 'note']);
    expect(parsed.rows.map((r) => r.parsed)).toEqual([
      { ok: true, row: { email: 'x@example.com', name: 'Doe, Jane', note: 'said "hi"\nthen left' } },
      { ok: true, row: { email: 'y@example.com', name: 'Bob', note: '' } },
    ]);
    expect(parsed.rows.map((r) => r.n)).toEqual([1, 2]);
  });

  it('reports a row with the wrong number of fields instead of dropping it', async () => {
    const parsed = await input('b.csv', 'email,name\nx@example.com\n');
    expect(parsed.rows[0]!.parsed).toEqual({ ok: false, error: 'row has 1 fields, the header has 2' });
  });

  it('rejects an unterminated quote and an empty file with a typed error', async () => {
    await expect(input('c.csv', 'email\n"x@example.com\n')).rejects.toBeInstanceOf(BatchInputError);
    await expect(input('d.csv', '')).rejects.toBeInstanceOf(BatchInputError);
  });

  it('round-trips any fields through csvField', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary' }), { minLength: 2, maxLength: 4 }), (fields) => {
        const header = fields.map((_, i) => `c${i}`).join(',');
        const { rows } = parseCsv(`${header}\n${fields.map(csvField).join(',')}\n`);
        expect(rows[0]?.parsed).toEqual({
          ok: true,
          row: Object.fromEntries(fields.map((f, i) => [`c${i}`, f])),
        });
      }),
    );
  });

  it('writes failures that read back as the same rows, with the reason in _error', async () => {
    const parsed = await input('e.csv', 'email,name\n"a,b@example.com",Ann\n');
    const failures = `${failuresHeader(parsed)}\n${failureLine(parsed, parsed.rows[0]!, 'HTTP 400 bad "address"')}\n`;
    const again = await input('e.failed.csv', failures);
    expect(again.columns).toEqual(['email', 'name']);
    expect(again.rows[0]!.parsed).toEqual({ ok: true, row: { email: 'a,b@example.com', name: 'Ann' } });
  });

  it("keeps a failed row's Idempotency-Key through the failures file, out of the request data", async () => {
    const parsed = await input('k.csv', 'email,name\nann@example.com,Ann\nbob@example.com,Bob\n');
    const sentWith = rowKey(parsed.hash, 1);
    const failures = [
      failuresHeader(parsed),
      failureLine(parsed, parsed.rows[0]!, 'HTTP 503 unavailable', sentWith),
      failureLine(parsed, parsed.rows[1]!, 'the template uses {{code}}, the row has no code'),
    ].join('\n');
    const again = await input('k.failed.csv', `${failures}\n`);
    expect(again.columns).toEqual(['email', 'name']);
    expect(again.rows[0]!.parsed).toEqual({ ok: true, row: { email: 'ann@example.com', name: 'Ann' } });
    expect(again.rows[0]!.key).toBe(sentWith);
    // A row that never reached the API has no key: its rerun gets a fresh one.
    expect(again.rows[1]!.key).toBeUndefined();
    // And a second failure of the rerun writes the same key again.
    const third = await input(
      'k.failed.failed.csv',
      `${failuresHeader(again)}\n${failureLine(again, again.rows[0]!, 'timeout', again.rows[0]!.key)}\n`,
    );
    expect(third.rows[0]!.key).toBe(sentWith);
  });

  it('rejects a row whose _idempotency_key the API would refuse, instead of sending it', async () => {
    const parsed = await input('l.csv', `email,_idempotency_key\nann@example.com,${'k'.repeat(257)}\n`);
    expect(parsed.rows[0]!.parsed).toEqual({
      ok: false,
      error: '_idempotency_key must be 1 to 256 printable ASCII characters',
    });
  });
});

describe('JSONL input', () => {
  it('skips blank lines, reports lines that are not objects, and ignores _error', async () => {
    const parsed = await input('f.jsonl', '{"from":"a@example.com","_error":"old"}\n\n[1]\nnot json\n');
    expect(parsed.rows.map((r) => [r.n, r.parsed.ok])).toEqual([
      [1, true],
      [2, false],
      [3, false],
    ]);
    expect(parsed.rows[0]!.parsed).toEqual({ ok: true, row: { from: 'a@example.com' } });
  });

  it("keeps a failed row's Idempotency-Key through the failures file, out of the request data", async () => {
    const parsed = await input('k.jsonl', '{"from":"a@example.com","to":["b@example.com"]}\n');
    const sentWith = rowKey(parsed.hash, 1);
    const line = failureLine(parsed, parsed.rows[0]!, 'network error', sentWith);
    const again = await input('k.failed.jsonl', `${line}\n`);
    expect(again.rows[0]!.parsed).toEqual({
      ok: true,
      row: { from: 'a@example.com', to: ['b@example.com'] },
    });
    expect(again.rows[0]!.key).toBe(sentWith);
    const bad = await input('m.jsonl', '{"from":"a@example.com","_idempotency_key":"a\\r\\nb"}\n');
    expect(bad.rows[0]!.parsed.ok).toBe(false);
    expect(bad.rows[0]!.key).toBeUndefined();
  });

  it('hashes the template with the file, so another template means another run', async () => {
    const a = await input('g.jsonl', '{}\n', '{"subject":"a"}');
    const b = await input('g.jsonl', '{}\n', '{"subject":"b"}');
    expect(a.hash).not.toBe(b.hash);
    expect(rowKey(a.hash, 1)).toBe(rowKey(a.hash, 1));
    expect(rowKey(a.hash, 1)).not.toBe(rowKey(a.hash, 2));
    expect(rowKey(a.hash, 1).length).toBeLessThanOrEqual(256);
  });

  it('needs a known extension or --format', () => {
    expect(() => formatOf('list.txt')).toThrow(BatchInputError);
    expect(formatOf('list.txt', 'jsonl')).toBe('jsonl');
  });
});

describe('templates', () => {
  const template = {
    from: 'News <news@example.com>',
    to: ['ignored@example.com'],
    subject: 'Hi {{ name }}',
    text: 'Code {{code}}',
    html: '<p>{{name}}</p>',
  };

  it('fills placeholders, escaping values only in html, and takes the recipient from the row', () => {
    const request = requestFromRow({ email: 'x@example.com', name: 'A <b>&', code: '7' }, template, true);
    expect(request).toEqual({
      from: 'News <news@example.com>',
      subject: 'Hi A <b>&',
      text: 'Code 7',
      html: '<p>A &lt;b&gt;&amp;</p>',
      to: [{ name: 'A <b>&', address: 'x@example.com' }],
    });
  });

  it('fails a row that lacks a recipient or a variable the template uses', () => {
    expect(() => requestFromRow({ name: 'A', code: '1' }, template, true)).toThrow(RowError);
    expect(() => requestFromRow({ email: 'x@example.com', name: 'A' }, template, true)).toThrow(
      /\{\{code\}\}/,
    );
  });

  it('turns a CSV row without template into a request, splitting address lists on ";"', () => {
    expect(
      requestFromRow(
        { from: 'a@example.com', to: 'b@example.com; c@example.com', cc: '', subject: 's' },
        undefined,
        true,
      ),
    ).toEqual({ from: 'a@example.com', to: ['b@example.com', 'c@example.com'], subject: 's' });
  });
});

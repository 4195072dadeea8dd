// Turns one batch row into a send request: either the row is the request, or it is a recipient whose
// columns fill a template's {{placeholders}}. Values go into `html` HTML-escaped, elsewhere verbatim (the API
// still rejects CR/LF where a header would carry them).
import { readFile } from 'node:fs/promises';
import type { Row } from './batch-input.ts';

export class RowError extends Error {
  readonly code = 'ROW_INVALID';
}

export type Template = Record<string, unknown>;

export async function loadTemplate(file: string): Promise<{ template: Template; text: string }> {
  const text = await readFile(file, 'utf8');
  let template: unknown;
  try {
    template = JSON.parse(text);
  } catch (error) {
    throw new RowError(`the template ${file} is not JSON: ${(error as Error).message}`);
  }
  if (typeof template !== 'object' || template === null || Array.isArray(template)) {
    throw new RowError(`the template ${file} must be a JSON object (a send request with {{placeholders}})`);
  }
  return { template: template as Template, text };
}

const ADDRESS_LISTS = ['to', 'cc', 'bcc', 'replyTo'] as const;
const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g;

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function fill(text: string, vars: Row, htmlEscape: boolean): string {
  return text.replace(PLACEHOLDER, (_, name: string) => {
    const value = vars[name];
    if (value === undefined || value === null)
      throw new RowError(`the template uses {{${name}}}, the row has no ${name}`);
    const plain = String(value);
    return htmlEscape ? plain.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!) : plain;
  });
}

function fillDeep(value: unknown, vars: Row, htmlEscape: boolean): unknown {
  if (typeof value === 'string') return fill(value, vars, htmlEscape);
  if (Array.isArray(value)) return value.map((item) => fillDeep(item, vars, htmlEscape));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, fillDeep(item, vars, htmlEscape)]),
    );
  }
  return value;
}

/** A CSV cell holding several addresses: separated by ";" (a comma can be part of a display name). */
function addressCell(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return value
    .split(';')
    .map((a) => a.trim())
    .filter((a) => a !== '');
}

/** The send request for one row. `fromCsv`: cells are strings, so address lists are split and blanks dropped. */
export function requestFromRow(
  row: Row,
  template: Template | undefined,
  fromCsv: boolean,
): Record<string, unknown> {
  if (!template) {
    if (!fromCsv) return row;
    const request: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(row)) {
      if (value === '' || value === undefined) continue;
      request[key] = (ADDRESS_LISTS as readonly string[]).includes(key) ? addressCell(value) : value;
    }
    return request;
  }
  const address = row.to ?? row.email ?? row.address;
  if (typeof address !== 'string' || address.trim() === '') {
    throw new RowError('the row has no recipient (a "to", "email" or "address" column)');
  }
  const name = typeof row.name === 'string' && row.name.trim() !== '' ? row.name.trim() : undefined;
  const request: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(template)) {
    if (key === 'to') continue;
    request[key] = fillDeep(value, row, key === 'html');
  }
  request.to = [name ? { name, address: address.trim() } : address.trim()];
  // A row's own send time (a `sendAt` column) schedules that message, whatever the template says.
  if (typeof row.sendAt === 'string' && row.sendAt.trim() !== '') request.sendAt = row.sendAt.trim();
  return request;
}

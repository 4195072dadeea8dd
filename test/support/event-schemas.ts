// The event schemas of functions/events/schemas/, compiled once: validateEvent(event) lists what is wrong.
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const dir = new URL('../../functions/events/schemas/', import.meta.url);
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats.default(ajv);
const validators = new Map(
  readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => [f.replace(/\.json$/, ''), ajv.compile(JSON.parse(readFileSync(new URL(f, dir), 'utf8')))]),
);

export const SCHEMA_TYPES = [...validators.keys()];

/** The problems of `event` against the schema of its type ([] when valid). */
export function validateEvent(event: { type?: unknown }): string[] {
  const validate = validators.get(String(event.type));
  if (!validate) return [`no schema for type ${String(event.type)}`];
  if (validate(event)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '(event)'} ${e.message}`);
}

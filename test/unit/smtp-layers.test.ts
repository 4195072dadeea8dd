// lib/smtp's layering, held to its README: the module map lists every file in reading order, each file
// imports only files listed above it, and no file is over 300 lines. (Biome's noImportCycles catches a
// cycle anywhere; this catches a file that imports one below it, which a cycle-free graph still allows.)
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = join(import.meta.dirname, '../../lib/smtp');
const readme = readFileSync(join(dir, 'README.md'), 'utf8');
const order = [...readme.matchAll(/^\d+\. `([a-z-]+\.ts)`/gm)].map((m) => m[1]!);
const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
const source = (file: string) => readFileSync(join(dir, file), 'utf8');
const imports = (file: string) =>
  [...source(file).matchAll(/from '\.\/([a-z-]+\.ts)'/g)].map((m) => m[1]!).filter((f) => f !== file);

describe('lib/smtp layering', () => {
  it('the README lists every file once, in reading order', () => {
    expect([...order].sort()).toEqual([...files].sort());
  });

  it('each file imports only files listed above it', () => {
    const below = files.flatMap((file) =>
      imports(file)
        .filter((target) => order.indexOf(target) > order.indexOf(file))
        .map((target) => `${file} → ${target}`),
    );
    expect(below).toEqual([]);
  });

  it('no file is over 300 lines', () => {
    const long = files.filter((file) => source(file).split('\n').length > 301);
    expect(long).toEqual([]);
  });
});

// The pipeline part of bench/RESULTS.md lies between two markers: bench:pipeline replaces only that part,
// and `npm run bench`, which rewrites the rest of the file, carries it over.
import { readFile } from 'node:fs/promises';

export const BEGIN =
  '<!-- pipeline:begin (npm run bench:pipeline writes this part; npm run bench keeps it) -->';
export const END = '<!-- pipeline:end -->';

/** `text` with the pipeline block replaced by `block` (appended when there is none). */
export function spliceSection(text: string, block: string): string {
  const start = text.indexOf(BEGIN.slice(0, 20));
  const end = text.indexOf(END);
  if (start >= 0 && end > start) return `${text.slice(0, start)}${block}${text.slice(end + END.length)}`;
  return `${text.trimEnd()}\n\n${block}\n`;
}

/** The pipeline block of the file, if it has one (for `npm run bench` to carry over). */
export async function existingSection(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const start = text.indexOf(BEGIN.slice(0, 20));
  const end = text.indexOf(END);
  return start >= 0 && end > start ? text.slice(start, end + END.length) : undefined;
}

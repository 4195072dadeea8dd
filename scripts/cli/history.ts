// The ids this machine submitted (`smtpq submit`, `smtpq batch`), so `smtpq tail` can follow them against a
// deployed API, which has no list route. ~/.smtpq/history.jsonl, or SMTPQ_HISTORY.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

function historyFile(): string {
  return process.env.SMTPQ_HISTORY ?? path.join(homedir(), '.smtpq', 'history.jsonl');
}

export async function appendHistory(ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const file = historyFile();
  await mkdir(path.dirname(file), { recursive: true });
  const at = new Date().toISOString();
  await appendFile(file, ids.map((id) => `${JSON.stringify({ id, at })}\n`).join(''));
}

/** The most recent `limit` ids, newest last. */
export async function recentHistory(limit: number): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(historyFile(), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const ids: string[] = [];
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { id?: unknown };
      if (typeof entry.id === 'string') ids.push(entry.id);
    } catch {
      // a torn line from an interrupted write
    }
  }
  return [...new Set(ids.reverse())].slice(0, limit).reverse();
}

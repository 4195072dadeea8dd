// CPU profile of the measured phase of a client (measure.ts starts the V8 profiler when
// BENCH_CPU_PROFILE names a file) and its hot spots: self time per function, highest first.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  name: string;
  /** file:line relative to the project, `node:…` for Node's own code. */
  location: string;
  selfMs: number;
  percent: number;
}

const projectRoot = fileURLToPath(new URL('../', import.meta.url));

/** Source maps of the bundles (bench/.build/*.mjs.map), loaded once each. */
const sourceMaps = new Map<string, SourceMap | undefined>();

async function sourceMapOf(file: string): Promise<SourceMap | undefined> {
  if (!sourceMaps.has(file)) {
    const mapFile = `${file}.map`;
    sourceMaps.set(
      file,
      existsSync(mapFile) ? new SourceMap(JSON.parse(await readFile(mapFile, 'utf8'))) : undefined,
    );
  }
  return sourceMaps.get(file);
}

/** file:line relative to the project; positions inside a bundle are mapped back to the TypeScript source. */
async function location(frame: ProfileNode['callFrame']): Promise<string> {
  if (frame.url === '') return '(native)';
  if (!frame.url.startsWith('file://')) return `${frame.url}:${frame.lineNumber + 1}`;
  const file = fileURLToPath(frame.url);
  const entry = (await sourceMapOf(file))?.findEntry(frame.lineNumber, frame.columnNumber);
  if (entry && 'originalSource' in entry && entry.originalSource) {
    const source = entry.originalSource.startsWith('file://')
      ? fileURLToPath(entry.originalSource)
      : resolve(file, '..', entry.originalSource);
    return `${relative(projectRoot, source)}:${entry.originalLine + 1}`;
  }
  return `${relative(projectRoot, file)}:${frame.lineNumber + 1}`;
}

export interface Profile {
  /** Self time per function, highest first. */
  functions: HotSpot[];
  /** Self time per source file (`(native)` for V8/libuv work: syscalls, GC), highest first. */
  files: Array<{ file: string; selfMs: number; percent: number }>;
}

export async function hotSpots(profileFile: string, top: number): Promise<Profile> {
  const profile = JSON.parse(await readFile(profileFile, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const where = new Map<number, string>();
  for (const node of profile.nodes) where.set(node.id, await location(node.callFrame));
  const byFunction = new Map<string, { name: string; location: string; us: number }>();
  const byFile = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[index] ?? 0;
    if (node === undefined) return;
    const name = node.callFrame.functionName || '(anonymous)';
    // Idle time is the event loop waiting for the server, not work.
    if (name === '(idle)') return;
    const loc = where.get(id)!;
    const key = `${name}@${loc}`;
    const entry = byFunction.get(key) ?? { name, location: loc, us: 0 };
    entry.us += delta;
    byFunction.set(key, entry);
    const file = loc.replace(/:\d+$/, '');
    byFile.set(file, (byFile.get(file) ?? 0) + delta);
    totalUs += delta;
  });
  const share = (us: number) => (totalUs === 0 ? 0 : (100 * us) / totalUs);
  return {
    functions: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((entry) => ({
        name: entry.name,
        location: entry.location,
        selfMs: entry.us / 1000,
        percent: share(entry.us),
      })),
    files: [...byFile]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([file, us]) => ({ file, selfMs: us / 1000, percent: share(us) })),
  };
}

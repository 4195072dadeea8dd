// CPU profile of the measured phase of a client (measure.ts starts the V8 profiler when
// BENCH_CPU_PROFILE names a file) and its hot spots: self time per function, highest first.
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
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

function location(url: string, line: number): string {
  if (url === '') return '(native)';
  const path = url.startsWith('file://') ? relative(projectRoot, fileURLToPath(url)) : url;
  return `${path}:${line + 1}`;
}

export async function hotSpots(profileFile: string, top: number): Promise<HotSpot[]> {
  const profile = JSON.parse(await readFile(profileFile, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<string, { name: string; location: string; us: number }>();
  let totalUs = 0;
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[index] ?? 0;
    if (node === undefined) return;
    const frame = node.callFrame;
    const name = frame.functionName || '(anonymous)';
    const where = location(frame.url, frame.lineNumber);
    const key = `${name}@${where}`;
    const entry = selfUs.get(key) ?? { name, location: where, us: 0 };
    entry.us += delta;
    selfUs.set(key, entry);
    totalUs += delta;
  });
  return [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((entry) => ({
      name: entry.name,
      location: entry.location,
      selfMs: entry.us / 1000,
      percent: totalUs === 0 ? 0 : (100 * entry.us) / totalUs,
    }));
}

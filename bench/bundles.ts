// The deployable bundles: their sizes and how long a fresh Node process takes to import each one (what a
// Lambda cold start pays for our code before the first event). Measured for the shipped build (AWS SDK
// bundled) and, for comparison, with the SDK left external (as if taken from the runtime's copy).
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
// @ts-expect-error: scripts/build.mjs is plain JavaScript without type declarations.
import { buildBundles } from '../scripts/build.mjs';

interface BundleOutput {
  name: string;
  file: string;
  bytes: number;
  gzipBytes: number;
  mapBytes: number;
}

const root = fileURLToPath(new URL('../', import.meta.url));

/** Enough configuration for both handlers' cold-start validation; nothing is contacted during import. */
const handlerEnv = {
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  BUCKET_NAME: 'smtpq-bench',
  QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/smtpq-bench',
  SMTP_HOST: 'relay.example.com',
  POWERTOOLS_METRICS_NAMESPACE: 'smtpq',
};

/** Milliseconds from `import()` start to the module (and its cold-start setup) being ready, in a new process. */
function coldImportMs(file: string, nodeArgs: string[]): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(file).href)});
process.stdout.write(String(performance.now() - t));`;
  const child = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...handlerEnv },
    timeout: 60_000,
  });
  const ms = Number(child.stdout);
  if (child.status !== 0 || !Number.isFinite(ms)) {
    throw new Error(`importing ${file} failed: ${child.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** Builds both variants, measures them (`runs` cold imports each), and returns a markdown section. */
export async function measureBundles(runs = 7): Promise<string> {
  // Under the project (ignored by git) so the external-SDK variant resolves @aws-sdk from node_modules.
  await mkdir(join(root, '.smtpq'), { recursive: true });
  const scratch = await mkdtemp(join(root, '.smtpq', 'bench-bundles-'));
  try {
    const bundled = await buildBundles({ outdir: join(scratch, 'bundled') });
    const external = await buildBundles({ outdir: join(scratch, 'external'), externalSdk: true });
    const variants: Array<{ label: string; outputs: BundleOutput[]; nodeArgs: string[] }> = [
      // infra/template.yaml sets NODE_OPTIONS=--enable-source-maps: this row is the deployed configuration.
      { label: 'shipped, --enable-source-maps', outputs: bundled, nodeArgs: ['--enable-source-maps'] },
      { label: 'shipped, no source maps', outputs: bundled, nodeArgs: [] },
      { label: 'SDK external (comparison)', outputs: external, nodeArgs: [] },
    ];
    const rows: string[] = [];
    for (const { label, outputs, nodeArgs } of variants) {
      for (const output of outputs) {
        const times = Array.from({ length: runs }, () => coldImportMs(output.file, nodeArgs));
        rows.push(
          `| ${output.name} | ${label} | ${kib(output.bytes)} | ${kib(output.gzipBytes)} | ${kib(output.mapBytes)} | ` +
            `${median(times).toFixed(0)} ms | ${Math.min(...times).toFixed(0)}–${Math.max(...times).toFixed(0)} ms |`,
        );
      }
    }
    return [
      '## Lambda bundles',
      '',
      `esbuild (ESM, minified, target node20, source maps) as \`npm run build\` makes them. Cold import: time from`,
      `\`import()\` to the handler module being ready (configuration validated, AWS clients built), in a fresh`,
      `\`node ${process.version}\` process each time; median of ${runs} runs, with the range. The external-SDK`,
      'rows import the SDK from node_modules here; on Lambda it would come from the runtime instead.',
      '',
      '| function | build | bundle | gzip | source map | cold import (median) | range |',
      '|---|---|---:|---:|---:|---:|---:|',
      ...rows,
      '',
    ].join('\n');
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

// npm run build: bundles the Lambda handlers with esbuild, the same way SAM's esbuild build method does for a
// deploy (infra/template.yaml), into dist/<name>/index.mjs for each of FUNCTIONS, and prints sizes.
//
// The AWS SDK is bundled, not left to the runtime's copy (nodejs24.x ships SDK v3 too). The ledger and the
// idempotency keys depend on DynamoDB conditional writes: bundling pins the SDK version the tests ran against
// (a runtime's SDK changes under the function without notice); bench/RESULTS.md measures what that costs in
// size and cold import time.
import { readFile, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

/** functions/<name>/index.ts for each function of infra/template.yaml (events and webhook: the ledger's stream
 *  to the bus, and the bus to the webhook URL). */
export const FUNCTIONS = ['api', 'worker', 'events', 'webhook'];

/** esbuild options shared by every handler bundle. */
export function bundleOptions({ externalSdk = false } = {}) {
  return {
    bundle: true,
    platform: 'node',
    format: 'esm',
    // nodejs24.x runs anything targeting node20; node20 is also the oldest Node the project supports.
    target: 'node20',
    minify: true,
    sourcemap: true,
    outExtension: { '.js': '.mjs' },
    // Bundled CommonJS dependencies still call require(); ESM has none, so give them Node's.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    external: externalSdk ? ['@aws-sdk/*', '@smithy/*'] : [],
    logLevel: 'warning',
  };
}

/** Builds dist/<name>/index.mjs (+ .map) for each function; returns the output files with their sizes. */
export async function buildBundles({ outdir = join(root, 'dist'), externalSdk = false } = {}) {
  await rm(outdir, { recursive: true, force: true });
  const outputs = [];
  for (const name of FUNCTIONS) {
    const outfile = join(outdir, name, 'index.mjs');
    await build({
      ...bundleOptions({ externalSdk }),
      entryPoints: [join(root, 'functions', name, 'index.ts')],
      outfile,
    });
    const bytes = (await stat(outfile)).size;
    const gzipBytes = gzipSync(await readFile(outfile)).length;
    const mapBytes = (await stat(`${outfile}.map`)).size;
    outputs.push({ name, file: outfile, bytes, gzipBytes, mapBytes });
  }
  return outputs;
}

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const outputs = await buildBundles();
  for (const { file, bytes, gzipBytes, mapBytes } of outputs) {
    console.log(
      `${relative(root, file)}  ${kib(bytes)} (gzip ${kib(gzipBytes)}), source map ${kib(mapBytes)}`,
    );
  }
}

// Bundles the Node benchmark clients with esbuild into bench/.build, so each child runs as plain
// JavaScript: no TypeScript loader in the measured process (it would add its own CPU and memory).
// npm packages stay external and load from node_modules, as they would in an application.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export type NodeClient = 'smtpq' | 'nodemailer';

const benchDir = fileURLToPath(new URL('./', import.meta.url));

/** The bundle of each client, or the reason it could not be built (for example lib/smtp not there yet). */
export async function buildClients(): Promise<Map<NodeClient, { file: string } | { error: string }>> {
  const built = new Map<NodeClient, { file: string } | { error: string }>();
  for (const client of ['smtpq', 'nodemailer'] as const) {
    const outfile = `${benchDir}.build/${client}.mjs`;
    try {
      await build({
        entryPoints: [`${benchDir}clients/${client}.ts`],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        packages: 'external',
        // Not used at run time; profile.ts maps the profiler's positions back to lib/smtp/*.ts with it.
        sourcemap: true,
        logLevel: 'silent',
      });
      built.set(client, { file: outfile });
    } catch (error) {
      built.set(client, { error: buildError(error) });
    }
  }
  return built;
}

/** esbuild's first error with its location ("Could not resolve … (bench/clients/smtpq.ts:5)"). */
function buildError(error: unknown): string {
  const first = (error as { errors?: Array<{ text: string; location?: { file: string; line: number } }> })
    .errors?.[0];
  if (first === undefined) return error instanceof Error ? error.message : String(error);
  const where = first.location ? ` (${first.location.file}:${first.location.line})` : '';
  return `${first.text}${where}`;
}

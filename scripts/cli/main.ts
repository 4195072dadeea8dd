// Entry point of the `smtpq` CLI: each sub-command lives in its own module and registers itself here.
import { Command } from 'commander';

const program = new Command('smtpq')
  .description('smtpq: serverless email sending through our own SMTP client')
  .version('0.1.0')
  .showHelpAfterError();

// Sub-commands (each module exports `register(program: Command): void`):
const modules: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import('./dev.ts'),
  () => import('./send.ts'),
  () => import('./submit.ts'),
  () => import('./batch.ts'),
  () => import('./status.ts'),
  () => import('./transcript.ts'),
  () => import('./tail.ts'),
];
for (const load of modules) (await load()).register(program);

await program.parseAsync(process.argv);

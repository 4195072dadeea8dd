// Entry point of the `smtpq` CLI: each sub-command lives in its own module and registers itself here.
import { Command, type CommanderError } from 'commander';
import { EXIT } from './send-report.ts';

const program = new Command('smtpq')
  .description('smtpq: serverless email sending through our own SMTP client')
  .version('0.1.0')
  .showHelpAfterError()
  // Commander's usage errors (unknown flag, missing argument or option, no sub-command) exit 64 (EX_USAGE),
  // like the commands' own; --help and --version still exit 0. Set before the modules register, so every
  // sub-command inherits it.
  .exitOverride((error: CommanderError) => process.exit(error.exitCode === 0 ? EXIT.ok : EXIT.usage));

// Sub-commands (each module exports `register(program: Command): void`):
const modules: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import('./dev.ts'),
  () => import('./send.ts'),
  () => import('./submit.ts'),
  () => import('./batch.ts'),
  () => import('./status.ts'),
  () => import('./transcript.ts'),
  () => import('./tail.ts'),
  () => import('./list.ts'),
  () => import('./cancel.ts'),
  () => import('./events.ts'),
  () => import('./webhook.ts'),
  () => import('./suppressions.ts'),
  () => import('./dkim.ts'),
];
for (const load of modules) (await load()).register(program);

await program.parseAsync(process.argv);

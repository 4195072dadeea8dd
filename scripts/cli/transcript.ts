// `smtpq transcript ID [--attempt N]`: the SMTP transcript of a delivery attempt (the latest by default).
import type { Command } from 'commander';
import { ApiClient } from './api-client.ts';
import { reportError, UsageError } from './submit.ts';
import { safeLines } from './terminal.ts';

export function register(program: Command): void {
  program
    .command('transcript')
    .description('print the SMTP transcript of a delivery attempt')
    .argument('<id>', 'message id')
    .option('--attempt <n>', 'attempt number (default: the latest)')
    .option('--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)')
    .action(async (id: string, options: { api?: string; attempt?: string }) => {
      try {
        const attempt = options.attempt === undefined ? undefined : Number(options.attempt);
        if (attempt !== undefined && (!Number.isInteger(attempt) || attempt < 1)) {
          throw new UsageError('--attempt must be a whole number from 1');
        }
        // The relay's replies, as it sent them, but with no control character left to drive the terminal.
        process.stdout.write(safeLines(await new ApiClient({ api: options.api }).transcript(id, attempt)));
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

// `smtpq dev` (= `npm run dev`): runs the whole system locally until Ctrl-C. See scripts/local/dev.ts.
import type { Command } from 'commander';

interface DevCliOptions {
  port?: string;
  smtpPort?: string;
  dataDir?: string;
  realAws?: boolean;
}

function portOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`${flag} must be a port number (0-65535)`);
  return port;
}

export function register(program: Command): void {
  program
    .command('dev')
    .description('run smtpq locally: AWS emulator, API, worker, dev SMTP server and the dev inbox')
    .option('--port <port>', 'API and inbox port (default $PORT or 3000; 0 = any free port)')
    .option('--smtp-port <port>', 'dev SMTP server port (default $SMTP_DEV_PORT or 2525; 0 = any free port)')
    .option(
      '--data-dir <dir>',
      'where mail, certificates and state live (default $SMTPQ_DATA_DIR or .smtpq/)',
    )
    .option(
      '--real-aws',
      'use real AWS in $AWS_REGION (credentials from the AWS chain) instead of an emulator',
    )
    .action(async (options: DevCliOptions) => {
      // The SDK warns that its 2027 releases need Node 22; smtpq supports Node 20 until then, and the warning
      // would sit in the middle of the banner.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const { startDev } = await import('../local/dev.ts');
      // Ctrl-C while starting (the first run may be installing moto): the children go with this process
      // (moto exits when its parent does; pip gets the same SIGINT), so say so and what to do next.
      const interruptedStart = () => {
        console.error(
          '\nsmtpq dev: interrupted while starting; nothing is left running. Run `npm run dev` again: it picks up where this one stopped (a half-done moto install included).',
        );
        process.exit(130);
      };
      process.once('SIGINT', interruptedStart);
      let stack: Awaited<ReturnType<typeof startDev>>;
      try {
        stack = await startDev({
          port: portOption(options.port, '--port'),
          smtpPort: portOption(options.smtpPort, '--smtp-port'),
          dataDir: options.dataDir,
          ...(options.realAws ? { realAws: true } : {}),
        });
      } catch (error) {
        console.error(`smtpq dev: ${(error as Error).message}`);
        process.exit(1);
      }
      process.off('SIGINT', interruptedStart);
      let stopping = false;
      const shutdown = (signal: NodeJS.Signals) => {
        if (stopping) {
          console.error('stopping now');
          process.exit(130);
        }
        stopping = true;
        console.error(`\n${signal}: stopping (Ctrl-C again to force)…`);
        stack.stop().then(
          () => {
            console.error('stopped.');
            process.exit(0);
          },
          (error: Error) => {
            console.error(`smtpq dev: ${error.message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', shutdown);
      process.on('SIGTERM', shutdown);
    });
}

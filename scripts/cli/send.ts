// `smtpq send`: compose one message (lib/message) and deliver it straight over SMTP (lib/smtp), no queue.
// Prints the session transcript and each recipient's outcome; the exit code says what happened (send-report.ts).
import type { Command } from 'commander';
import { composeMessage, MessageError } from '../../lib/message/index.ts';
import { createTranscript, sendWithRetry } from '../../lib/smtp/index.ts';
import { planSend, type SendFlags, UsageError } from './send-args.ts';
import { EXIT, exitCodeOf, formatText, toJson } from './send-report.ts';
import { safe, safeJson } from './terminal.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

/** Short back-offs only: the CLI waits in the foreground (1 s, then up to 2 s, 4 s … capped at 10 s, jittered). */
const BACKOFF = { baseDelayMs: 1000, maxDelayMs: 10_000 };

export function register(program: Command): void {
  program
    .command('send')
    .description('send one message directly over SMTP with the smtpq client (prints the transcript)')
    .requiredOption('--server <url>', 'SMTP server, smtp://HOST:PORT (smtps:// for implicit TLS)')
    .option('--tls <mode>', 'starttls | implicit | none (default: starttls; implicit for smtps://)')
    .option('--no-require-tls', 'with starttls: go on in plaintext if the server offers no STARTTLS')
    .option('--ca <file>', "the CA certificate to trust (PEM): replaces Node's trust store")
    .option('--user <user>', 'AUTH user name')
    .option('--password-env <var>', 'name of the environment variable holding the AUTH password')
    .requiredOption('--from <address>', 'sender, e.g. "Alice <alice@example.com>"')
    .option('--to <address>', 'recipient (repeatable)', collect, [])
    .option('--cc <address>', 'copy recipient (repeatable)', collect, [])
    .option('--bcc <address>', 'blind copy recipient, never in the headers (repeatable)', collect, [])
    .requiredOption('--subject <text>', 'subject')
    .option('--text <text>', 'plain-text body')
    .option('--text-file <file>', 'plain-text body from a file')
    .option('--html-file <file>', 'HTML body from a file')
    .option('--attach <file>', 'attach a file (repeatable)', collect, [])
    .option('--json', 'print one JSON object instead of text')
    .option('--retries <n>', 'retry transient failures up to n times, with short back-offs', '0')
    .option('--deadline <seconds>', 'the longest the whole session may take, retries included', '120')
    .addHelpText(
      'after',
      '\nExit codes: 0 every recipient accepted; 75 something failed transiently (try again later);\n' +
        '69 every failure was permanent; 64 usage error (nothing sent).',
    )
    .action(async (flags: SendFlags) => {
      process.exitCode = await send(flags);
    });
}

async function send(flags: SendFlags): Promise<number> {
  let plan: Awaited<ReturnType<typeof planSend>>;
  let composed: ReturnType<typeof composeMessage>;
  try {
    plan = await planSend(flags);
    composed = composeMessage(plan.message);
  } catch (error) {
    if (!(error instanceof UsageError || error instanceof MessageError)) throw error;
    if (flags.json) {
      const issues = error instanceof MessageError ? { issues: error.issues } : {};
      console.log(
        JSON.stringify({ ok: false, exitCode: EXIT.usage, error: { message: error.message, ...issues } }),
      );
    } else {
      console.error(`smtpq send: ${safe(error.message)}`);
    }
    return EXIT.usage;
  }

  const transcript = createTranscript();
  const result = await sendWithRetry({
    options: { ...plan.client, transcript },
    envelope: composed.envelope,
    body: () => composed.createStream(),
    // One deadline for the whole session: a server that answers slowly (or a byte at a time) cannot keep
    // the command running past it, whatever the per-reply timeouts.
    policy: { attempts: plan.attempts, ...BACKOFF, deadline: Date.now() + plan.deadlineSeconds * 1000 },
    transcript,
  });
  if (result.connection) {
    const { connection } = result;
    await connection.quit().catch(() => connection.close());
  }

  const exitCode = exitCodeOf(result);
  if (flags.json) console.log(safeJson(toJson(result, transcript, exitCode)));
  else process.stdout.write(formatText(result, transcript));
  return exitCode;
}

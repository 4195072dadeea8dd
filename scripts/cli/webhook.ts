// `smtpq webhook verify`: checks a received webhook as a receiver must (Standard Webhooks: the signature over
// the exact body, and a timestamp at most 5 minutes old); `smtpq webhook secret` makes a new signing secret.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Webhook } from 'standardwebhooks';
import { newWebhookSecret, verifyWebhook } from '../../lib/delivery/webhook-signature.ts';
import { EXIT } from './send-report.ts';
import { reportError, UsageError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

interface VerifyOptions {
  secret?: string;
  bodyFile?: string;
  id?: string;
  timestamp?: string;
  signature?: string;
  header: string[];
  json?: boolean;
}

const HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;

export function register(program: Command): void {
  const webhook = program
    .command('webhook')
    .description('Standard Webhooks: verify a received request, make a signing secret');
  webhook
    .command('verify')
    .description('check a received webhook: exit 0 if genuine and fresh, 69 (with the reason) if not')
    .option('--secret <whsec_…>', 'the signing secret (default $WEBHOOK_SECRET)')
    .option('--body-file <file>', 'the exact request body, byte for byte (default: stdin)')
    .option('--id <webhook-id>', 'the webhook-id header')
    .option('--timestamp <seconds>', 'the webhook-timestamp header')
    .option('--signature <v1,…>', 'the webhook-signature header')
    .option('-H, --header <"name: value">', 'a header as received (repeatable, like curl)', collect, [])
    .option('--json', 'print the verified payload ({ type, timestamp, data }) as JSON')
    .addHelpText(
      'after',
      '\nExample:\n' +
        "  smtpq webhook verify --secret \"$WEBHOOK_SECRET\" -H 'webhook-id: evt_…' -H 'webhook-timestamp: 1764…' \\\n" +
        "    -H 'webhook-signature: v1,…' --body-file body.json\n" +
        'Prints "valid: <type> <messageId>"; a bad signature or a timestamp more than 5 minutes off exits 69.',
    )
    .action(async (options: VerifyOptions) => {
      try {
        process.exitCode = await verify(options);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          console.error(`smtpq: ${(error as Error).message}`);
          process.exitCode = EXIT.usage;
          return;
        }
        process.exitCode = reportError(error);
      }
    });
  webhook
    .command('secret')
    .description('print a new signing secret (whsec_ + 32 random bytes, base64)')
    .action(() => console.log(newWebhookSecret()));
}

const collect = (value: string, previous: string[]) => [...previous, value];

async function verify(options: VerifyOptions): Promise<number> {
  const secret = options.secret ?? process.env.WEBHOOK_SECRET;
  if (!secret?.startsWith('whsec_'))
    throw new UsageError('--secret whsec_… (or $WEBHOOK_SECRET) is required');
  try {
    new Webhook(secret);
  } catch {
    throw new UsageError('--secret: not a signing secret (whsec_ followed by base64)');
  }
  const headers: Record<string, string> = {};
  for (const header of options.header) {
    const colon = header.indexOf(':');
    if (colon < 1) throw new UsageError(`--header "${safe(header)}": expected "name: value"`);
    const name = header.slice(0, colon).trim().toLowerCase();
    const value = header.slice(colon + 1).trim();
    // Several signatures (a secret being rotated) are one space-separated header, or the header repeated.
    headers[name] = name === 'webhook-signature' && headers[name] ? `${headers[name]} ${value}` : value;
  }
  if (options.id !== undefined) headers['webhook-id'] = options.id;
  if (options.timestamp !== undefined) headers['webhook-timestamp'] = options.timestamp;
  if (options.signature !== undefined) headers['webhook-signature'] = options.signature;
  for (const name of HEADERS)
    if (!headers[name]) throw new UsageError(`missing ${name} (--${name.slice(8)} or --header "${name}: …")`);
  if (!/^\d{1,12}$/.test(headers['webhook-timestamp']!))
    throw new UsageError(
      `webhook-timestamp ${safe(headers['webhook-timestamp'])}: must be Unix time in seconds, as received`,
    );
  if (options.bodyFile === undefined && process.stdin.isTTY)
    throw new UsageError('give the request body with --body-file FILE or on stdin');
  const body = options.bodyFile !== undefined ? await readFile(options.bodyFile) : await readStdin();
  const only = Object.fromEntries(HEADERS.map((name) => [name, headers[name]!]));
  let payload: ReturnType<typeof verifyWebhook>;
  try {
    payload = verifyWebhook(secret, body, only);
  } catch (error) {
    console.error(`smtpq: invalid webhook: ${reason(error, Number(headers['webhook-timestamp']))}`);
    return EXIT.unavailable;
  }
  if (options.json) console.log(safeJson(payload, 2));
  else console.log(`valid: ${safe(payload?.type)} ${safe(payload?.data?.messageId)}`);
  return EXIT.ok;
}

/** Why verification failed, for a person: the library's words, made specific. */
function reason(error: unknown, timestamp: number): string {
  const message = (error as Error).message ?? String(error);
  const age = Math.round(Date.now() / 1000 - timestamp);
  const at = new Date(timestamp * 1000).toISOString();
  if (/no matching signature/i.test(message))
    return 'bad signature: no signature matches this secret over this id, timestamp and body (a changed body, or another secret)';
  if (/too old/i.test(message))
    return `timestamp too old: signed at ${at}, ${age} s ago (more than 5 minutes: a replay, or a delayed request)`;
  if (/too new/i.test(message))
    return `timestamp in the future: ${at}, ${-age} s ahead (more than 5 minutes: check the clocks)`;
  if (error instanceof SyntaxError)
    return `the signature is valid but the body is not JSON: ${safe(message)}`;
  return safe(message);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// `smtpq webhook verify`: checks a received webhook as a receiver must (Standard Webhooks: the signature over
// the exact body, and a timestamp at most 5 minutes old); `smtpq webhook secret` makes a new signing secret.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { newWebhookSecret, verifyWebhook } from '../../lib/delivery/webhook-signature.ts';
import { EXIT } from './send-report.ts';
import { reportError, UsageError } from './submit.ts';
import { safe } from './terminal.ts';

interface VerifyOptions {
  secret?: string;
  bodyFile?: string;
  id?: string;
  timestamp?: string;
  signature?: string;
  header: string[];
}

export function register(program: Command): void {
  const webhook = program
    .command('webhook')
    .description('Standard Webhooks: verify a request, make a secret');
  webhook
    .command('verify')
    .description('check a received webhook: exit 0 if genuine and fresh')
    .option('--secret <whsec_…>', 'the signing secret (default $WEBHOOK_SECRET)')
    .option('--body-file <file>', 'the exact request body (default: stdin)')
    .option('--id <webhook-id>', 'the webhook-id header')
    .option('--timestamp <seconds>', 'the webhook-timestamp header')
    .option('--signature <v1,…>', 'the webhook-signature header')
    .option('-H, --header <"name: value">', 'a header as received (repeatable, like curl)', collect, [])
    .action(async (options: VerifyOptions) => {
      try {
        process.exitCode = await verify(options);
      } catch (error) {
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
  const headers: Record<string, string> = {};
  for (const header of options.header) {
    const colon = header.indexOf(':');
    if (colon < 1) throw new UsageError(`--header "${header}": expected "name: value"`);
    headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
  }
  if (options.id) headers['webhook-id'] = options.id;
  if (options.timestamp) headers['webhook-timestamp'] = options.timestamp;
  if (options.signature) headers['webhook-signature'] = options.signature;
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'])
    if (!headers[name]) throw new UsageError(`missing ${name} (--${name.slice(8)} or --header "${name}: …")`);
  const body = options.bodyFile ? await readFile(options.bodyFile) : await readStdin();
  try {
    const payload = verifyWebhook(secret, body, headers);
    console.log(`valid: ${safe(payload.type)} ${safe(payload.data?.messageId)}`);
    return EXIT.ok;
  } catch (error) {
    console.error(`smtpq: invalid webhook: ${safe((error as Error).message)}`);
    return EXIT.unavailable;
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

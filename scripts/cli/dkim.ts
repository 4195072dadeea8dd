// `smtpq dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--out FILE] [--force]`: a new DKIM
// signing key (RSA 2048 or Ed25519), written as PEM with mode 0600, and the DNS TXT record to publish.
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { dkimDnsValue } from '../../lib/message/dkim.ts';
import { reportError, UsageError } from './submit.ts';

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

export function register(program: Command): void {
  const group = program.command('dkim').description('DKIM signing keys');
  group
    .command('keygen')
    .description('generate a signing key and print the DNS TXT record to publish')
    .requiredOption('--domain <domain>', 'the signing domain (d=): the From domain of the mail to sign')
    .requiredOption('--selector <selector>', 'the selector (s=), e.g. smtpq2026')
    .option('--algorithm <algorithm>', 'rsa (2048 bits) or ed25519', 'rsa')
    .option('--out <file>', 'where to write the private key (default <selector>.<domain>.pem)')
    .option('--force', 'overwrite the file if it exists')
    .action(
      async (options: {
        domain: string;
        selector: string;
        algorithm: string;
        out?: string;
        force?: boolean;
      }) => {
        try {
          const domain = options.domain.toLowerCase().replace(/\.$/, '');
          if (!domain.split('.').every((label) => LABEL.test(label)) || !domain.includes('.'))
            throw new UsageError(`--domain must be a domain name, got "${options.domain}"`);
          if (!options.selector.split('.').every((label) => LABEL.test(label)))
            throw new UsageError(
              `--selector must be DNS labels (A-Z a-z 0-9 - _), got "${options.selector}"`,
            );
          if (options.algorithm !== 'rsa' && options.algorithm !== 'ed25519')
            throw new UsageError('--algorithm must be rsa or ed25519');
          const { privateKey } =
            options.algorithm === 'rsa'
              ? generateKeyPairSync('rsa', { modulusLength: 2048 })
              : generateKeyPairSync('ed25519');
          const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
          const file = options.out ?? `${options.selector}.${domain}.pem`;
          try {
            await writeFile(file, pem, { mode: 0o600, flag: options.force ? 'w' : 'wx' });
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'EEXIST')
              throw new UsageError(`${file} exists; choose another --out or pass --force`);
            throw error;
          }
          const value = dkimDnsValue(pem);
          // Zone files take at most 255 characters per quoted string; a record may hold several.
          const strings = value
            .match(/.{1,255}/g)!
            .map((part) => `"${part}"`)
            .join(' ');
          console.log(`private key written to ${file} (mode 0600)\n`);
          console.log(
            `publish this DNS TXT record:\n\n${options.selector}._domainkey.${domain}. IN TXT ${strings}\n`,
          );
          console.log(
            `then, for npm run dev:\n  DKIM_DOMAIN=${domain} DKIM_SELECTOR=${options.selector} DKIM_PRIVATE_KEY="$(cat ${file})"\n` +
              `in AWS: put [{"domain":"${domain}","selector":"${options.selector}","privateKey":"<the PEM>"}] in a secret and pass its ARN as DkimSecretArn`,
          );
        } catch (error) {
          process.exitCode = reportError(error);
        }
      },
    );
}

// `smtpq suppressions list|add|remove`: the suppression list (GET/PUT/DELETE /v1/suppressions). Addresses
// are checked by the API (a 400 naming the problem, exit 64 like any bad input); `*@example.com` stands for a whole domain.
import type { Command } from 'commander';
import type { SuppressionEntry } from '../../lib/delivery/suppression.ts';
import { SUPPRESSION_SOURCES } from '../../lib/delivery/suppression.ts';
import { ApiClient } from './api-client.ts';
import { reportError, UsageError } from './submit.ts';
import { safe, safeJson } from './terminal.ts';

interface Page {
  data: SuppressionEntry[];
  nextCursor: string | null;
}

const API_OPTION = ['--api <url>', 'API base URL (default $SMTPQ_API or http://localhost:3000)'] as const;

export function register(program: Command): void {
  const group = program
    .command('suppressions')
    .description(
      'the suppression list: addresses smtpq never sends to (bounced, unsubscribed, added by hand)',
    );
  group
    .command('list')
    .description('list entries, newest first')
    .option('--source <source>', `only entries from: ${SUPPRESSION_SOURCES.join(', ')}`)
    .option('--limit <n>', 'entries per page, 1-100', '20')
    .option('--cursor <cursor>', 'continue after a previous page (the cursor it printed)')
    .option('--json', 'print the API answer as JSON')
    .option(...API_OPTION)
    .action(
      async (options: { source?: string; limit: string; cursor?: string; json?: boolean; api?: string }) => {
        try {
          if (options.source && !(SUPPRESSION_SOURCES as readonly string[]).includes(options.source))
            throw new UsageError(`--source must be one of ${SUPPRESSION_SOURCES.join(', ')}`);
          if (!/^\d{1,3}$/.test(options.limit) || Number(options.limit) < 1 || Number(options.limit) > 100)
            throw new UsageError('--limit must be a whole number from 1 to 100');
          const page = await new ApiClient({ api: options.api }).suppressions<Page>({
            limit: options.limit,
            ...(options.source ? { source: options.source } : {}),
            ...(options.cursor ? { cursor: options.cursor } : {}),
          });
          if (options.json) {
            console.log(safeJson(page, 2));
            return;
          }
          if (page.data.length === 0) console.log('no entries');
          for (const entry of page.data) console.log(describeEntry(entry));
          if (page.nextCursor) console.log(`more: smtpq suppressions list --cursor ${safe(page.nextCursor)}`);
        } catch (error) {
          process.exitCode = reportError(error);
        }
      },
    );
  group
    .command('add')
    .description('suppress an address (or *@domain for a whole domain)')
    .argument('<address>', 'the address, e.g. ben@example.com or *@example.com')
    .option('--reason <text>', 'why (kept with the entry)')
    .option('--json', 'print the entry as JSON')
    .option(...API_OPTION)
    .action(async (address: string, options: { reason?: string; json?: boolean; api?: string }) => {
      try {
        const entry = await new ApiClient({ api: options.api }).suppress<SuppressionEntry>(
          address,
          options.reason,
        );
        console.log(options.json ? safeJson(entry, 2) : `suppressed ${describeEntry(entry)}`);
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
  group
    .command('remove')
    .description('take an address (or *@domain) off the list: it is sent to again')
    .argument('<address>', 'the address as listed')
    .option(...API_OPTION)
    .action(async (address: string, options: { api?: string }) => {
      try {
        await new ApiClient({ api: options.api }).unsuppress(address);
        console.log(`removed ${safe(address)} from the suppression list`);
      } catch (error) {
        process.exitCode = reportError(error);
      }
    });
}

/** `ben@example.com  bounce  5.1.1 bad destination mailbox address  2026-12-04T…  (message 01K…)` */
export function describeEntry(entry: SuppressionEntry): string {
  const message = entry.messageId ? `  (message ${safe(entry.messageId)})` : '';
  return `${safe(entry.address)}  ${safe(entry.source)}  ${safe(entry.reason)}  ${safe(entry.createdAt)}${message}`;
}

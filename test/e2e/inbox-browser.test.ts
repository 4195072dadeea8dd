// The dev inbox in a real browser (Debian's chromium driven by playwright-core): submit through the API, watch
// the message arrive in the open page and turn `sent` without a reload, open it, read its body and transcript,
// and check that the mail's HTML is shown sandboxed (its script never runs).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../scripts/local/dev.ts';
import { startTestDev, submit } from './dev-harness.ts';

const CHROMIUM = '/usr/bin/chromium';
// .ci/run installs Debian's chromium; a machine without it cannot run a browser test at all.
const noBrowser = !existsSync(CHROMIUM);

let dev: DevStack;
let browser: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (noBrowser) return;
  dev = await startTestDev();
  profile = await mkdtemp(path.join(tmpdir(), 'smtpq-chromium-'));
  // A fresh profile per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await dev?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

describe('dev inbox in headless Chromium', () => {
  it.skipIf(noBrowser)(
    'shows a submitted message arriving live, then its body and transcript',
    { timeout: 120_000 },
    async () => {
      const page = await browser.newPage();
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await page.goto(dev.inboxUrl);
      await page.locator('#live.on').waitFor({ timeout: 30_000 });

      // Submitted after the page loaded: it has to appear through the live updates.
      const id = await submit(dev.apiUrl, {
        from: 'Alice <alice@example.com>',
        to: ['bob@example.com'],
        subject: 'Seen in the browser',
        text: 'The text part.',
        // Were the mail's script to run, the heading would change; the test reads it unchanged.
        html: '<h1 id="greeting">Hello Bob</h1><script>document.getElementById("greeting").textContent = "script ran"; alert(1)</script>',
      });
      const row = page.locator(`#messages tr[data-message-id="${id}"]`);
      await row.locator('[data-state="sent"]').waitFor({ timeout: 60_000 });
      // The relay line shows only while the relay is paused (a throttling reply); nothing throttled here.
      expect(await page.locator('#relay').isHidden()).toBe(true);
      expect(await row.locator('.subject').textContent()).toBe('Seen in the browser');
      expect(await row.locator('.recipients').textContent()).toContain('bob@example.com (delivered)');

      await row.click();
      const detail = page.locator(`#detail[data-message-id="${id}"]`);
      await detail.waitFor({ timeout: 30_000 });
      await expect
        .poll(() => page.locator('#recipients [data-address="bob@example.com"] .state').textContent())
        .toBe('delivered');

      // The HTML part, rendered inside the sandboxed frame.
      const frame = page.frameLocator('#html-body');
      await expect
        .poll(() => frame.locator('#greeting').textContent(), { timeout: 30_000 })
        .toBe('Hello Bob');
      expect(await page.locator('#html-body').getAttribute('sandbox')).toBe('');

      await page.locator('.tabs button[data-tab="text"]').click();
      expect((await page.locator('#text-body').textContent())?.trim()).toBe('The text part.');
      await page.locator('.tabs button[data-tab="headers"]').click();
      expect(await page.locator('#headers').textContent()).toMatch(/^Subject: Seen in the browser$/m);

      const transcript = page.locator('pre.transcript[data-attempt="1"]');
      await transcript.waitFor({ timeout: 30_000 });
      const text = (await transcript.textContent()) ?? '';
      expect(text).toContain('C: STARTTLS');
      expect(text).toContain('C: RCPT TO:<bob@example.com>');
      expect(text).toMatch(/S: 250 2\.0\.0 Ok: queued as/);

      // The message's event timeline, from the ledger's stream.
      await expect
        .poll(
          () =>
            page
              .locator('#events tbody tr')
              .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-event'))),
          {
            timeout: 30_000,
          },
        )
        .toEqual(['message.queued', 'recipient.delivered', 'message.sent']);
      expect(await page.locator('#events tr[data-event="recipient.delivered"]').textContent()).toContain(
        'bob@example.com',
      );

      expect(dialogs).toEqual([]);
      await page.close();
    },
  );
});

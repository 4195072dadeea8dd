// The dev stack for the e2e tests: startDev() on port 0 everywhere, against the run's shared moto server, with
// its own resource names and a temporary data directory, removed by stop().
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import type { DevStack } from '../../scripts/local/dev.ts';

export async function startTestDev(): Promise<DevStack> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'smtpq-dev-e2e-'));
  // Fast retries so a deferred recipient is tried again within the test.
  process.env.RETRY_BASE_SECONDS ??= '1';
  process.env.RETRY_MAX_SECONDS ??= '2';
  // Loaded on first use: dev.ts reads the user's AWS settings from the environment when it loads.
  const { startDev } = await import('../../scripts/local/dev.ts');
  const stack = await startDev({
    port: 0,
    smtpPort: 0,
    dataDir,
    awsEndpoint: inject('motoEndpoint'),
    resourcePrefix: `smtpq-e2e-${randomUUID().slice(0, 8)}`,
    log: () => {},
  });
  return {
    ...stack,
    stop: async () => {
      await stack.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function submit(
  apiUrl: string,
  request: unknown,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await fetch(`${apiUrl}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(request),
  });
  const body = (await response.json()) as { id: string };
  if (response.status !== 202) throw new Error(`submit answered ${response.status}: ${JSON.stringify(body)}`);
  return body.id;
}

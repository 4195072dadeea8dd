import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The machine has 2 cores and is shared: generous timeouts guard against false failures,
    // never against real hangs (every client operation has its own timeout).
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One moto server (AWS emulator) for the whole run; tests get its endpoint with inject('motoEndpoint').
    globalSetup: ['test/support/moto-global-setup.ts'],
  },
});

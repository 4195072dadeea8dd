#!/usr/bin/env node
// The `smtpq` command. The sources are TypeScript; tsx compiles them on load, so `npx smtpq` works
// right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('./cli/main.ts');

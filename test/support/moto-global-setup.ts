// vitest globalSetup: ONE moto server for the whole run; tests read its endpoint with inject('motoEndpoint').
// A run that sets AWS_ENDPOINT_URL (e.g. LocalStack) uses that emulator instead of starting moto.
import type { TestProject } from 'vitest/node';
import { startMoto } from '../../scripts/local/moto.ts';
import { fakeCredentials } from './moto.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** http://127.0.0.1:<port> of the shared moto server. */
    motoEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The SDK needs some credentials to sign with; moto accepts any. Set before the test workers start.
  for (const [name, value] of Object.entries(fakeCredentials)) process.env[name] ??= value;
  // The SDK warns once per process that its 2027 releases need Node 22; the project supports Node 20 until
  // then, and the warning would repeat in every test worker's output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const external = process.env.AWS_ENDPOINT_URL;
  if (external) {
    project.provide('motoEndpoint', external);
    return async () => {};
  }
  const moto = await startMoto();
  project.provide('motoEndpoint', moto.endpoint);
  return () => moto.stop();
}

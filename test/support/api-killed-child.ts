// A real API process for test/e2e/api-killed.test.ts: runs one POST (argv[2]: 'single' or 'batch', argv[3]:
// the JSON body) through the API handler with the environment's AWS resources, and stops dead between its
// steps: once SQS has taken the message(s), it prints `ENQUEUED` and waits for the SIGKILL that ends it
// before the status records are written.
import { Logger } from '@aws-lambda-powertools/logger';
import { createApiHandler } from '../../functions/api/app.ts';
import { createAwsDeps } from '../../functions/api/aws-deps.ts';
import { loadApiConfig } from '../../lib/config.ts';
import { apiEvent } from './api-event.ts';

const [, , mode, body] = process.argv;
const deps = createAwsDeps(loadApiConfig(), new Logger({ logLevel: 'CRITICAL' }));
const queue = deps.queue;
const hang = () => new Promise<never>(() => {});
deps.queue = {
  send: async (message) => {
    await queue.send(message);
    process.stdout.write('ENQUEUED\n');
    return hang();
  },
  sendBatch: async (messages) => {
    await queue.sendBatch(messages);
    process.stdout.write('ENQUEUED\n');
    return hang();
  },
};
const path = mode === 'batch' ? '/v1/messages/batch' : '/v1/messages';
await createApiHandler(deps)(
  apiEvent({ method: 'POST', path, rawBody: body!, headers: { 'content-type': 'application/json' } }),
);
process.stdout.write('ANSWERED\n');

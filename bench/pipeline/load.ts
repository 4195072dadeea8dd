// The load of the pipeline benchmark: small text messages to distinct recipients, submitted through
// POST /v1/messages/batch (at most 100 per request: functions/api/batch.ts MAX_BATCH_SIZE), and the
// status look-ups (GET /v1/messages/{id}) that tell when each is final.

export const MAX_BATCH = 100;
export const FINAL_STATES = new Set(['sent', 'failed', 'partially_sent']);

interface SendInput {
  from: string;
  to: string[];
  subject: string;
  text: string;
}

/** A 1 KiB text body: 14 lines of 72 characters, padded with dots to 1,024 bytes. */
function body(seed: number): string {
  const line = `pipeline benchmark message ${seed} `.padEnd(72, 'abcdefghij'.repeat(8));
  return `${Array.from({ length: 14 }, () => line).join('\n')}\n`.padEnd(1024, '.').slice(0, 1024);
}

export function makeMessages(count: number, recipientPrefix: string, domain: string): SendInput[] {
  return Array.from({ length: count }, (_, i) => ({
    from: 'Pipeline Bench <bench@pipeline-bench.test>',
    to: [`${recipientPrefix}${i}@${domain}`],
    subject: `pipeline benchmark ${i}`,
    text: body(i),
  }));
}

export interface Submitted {
  /** Ids of the accepted items, in request order. */
  ids: string[];
  /** Items the API answered with an error (no id) or with status failed (enqueue_failed). */
  rejected: number;
  failedIds: string[];
  /** Wall time of each POST (the API Lambda's duration, bar the local gateway's few microseconds). */
  requestMs: number[];
}

interface BatchAnswer {
  results?: Array<{ id?: string; status?: string; error?: unknown }>;
}

async function postBatch(
  apiUrl: string,
  messages: SendInput[],
): Promise<{ answer: BatchAnswer; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${apiUrl}/v1/messages/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages }),
  });
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 202)
    throw new Error(`POST /v1/messages/batch answered ${response.status}: ${text.slice(0, 500)}`);
  return { answer: JSON.parse(text) as BatchAnswer, ms };
}

/** Submits in batches of `batchSize`, `concurrency` requests at a time (1: one client, batch after batch). */
export async function submitAll(
  apiUrl: string,
  messages: SendInput[],
  options: { batchSize?: number; concurrency?: number } = {},
): Promise<Submitted> {
  const batchSize = Math.min(MAX_BATCH, options.batchSize ?? MAX_BATCH);
  const batches: SendInput[][] = [];
  for (let i = 0; i < messages.length; i += batchSize) batches.push(messages.slice(i, i + batchSize));
  const answers = new Array<{ answer: BatchAnswer; ms: number }>(batches.length);
  let next = 0;
  const client = async () => {
    while (next < batches.length) {
      const n = next++;
      answers[n] = await postBatch(apiUrl, batches[n]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 1) }, client));
  const submitted: Submitted = { ids: [], rejected: 0, failedIds: [], requestMs: [] };
  for (const { answer, ms } of answers) {
    submitted.requestMs.push(ms);
    for (const result of answer.results ?? []) {
      if (result.id && result.status === 'queued') submitted.ids.push(result.id);
      else {
        submitted.rejected++;
        if (result.id) submitted.failedIds.push(result.id);
      }
    }
  }
  return submitted;
}

/** The state of every id (GET /v1/messages/{id}), `concurrency` look-ups at a time. */
export async function pollStates(
  apiUrl: string,
  ids: readonly string[],
  concurrency = 16,
): Promise<Map<string, string>> {
  const states = new Map<string, string>();
  let next = 0;
  const client = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      const response = await fetch(`${apiUrl}/v1/messages/${id}`);
      const text = await response.text();
      if (response.status !== 200) {
        states.set(id, `http ${response.status}`);
        continue;
      }
      states.set(id, String((JSON.parse(text) as { state?: unknown }).state));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, client));
  return states;
}

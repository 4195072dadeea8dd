// An HTTP proxy in front of moto for the pipeline benchmark: forwards every request, records each AWS call
// (service, operation, when it arrived and was answered, status, body bytes, and what pricing needs from the
// bodies: SQS messages received, stream records, DynamoDB request units), and holds every request a fixed
// latency before forwarding it (the time a call to a real AWS endpoint would cost).
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http';
import type { Socket } from 'node:net';
import { crc32 } from 'node:zlib';
import { epochNow } from '../delay-proxy.ts';
import { DynamoModel, type DynamoUnits, type PendingWrite } from './dynamodb-units.ts';
import { classify, isWrite, label } from './operations.ts';

export interface CallRecord {
  service: string;
  operation: string;
  /** `Service.Operation`. */
  label: string;
  /** Epoch ms: the request had fully arrived / the response was handed back. */
  arrivedAt: number;
  endedAt: number;
  status: number;
  requestBytes: number;
  responseBytes: number;
  /** Changes state (operations.ts isWrite). */
  write: boolean;
  /** A poll that found nothing: ReceiveMessage without messages, GetRecords without records. */
  emptyPoll: boolean;
  /** SQS: the queue named in the request. */
  queueUrl?: string;
  /** SQS ReceiveMessage: messages returned; Send(Message)Batch: entries sent. */
  messages?: number;
  /** DynamoDB Streams GetRecords: records returned, and how many of them are INSERTs. */
  streamRecords?: number;
  inserts?: number;
  /** DynamoDB request units (dynamodb-units.ts), once estimated. */
  units?: DynamoUnits;
}

export interface AwsProxy {
  /** http://127.0.0.1:<port>: the value for AWS_ENDPOINT_URL. */
  url: string;
  /** Added before each request is forwarded. */
  setLatency(ms: number): void;
  /** Every call since the last clear() (and those in flight then), in arrival order. */
  calls(): readonly CallRecord[];
  clear(): void;
  /** Epoch ms of the last write's response (Infinity-safe: 0 when none since clear()). */
  lastWriteEndedAt(): number;
  /** Resolves once the calls in flight now have been answered and their unit estimates are in. */
  settle(): Promise<void>;
  model: DynamoModel;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'expect',
  'upgrade',
  'proxy-connection',
]);

function forwardHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

type Json = Record<string, unknown>;

function parseJson(body: Buffer): Json | undefined {
  try {
    return JSON.parse(body.toString('utf8')) as Json;
  } catch {
    return undefined;
  }
}

/** What the SQS and Streams bodies say, for pricing and for telling idle polls from work. */
function describeBodies(record: CallRecord, requestBody: Buffer, responseBody: Buffer): void {
  if (record.service === 'SQS') {
    const request = parseJson(requestBody);
    const queueUrl =
      request?.QueueUrl ?? new URLSearchParams(requestBody.toString('utf8')).get('QueueUrl') ?? undefined;
    if (typeof queueUrl === 'string') record.queueUrl = queueUrl;
    if (record.operation === 'ReceiveMessage') {
      const response = parseJson(responseBody);
      record.messages = response
        ? ((response.Messages as unknown[] | undefined)?.length ?? 0)
        : (responseBody.toString('utf8').match(/<Message>/g)?.length ?? 0);
      record.emptyPoll = record.status < 300 && record.messages === 0;
    } else if (record.operation === 'SendMessageBatch') {
      record.messages = (request?.Entries as unknown[] | undefined)?.length ?? 0;
    } else if (record.operation === 'SendMessage') record.messages = 1;
  }
  if (record.service === 'DynamoDBStreams' && record.operation === 'GetRecords') {
    const records = (parseJson(responseBody)?.Records ?? []) as Array<{ eventName?: string }>;
    record.streamRecords = records.length;
    record.inserts = records.filter((r) => r.eventName === 'INSERT').length;
    record.emptyPoll = record.status < 300 && records.length === 0;
  }
}

export async function startAwsProxy(options: { upstream: string; region: string }): Promise<AwsProxy> {
  const upstream = new URL(options.upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const model = new DynamoModel(options.upstream, options.region);
  let latencyMs = 0;
  let records: CallRecord[] = [];
  let lastWrite = 0;
  const inFlight = new Set<Promise<unknown>>();
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const op = classify({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body });
      const record: CallRecord = {
        ...op,
        label: label(op),
        arrivedAt: epochNow(),
        endedAt: 0,
        status: 0,
        requestBytes: body.length,
        responseBytes: 0,
        write: isWrite(op),
        emptyPoll: false,
      };
      records.push(record);
      const dynamoWrite = op.service === 'DynamoDB' && model.isWrite(op.operation);
      const pending: Promise<PendingWrite | undefined> = dynamoWrite
        ? model.beforeWrite(op.operation, body).catch((error: Error) => {
            model.problems.push(`${op.operation}: ${error.message}`);
            return undefined;
          })
        : Promise.resolve(undefined);
      const delay = latencyMs > 0 ? new Promise((resolve) => setTimeout(resolve, latencyMs)) : undefined;
      const work = Promise.all([pending, delay]).then(([write]) => forward(req, res, body, record, write));
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    });
  });

  function forward(
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
    body: Buffer,
    record: CallRecord,
    write: PendingWrite | undefined,
  ): Promise<void> {
    return new Promise<void>((done) => {
      const headers = forwardHeaders(req.headers);
      const sent = write?.body ?? body;
      headers['content-length'] = String(sent.length);
      const upstreamRequest = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers,
          agent,
        },
        (upstreamResponse) => {
          const parts: Buffer[] = [];
          upstreamResponse.on('data', (chunk: Buffer) => parts.push(chunk));
          upstreamResponse.on('error', () => {
            res.destroy();
            done();
          });
          upstreamResponse.on('end', () => {
            let answer: Buffer = Buffer.concat(parts);
            const status = upstreamResponse.statusCode ?? 502;
            const out = forwardHeaders(upstreamResponse.headers);
            let units: Promise<DynamoUnits> | undefined;
            if (write) {
              const after = model.afterWrite(write, status, answer);
              units = after.units;
              if (after.body !== answer) {
                // Our ALL_NEW taken out again; the body's checksum header follows.
                answer = after.body;
                if (out['x-amz-crc32'] !== undefined) out['x-amz-crc32'] = String(crc32(answer));
              }
            } else if (record.service === 'DynamoDB' && model.isRead(record.operation))
              units = model.readCall(record.operation, body, status, answer);
            else if (record.label === 'DynamoDB.CreateTable' && status < 300) model.tableCreated(body);
            record.status = status;
            record.responseBytes = answer.length;
            describeBodies(record, body, answer);
            if (units) {
              const settled = units.then(
                (u) => {
                  record.units = u;
                },
                (error: Error) => {
                  model.problems.push(`${record.label} units: ${error.message}`);
                },
              );
              inFlight.add(settled);
              void settled.finally(() => inFlight.delete(settled));
            }
            const bodiless = req.method === 'HEAD' || status === 204 || status === 304;
            if (!bodiless) out['content-length'] = String(answer.length);
            res.writeHead(status, upstreamResponse.statusMessage, out);
            res.end(bodiless ? undefined : answer);
            record.endedAt = epochNow();
            if (record.write) lastWrite = Math.max(lastWrite, record.endedAt);
            done();
          });
        },
      );
      upstreamRequest.on('error', (error) => {
        record.status = 502;
        record.endedAt = epochNow();
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`aws-proxy: ${error.message}`);
        done();
      });
      upstreamRequest.end(sent);
    });
  }

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('aws-proxy: no TCP address');

  return {
    url: `http://127.0.0.1:${address.port}`,
    setLatency(ms) {
      latencyMs = ms;
    },
    calls: () => records,
    clear() {
      // Calls still in flight stay: a long poll that began before and answers after belongs to what follows.
      records = records.filter((r) => r.endedAt === 0);
      lastWrite = 0;
    },
    lastWriteEndedAt: () => lastWrite,
    async settle() {
      // Two passes over what is in flight now (calls, then the unit estimates they started): the stack keeps
      // polling, so waiting until nothing at all is in flight would never end.
      await Promise.allSettled([...inFlight]);
      await Promise.allSettled([...inFlight]);
    },
    model,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

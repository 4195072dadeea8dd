// A benchmark cell: one workload against one server, run several times by each client in turn.
import { type ClientCommand, runClient } from './child.ts';
import type { ClientJob, ClientResult, Workload } from './clients/protocol.ts';
import type { DelayProxy } from './delay-proxy.ts';
import { FROM, TO } from './fixtures.ts';
import { countClientBursts } from './round-trips.ts';

/** smtpq-data is smtpq with CHUNKING turned off (DATA), to show what BDAT adds. */
export type ClientName = 'smtpq' | 'smtpq-data' | 'nodemailer' | 'smtplib';

export const CLIENT_LABELS: Record<ClientName, string> = {
  smtpq: 'smtpq',
  'smtpq-data': 'smtpq (DATA)',
  nodemailer: 'Nodemailer',
  smtplib: 'smtplib',
};

export interface Server {
  host: string;
  port: number;
  /** Set when the server is reached through the delay proxy. */
  proxy?: DelayProxy;
  rttMs?: number;
}

export interface CellSpec {
  title: string;
  server: Server;
  workload: Workload;
  count: number;
  /** Sends handed to a Node client at once (default 32, see clients/measure.ts). */
  inFlight?: number;
  runs: number;
  clients: ClientName[];
}

export interface Measurement extends ClientResult {
  /** Times the client waited for the server in the measured phase (proxied cells only). */
  waits?: number;
}

export interface CellOutcome {
  spec: CellSpec;
  results: Map<ClientName, Measurement[]>;
  errors: Map<ClientName, string>;
}

export type ClientCommands = Map<ClientName, ClientCommand | { unavailable: string }>;

/** Rotates the client order from run to run so no client always goes first after a pause. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

export async function runCell(
  spec: CellSpec,
  commands: ClientCommands,
  progress: (line: string) => void,
): Promise<CellOutcome> {
  const results = new Map<ClientName, Measurement[]>();
  const errors = new Map<ClientName, string>();
  for (const client of spec.clients) {
    const command = commands.get(client);
    if (command === undefined || 'unavailable' in command)
      errors.set(client, command?.unavailable ?? 'unknown');
  }
  for (let run = 0; run < spec.runs; run++) {
    for (const client of rotate(spec.clients, run)) {
      const command = commands.get(client);
      if (command === undefined || 'unavailable' in command || errors.has(client)) continue;
      const job: ClientJob = {
        host: spec.server.host,
        port: spec.server.proxy?.port ?? spec.server.port,
        from: FROM,
        to: TO,
        count: spec.count,
        workload: spec.workload,
        inFlight: spec.inFlight,
        chunking: client !== 'smtpq-data',
      };
      spec.server.proxy?.reset();
      try {
        const result: Measurement = await runClient(command, job);
        const { proxy, rttMs } = spec.server;
        if (proxy && rttMs) {
          // A pause of 3/4 of the RTT can only be a wait for the server (see round-trips.ts).
          result.waits = countClientBursts(proxy.events(), result.startedAt, result.endedAt, rttMs * 0.75);
        }
        results.set(client, [...(results.get(client) ?? []), result]);
        progress(
          `  ${spec.title} · ${CLIENT_LABELS[client]} · run ${run + 1}/${spec.runs}: ${describe(result)}`,
        );
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        errors.set(client, message);
        progress(`  ${spec.title} · ${CLIENT_LABELS[client]} FAILED: ${message}`);
      }
    }
  }
  return { spec, results, errors };
}

function describe(result: Measurement): string {
  const rate = (result.sent / result.elapsedMs) * 1000;
  const waits = result.waits === undefined ? '' : `, ${(result.waits / result.sent).toFixed(2)} waits/msg`;
  return `${rate.toFixed(0)} msg/s, ${(result.cpuMs / result.sent).toFixed(3)} ms CPU/msg, ${Math.round(result.maxRssKiB / 1024)} MiB peak${waits}`;
}

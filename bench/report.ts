// Markdown for bench/RESULTS.md: tables of medians (min–max) per client and smtpq's ratio to each peer.
import { type CellOutcome, CLIENT_LABELS, type ClientName, type Measurement } from './cells.ts';
import { formatNumber, formatRatio, formatSummary, type Summary, summarize } from './stats.ts';

export type Metric = (measurement: Measurement) => number | undefined;

export const metrics = {
  messagesPerSecond: (m: Measurement) => (m.sent / m.elapsedMs) * 1000,
  cpuMsPerMessage: (m: Measurement) => m.cpuMs / m.sent,
  waitsPerMessage: (m: Measurement) => (m.waits === undefined ? undefined : m.waits / m.sent),
  peakRssMiB: (m: Measurement) => m.maxRssKiB / 1024,
  baselineRssMiB: (m: Measurement) => m.baselineRssKiB / 1024,
} satisfies Record<string, Metric>;

/** Round trips per message from the wall clock: the whole measured phase divided into RTTs. */
export function elapsedRoundTrips(rttMs: number): Metric {
  return (m) => m.elapsedMs / rttMs / m.sent;
}

export function summaryOf(outcome: CellOutcome, client: ClientName, metric: Metric): Summary | undefined {
  const values = (outcome.results.get(client) ?? []).map(metric).filter((v): v is number => v !== undefined);
  return values.length === 0 ? undefined : summarize(values);
}

export interface Row {
  label: string;
  outcome: CellOutcome;
}

/**
 * One table: a row per cell, a column per client (median and min–max), then smtpq / peer for each peer
 * (ratio of the medians of the same bench run). `reference` is the client the ratios are taken from.
 */
export function metricTable(rows: readonly Row[], metric: Metric, reference: ClientName = 'smtpq'): string {
  const clients = [...new Set(rows.flatMap((row) => row.outcome.spec.clients))];
  const peers = clients.filter((client) => client !== reference);
  const header = [
    '',
    ...clients.map((client) => CLIENT_LABELS[client]),
    ...peers.map((peer) => `${CLIENT_LABELS[reference]} / ${CLIENT_LABELS[peer]}`),
  ];
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
  ];
  for (const row of rows) {
    const cell = (client: ClientName) => {
      if (!row.outcome.spec.clients.includes(client)) return '';
      const summary = summaryOf(row.outcome, client, metric);
      if (summary) return formatSummary(summary);
      return row.outcome.errors.has(client) ? 'failed¹' : '–';
    };
    const mine = summaryOf(row.outcome, reference, metric)?.median;
    const ratios = peers.map((peer) => formatRatio(mine, summaryOf(row.outcome, peer, metric)?.median));
    lines.push(`| ${[row.label, ...clients.map(cell), ...ratios].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Every client failure of these rows, once per client and reason, so a `failed¹` has its reason nearby. */
export function failureNotes(rows: readonly Row[]): string {
  const byReason = new Map<string, string[]>();
  for (const row of rows) {
    for (const [client, error] of row.outcome.errors) {
      const key = `${CLIENT_LABELS[client]}: ${error.replace(/\s+/g, ' ').slice(0, 400)}`;
      byReason.set(key, [...(byReason.get(key) ?? []), row.label]);
    }
  }
  return [...byReason].map(([reason, labels]) => `- ¹ ${reason} (${labels.join('; ')})`).join('\n');
}

export function median(
  outcome: CellOutcome | undefined,
  client: ClientName,
  metric: Metric,
): number | undefined {
  return outcome === undefined ? undefined : summaryOf(outcome, client, metric)?.median;
}

export function figure(value: number | undefined, unit = ''): string {
  return value === undefined ? 'not measured' : `${formatNumber(value)}${unit}`;
}

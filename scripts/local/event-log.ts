// What the dev inbox shows of events: each message's events as published to the bus, and each webhook try
// (status code, retries). Kept in memory and appended to <dataDir>/events.jsonl, so a restart keeps the
// timeline of the messages it restores.
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { WebhookAttempt } from '../../functions/webhook/handler.ts';
import type { SmtpqEvent } from '../../lib/delivery/events.ts';

export interface Timeline {
  events: SmtpqEvent[];
  webhooks: WebhookAttempt[];
}

type Line = { event: SmtpqEvent } | { webhook: WebhookAttempt };

/** Messages whose timeline is kept (the oldest is dropped beyond it), and the file's size before it is compacted. */
const MAX_MESSAGES = 2_000;
const MAX_FILE_BYTES = 16 * 1024 * 1024;

export class EventLog {
  private readonly timelines = new Map<string, Timeline>();
  private readonly seen = new Set<string>();

  constructor(private readonly file?: string) {
    if (!file) return;
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        this.apply(JSON.parse(line) as Line);
      } catch {
        // A line cut short by a crash: the rest is kept.
      }
    }
    if (statSafe(file) > MAX_FILE_BYTES) this.compact();
  }

  /** Published events; a repeat (same id) is kept once. */
  recordEvents(events: readonly SmtpqEvent[]): void {
    const fresh = events.filter((e) => !this.seen.has(e.id));
    for (const event of fresh) this.apply({ event });
    this.append(fresh.map((event) => ({ event })));
  }

  recordAttempt(webhook: WebhookAttempt): void {
    this.apply({ webhook });
    this.append([{ webhook }]);
  }

  timeline(messageId: string): Timeline {
    return this.timelines.get(messageId) ?? { events: [], webhooks: [] };
  }

  private apply(line: Line): void {
    const messageId = 'event' in line ? line.event.data.messageId : line.webhook.messageId;
    let timeline = this.timelines.get(messageId);
    if (!timeline) {
      timeline = { events: [], webhooks: [] };
      this.timelines.set(messageId, timeline);
      if (this.timelines.size > MAX_MESSAGES) {
        const [oldest, dropped] = this.timelines.entries().next().value!;
        this.timelines.delete(oldest);
        for (const e of dropped.events) this.seen.delete(e.id);
      }
    }
    if ('event' in line) {
      if (this.seen.has(line.event.id)) return;
      this.seen.add(line.event.id);
      timeline.events.push(line.event);
    } else {
      timeline.webhooks.push(line.webhook);
    }
  }

  private append(lines: Line[]): void {
    if (!this.file || lines.length === 0) return;
    appendFileSync(this.file, lines.map((l) => `${JSON.stringify(l)}\n`).join(''), { mode: 0o600 });
  }

  private compact(): void {
    const lines: Line[] = [];
    for (const t of this.timelines.values())
      lines.push(...t.events.map((event) => ({ event })), ...t.webhooks.map((webhook) => ({ webhook })));
    writeFileSync(this.file!, lines.map((l) => `${JSON.stringify(l)}\n`).join(''), { mode: 0o600 });
  }
}

function statSafe(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

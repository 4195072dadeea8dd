// What the runner hands a benchmark client process (argv[2], JSON) and what the client prints back
// (one JSON line on stdout). The Python client (smtplib_client.py) speaks the same JSON.

export type Workload =
  /** The same prebuilt RFC 5322 message (a file) sent `count` times: the transport alone. */
  | { kind: 'prebuilt'; messageFile: string }
  /** A text message of `bodyBytes` composed for every send (MailComposer for the Node clients). */
  | { kind: 'composed'; bodyBytes: number }
  /** One message with the file attached, read as a stream or (Nodemailer reference) into a Buffer. */
  | { kind: 'attachment'; file: string; source: 'stream' | 'buffer' };

export interface ClientJob {
  host: string;
  port: number;
  from: string;
  to: string[];
  /** Messages in the measured phase (after one warm-up message that opens the connection). */
  count: number;
  workload: Workload;
  /** Sends handed to the client at once (Node clients; smtplib is synchronous). Default 32. */
  inFlight?: number;
  /** smtpq only: use CHUNKING (BDAT) when offered; false forces DATA. Default true. */
  chunking?: boolean;
}

export interface ClientResult {
  sent: number;
  elapsedMs: number;
  /** CPU of this process during the measured phase (user + system). */
  cpuMs: number;
  /** Epoch ms bounds of the measured phase, to line up with the delay proxy's log. */
  startedAt: number;
  endedAt: number;
  /** Resident set after loading the client, before connecting (KiB). */
  baselineRssKiB: number;
  /** Peak resident set of the whole process (KiB, getrusage maxrss). */
  maxRssKiB: number;
}

// The peer goes away (FIN or RST) or goes silent at every stage of a session. Each must end in a typed,
// transient error naming the stage — SMTP_CONNECTION for a drop, SMTP_TIMEOUT for silence — and a
// connection that is never reused. Timeouts are small; only the error code is asserted, never the time.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SmtpConnection, SmtpError } from '../../lib/smtp/index.ts';
import type { SmtpClientOptions, SmtpStage } from '../../lib/smtp/types.ts';
import { sharedLocalCa } from '../../scripts/local/certs.ts';
import { allTimeouts, rawClientOptions, rawServerPerTest } from '../support/adversarial.ts';
import {
  close,
  destroy,
  expectLine,
  greetAndEhlo,
  pauseReading,
  type RawStep,
  readData,
  reply,
  stall,
} from '../support/raw-smtp-server.ts';

const rawServer = rawServerPerTest();

/** How far the server plays along before it drops or stalls; what the client is doing at that moment. */
interface Stage {
  stage: SmtpStage;
  script: RawStep[];
  client?: Partial<SmtpClientOptions>;
  /** A body big enough (64 MiB, generated lazily) that the client is still writing it at the cut. */
  bigBody?: boolean;
}

const AUTH = { auth: { user: 'user@example.test', pass: 'p4ss' } };
const untilData = [...greetAndEhlo(), ...reply(/^MAIL /, '250 ok\r\n'), ...reply(/^RCPT /, '250 ok\r\n')];

const stages: Stage[] = [
  { stage: 'greeting', script: [] },
  { stage: 'ehlo', script: [...greetAndEhlo().slice(0, 1), expectLine(/^EHLO /)] },
  {
    stage: 'starttls',
    script: [...greetAndEhlo(['STARTTLS']), expectLine('STARTTLS')],
    client: { tls: 'starttls' },
  },
  { stage: 'auth', script: [...greetAndEhlo(['AUTH PLAIN']), expectLine(/^AUTH /)], client: AUTH },
  { stage: 'mail', script: [...greetAndEhlo(), expectLine(/^MAIL /)] },
  { stage: 'rcpt', script: [...greetAndEhlo(), ...reply(/^MAIL /, '250 ok\r\n'), expectLine(/^RCPT /)] },
  { stage: 'data', script: [...untilData, expectLine('DATA')] },
];
/** Cuts inside the data phase; their stalls need a script of their own (see the stall tests). */
const duringBody: Stage = {
  stage: 'data',
  script: [...untilData, ...reply('DATA', '354 go\r\n'), expectLine(/.*/)],
  bigBody: true,
};
/** With CHUNKING (the client uses BDAT only with PIPELINING): the server has the BDAT command (and its chunk on the way) and answers nothing. */
const atBdat: Stage = {
  stage: 'bdat',
  script: [
    ...greetAndEhlo(['PIPELINING', 'CHUNKING']),
    ...reply(/^MAIL /, '250 ok\r\n'),
    ...reply(/^RCPT /, '250 ok\r\n'),
    expectLine(/^BDAT /),
  ],
};
const afterDot: Stage = { stage: 'dot', script: [...untilData, ...reply('DATA', '354 go\r\n'), readData()] };

const READY_STAGES: ReadonlySet<SmtpStage> = new Set(['greeting', 'ehlo', 'starttls', 'auth']);

async function clientOptions(
  port: number,
  extra: Partial<SmtpClientOptions>,
  timeoutMs: number,
): Promise<SmtpClientOptions> {
  const ca = await sharedLocalCa();
  return rawClientOptions(port, {
    ca: ca.caPem,
    servername: 'localhost',
    timeouts: allTimeouts(timeoutMs),
    ...extra,
  });
}

const ENVELOPE = { from: 'a@example.test', to: ['b@example.test'] };

function bigBody(): Readable {
  const line = Buffer.from(`${'x'.repeat(1022)}\r\n`);
  const chunk = Buffer.concat(Array.from({ length: 64 }, () => line)); // 64 KiB
  let left = 1024; // × 64 KiB = 64 MiB
  return new Readable({
    read() {
      this.push(left-- > 0 ? chunk : null);
    },
  });
}

// A drop must not depend on any timer: long timeouts, so a loaded machine cannot turn it into a timeout.
// A stall needs a short one, yet long enough that the stages before it never time out on a busy CI machine.
const DROP_TIMEOUT_MS = 10_000;
const STALL_TIMEOUT_MS = 1_000;

/** Runs the session up to the failure and returns the error and, once connected, the connection. */
async function runUntilFailure(
  port: number,
  stage: Stage,
  timeoutMs = STALL_TIMEOUT_MS,
): Promise<{ error: SmtpError; client?: SmtpConnection }> {
  const options = await clientOptions(port, stage.client ?? {}, timeoutMs);
  let client: SmtpConnection | undefined;
  try {
    client = await SmtpConnection.connect(options);
    await client.send(ENVELOPE, stage.bigBody ? bigBody() : 'Subject: x\r\n\r\nhi\r\n');
  } catch (error) {
    expect(error).toBeInstanceOf(SmtpError);
    return { error: error as SmtpError, ...(client ? { client } : {}) };
  } finally {
    client?.close();
  }
  throw new Error(`the session at ${stage.stage} did not fail`);
}

describe.each([
  ['closes (FIN)', close],
  ['resets (RST)', destroy],
])('the server %s', (_how, drop) => {
  const cases = [...stages, duringBody, afterDot, atBdat].map((s) => ({
    ...s,
    name: s.bigBody ? `${s.stage} (during the body)` : s.stage,
  }));
  it.each(cases)('at $name: SMTP_CONNECTION, transient, with that stage', async (stage) => {
    const server = await rawServer.start({ script: [...stage.script, drop()] });
    const { error, client } = await runUntilFailure(server.port, stage, DROP_TIMEOUT_MS);

    expect(error).toMatchObject({ code: 'SMTP_CONNECTION', transient: true });
    // A reset right after accept() can beat the client's own connect completion: from where the client
    // stands the TCP connect failed, so 'connect' is as right as 'greeting' there.
    const expected = stage.stage === 'greeting' ? ['connect', 'greeting'] : [stage.stage];
    expect(expected).toContain(error.stage);
    if (client) expect(client.usable).toBe(false);
    // Before the session is ready the error comes from connect(), afterwards from send().
    expect(client === undefined).toBe(READY_STAGES.has(stage.stage));
  });
});

describe('the server stalls', () => {
  it.each(stages)('at $stage: SMTP_TIMEOUT, transient, with that stage', async (stage) => {
    const server = await rawServer.start({ script: [...stage.script, stall()] });
    const { error, client } = await runUntilFailure(server.port, stage);

    expect(error).toMatchObject({ code: 'SMTP_TIMEOUT', stage: stage.stage, transient: true });
    if (client) expect(client.usable).toBe(false);
  });

  it('after the STARTTLS 220, in the TLS handshake: SMTP_TIMEOUT at starttls', async () => {
    const server = await rawServer.start({
      script: [...greetAndEhlo(['STARTTLS']), ...reply('STARTTLS', '220 2.0.0 Ready\r\n'), stall()],
    });
    const { error } = await runUntilFailure(server.port, {
      stage: 'starttls',
      script: [],
      client: { tls: 'starttls' },
    });

    expect(error).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'starttls', transient: true });
  });

  it('while the body is streamed (the server stops reading): SMTP_TIMEOUT at data', async () => {
    const server = await rawServer.start({
      script: [...untilData, ...reply('DATA', '354 go\r\n'), pauseReading(), stall()],
    });
    const { error, client } = await runUntilFailure(server.port, { ...duringBody, script: [] });

    expect(error).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'data', transient: true });
    expect(client?.usable).toBe(false);
  });

  it('after the final dot: SMTP_TIMEOUT at dot', async () => {
    const server = await rawServer.start({ script: [...afterDot.script, stall()] });
    const { error, client } = await runUntilFailure(server.port, afterDot);

    expect(error).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'dot', transient: true });
    expect(client?.usable).toBe(false);
  });

  it('after a BDAT chunk: SMTP_TIMEOUT at bdat', async () => {
    const server = await rawServer.start({ script: [...atBdat.script, stall()] });
    const { error, client } = await runUntilFailure(server.port, atBdat);

    expect(error).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'bdat', transient: true });
    expect(client?.usable).toBe(false);
  });

  it('with PIPELINING, silence after the pipelined commands is a timeout too', async () => {
    const server = await rawServer.start({
      script: [...greetAndEhlo(['PIPELINING']), expectLine(/^MAIL /), stall()],
    });
    const { error, client } = await runUntilFailure(server.port, { stage: 'mail', script: [] });

    expect(error).toMatchObject({ code: 'SMTP_TIMEOUT', transient: true });
    expect(client?.usable).toBe(false);
  });
});

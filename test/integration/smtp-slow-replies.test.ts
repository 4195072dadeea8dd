// Slow replies: a reply's wait runs from when it is awaited, and bytes that do not complete it do not extend
// it — a server that trickles one byte every 150 ms cannot keep a 500 ms timeout alive.
import { describe, expect, it } from 'vitest';
import { SmtpConnection, SmtpError } from '../../lib/smtp/index.ts';
import { rawClientOptions, rawServerPerTest } from '../support/adversarial.ts';
import { expectLine, sendSplit, stall } from '../support/raw-smtp-server.ts';

const rawServer = rawServerPerTest();

describe('a reply trickled a byte at a time', () => {
  it('times out the greeting at its deadline although bytes keep coming', async () => {
    // 22 bytes, one every 150 ms: 3.3 s for the whole greeting, against a 500 ms greeting timeout.
    const server = await rawServer.start({
      script: [sendSplit('220 slow.test ESMTP hi\r\n', 1), stall()],
      chunkPauseMs: 150,
    });

    const outcome = await SmtpConnection.connect(
      rawClientOptions(server.port, {
        timeouts: { connect: 5000, greeting: 500, command: 5000, data: 5000, dataEnd: 5000 },
      }),
    ).catch((error: unknown) => error);

    expect(outcome).toBeInstanceOf(SmtpError);
    expect(outcome).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'greeting' });
    // It gave up while the greeting was still coming: the client saw fewer than all its bytes.
    expect((outcome as SmtpError).message).toMatch(/within 500 ms/);
  });

  it('times out a command reply the same way', async () => {
    const server = await rawServer.start({
      script: [
        sendSplit('220 slow.test ESMTP\r\n', 100),
        expectLine(/^EHLO /),
        sendSplit('250-slow.test\r\n250 SIZE 1000\r\n', 1),
        stall(),
      ],
      chunkPauseMs: 150,
    });

    const outcome = await SmtpConnection.connect(
      rawClientOptions(server.port, {
        timeouts: { connect: 5000, greeting: 5000, command: 500, data: 5000, dataEnd: 5000 },
      }),
    ).catch((error: unknown) => error);

    expect(outcome).toMatchObject({ code: 'SMTP_TIMEOUT', stage: 'ehlo' });
  });
});

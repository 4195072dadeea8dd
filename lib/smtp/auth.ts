// AUTH (RFC 4954) on a connection's wire: whether credentials may go at all (credential-policy.ts), the
// mechanism (sasl.ts), and the exchange of challenges, never recorded (wire.ts redacts both directions).
import { maySendCredentials } from './credential-policy.ts';
import { SmtpError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import { chooseMechanism } from './sasl.ts';
import type { AuthMechanism } from './types.ts';
import { REDACTED, type Wire } from './wire.ts';

/** At most this many SASL challenges: a server that keeps asking is misbehaving. */
const MAX_AUTH_STEPS = 5;

export async function authenticate(
  wire: Wire,
  options: ResolvedOptions,
  offered: readonly AuthMechanism[],
  secure: boolean,
): Promise<void> {
  const { auth, authMethod, allowInsecureAuth, timeouts } = options;
  if (!auth) return;
  const link = { secure, allowInsecureAuth, peerAddress: wire.socket.remoteAddress };
  if (!maySendCredentials(link)) {
    throw new SmtpError(
      'SMTP_TLS_REQUIRED',
      'refusing to send credentials over an unencrypted connection (set allowInsecureAuth to allow it)',
      { stage: 'auth' },
    );
  }
  const mechanism = chooseMechanism(auth, offered, authMethod);
  if (!mechanism) {
    const names = offered.join(' ') || 'none';
    throw new SmtpError('SMTP_AUTH', `no usable AUTH mechanism (server offers: ${names})`, { stage: 'auth' });
  }
  const initial = mechanism.start();
  const verb = `AUTH ${mechanism.name}`;
  let reply = await wire.command(
    initial ? `${verb} ${initial.length > 0 ? initial.toString('base64') : '='}` : verb,
    'auth',
    timeouts.command,
  );
  for (let step = 0; reply.code === 334; step++) {
    if (step === MAX_AUTH_STEPS) {
      throw new SmtpError('SMTP_PROTOCOL', 'protocol error: too many AUTH challenges', {
        stage: 'auth',
        reply,
      });
    }
    const challenge = Buffer.from(reply.lines[0] ?? '', 'base64');
    const response = mechanism.next(challenge).toString('base64');
    reply = await wire.command(response, 'auth', timeouts.command, REDACTED);
  }
  if (reply.code !== 235) {
    const message = `authentication failed: ${reply.code} ${reply.lines[0] ?? ''}`.trimEnd();
    throw new SmtpError('SMTP_AUTH', message, { stage: 'auth', reply });
  }
}

import { describe, expect, it } from 'vitest';
import { chooseMechanism, login, plain, xoauth2 } from '../../lib/smtp/index.ts';

describe('SASL mechanisms', () => {
  it('PLAIN sends authzid, user and password separated by NUL as the initial response (RFC 4616)', () => {
    const mechanism = plain('alice@example.org', 'sécret');
    expect(mechanism.start()?.toString('utf8')).toBe('\0alice@example.org\0sécret');
    expect(mechanism.start()?.toString('base64')).toBe(
      Buffer.from('\0alice@example.org\0sécret').toString('base64'),
    );
  });

  it('LOGIN answers the first challenge with the user and the second with the password', () => {
    const mechanism = login('alice', 'pw');
    expect(mechanism.start()).toBeUndefined();
    expect(mechanism.next(Buffer.from('Username:')).toString()).toBe('alice');
    expect(mechanism.next(Buffer.from('Password:')).toString()).toBe('pw');
  });

  it('XOAUTH2 sends user and bearer token, and answers an error challenge with an empty response', () => {
    const mechanism = xoauth2('alice@example.org', 'ya29.token');
    expect(mechanism.start()?.toString()).toBe('user=alice@example.org\x01auth=Bearer ya29.token\x01\x01');
    expect(mechanism.next(Buffer.from('{"status":"401"}')).length).toBe(0);
  });

  it('chooses PLAIN, then LOGIN for a password and XOAUTH2 for a token, among those offered', () => {
    const pass = { user: 'u', pass: 'p' };
    const token = { user: 'u', accessToken: 't' };
    expect(chooseMechanism(pass, ['LOGIN', 'PLAIN'])?.name).toBe('PLAIN');
    expect(chooseMechanism(pass, ['LOGIN', 'XOAUTH2'])?.name).toBe('LOGIN');
    expect(chooseMechanism(pass, ['XOAUTH2'])).toBeUndefined();
    expect(chooseMechanism(token, ['PLAIN', 'XOAUTH2'])?.name).toBe('XOAUTH2');
    expect(chooseMechanism(token, ['PLAIN'])).toBeUndefined();
  });

  it('uses a forced mechanism only when the server offers it', () => {
    const pass = { user: 'u', pass: 'p' };
    expect(chooseMechanism(pass, ['PLAIN', 'LOGIN'], 'LOGIN')?.name).toBe('LOGIN');
    expect(chooseMechanism(pass, ['PLAIN'], 'LOGIN')).toBeUndefined();
  });
});

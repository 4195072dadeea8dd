// When may credentials go over a connection: TLS, an explicit allowInsecureAuth, or a loopback peer address.
import { describe, expect, it } from 'vitest';
import { isLoopbackAddress, maySendCredentials } from '../../lib/smtp/credential-policy.ts';

const LOOPBACK = [
  '127.0.0.1',
  '127.0.0.0',
  '127.1.2.3',
  '127.255.255.255',
  '::1',
  '0:0:0:0:0:0:0:1',
  '0000:0000:0000:0000:0000:0000:0000:0001',
  '::ffff:127.0.0.1',
  '::FFFF:127.10.0.1',
  '::ffff:7f00:1', // the same mapped address in hex
];

const NOT_LOOPBACK = [
  '126.255.255.255',
  '128.0.0.1',
  '10.0.0.1',
  '192.168.1.10',
  '0.0.0.0',
  '255.255.255.255',
  '::',
  '::2',
  '1::1',
  'fe80::1',
  '2001:db8::1',
  '::ffff:10.0.0.1',
  '::ffff:128.0.0.1',
  '::127.0.0.1', // IPv4-compatible (deprecated), not mapped: not loopback
  // not an address at all: a host name or a malformed string never counts as loopback
  'localhost',
  '127.1',
  '127.0.0.1.example.test',
  ' 127.0.0.1',
  '127.0.0.256',
  '',
  undefined,
];

describe('isLoopbackAddress', () => {
  it.each(LOOPBACK)('%s is loopback', (address) => {
    expect(isLoopbackAddress(address)).toBe(true);
  });
  it.each(NOT_LOOPBACK)('%s is not loopback', (address) => {
    expect(isLoopbackAddress(address)).toBe(false);
  });
});

describe('maySendCredentials', () => {
  const peers = [...LOOPBACK.slice(0, 2), ...NOT_LOOPBACK.slice(0, 3), undefined];
  const cases = peers.flatMap((peerAddress) =>
    [false, true].flatMap((secure) =>
      [false, true].map((allowInsecureAuth) => ({ secure, allowInsecureAuth, peerAddress })),
    ),
  );

  it.each(cases)('%o', (link) => {
    const expected = link.secure || link.allowInsecureAuth || LOOPBACK.includes(link.peerAddress as string);
    expect(maySendCredentials(link)).toBe(expected);
  });

  it('refuses plain text to a remote peer unless allowed', () => {
    expect(maySendCredentials({ secure: false, allowInsecureAuth: false, peerAddress: '203.0.113.5' })).toBe(
      false,
    );
    expect(maySendCredentials({ secure: false, allowInsecureAuth: true, peerAddress: '203.0.113.5' })).toBe(
      true,
    );
    expect(maySendCredentials({ secure: true, allowInsecureAuth: false, peerAddress: '203.0.113.5' })).toBe(
      true,
    );
  });

  it('refuses plain text when the peer address is unknown (socket gone)', () => {
    expect(maySendCredentials({ secure: false, allowInsecureAuth: false, peerAddress: undefined })).toBe(
      false,
    );
  });
});

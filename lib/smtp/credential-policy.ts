// May credentials go over this connection? A pure decision, kept apart from the socket so every case can be
// tested without a network: yes over TLS, yes when the caller explicitly allows plain text, and yes to a
// loopback peer (a local relay: nothing leaves the machine). Judged by the peer address the socket reports,
// never by the host name the caller gave (a name can resolve anywhere).
import net from 'node:net';

/** 127.0.0.0/8 and ::1, also IPv4-mapped (`::ffff:127.0.0.1`) and in any IPv6 spelling. */
const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const family = net.isIP(address);
  if (family === 0) return false;
  return loopback.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface CredentialLink {
  /** TLS is on (implicit, or STARTTLS succeeded). */
  secure: boolean;
  /** The caller's `allowInsecureAuth`. */
  allowInsecureAuth: boolean;
  /** `socket.remoteAddress`: undefined once the socket is gone. */
  peerAddress: string | undefined;
}

export function maySendCredentials(link: CredentialLink): boolean {
  return link.secure || link.allowInsecureAuth || isLoopbackAddress(link.peerAddress);
}

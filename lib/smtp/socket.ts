// Sockets for the wire: the TCP or implicit-TLS connect, the STARTTLS takeover of a TCP socket, and the TLS
// settings every handshake uses (certificates verified unless turned off, SNI for host names, TLS 1.2 minimum).
import net from 'node:net';
import tls from 'node:tls';
import { SmtpError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import type { SmtpStage } from './types.ts';

export type Socket = net.Socket | tls.TLSSocket;

/** A handshake failure (certificate, protocol version, peer hung up mid-handshake). */
function tlsFailure(stage: SmtpStage, error: Error & { code?: string }): SmtpError {
  return new SmtpError('SMTP_TLS', `TLS failed: ${error.message}`, { stage, cause: error });
}

export function tlsOptions(options: ResolvedOptions): tls.ConnectionOptions {
  return {
    host: options.host,
    // SNI carries host names only (RFC 6066 §3); for an IP the certificate is checked against the IP.
    servername: options.servername ?? (net.isIP(options.host) ? undefined : options.host),
    ca: options.ca,
    rejectUnauthorized: options.rejectUnauthorized,
    minVersion: 'TLSv1.2',
  };
}

/** `TLS 1.3 TLS_AES_256_GCM_SHA384, certificate verified for mail.example.org` */
export function describeTls(socket: tls.TLSSocket, options: ResolvedOptions): string {
  const protocol = (socket.getProtocol() ?? 'TLS').replace(/^TLSv/, 'TLS ');
  const cipher = socket.getCipher();
  const peer = options.servername ?? options.host;
  const check = socket.authorized
    ? `certificate verified for ${peer}`
    : `certificate NOT verified (${String(socket.authorizationError)})`;
  return `${protocol} ${cipher.standardName ?? cipher.name}, ${check}`;
}

export function openSocket(options: ResolvedOptions): Promise<Socket> {
  const { host, port } = options;
  const timeout = options.timeouts.connect;
  return new Promise<Socket>((resolve, reject) => {
    const implicit = options.tls === 'implicit';
    const socket = implicit ? tls.connect({ ...tlsOptions(options), port }) : net.connect({ host, port });
    let tcpUp = false;
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(
        new SmtpError('SMTP_TIMEOUT', `connect to ${host}:${port} not done within ${timeout} ms`, {
          stage: 'connect',
        }),
      );
    }, timeout);
    const onTcp = () => {
      tcpUp = true;
    };
    const onReady = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(
        implicit && tcpUp
          ? tlsFailure('connect', error)
          : new SmtpError('SMTP_CONNECTION', `connect to ${host}:${port} failed: ${error.message}`, {
              stage: 'connect',
              cause: error,
            }),
      );
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeListener('connect', onTcp);
      socket.removeListener(implicit ? 'secureConnect' : 'connect', onReady);
      socket.removeListener('error', onError);
    };
    socket.setNoDelay(true); // pipelined groups must not wait for Nagle
    socket.on('connect', onTcp);
    socket.once(implicit ? 'secureConnect' : 'connect', onReady);
    socket.once('error', onError);
  });
}

/** STARTTLS's second half: TLS takes over the TCP socket (the handshake starts; await `secured`). */
export function tlsOver(raw: net.Socket, options: tls.ConnectionOptions): tls.TLSSocket {
  return tls.connect({ ...options, socket: raw });
}

/** Waits for a TLS handshake: SMTP_TLS on failure, SMTP_TIMEOUT if it takes longer than `timeout`. */
export function secured(socket: tls.TLSSocket, stage: SmtpStage, timeout: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new SmtpError('SMTP_TIMEOUT', `TLS handshake not done within ${timeout} ms`, { stage }));
    }, timeout);
    const onSecure = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(tlsFailure(stage, error));
    };
    const onClose = () => onError(new Error('connection closed during the TLS handshake'));
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeListener('secureConnect', onSecure);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
    };
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

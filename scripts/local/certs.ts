// A local certificate authority and a server certificate for `localhost`, 127.0.0.1 and ::1, made with the
// `openssl` CLI. Tests trust the CA through the client's `ca` option; the dev server serves the certificate.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LocalCa {
  /** The CA certificate (PEM): what a client trusts. */
  caPem: string;
  /** The server certificate (PEM), signed by the CA, for localhost, 127.0.0.1 and ::1. */
  certPem: string;
  /** The server certificate's private key (PEM). */
  keyPem: string;
}

const FILES = { caPem: 'ca.pem', certPem: 'server.pem', keyPem: 'server-key.pem' } as const;

/** Makes a fresh CA and server certificate (P-256 keys) in a temporary directory that is removed afterwards. */
export async function createLocalCa(options: { commonName?: string } = {}): Promise<LocalCa> {
  const dir = await mkdtemp(path.join(tmpdir(), 'smtpq-ca-'));
  const at = (name: string) => path.join(dir, name);
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await run('openssl', [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      at('ca-key.pem'),
      '-out',
      at('ca.pem'),
      '-days',
      '3650',
      '-subj',
      '/CN=smtpq local test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const commonName = options.commonName ?? 'localhost';
    await run('openssl', [
      'req',
      ...ec,
      '-keyout',
      at('server-key.pem'),
      '-out',
      at('server.csr'),
      '-subj',
      `/CN=${commonName}`,
    ]);
    await writeFile(
      at('server.ext'),
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
        '',
      ].join('\n'),
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      at('server.csr'),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca-key.pem'),
      '-CAcreateserial',
      '-out',
      at('server.pem'),
      '-days',
      '825',
      '-extfile',
      at('server.ext'),
    ]);
    return {
      caPem: await readFile(at('ca.pem'), 'utf8'),
      certPem: await readFile(at('server.pem'), 'utf8'),
      keyPem: await readFile(at('server-key.pem'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads the CA and server certificate from `dir`, creating and saving them (key mode 0600) on first use. */
export async function loadOrCreateLocalCa(dir: string): Promise<LocalCa> {
  try {
    return {
      caPem: await readFile(path.join(dir, FILES.caPem), 'utf8'),
      certPem: await readFile(path.join(dir, FILES.certPem), 'utf8'),
      keyPem: await readFile(path.join(dir, FILES.keyPem), 'utf8'),
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const ca = await createLocalCa();
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, FILES.caPem), ca.caPem);
  await writeFile(path.join(dir, FILES.certPem), ca.certPem);
  await writeFile(path.join(dir, FILES.keyPem), ca.keyPem, { mode: 0o600 });
  return ca;
}

let shared: Promise<LocalCa> | undefined;

/** One CA per process, made on first call: cheap to ask for from every test file. */
export function sharedLocalCa(): Promise<LocalCa> {
  shared ??= createLocalCa();
  return shared;
}

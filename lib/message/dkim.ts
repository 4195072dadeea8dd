// DKIM signing (RFC 6376; ed25519-sha256, RFC 8463) with mailauth's signer, in two passes over the message,
// which composeMessage builds byte-identically on every createStream(): the first computes the body hash and
// the signature (mailauth hashes the body as it streams; only the header is kept), the second is what is
// sent, after the DKIM-Signature line. Memory does not grow with the message.
//
// relaxed/relaxed. From is oversigned (named once more in h= than it appears, RFC 6376 §8.15), so no From
// can be added without breaking the signature; mailauth's signer has no option for that, so the signature
// is formed here from mailauth's own header canonicalisation and formatting, over the headers it parsed and
// the body hash it computed.
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import signerModule from 'mailauth/lib/dkim/dkim-signer.js';
import relaxedModule from 'mailauth/lib/dkim/header/relaxed.js';
import tools from 'mailauth/lib/tools.js';

/** A signing key: the domain (d=), the selector (s=) and the PEM private key (RSA ≥ 2048 bits, or Ed25519). */
export interface DkimKey {
  domain: string;
  selector: string;
  privateKey: string;
}

/** The headers signed when present; List-Unsubscribe-Post too (RFC 8058 §4 requires it signed). */
export const SIGNED_HEADERS =
  'From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:' +
  'Content-Transfer-Encoding:Content-ID:Content-Description:In-Reply-To:References:' +
  'List-Id:List-Help:List-Unsubscribe:List-Unsubscribe-Post:List-Subscribe:List-Post:List-Owner:List-Archive';

export const MIN_RSA_BITS = 2048;

export class DkimKeyError extends Error {
  readonly code = 'DKIM_KEY_INVALID';
}

/** The key as Node holds it, after the checks: RSA of at least 2048 bits, or Ed25519. */
export function dkimKeyObject(key: DkimKey): KeyObject {
  let object: KeyObject;
  try {
    object = createPrivateKey(key.privateKey);
  } catch {
    throw new DkimKeyError(`the DKIM key of ${key.domain} is not a PEM private key`);
  }
  const bits = object.asymmetricKeyDetails?.modulusLength ?? 0;
  if (object.asymmetricKeyType === 'rsa' && bits < MIN_RSA_BITS)
    throw new DkimKeyError(
      `the DKIM key of ${key.domain} is RSA ${bits} bits; at least ${MIN_RSA_BITS} are needed`,
    );
  if (object.asymmetricKeyType !== 'rsa' && object.asymmetricKeyType !== 'ed25519')
    throw new DkimKeyError(
      `the DKIM key of ${key.domain} is ${object.asymmetricKeyType}; use rsa or ed25519`,
    );
  return object;
}

/** The key whose domain is the From address's (case-insensitive), if any. */
export function keyFor(from: string, keys: readonly DkimKey[]): DkimKey | undefined {
  const domain = from.slice(from.lastIndexOf('@') + 1).toLowerCase();
  return keys.find((key) => key.domain.toLowerCase() === domain);
}

/** The `DKIM-Signature: …\r\n` header line of the message `stream` carries. */
export async function dkimSignature(stream: Readable, key: DkimKey): Promise<string> {
  const keyObject = dkimKeyObject(key);
  const rsa = keyObject.asymmetricKeyType === 'rsa';
  const algorithm = rsa ? 'rsa-sha256' : 'ed25519-sha256';
  const signer = new signerModule.DkimSigner({
    canonicalization: 'relaxed/relaxed',
    headerList: SIGNED_HEADERS,
    signatureData: [
      { signingDomain: key.domain, selector: key.selector, privateKey: key.privateKey, algorithm },
    ],
  });
  await pipeline(stream, signer);
  const bodyHash = [...signer.bodyHashes.values()][0]?.hash;
  if (!signer.headers || !bodyHash) throw new Error('DKIM: the message has no header or no body hash');
  const present = tools.getSigningHeaderLines(signer.headers.parsed, SIGNED_HEADERS);
  const { canonicalizedHeader, dkimHeaderOpts } = relaxedModule.relaxedHeaders(
    'DKIM',
    { keys: `${present.keys}: From`, headers: present.headers },
    {
      signingDomain: key.domain,
      selector: key.selector,
      algorithm,
      canonicalization: 'relaxed/relaxed',
      bodyHash,
    },
  );
  // As mailauth signs: RSA over the canonical header with SHA-256; Ed25519 over its SHA-256 (RFC 8463 §3).
  const signature = rsa
    ? sign('sha256', canonicalizedHeader, keyObject)
    : sign(null, createHash('sha256').update(canonicalizedHeader).digest(), keyObject);
  return `${tools.formatSignatureHeaderLine('DKIM', { ...dkimHeaderOpts, b: signature.toString('base64') }, true)}\r\n`;
}

/**
 * The message body to send, signed: each call yields the DKIM-Signature line and then a fresh stream. The
 * signature is computed once (on the first call's first read) and kept for the tries after it.
 */
export function signedBody(
  createStream: () => Readable,
  key: DkimKey,
): () => AsyncIterable<Uint8Array | string> {
  let signature: Promise<string> | undefined;
  return () =>
    (async function* () {
      signature ??= dkimSignature(createStream(), key).catch((error: unknown) => {
        signature = undefined;
        throw error;
      });
      yield await signature;
      yield* createStream();
    })();
}

/** The DNS TXT record that publishes a private key's public half: `v=DKIM1; k=rsa|ed25519; p=…`. */
export function dkimDnsValue(privateKeyPem: string): string {
  const key = createPublicKey(createPrivateKey(privateKeyPem));
  const der = key.export({ type: 'spki', format: 'der' });
  // RFC 8463 §4.2: an Ed25519 record holds the raw 32-byte key, not its SubjectPublicKeyInfo.
  const p = key.asymmetricKeyType === 'ed25519' ? der.subarray(-32) : der;
  return `v=DKIM1; k=${key.asymmetricKeyType === 'ed25519' ? 'ed25519' : 'rsa'}; p=${p.toString('base64')}`;
}

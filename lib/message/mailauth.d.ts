// The parts of mailauth's DKIM signer that lib/message/dkim.ts uses (the package ships no types for them).
declare module 'mailauth/lib/dkim/dkim-signer.js' {
  import type { Writable } from 'node:stream';

  interface ParsedHeader {
    key: string;
    casedKey: string;
    line: Buffer;
  }
  class DkimSigner extends Writable {
    constructor(options: Record<string, unknown>);
    headers: { parsed: ParsedHeader[] } | false;
    bodyHashes: Map<string, { hash: string | null }>;
    errors: { err: Error }[];
  }
  const signer: { DkimSigner: typeof DkimSigner };
  export default signer;
}

declare module 'mailauth/lib/dkim/header/relaxed.js' {
  const relaxed: {
    relaxedHeaders(
      type: 'DKIM',
      signingHeaderLines: { keys: string; headers: unknown[] },
      options: Record<string, unknown>,
    ): { canonicalizedHeader: Buffer; dkimHeaderOpts: Record<string, unknown> };
  };
  export default relaxed;
}

declare module 'mailauth/lib/tools.js' {
  const tools: {
    getSigningHeaderLines(parsed: unknown[], fieldNames: string): { keys: string; headers: unknown[] };
    formatSignatureHeaderLine(type: 'DKIM', values: Record<string, unknown>, folded: boolean): string;
  };
  export default tools;
}

// HTTP client of the smtpq API for the CLI. A local API (npm run dev) gets plain requests; any other URL is the
// IAM-protected API Gateway, so requests are SigV4-signed (service execute-api) with credentials from the
// usual AWS chain (env, profile, SSO, instance role).
import { Sha256 } from '@aws-crypto/sha256-js';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { SignatureV4 } from '@smithy/signature-v4';

export const DEFAULT_API = 'http://localhost:3000';

/** An answer other than 2xx, with the API's stable error code when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues?: Array<{ path: string; message: string }>,
    /** The whole JSON error body, for the fields some answers add (409 not_cancellable: `state`). */
    readonly body?: Record<string, unknown>,
  ) {
    super(message);
  }

  /** Worth trying again later: throttling, a server error, the network, or an idempotency key whose first
   *  request is still being accepted (409 idempotency_key_in_use: the same request again will get its id).
   *  A bad --api URL or a missing region (status 0 too, no request made) is the caller's to fix. */
  get transient(): boolean {
    if (this.status === 409 && this.code === 'idempotency_key_in_use') return true;
    if (this.status === 0) return this.code === 'network_error';
    return this.status === 429 || this.status >= 500;
  }

  /** Refused before any request: the options name no usable API (a bad --api URL, no region for SigV4). */
  get usage(): boolean {
    return this.status === 0 && (this.code === 'invalid_api_url' || this.code === 'no_region');
  }

  /** The message with the validation issues, for a person to read. */
  describe(): string {
    const issues = this.issues?.map((i) => `${i.path || '(request)'}: ${i.message}`).join('; ');
    return `${this.status ? `HTTP ${this.status} ` : ''}${this.code}: ${this.message}${issues ? ` (${issues})` : ''}`;
  }
}

export interface SubmitResult {
  id: string;
  status: string;
}

export interface ApiClientOptions {
  api?: string;
  /** Region for SigV4; default from the execute-api host name, then AWS_REGION. */
  region?: string;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** SigV4-sign the requests. Default: for any API that is not on this machine. True also fits a local
   * tunnel to the deployed API (e.g. SSM port forwarding to a private endpoint). */
  sigv4?: boolean;
}

export function isLocalApi(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // *.localhost.localstack.cloud resolves to 127.0.0.1: an API deployed into LocalStack with samlocal.
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host.endsWith('.localhost.localstack.cloud') ||
    host === '::1' ||
    /^127\./.test(host)
  );
}

export class ApiClient {
  readonly base: URL;
  readonly #signer?: SignatureV4;
  readonly #timeoutMs: number;

  constructor(options: ApiClientOptions = {}) {
    const text = options.api ?? process.env.SMTPQ_API ?? DEFAULT_API;
    try {
      this.base = new URL(text);
    } catch {
      throw new ApiError(0, 'invalid_api_url', `--api is not a URL: ${text}`);
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new ApiError(0, 'invalid_api_url', `--api must be http(s)://…, not ${this.base.protocol}`);
    }
    const local = isLocalApi(this.base);
    if (options.sigv4 ?? !local) {
      if (!local && this.base.protocol !== 'https:') {
        throw new ApiError(0, 'invalid_api_url', 'a deployed API must be reached over https');
      }
      const region =
        options.region ??
        /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/.exec(this.base.hostname)?.[1] ??
        process.env.AWS_REGION ??
        process.env.AWS_DEFAULT_REGION;
      if (!region) throw new ApiError(0, 'no_region', 'cannot tell the API region: set AWS_REGION');
      this.#signer = new SignatureV4({
        service: 'execute-api',
        region,
        credentials: fromNodeProviderChain(),
        sha256: Sha256,
      });
    }
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  submit(request: unknown, idempotencyKey?: string): Promise<SubmitResult> {
    const headers: Record<string, string> = idempotencyKey ? { 'idempotency-key': idempotencyKey } : {};
    return this.#json<SubmitResult>('POST', '/v1/messages', JSON.stringify(request), headers);
  }

  status<T = unknown>(id: string): Promise<T> {
    return this.#json<T>('GET', `/v1/messages/${encodeURIComponent(id)}`);
  }

  /** GET /v1/messages with the given query parameters (the list, newest first). */
  list<T = unknown>(query: Record<string, string>): Promise<T> {
    const search = new URLSearchParams(query).toString();
    return this.#json<T>('GET', `/v1/messages${search ? `?${search}` : ''}`);
  }

  cancel<T = unknown>(id: string): Promise<T> {
    return this.#json<T>('POST', `/v1/messages/${encodeURIComponent(id)}/cancel`);
  }

  async transcript(id: string, attempt?: number): Promise<string> {
    const query = attempt === undefined ? '' : `?attempt=${attempt}`;
    const response = await this.#request('GET', `/v1/messages/${encodeURIComponent(id)}/transcript${query}`);
    const text = await response.text();
    if (!response.ok) throw errorFrom(response.status, text);
    return text;
  }

  /** PUT /v1/suppressions/{address}: a manual entry. */
  suppress<T = unknown>(address: string, reason?: string): Promise<T> {
    const body = JSON.stringify(reason === undefined ? {} : { reason });
    return this.#json<T>('PUT', `/v1/suppressions/${encodeURIComponent(address)}`, body);
  }

  /** DELETE /v1/suppressions/{address} (204). */
  async unsuppress(address: string): Promise<void> {
    const response = await this.#request('DELETE', `/v1/suppressions/${encodeURIComponent(address)}`);
    const text = await response.text();
    if (!response.ok) throw errorFrom(response.status, text);
  }

  /** GET /v1/suppressions with the given query parameters. */
  suppressions<T = unknown>(query: Record<string, string>): Promise<T> {
    const search = new URLSearchParams(query).toString();
    return this.#json<T>('GET', `/v1/suppressions${search ? `?${search}` : ''}`);
  }

  /** Any GET on the same server (the dev inbox's list, for `tail`). */
  async getJson<T>(path: string): Promise<T> {
    return this.#json<T>('GET', path);
  }

  async #json<T>(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const response = await this.#request(method, path, body, headers);
    const text = await response.text();
    if (!response.ok) throw errorFrom(response.status, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        response.status,
        'invalid_response',
        `the API answered with something not JSON: ${text.slice(0, 200)}`,
      );
    }
  }

  async #request(
    method: string,
    path: string,
    body?: string,
    extra: Record<string, string> = {},
  ): Promise<Response> {
    // Relative to the base path too: a custom domain may map the API under a prefix (https://x.example/smtpq).
    const url = new URL(`${this.base.pathname.replace(/\/+$/, '')}${path}`, this.base);
    let headers: Record<string, string> = {
      accept: 'application/json',
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...extra,
    };
    if (this.#signer) {
      const signed = await this.#signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: { ...headers, host: url.host },
        ...(body !== undefined ? { body } : {}),
      });
      // fetch sets Host itself (to the same value that was signed).
      const { host: _host, ...rest } = signed.headers;
      headers = rest;
    }
    try {
      return await fetch(url, { method, headers, body, signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (error) {
      throw new ApiError(0, 'network_error', this.#networkReason(error));
    }
  }

  /** fetch says only "fetch failed"; the reason is in its cause (an AggregateError when both IPv4 and IPv6 failed). */
  #networkReason(error: unknown): string {
    const cause = (
      error as { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } }
    ).cause;
    const codes = [cause?.code, ...(cause?.errors ?? []).map((e) => e.code)];
    if (codes.includes('ECONNREFUSED'))
      return `nothing listens at ${this.base.origin} (is \`npm run dev\` running?)`;
    if ((error as Error).name === 'TimeoutError')
      return `no answer from ${this.base.origin} within ${this.#timeoutMs} ms`;
    return cause?.message ? `${(error as Error).message}: ${cause.message}` : (error as Error).message;
  }
}

function errorFrom(status: number, text: string): ApiError {
  try {
    const body = JSON.parse(text) as { error?: string; message?: string; issues?: ApiError['issues'] };
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    return new ApiError(
      status,
      typeof body.error === 'string' ? body.error : 'http_error',
      typeof body.message === 'string' ? body.message : text.slice(0, 200),
      Array.isArray(body.issues) ? body.issues : undefined,
      body as Record<string, unknown>,
    );
  } catch {
    return new ApiError(status, 'http_error', text.slice(0, 200) || `HTTP ${status}`);
  }
}

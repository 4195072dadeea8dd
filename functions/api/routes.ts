// Maps (method, path) to a route. Pure: no I/O, so unknown paths (404) and wrong methods (405) are unit-tested.
export type Route =
  | { name: 'submit' }
  | { name: 'list' }
  | { name: 'batch' }
  | { name: 'cancel'; id: string }
  | { name: 'status'; id: string }
  | { name: 'transcript'; id: string }
  | { name: 'suppression_list' }
  | { name: 'suppression_get'; address: string }
  | { name: 'suppression_put'; address: string }
  | { name: 'suppression_delete'; address: string }
  | { name: 'unsubscribe'; token: string };

export type RouteMatch =
  | { kind: 'route'; route: Route }
  | { kind: 'not_found' }
  | { kind: 'method_not_allowed'; allow: string[] };

interface RouteDef {
  pattern: RegExp;
  method: string;
  build: (params: string[]) => Route;
}

// `[^/]+` accepts any segment; the handler validates the id format itself so a malformed id is a 400, not a 404.
const ROUTES: RouteDef[] = [
  { pattern: /^\/v1\/messages$/, method: 'POST', build: () => ({ name: 'submit' }) },
  { pattern: /^\/v1\/messages$/, method: 'GET', build: () => ({ name: 'list' }) },
  { pattern: /^\/v1\/messages\/batch$/, method: 'POST', build: () => ({ name: 'batch' }) },
  {
    pattern: /^\/v1\/messages\/([^/]+)\/cancel$/,
    method: 'POST',
    build: ([id]) => ({ name: 'cancel', id: id! }),
  },
  {
    pattern: /^\/v1\/messages\/([^/]+)\/transcript$/,
    method: 'GET',
    build: ([id]) => ({ name: 'transcript', id: id! }),
  },
  { pattern: /^\/v1\/messages\/([^/]+)$/, method: 'GET', build: ([id]) => ({ name: 'status', id: id! }) },
  // The one route without IAM auth (infra/template.yaml): mailbox providers call it (RFC 8058).
  {
    pattern: /^\/v1\/unsubscribe\/([^/]+)$/,
    method: 'POST',
    build: ([token]) => ({ name: 'unsubscribe', token: token! }),
  },
  { pattern: /^\/v1\/suppressions$/, method: 'GET', build: () => ({ name: 'suppression_list' }) },
  ...(['GET', 'PUT', 'DELETE'] as const).map(
    (method): RouteDef => ({
      pattern: /^\/v1\/suppressions\/([^/]+)$/,
      method,
      build: ([address]) => ({
        name: `suppression_${method === 'GET' ? 'get' : method === 'PUT' ? 'put' : 'delete'}`,
        address: address!,
      }),
    }),
  ),
];

/**
 * `rawPath` of a payload 2.0 event carries the stage name for a named stage (`/prod/v1/messages`), none for
 * `$default`; a trailing slash is tolerated.
 */
export function normalizePath(rawPath: string, stage?: string): string {
  let path = rawPath;
  if (stage && stage !== '$default' && path.startsWith(`/${stage}/`)) path = path.slice(stage.length + 1);
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path;
}

export function matchRoute(method: string, path: string): RouteMatch {
  const allow: string[] = [];
  let literal = false;
  for (const def of ROUTES) {
    const m = def.pattern.exec(path);
    if (!m) continue;
    // A literal path is never also a parameter value: `GET /v1/messages/batch` is a 405, not a status look-up.
    if (literal && m.length > 1) continue;
    if (def.method === method.toUpperCase())
      return { kind: 'route', route: def.build(m.slice(1).map(decode)) };
    allow.push(def.method);
    if (m.length === 1) literal = true;
  }
  if (allow.length === 0) return { kind: 'not_found' };
  return { kind: 'method_not_allowed', allow: [...new Set(allow)] };
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed %-escape: left as is, the id check rejects it
  }
}

// The handler core: route the event, run the route, turn anything unexpected into a logged 500 with the
// request id. Built from its dependencies, so index.ts wires AWS once per cold start.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { handleBatch } from './batch.ts';
import { type Caller, callerOf } from './caller.ts';
import { handleCancel } from './cancel.ts';
import type { ApiDeps } from './deps.ts';
import { handleList } from './list.ts';
import { type ApiResponse, problem } from './responses.ts';
import { matchRoute, normalizePath, type Route } from './routes.ts';
import { handleStatus } from './status.ts';
import { handleSubmit } from './submit.ts';
import {
  handleSuppressionDelete,
  handleSuppressionGet,
  handleSuppressionList,
  handleSuppressionPut,
} from './suppressions.ts';
import { handleTranscript } from './transcript.ts';
import { handleUnsubscribe } from './unsubscribe.ts';

export type ApiHandler = (event: APIGatewayProxyEventV2) => Promise<ApiResponse>;

export function createApiHandler(deps: ApiDeps): ApiHandler {
  const { logger } = deps;
  return async (event) => {
    const requestId = event.requestContext?.requestId;
    const method = event.requestContext?.http?.method ?? 'GET';
    const path = normalizePath(event.rawPath ?? '/', event.requestContext?.stage);
    const caller = callerOf(event);
    // Every log line of the request says who made it (never what it sent).
    logger.appendKeys({
      requestId,
      method,
      path,
      caller: caller?.principal,
      callerAccount: caller?.accountId,
      accessKey: caller?.accessKey,
    });
    try {
      const match = matchRoute(method, path);
      if (match.kind === 'not_found') return problem('not_found', `no route for ${path}`);
      if (match.kind === 'method_not_allowed') {
        const allow = match.allow.join(', ');
        return problem('method_not_allowed', `${method} is not allowed on ${path}; use ${allow}`, {
          headers: { allow },
        });
      }
      return await run(match.route, event, caller, deps);
    } catch (error) {
      // Never the message body or headers here: they may hold personal data or credentials.
      logger.error('unexpected error', { error });
      return problem('internal_error', 'internal error; quote the request id when reporting it', {
        requestId,
      });
    } finally {
      logger.removeKeys(['requestId', 'method', 'path', 'caller', 'callerAccount', 'accessKey']);
    }
  };
}

function run(
  route: Route,
  event: APIGatewayProxyEventV2,
  caller: Caller | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  switch (route.name) {
    case 'submit':
      return handleSubmit(event, caller, deps);
    case 'list':
      return handleList(event.queryStringParameters ?? {}, caller, deps);
    case 'batch':
      return handleBatch(event, caller, deps);
    case 'cancel':
      return handleCancel(route.id, caller, deps);
    case 'status':
      return handleStatus(route.id, caller, deps);
    case 'transcript':
      return handleTranscript(route.id, event.queryStringParameters ?? {}, caller, deps);
    case 'suppression_list':
      return handleSuppressionList(event.queryStringParameters ?? {}, deps);
    case 'suppression_get':
      return handleSuppressionGet(route.address, deps);
    case 'suppression_put':
      return handleSuppressionPut(route.address, event, deps);
    case 'suppression_delete':
      return handleSuppressionDelete(route.address, deps);
    case 'unsubscribe':
      return handleUnsubscribe(route.token, event, deps);
  }
}

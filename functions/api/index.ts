// API Lambda entry (API Gateway HTTP API, payload format 2.0). Configuration and AWS clients are set up
// once per cold start; a configuration error fails the init with a message naming the variable.
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { type ApiConfig, loadApiConfig } from '../../lib/config.ts';
import { createApiHandler } from './app.ts';
import { createAwsDeps } from './aws-deps.ts';
import type { ApiDeps } from './deps.ts';

const logger = new Logger({ serviceName: 'smtpq-api' });

function loadConfig(): ApiConfig {
  try {
    return loadApiConfig();
  } catch (error) {
    logger.critical('API configuration invalid', { error });
    throw error;
  }
}

/** The dependencies for another configuration (scripts/local/dev.ts); aws-deps.ts has them without this module's init. */
export function createDeps(config: ApiConfig): ApiDeps {
  return createAwsDeps(config, logger);
}

const run = createApiHandler(createDeps(loadConfig()));

export function handler(
  event: APIGatewayProxyEventV2,
  context?: Context,
): Promise<APIGatewayProxyStructuredResultV2> {
  // Lambda's request id, function name and cold-start flag on every log line of this invocation.
  if (context) logger.addContext(context);
  return run(event);
}

// The AWS SDK clients, built once per cold start and shared by every adapter.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AwsConfig } from '../config.ts';

export interface AwsClients {
  s3: S3Client;
  sqs: SQSClient;
  secrets: SecretsManagerClient;
  dynamodb: DynamoDBClient;
  /** The document client over `dynamodb`: plain JavaScript values in and out. */
  documents: DynamoDBDocumentClient;
}

/**
 * Clients for the configured region. `endpoint` (AWS_ENDPOINT_URL: moto, LocalStack) points all of them at an
 * emulator; S3 then uses path-style URLs, because emulators do not resolve <bucket>.127.0.0.1.
 */
export function createAwsClients(aws: Pick<AwsConfig, 'region' | 'endpoint'>): AwsClients {
  const common = { region: aws.region, ...(aws.endpoint ? { endpoint: aws.endpoint } : {}) };
  const dynamodb = new DynamoDBClient(common);
  return {
    s3: new S3Client({ ...common, forcePathStyle: aws.endpoint !== undefined }),
    sqs: new SQSClient(common),
    secrets: new SecretsManagerClient(common),
    dynamodb,
    documents: DynamoDBDocumentClient.from(dynamodb, {
      marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    }),
  };
}

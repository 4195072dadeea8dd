// Which AWS call an HTTP request to the emulator is: service and operation, from what the SDK sends.
// JSON protocols (DynamoDB, DynamoDB Streams, SQS, Secrets Manager, …) name it in X-Amz-Target; the query
// protocol in the form body's Action=; S3 REST by method, bucket vs object, and query (the SDK also adds
// ?x-id=<Operation> to most S3 requests, which wins when present). The service comes from the target's
// prefix, else from the SigV4 credential scope of the Authorization header.

export interface Operation {
  /** e.g. 'DynamoDB', 'DynamoDBStreams', 'SQS', 'S3', 'SecretsManager'. */
  service: string;
  /** e.g. 'BatchGetItem', 'SendMessageBatch', 'GetObject'. */
  operation: string;
}

export interface RequestFacts {
  method: string;
  /** Path and query as received (`/bucket/key?x-id=GetObject`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** X-Amz-Target prefixes → the service name used in the tables. */
const TARGET_PREFIXES: Record<string, string> = {
  DynamoDB_20120810: 'DynamoDB',
  DynamoDBStreams_20120810: 'DynamoDBStreams',
  AmazonSQS: 'SQS',
  secretsmanager: 'SecretsManager',
  AWSEvents: 'EventBridge',
  Kinesis_20131202: 'Kinesis',
  AWSStepFunctions: 'StepFunctions',
  AmazonSSM: 'SSM',
  Logs_20140328: 'CloudWatchLogs',
  GraniteServiceVersion20100801: 'CloudWatch',
};

/** SigV4 signing names → service names (dynamodb signs DynamoDB and DynamoDB Streams alike). */
const SIGNING_NAMES: Record<string, string> = {
  s3: 'S3',
  sqs: 'SQS',
  dynamodb: 'DynamoDB',
  secretsmanager: 'SecretsManager',
  events: 'EventBridge',
  pipes: 'Pipes',
  lambda: 'Lambda',
  monitoring: 'CloudWatch',
  logs: 'CloudWatchLogs',
  sts: 'STS',
};

function header(headers: RequestFacts['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The service of the SigV4 credential scope: `Credential=AKID/20261128/us-east-1/s3/aws4_request`. */
export function signingName(authorization: string | undefined): string | undefined {
  return /Credential=[^/,]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(authorization ?? '')?.[1];
}

export function classify(request: RequestFacts): Operation {
  const target = header(request.headers, 'x-amz-target');
  if (target) {
    const dot = target.lastIndexOf('.');
    const prefix = dot > 0 ? target.slice(0, dot) : target;
    return { service: TARGET_PREFIXES[prefix] ?? prefix, operation: target.slice(dot + 1) };
  }
  const signing = signingName(header(request.headers, 'authorization'));
  const service = signing ? (SIGNING_NAMES[signing] ?? signing) : 'unknown';
  const contentType = header(request.headers, 'content-type') ?? '';
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    const action = new URLSearchParams(request.body.toString('utf8')).get('Action');
    if (action) return { service, operation: action };
  }
  const url = new URL(request.url, 'http://proxy.invalid');
  const action = url.searchParams.get('Action');
  if (action) return { service, operation: action };
  if (signing === 's3' || (signing === undefined && service === 'unknown')) {
    return { service: 'S3', operation: s3Operation(request.method, url, request.headers) };
  }
  return { service, operation: `${request.method} ${url.pathname}` };
}

/** S3 REST, path-style (the dev clients use forcePathStyle with an endpoint): `/bucket` or `/bucket/key`. */
export function s3Operation(method: string, url: URL, headers: RequestFacts['headers'] = {}): string {
  const xId = url.searchParams.get('x-id');
  if (xId) return xId;
  const q = url.searchParams;
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const isObject = rest.join('/') !== '';
  if (bucket === '') return method === 'GET' ? 'ListBuckets' : `${method} /`;
  if (isObject) {
    switch (method) {
      case 'GET':
        if (q.has('uploadId')) return 'ListParts';
        if (q.has('tagging')) return 'GetObjectTagging';
        if (q.has('acl')) return 'GetObjectAcl';
        return 'GetObject';
      case 'HEAD':
        return 'HeadObject';
      case 'PUT':
        if (q.has('partNumber') && q.has('uploadId'))
          return header(headers, 'x-amz-copy-source') ? 'UploadPartCopy' : 'UploadPart';
        if (q.has('tagging')) return 'PutObjectTagging';
        if (q.has('acl')) return 'PutObjectAcl';
        return header(headers, 'x-amz-copy-source') ? 'CopyObject' : 'PutObject';
      case 'DELETE':
        return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
      case 'POST':
        if (q.has('uploads')) return 'CreateMultipartUpload';
        if (q.has('uploadId')) return 'CompleteMultipartUpload';
        return 'PostObject';
    }
    return `${method} object`;
  }
  // Bucket operations: the first sub-resource in the query names them (?lifecycle, ?versioning, …).
  const subresource = [...q.keys()].find((k) => k !== 'x-id');
  switch (method) {
    case 'GET':
      if (q.get('list-type') === '2') return 'ListObjectsV2';
      if (q.has('versions')) return 'ListObjectVersions';
      if (q.has('uploads')) return 'ListMultipartUploads';
      if (q.has('location')) return 'GetBucketLocation';
      if (
        subresource &&
        !['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'].includes(subresource)
      )
        return `GetBucket${capitalise(subresource)}`;
      return 'ListObjects';
    case 'HEAD':
      return 'HeadBucket';
    case 'PUT':
      return subresource ? `PutBucket${capitalise(subresource)}` : 'CreateBucket';
    case 'DELETE':
      return subresource ? `DeleteBucket${capitalise(subresource)}` : 'DeleteBucket';
    case 'POST':
      return q.has('delete') ? 'DeleteObjects' : `POST bucket`;
  }
  return `${method} bucket`;
}

function capitalise(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** Calls that change state: the last one of a run marks the end of the pipeline's work (see measure.ts). */
const WRITES: Record<string, RegExp> = {
  S3: /^(Put|Copy|Delete|Create|Complete|Upload|Abort|Post)/,
  DynamoDB:
    /^(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems|BatchExecuteStatement|ExecuteStatement|ExecuteTransaction)$/,
  SQS: /^(SendMessage|SendMessageBatch|DeleteMessage|DeleteMessageBatch|ChangeMessageVisibility|ChangeMessageVisibilityBatch|PurgeQueue)$/,
  SecretsManager: /^(PutSecretValue|CreateSecret|UpdateSecret)$/,
  EventBridge: /^PutEvents$/,
};

export function isWrite(op: Operation): boolean {
  return WRITES[op.service]?.test(op.operation) ?? false;
}

export const label = (op: Operation): string => `${op.service}.${op.operation}`;

// Benchmark client: smtpq with lib/message/compose.ts imported directly, so the process loads only the
// client and MailComposer (the index also loads the request schema and zod): the module footprint's share
// of the peak RSS.
import { composeMessage } from '../../lib/message/compose.ts';
import { measure, readJob } from './measure.ts';
import { openSmtpq } from './smtpq-sender.ts';

await measure(readJob(), (job) => openSmtpq(job, composeMessage));

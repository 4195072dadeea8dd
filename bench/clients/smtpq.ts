// Benchmark client: smtpq as an application uses it, lib/message through its public index.
import { composeMessage } from '../../lib/message/index.ts';
import { measure, readJob } from './measure.ts';
import { openSmtpq } from './smtpq-sender.ts';

await measure(readJob(), (job) => openSmtpq(job, composeMessage));

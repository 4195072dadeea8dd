// Times as the API takes them: RFC 3339 date-times with an offset (`Z` or `±hh:mm`), checked before a request
// so that a typo is a usage error naming the flag, not a round trip.

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

/** An RFC 3339 date-time with an offset that is a real time (no 2026-02-30). */
export function isRfc3339(text: string): boolean {
  if (!RFC3339.test(text)) return false;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return false;
  // Date.parse rolls 2026-02-30 over to March: the day must survive the round trip.
  const [, month, day] = /^\d{4}-(\d\d)-(\d\d)/.exec(text)!;
  const local = new Date(`${text.slice(0, 10)}T00:00:00Z`);
  return local.getUTCMonth() + 1 === Number(month) && local.getUTCDate() === Number(day);
}

export const RFC3339_EXAMPLE = '2026-12-24T09:00:00+01:00';

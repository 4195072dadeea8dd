import { describe, expect, it } from 'vitest';
import { furtherTransaction, type RecipientOutcome, type Reply, statusOf } from '../../lib/smtp/index.ts';

const reply = (code: number, text = 'x'): Reply => ({ code, lines: [text] });
const rcpt = (address: string, code: number): RecipientOutcome => ({
  address,
  status: statusOf(reply(code)),
  reply: reply(code, `rcpt ${address}`),
});
const mail = reply(250);

describe('furtherTransaction (452 too many recipients, RFC 5321 §4.5.3.1.10)', () => {
  it('sends the 452 recipients again when the server accepted others', () => {
    const data = reply(250, 'queued');
    const recipients = [
      { ...rcpt('a@x.example', 250), reply: data },
      rcpt('b@x.example', 452),
      rcpt('c@x.example', 452),
    ];
    expect(furtherTransaction({ mail, recipients, data })).toEqual(['b@x.example', 'c@x.example']);
  });

  it('counts a recipient refused for good (5xx) as settled: the server used up its RCPT limit on it', () => {
    const recipients = [rcpt('a@x.example', 550), rcpt('b@x.example', 452)];
    expect(furtherTransaction({ mail, recipients })).toEqual(['b@x.example']);
  });

  it('nothing when no recipient was settled: a 452 alone, or next to other 4xx, is a shortage to defer', () => {
    expect(
      furtherTransaction({ mail, recipients: [rcpt('a@x.example', 452), rcpt('b@x.example', 452)] }),
    ).toEqual([]);
    expect(
      furtherTransaction({ mail, recipients: [rcpt('a@x.example', 451), rcpt('b@x.example', 452)] }),
    ).toEqual([]);
  });

  it('nothing when MAIL was refused with 452 (every recipient takes that reply)', () => {
    const refused = reply(452, 'insufficient storage');
    const recipients = ['a@x.example', 'b@x.example'].map((address) => ({
      address,
      status: 'deferred' as const,
      reply: refused,
    }));
    expect(furtherTransaction({ mail: refused, recipients })).toEqual([]);
  });

  it('a 452 to the message data is not a RCPT refusal; the recipients it deferred count as settled', () => {
    const data = reply(452, 'try later');
    const recipients = [
      { address: 'a@x.example', status: 'deferred' as const, reply: data },
      rcpt('b@x.example', 452),
    ];
    expect(furtherTransaction({ mail, recipients, data })).toEqual(['b@x.example']);
    expect(furtherTransaction({ mail, recipients: [recipients[0]!], data })).toEqual([]);
  });

  it('nothing without a 452', () => {
    expect(
      furtherTransaction({ mail, recipients: [rcpt('a@x.example', 250), rcpt('b@x.example', 550)] }),
    ).toEqual([]);
  });
});

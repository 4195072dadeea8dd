// The benchmark's message text, the same in every client (smtplib_client.py has a copy of the rule).

/** A text body of about `bytes` octets in 74-character CRLF lines (7bit, no transfer encoding needed). */
export function textBody(bytes: number): string {
  const line = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.'.slice(0, 74);
  const lines: string[] = [];
  for (let size = 0; size < bytes; size += line.length + 2) lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

// The moto server smtpq starts (scripts/local/moto-launcher.py) serves the SDKs on loopback, and no web
// page: a request naming another host (DNS rebinding) is 421, one with an Origin is 403.
import { request } from 'node:http';
import { describe, expect, inject, it } from 'vitest';

function raw(headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const endpoint = new URL(inject('motoEndpoint'));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: endpoint.hostname,
        port: endpoint.port,
        method: 'POST',
        path: '/',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      },
      (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end('Action=ListQueues&Version=2012-11-05');
  });
}

describe('the dev AWS emulator', () => {
  const port = () => new URL(inject('motoEndpoint')).port;

  it('answers an SDK-like request for a loopback name', async () => {
    for (const host of [`127.0.0.1:${port()}`, `localhost:${port()}`, 'localhost:1'])
      expect((await raw({ host })).status, host).toBe(200);
  });

  it('refuses another host name (DNS rebinding) with 421', async () => {
    const response = await raw({ host: `attacker.example:${port()}` });
    expect(response.status).toBe(421);
    expect(response.body).toMatch(/DNS rebinding/);
  });

  it('refuses a request from a web page (an Origin) with 403', async () => {
    const response = await raw({ host: `127.0.0.1:${port()}`, origin: 'https://evil.example' });
    expect(response.status).toBe(403);
  });
});

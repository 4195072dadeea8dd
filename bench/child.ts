// Runs one benchmark client in a process of its own and reads its one-line JSON result, so the CPU
// time and peak RSS it reports belong to that client alone.
import { spawn } from 'node:child_process';
import type { ClientJob, ClientResult } from './clients/protocol.ts';

/** Well above any cell's run time on a loaded machine; a hung client must not hang the bench. */
const childTimeoutMs = 120_000;

export interface ClientCommand {
  command: string;
  args: string[];
}

export function runClient(
  client: ClientCommand,
  job: ClientJob,
  env: Record<string, string> = {},
): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(client.command, [...client.args, JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), childTimeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) {
        resolve(JSON.parse(line) as ClientResult);
        return;
      }
      const why = signal === 'SIGKILL' ? `killed after ${childTimeoutMs / 1000} s` : `exit ${code ?? signal}`;
      const lastLines = stderr.trim().split('\n').slice(-3).join(' | ');
      reject(new Error(`${why}: ${lastLines || line || 'no output'}`));
    });
  });
}

/**
 * Recorded AWS responses (test/fixtures/aws/*.json) played back through the CLI's `AwsAccess`
 * seam: each `send()` must be the next recorded command; its input is kept for assertions.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { AwsAccess, AwsClients } from '../../cli/aws/clients';

interface RecordedCall {
  command: string;
  response?: unknown;
  error?: { name: string; message: string } & Record<string, unknown>;
}

export interface SentRequest {
  command: string;
  input: Record<string, unknown>;
}

export interface Recording {
  access: AwsAccess;
  /** Every request sent, in order. */
  sent: SentRequest[];
  /** Recorded calls not replayed yet. */
  remaining(): number;
}

export function replay(fixture: string, patch: (calls: RecordedCall[]) => void = () => {}): Recording {
  const file = path.join(__dirname, '..', 'fixtures', 'aws', `${fixture}.json`);
  const calls = (JSON.parse(readFileSync(file, 'utf8')) as { calls: RecordedCall[] }).calls;
  patch(calls);
  const sent: SentRequest[] = [];
  const send = async (command: { input: Record<string, unknown> }) => {
    const name = command.constructor.name;
    sent.push({ command: name, input: command.input });
    const call = calls.shift();
    if (!call) throw new Error(`unrecorded ${name}: ${fixture}.json has no more calls`);
    if (call.command !== name) throw new Error(`${fixture}.json expected ${call.command}, got ${name}`);
    if (call.error) throw Object.assign(new Error(call.error.message), call.error);
    return call.response;
  };
  const clients = { cloudFormation: { send }, sfn: { send } } as unknown as AwsClients;
  return {
    access: { clients: async () => clients, pollIntervalMs: 0 },
    sent,
    remaining: () => calls.length,
  };
}

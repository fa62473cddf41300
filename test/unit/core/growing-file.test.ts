import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GrowingFile } from '../../../core/growing-file';

const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-growing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(reader: AsyncGenerator<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of reader) parts.push(part);
  return Buffer.concat(parts).toString();
}

test('a reader follows the file as it is written, waits at its written end, and stops at the end once complete', async () => {
  const file = path.join(dir, 'a');
  writeFileSync(file, '');
  const growing = new GrowingFile(file);
  const read = readAll(growing.read(2));
  let settled = false;
  void read.then(() => {
    settled = true;
  });
  appendFileSync(file, 'abcdef');
  growing.grown(4); // only what the writer says is written is read
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(settled).toBe(false);
  appendFileSync(file, 'ghi');
  growing.finish(9);
  expect(await read).toBe('cdefghi');
});

test('a reader waiting for more fails with the writer’s error, and stops on its signal', async () => {
  const file = path.join(dir, 'b');
  writeFileSync(file, 'xy');
  const growing = new GrowingFile(file);
  growing.grown(2);
  const failing = readAll(growing.read(0));
  const stop = new AbortController();
  const stopped = readAll(growing.read(0, stop.signal));
  await new Promise((resolve) => setTimeout(resolve, 20));
  stop.abort(new Error('stopped'));
  await expect(stopped).rejects.toThrow('stopped');
  growing.fail(new Error('checksum failed'));
  await expect(failing).rejects.toThrow('checksum failed');
});

/**
 * fileChunks: a file's bytes in chunks of one reused buffer, in order, the last one short; an
 * empty file gives none; the file is closed when the reader stops early.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileChunks } from '../../../core/file-chunks';

const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-file-chunks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileOf(name: string, bytes: Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

/** This process's open file descriptors. */
const openFiles = async () => (await readdir('/proc/self/fd')).length;

test('gives the bytes in order, in chunks of one buffer read again and again', async () => {
  const file = fileOf('ten', Buffer.from('0123456789'));
  const seen: string[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for await (const chunk of fileChunks(file, 4)) {
    seen.push(chunk.toString());
    buffers.add(chunk.buffer);
  }
  expect(seen).toEqual(['0123', '4567', '89']);
  expect(buffers.size).toBe(1);
});

test('gives no chunk of an empty file', async () => {
  const chunks: Buffer[] = [];
  for await (const chunk of fileChunks(fileOf('empty', Buffer.alloc(0)))) chunks.push(chunk);
  expect(chunks).toEqual([]);
});

test('closes the file when the reader stops early', async () => {
  const file = fileOf('long', Buffer.alloc(100));
  const before = await openFiles();
  for await (const chunk of fileChunks(file, 10)) {
    expect(chunk.length).toBe(10);
    expect(await openFiles()).toBe(before + 1);
    break;
  }
  expect(await openFiles()).toBe(before);
});

test('fails on a file that does not exist', async () => {
  await expect(fileChunks(path.join(dir, 'missing')).next()).rejects.toThrow(/ENOENT/);
});

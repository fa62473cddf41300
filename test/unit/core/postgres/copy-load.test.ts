/**
 * core/postgres/copy-load.ts's reading of a table's data block: the COPY text of the archive's
 * chunks, in pieces of whole lines, without pg_dump's end marker, wherever the chunks and the
 * file's reads cut the rows; a row longer than a read sent on in pieces marked partial, never held
 * whole; a block that ends early or without the marker is refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { dealArchiveData } from '../../../../core/postgres/copy-load';

const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-copy-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An archive int of 4 bytes: a sign byte, then least significant first. */
function archiveInt(n: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32LE(n, 1);
  return b;
}

/** A file of `prefix` junk, then a data block of `text` in chunks of `chunk` bytes, then junk. */
function block(text: string, chunk: number, end = true): { file: string; offset: number } {
  const prefix = Buffer.from('not the block');
  const parts: Buffer[] = [prefix];
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; at += chunk) {
    const piece = bytes.subarray(at, at + chunk);
    parts.push(archiveInt(piece.length), piece);
  }
  if (end) parts.push(archiveInt(0), Buffer.from('next block'));
  const file = path.join(dir, `block-${Math.random()}.bin`);
  writeFileSync(file, Buffer.concat(parts));
  return { file, offset: prefix.length };
}

async function deal(text: string, chunk: number, end = true): Promise<Buffer[]> {
  const { file, offset } = block(text, chunk, end);
  const pieces: Buffer[] = [];
  await dealArchiveData({ dumpFile: file, offset, intSize: 4, name: 't' }, async (p) => {
    pieces.push(Buffer.concat(p));
  });
  return pieces;
}

const rows = Array.from({ length: 30000 }, (_, i) => `${i}\tvalue \\. with\\ttab\\n ${'ü'.repeat(i % 97)}\n`);
const text = `${rows.join('')}\\.\n\n\n`;

test.each([
  ['one chunk a row', 0],
  ['chunks cutting rows and the marker', 777],
  ['one large chunk', 4 * 1024 * 1024],
])('the rows come out whole, in order, without the marker: %s', async (_, size) => {
  const pieces =
    size === 0
      ? await (async () => {
          // As pg_dump writes them: each row its own chunk, the marker its own.
          const parts: Buffer[] = [Buffer.from('xx')];
          for (const row of [...rows, '\\.\n\n\n'])
            parts.push(archiveInt(Buffer.byteLength(row)), Buffer.from(row));
          parts.push(archiveInt(0));
          const file = path.join(dir, 'rows.bin');
          writeFileSync(file, Buffer.concat(parts));
          const got: Buffer[] = [];
          await dealArchiveData({ dumpFile: file, offset: 2, intSize: 4, name: 't' }, async (p) => {
            got.push(Buffer.concat(p));
          });
          return got;
        })()
      : await deal(text, size);
  expect(pieces.length).toBeGreaterThan(1);
  for (const p of pieces) expect(p[p.length - 1]).toBe(0x0a);
  expect(Buffer.concat(pieces).toString()).toBe(rows.join(''));
});

test('a row longer than a read goes out in pieces, each marked as leaving the row open, none holding it whole', async () => {
  // Reads are of 1 MiB: rows of 3.5 MiB and of 1 MiB and a few bytes, between short ones, the
  // last one long (the end marker right after it), in chunks of 64 KiB.
  const long = (n: number, c: string) => `${n}\t${c.repeat(n)}\n`;
  const lines = [
    '1\tshort\n',
    long(3_500_000, 'a'),
    '2\tshort\n',
    long(1_048_580, 'b'),
    long(1_048_566, 'c'),
  ];
  const { file, offset } = block(`${lines.join('')}\\.\n\n\n`, 64 * 1024);
  const pieces: { bytes: Buffer; partial: boolean }[] = [];
  await dealArchiveData({ dumpFile: file, offset, intSize: 4, name: 't' }, async (p, partial) => {
    pieces.push({ bytes: Buffer.concat(p), partial });
  });
  expect(Buffer.concat(pieces.map((p) => p.bytes)).toString()).toBe(lines.join(''));
  // A piece ends a line unless it says the row goes on; none is more than two reads' text (a
  // read's tail carried, then the next read): the 3.5 MB row went out in 2 open pieces and a last.
  for (const p of pieces) expect(p.bytes[p.bytes.length - 1] === 0x0a).toBe(!p.partial);
  expect(pieces.filter((p) => p.partial).length).toBeGreaterThanOrEqual(2);
  expect(Math.max(...pieces.map((p) => p.bytes.length))).toBeLessThanOrEqual(2 * 1024 * 1024);
});

test('a table without rows sends nothing', async () => {
  expect(await deal('\\.\n\n\n', 100)).toEqual([]);
});

test('a block without the end marker, or that the file ends inside, is refused', async () => {
  await expect(deal('1\n2\n', 100)).rejects.toThrow(/does not end with COPY's end marker/);
  await expect(deal('1\n2\n\\.\n\n\n', 100, false)).rejects.toThrow(/ends inside the data of t/);
});

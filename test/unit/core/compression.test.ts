import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import {
  compressionStages,
  createCompressor,
  createDecompressor,
  decompressFile,
  parseCompression,
} from '../../../core/compression';

test.each([
  ['zstd', { codec: 'zstd', level: 1 }],
  ['zstd:19', { codec: 'zstd', level: 19 }],
  ['gzip', { codec: 'gzip' }],
  ['gzip:9', { codec: 'gzip', level: 9 }],
  ['lz4', { codec: 'lz4' }],
  ['none', { codec: 'none' }],
])('parses %s', (spec, expected) => {
  expect(parseCompression(spec)).toEqual(expected);
});

test.each([
  ['brotli', /unknown compression/],
  ['zstd:0', /between 1 and 19/],
  ['gzip:10', /between 1 and 9/],
  ['none:1', /takes no level/],
])('refuses %s', (spec, message) => {
  expect(() => parseCompression(spec)).toThrow(message);
});

test.each(['zstd:1', 'gzip:1', 'lz4', 'none'])('%s round-trips bytes exactly', async (spec) => {
  const c = parseCompression(spec);
  const input = Buffer.concat([Buffer.from('pgferry '.repeat(100000)), Buffer.from([0, 255, 1, 254])]);
  const compressed = await buffer(Readable.from([input]).pipe(createCompressor(c)));
  const output = await buffer(Readable.from([compressed]).pipe(createDecompressor(c)));
  expect(output.equals(input)).toBe(true);
  if (c.codec !== 'none') expect(compressed.length).toBeLessThan(input.length / 10);
});

test.each(['zstd:1', 'gzip:1', 'lz4', 'none'])(
  "%s: a backup's stages round-trip bytes exactly",
  async (spec) => {
    const c = parseCompression(spec);
    const input = Buffer.concat([Buffer.from('pgferry '.repeat(300000)), Buffer.from([0, 255, 1, 254])]);
    const source = Readable.from([input.subarray(0, 65536), input.subarray(65536)]);
    const stored = await buffer(compressionStages(c).reduce<Readable>((s, stage) => s.pipe(stage), source));
    const output = await buffer(Readable.from([stored]).pipe(createDecompressor(c)));
    expect(output.equals(input)).toBe(true);
  },
);

test('none: no stage, so the chunks pass as they come, never copied into new buffers', () => {
  // A Coalesce before none copied a migration's 541 MB into 1 MiB buffers: 28–41 full GCs.
  expect(compressionStages({ codec: 'none' })).toEqual([]);
});

describe('decompressFile', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-decompress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const input = Buffer.concat([Buffer.from('pgferry '.repeat(100000)), Buffer.from([0, 255, 1, 254])]);

  test.each(['zstd:1', 'gzip:1', 'lz4', 'none'])(
    '%s: what the compressor wrote, file to file',
    async (spec) => {
      const c = parseCompression(spec);
      const src = path.join(dir, `${c.codec}.in`);
      const dst = path.join(dir, `${c.codec}.out`);
      writeFileSync(src, await buffer(Readable.from([input]).pipe(createCompressor(c))));
      await decompressFile(c, src, dst);
      expect(readFileSync(dst).equals(input)).toBe(true);
    },
  );

  test.each(['zstd:1', 'lz4'])("%s: damaged input fails with the tool's message", async (spec) => {
    const c = parseCompression(spec);
    const src = path.join(dir, `${c.codec}.damaged`);
    const compressed = await buffer(Readable.from([input]).pipe(createCompressor(c)));
    compressed[Math.floor(compressed.length / 2)] ^= 0xff;
    writeFileSync(src, compressed);
    await expect(decompressFile(c, src, path.join(dir, 'damaged.out'))).rejects.toThrow(
      new RegExp(`^${c.codec}: `),
    );
  });
});

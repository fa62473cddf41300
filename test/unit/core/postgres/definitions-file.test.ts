import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DefinitionsFile } from '../../../../core/postgres/definitions-file';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-definitions-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const pieces = Array.from({ length: 50 }, (_, i) => Buffer.alloc(10_000 + i, i));

describe('DefinitionsFile', () => {
  it('is whole when `written` resolves: every piece, in order, readable by its owner alone', async () => {
    const file = path.join(dir, 'definitions.pgdump');
    const out = new DefinitionsFile(file);
    pieces.forEach((piece, i) => {
      out.write(piece, i === pieces.length - 1);
    });
    await out.written;
    expect(readFileSync(file).equals(Buffer.concat(pieces))).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Discarded once whole (the caller's cleanup after a later failure), it stays.
    await out.discard();
    expect(readFileSync(file).equals(Buffer.concat(pieces))).toBe(true);
  });

  it('discarded before its last piece: `written` rejects and nothing is left', async () => {
    const file = path.join(dir, 'definitions.pgdump');
    const out = new DefinitionsFile(file);
    out.write(pieces[0], false);
    out.write(pieces[1], false);
    await out.discard();
    await expect(out.written).rejects.toThrow(/discarded before the archive's table of contents ended/);
    expect(readdirSync(dir)).toEqual([]);
    // What comes after is not written.
    out.write(pieces[2], true);
    expect(existsSync(file)).toBe(false);
  });

  it('never writes over a file that exists, nor removes it', async () => {
    const file = path.join(dir, 'definitions.pgdump');
    writeFileSync(file, 'theirs');
    const out = new DefinitionsFile(file);
    out.write(pieces[0], true);
    await expect(out.written).rejects.toMatchObject({ code: 'EEXIST' });
    await out.discard();
    expect(readFileSync(file, 'utf8')).toBe('theirs');
  });
});

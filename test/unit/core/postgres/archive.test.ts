/**
 * core/postgres/archive.ts's reading of table data, on archives written here (the layout of
 * pg_dump's custom format, 1.14) so that their chunks can be cut as no pg_dump cuts them: one chunk
 * a row (pg_dump's), several rows a chunk, a row over several chunks, one-byte chunks, a chunk
 * longer than the pieces it is fed in, and the pieces split at every offset. The rows are counted
 * exactly, the listener is given the text byte for byte, and the end marker is checked wherever it
 * lies. The real pg_dump's archives are read in test/integration/core/postgres/archive.test.ts.
 */
import { ArchiveScanner, type TableDataListener } from '../../../../core/postgres/archive';

/** An archive int of 4 bytes: a sign byte, then least significant first. */
function int(n: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = n < 0 ? 1 : 0;
  b.writeUInt32LE(Math.abs(n), 1);
  return b;
}

function str(s: string | null): Buffer {
  if (s === null) return int(-1);
  const bytes = Buffer.from(s);
  return Buffer.concat([int(bytes.length), bytes]);
}

interface Table {
  name: string;
  /** Its data as pg_dump writes it: COPY text, then the end marker. */
  text: string;
  /** The text's chunks: `row` one a line (pg_dump's), or chunks of this many bytes. */
  chunks: 'row' | number;
}

/** A custom-format archive (1.14, no compression) of `tables`' data. */
function archiveOf(tables: Table[]): Buffer {
  const header = Buffer.concat([
    Buffer.from('PGDMP'),
    Buffer.from([1, 14, 0, 4, 8, 1]),
    int(0), // compression level
    ...Array.from({ length: 7 }, () => int(0)), // creation time
    str('db'),
    str('15.0'),
    str('15.0'),
  ]);
  const entry = (dumpId: number, t: Table) =>
    Buffer.concat([
      int(dumpId),
      int(1), // hadDumper
      str('0'),
      str(String(16384 + dumpId)),
      str(t.name),
      str('TABLE DATA'),
      int(3), // section: data
      str(''),
      str(''),
      str(`COPY public.${t.name} (v) FROM stdin;\n`),
      str('public'),
      str(''),
      str(''), // tableam
      str('app'),
      str('false'),
      str(null), // no dependencies
      Buffer.alloc(9), // the data offset: unset
    ]);
  const block = (dumpId: number, t: Table) => {
    const text = Buffer.from(t.text);
    const parts = [Buffer.from([1]), int(dumpId)];
    if (t.chunks === 'row') {
      for (let at = 0; at < text.length; ) {
        const end = text.indexOf(0x0a, at) + 1 || text.length;
        parts.push(int(end - at), text.subarray(at, end));
        at = end;
      }
    } else {
      for (let at = 0; at < text.length; at += t.chunks) {
        const chunk = text.subarray(at, at + t.chunks);
        parts.push(int(chunk.length), chunk);
      }
    }
    parts.push(int(0));
    return Buffer.concat(parts);
  };
  return Buffer.concat([
    header,
    int(tables.length),
    ...tables.map((t, i) => entry(i + 1, t)),
    ...tables.map((t, i) => block(i + 1, t)),
  ]);
}

/** Each table's text as the listener was given it, and the bytes and ends it was told of. */
function listener(): TableDataListener & { texts: Map<string, Buffer[]>; ended: string[] } {
  const texts = new Map<string, Buffer[]>();
  const ended: string[] = [];
  return {
    texts,
    ended,
    data(table, buf, ranges, count) {
      const mine = texts.get(table.name) ?? [];
      texts.set(table.name, mine);
      for (let r = 0; r < count; r++) mine.push(Buffer.from(buf.subarray(ranges[2 * r], ranges[2 * r + 1])));
    },
    end(table) {
      ended.push(table.name);
    },
  };
}

/** Reads the archive fed in `pieces` (its split points); the rows, bytes and texts read. */
function read(archive: Buffer, cuts: number[]) {
  const scanner = new ArchiveScanner();
  const heard = listener();
  scanner.dataListener = heard;
  let at = 0;
  for (const cut of [...cuts, archive.length]) {
    scanner.write(archive.subarray(at, cut));
    at = cut;
  }
  const tables = scanner.tables();
  return {
    rows: Object.fromEntries(tables.map((t) => [t.name, t.rows])),
    bytes: Object.fromEntries(tables.map((t) => [t.name, t.bytes])),
    texts: Object.fromEntries(
      [...heard.texts].map(([name, parts]) => [name, Buffer.concat(parts).toString()]),
    ),
    ended: heard.ended,
  };
}

const MARKER = '\\.\n\n\n';
const rowsOf = (n: number, row: (i: number) => string) =>
  Array.from({ length: n }, (_, i) => `${row(i)}\n`).join('');

/**
 * Rows of every length around the framing's: empty lines, rows of 10 bytes (their chunk's length
 * is a newline byte), a row longer than the pieces, escaped newlines and backslashes, non-ASCII.
 */
const awkward = [
  rowsOf(2000, (i) => `${i}\t${'x'.repeat(i % 70)}`),
  '\n\n',
  rowsOf(30, (i) => `${1000 + i}\tabcd`),
  `long\t${'é'.repeat(50_000)}\n`,
  rowsOf(40, (i) => `${i}\t\\n\\.\\\\ü`),
  '\\.x\n',
].join('');

const tables = (chunks: Table['chunks']): Table[] => [
  { name: 'narrow', text: `${rowsOf(3000, (i) => `${i}\t${i * 7}\tab`)}${MARKER}`, chunks },
  { name: 'empty', text: MARKER, chunks },
  { name: 'awkward', text: `${awkward}${MARKER}`, chunks },
];
const expectedRows = { narrow: 3000, empty: 0, awkward: 2000 + 2 + 30 + 1 + 40 + 1 };

describe.each([
  ['one chunk a row, as pg_dump writes', 'row' as const],
  ['several rows a chunk', 300],
  ['rows over several chunks', 7],
  ['one byte a chunk', 1],
  ['one chunk a table', 1 << 20],
])('table data in %s', (_, chunks) => {
  const archive = archiveOf(tables(chunks));

  test.each([1, 2, 3, 5, 64, 4096, 65_536, 1 << 20, Number.MAX_SAFE_INTEGER])(
    'fed %i bytes at a time: rows exact, the text given byte for byte, the marker left out of the rows',
    (pieceBytes) => {
      const cuts: number[] = [];
      for (let at = pieceBytes; at < archive.length; at += pieceBytes) cuts.push(at);
      const got = read(archive, cuts);
      expect(got.rows).toEqual(expectedRows);
      for (const t of tables(chunks)) {
        expect(got.texts[t.name] ?? '').toBe(t.text);
        expect(got.bytes[t.name]).toBe(Buffer.byteLength(t.text));
      }
      expect(got.ended).toEqual(['narrow', 'empty', 'awkward']);
    },
  );
});

test('an archive of one-row chunks split in two at every offset of its data is read the same', () => {
  const small: Table[] = [
    { name: 'a', text: `${rowsOf(60, (i) => `${i}\t${'y'.repeat(i % 11)}`)}${MARKER}`, chunks: 'row' },
    { name: 'b', text: `1\n${MARKER}`, chunks: 'row' },
  ];
  const archive = archiveOf(small);
  const whole = read(archive, []);
  expect(whole.rows).toEqual({ a: 60, b: 1 });
  for (let cut = 1; cut < archive.length; cut++) {
    const got = read(archive, [cut]);
    expect(got.rows).toEqual(whole.rows);
    expect(got.texts).toEqual(whole.texts);
    // And three pieces, the second of a few bytes: a length int split over all three.
    expect(read(archive, [cut, Math.min(cut + 3, archive.length)]).rows).toEqual(whole.rows);
  }
});

describe('data that does not end with the end marker is refused, wherever its chunks cut it', () => {
  test.each([
    ['no marker', rowsOf(3, (i) => `${i}`)],
    ['the marker not on a line of its own', `${rowsOf(3, (i) => `${i}`)}x\\.\n\n\n`],
    ['no newline after the marker', `${rowsOf(3, (i) => `${i}`)}\\.`],
    ['rows after the marker', `${rowsOf(3, (i) => `${i}`)}${MARKER}4\n`],
  ])('%s', (_, text) => {
    for (const chunks of ['row' as const, 1, 2, 3, 100]) {
      const archive = archiveOf([{ name: 'bad', text, chunks }]);
      for (const pieceBytes of [1, 7, archive.length]) {
        const cuts: number[] = [];
        for (let at = pieceBytes; at < archive.length; at += pieceBytes) cuts.push(at);
        expect(() => read(archive, cuts)).toThrow(
          /the data of public\.bad does not end with COPY's end marker/,
        );
      }
    }
  });

  test('the marker alone, in one-byte chunks, is a table of no rows', () => {
    expect(read(archiveOf([{ name: 'e', text: MARKER, chunks: 1 }]), []).rows).toEqual({ e: 0 });
  });
});

test('a chunk of negative length is refused, amid whole chunks or not', () => {
  const text = `${rowsOf(50, (i) => `${i}`)}${MARKER}`;
  const archive = archiveOf([{ name: 'neg', text, chunks: 'row' }]);
  // The 20th chunk's length made negative: its sign byte.
  let at = archive.length - 5 - Buffer.byteLength(text) - 5 * (text.split('\n').length - 1);
  for (let chunk = 0; chunk < 20; chunk++) at += 5 + archive.readUInt32LE(at + 1);
  archive[at] = 1;
  for (const pieceBytes of [1, 3, 64, archive.length]) {
    const cuts: number[] = [];
    for (let c = pieceBytes; c < archive.length; c += pieceBytes) cuts.push(c);
    expect(() => read(archive, cuts)).toThrow(/a data chunk of negative length -\d+/);
  }
});

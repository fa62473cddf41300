/**
 * A streaming reader of pg_dump's custom archive format (`pg_dump -Fc`), written to count each
 * table's rows from the dump as it streams past, so that a backup's row counts come from the very
 * bytes it stores, without a second session or a second scan of any table. Its table of contents
 * also tells a clean restore what pg_restore will drop, before the archive is downloaded
 * (core/postgres/archive-toc.ts).
 *
 * The format (PostgreSQL's src/bin/pg_dump/pg_backup_archiver.c `WriteHead`/`WriteToc` and
 * pg_backup_custom.c), as pg_dump writes it to a pipe:
 *
 *   header  "PGDMP", version (major, minor, rev), intSize, offSize, format, compression,
 *           creation time (7 ints), database name, server version, pg_dump version
 *   TOC     count, then per entry: dumpId, hadDumper, catalog tableoid and oid (as strings),
 *           tag, desc, section, defn, dropStmt, copyStmt, namespace, tablespace, tableam,
 *           relkind (1.16), owner, "false" (WITH OIDS), dependencies (strings, ended by NULL),
 *           and the custom format's data offset (flag byte + offSize bytes)
 *   data    blocks in TOC order: a type byte (1 = one entry's data, 3 = large objects) and the
 *           entry's dumpId; then table data as chunks (length, bytes) ended by a zero length, or
 *           large objects as (oid, chunks…, 0) repeated and ended by a zero oid
 *
 * An int is a sign byte then `intSize` bytes, least significant first; a string is an int length
 * (-1 for NULL) then its bytes, in the dumped database's encoding: the TOC's first entry, ENCODING
 * (`SET client_encoding = 'LATIN1';`), names it, and the strings after it are decoded by it
 * (core/postgres/server-encodings.ts), an entry with one that cannot be decoded exactly marked
 * `undecodable`. A TABLE DATA entry's catalog id is (0, the table's oid), its tag the
 * table's name and its namespace the table's schema. Without compression (`-Z0`) a table's data is
 * its COPY text: one line per row (newlines inside values are escaped as `\n`), then the end marker
 * pg_dump adds, `\.` and two empty lines. So rows = newlines − the marker's.
 *
 * Archive versions 1.12 to 1.16 are read: pg_dump 13 to 15 write 1.14, 16 writes 1.15 (the
 * compression algorithm in the header), 17 and 18 write 1.16 (relkind in the TOC). A newer version
 * is refused rather than guessed at, as is the table data of a compressed archive (its chunks are
 * not COPY text; its TOC is read all the same).
 *
 * Nothing is buffered but the structure being read: data chunks are scanned where they lie.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { PgferryError } from '../errors';
import { type NameDecoder, nameDecoder } from './server-encodings';

/** A version of the archive format, as major, minor, rev packed in one number (as pg_dump does). */
const archiveVersion = (major: number, minor: number, rev = 0) => (major * 256 + minor) * 256 + rev;
const K_VERS_1_12 = archiveVersion(1, 12);
const K_VERS_1_14 = archiveVersion(1, 14);
const K_VERS_1_15 = archiveVersion(1, 15);
const K_VERS_1_16 = archiveVersion(1, 16);
/** The newest format read here: pg_dump 17 and 18 write 1.16. */
const K_VERS_MAX = archiveVersion(1, 16, 255);

const MAGIC = Buffer.from('PGDMP');
const ARCHIVE_FORMAT_CUSTOM = 1;
const BLK_DATA = 1;
const BLK_BLOBS = 3;
const NEWLINE = 0x0a;
/** Ranges of table data handed to the listener in one call, at most. */
const RUN_RANGES = 1024;
const COMPRESSION_ALGORITHMS = ['none', 'gzip', 'lz4', 'zstd'] as const;

export interface ArchiveHeader {
  /** The archive format's version, e.g. `1.14.0`. */
  version: string;
  intSize: number;
  offSize: number;
  /** `none`, or the algorithm the data chunks are compressed with. */
  compression: string;
  /** The database dumped, the server's version and pg_dump's, as pg_dump recorded them. */
  database: string | null;
  serverVersion: string | null;
  pgDumpVersion: string | null;
}

/** One entry of the archive's table of contents (the fields this reader keeps). */
export interface ArchiveTocEntry {
  dumpId: number;
  /** The entry has a data block in the archive (TABLE DATA, BLOBS). */
  hadDumper: boolean;
  /** The object's catalog id; for TABLE DATA, tableoid is 0 and oid the table's. */
  tableoid: number;
  oid: number;
  /** The object's name (for TABLE DATA, the table's). */
  tag: string | null;
  /** Its kind, e.g. `TABLE`, `TABLE DATA`, `BLOBS`. */
  desc: string | null;
  /** Its schema. */
  namespace: string | null;
  owner: string | null;
  dependencies: number[];
  /** Whether `pg_restore --clean` issues a DROP for it (its drop statement is not empty). */
  dropped: boolean;
  /** TABLE DATA: the `COPY … FROM stdin;` statement its data is loaded with. */
  copyStmt?: string;
  /** ENCODING and STDSTRINGS: the `SET` statement pg_restore runs in each session. */
  defn?: string;
  /**
   * A string of the entry (its name, schema, owner, COPY statement) is not exactly decodable from
   * the archive's encoding (see core/postgres/server-encodings.ts): it was decoded loosely, to be
   * shown and never sent.
   */
  undecodable?: true;
}

/** Rows of one table as counted from its data block. */
export interface TableDataRows {
  dumpId: number;
  /** The table's oid in the dumped database. */
  oid: number;
  schema: string;
  name: string;
  rows: number;
  /** Bytes of its data (COPY text), once its block has been read whole. */
  bytes?: number;
}

/**
 * Receives each table's COPY text as the scanner reads it (see `ArchiveScanner.dataListener`): a
 * migration's loader (core/postgres/copy-stream.ts) takes it straight from pg_dump's stream.
 */
export interface TableDataListener {
  /**
   * The table's next bytes: `count` ranges of `buf`, the i-th `buf[ranges[2i], ranges[2i + 1])`,
   * in order — the bodies of consecutive chunks, the chunks' lengths between them left out (pg_dump
   * writes a chunk per row: one call gives many rows). pg_dump's end marker is included (it
   * arrives last). The bytes and the ranges are the scanner's own, valid only during the call:
   * copy what is kept.
   */
  data(table: TableDataRows, buf: Buffer, ranges: Float64Array, count: number): void;
  /** The table's data block ended, its end marker checked. */
  end(table: TableDataRows): void;
}

/** Thrown inside the reader when the bytes at hand end before the structure being read. */
class NeedMoreBytes extends Error {}
const NEED_MORE = new NeedMoreBytes('more bytes needed');

/** The dependencies of every entry that has none: one frozen list (never changed by any reader). */
const NO_DEPENDENCIES = Object.freeze([]) as unknown as number[];

/** Reads the archive's fixed-layout structures from one buffer, throwing NEED_MORE at its end. */
class Cursor {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    private readonly intSize: number,
    /** Decodes a string's bytes (default: as UTF-8). */
    private readonly decode: (buf: Buffer, start: number, end: number) => string = (b, start, end) =>
      b.toString('utf8', start, end),
  ) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw NEED_MORE;
    return this.buf[this.pos++];
  }

  int(): number {
    if (this.pos + 1 + this.intSize > this.buf.length) throw NEED_MORE;
    const value = readArchiveInt(this.buf, this.pos, this.intSize);
    this.pos += 1 + this.intSize;
    return value;
  }

  /** A string, or null; `skip` moves past it without decoding (definitions can be large). */
  str(skip = false): string | null {
    const length = this.int();
    if (length < 0) return null;
    if (this.pos + length > this.buf.length) throw NEED_MORE;
    const value = skip ? '' : this.decode(this.buf, this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  skip(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw NEED_MORE;
    this.pos += bytes;
  }
}

/** An archive int at `pos`: a sign byte, then `intSize` bytes, least significant first. */
function readArchiveInt(buf: Buffer, pos: number, intSize: number): number {
  let value = 0;
  for (let i = intSize; i >= 1; i--) value = value * 256 + buf[pos + i];
  return buf[pos] === 0 ? value : -value;
}

/**
 * Bytes that are not an archive this reader accepts. Its code is `DumpFailed` (the reader's first
 * use: pg_dump's output); `detail` says what is wrong, for readers of archives of other origins.
 */
export class ArchiveFormatError extends PgferryError {
  constructor(readonly detail: string) {
    super('DumpFailed', `pg_dump's output is not an archive pgferry can read: ${detail}`);
  }
}

function malformed(detail: string): ArchiveFormatError {
  return new ArchiveFormatError(detail);
}

enum Phase {
  Header,
  TocCount,
  TocEntry,
  BlockStart,
  /** The length of a table data chunk (0 ends the block). */
  DataChunkLength,
  DataChunkBody,
  /** The oid of the next large object (0 ends the block). */
  BlobOid,
  BlobChunkLength,
  BlobChunkBody,
}

/**
 * Reads a custom-format archive fed to it in pieces of any size (`write`), and counts the rows of
 * each table's data block. `onToc` is called once the table of contents has been read (the
 * clean-restore check of core/postgres/archive-toc.ts needs no more); `tables()` answers once the whole
 * archive has been read.
 */
export class ArchiveScanner {
  header: ArchiveHeader | undefined;
  readonly toc: ArchiveTocEntry[] = [];
  private version = 0;
  private intSize = 0;
  private offSize = 0;
  private tocRemaining = 0;
  private phase = Phase.Header;
  /** Bytes of a structure that the previous piece ended inside. */
  private carry: Buffer | undefined;
  private readonly tableData = new Map<number, TableDataRows>();
  /** Bytes of each table's data (its COPY text), by the TABLE DATA entry's dumpId. */
  private readonly dataBytes = new Map<number, number>();
  /** Where each table's data block starts (its first chunk's length), by dumpId. */
  private readonly dataOffsets = new Map<number, number>();
  private readonly blocksSeen = new Set<number>();
  /** The table whose data block is being read (undefined: a data block of something else). */
  private table: TableDataRows | undefined;
  private chunkRemaining = 0;
  /**
   * The ranges of the buffer at hand that hold the current table's data read last (pairs of start
   * and end; see `TableDataListener.data`), reused from call to call.
   */
  private readonly ranges = new Float64Array(2 * RUN_RANGES);
  /** The last bytes of the current table's data, to find pg_dump's end marker. */
  private readonly tail = Buffer.alloc(8);
  private tailLength = 0;
  private blockBytes = 0;
  /** Bytes fed so far. */
  private fed = 0;
  /** Where the data blocks start: the header's and the TOC's length, once read. */
  tocEnd: number | undefined;
  /** Given each table's COPY text as it is read, when set (a migration's loader). */
  dataListener: TableDataListener | undefined;
  /** The archive's encoding (PostgreSQL's name), once its ENCODING entry is read. */
  encoding: string | undefined;
  /**
   * Decodes the TOC's strings: as UTF-8 until the ENCODING entry (pg_dump writes it first) names
   * the archive's encoding; undefined for an encoding with no exact decoder (its strings are read
   * as UTF-8, loosely, as they always were: such an archive's names are never sent).
   */
  private decoder: NameDecoder | undefined = nameDecoder('UTF8');
  /** The entry being read has a string its encoding's decoder could not decode. */
  private undecodable = false;
  private readonly decodeString = (buf: Buffer, start: number, end: number): string => {
    const exact = this.decoder?.(buf, start, end);
    if (exact !== undefined) return exact;
    if (this.decoder) this.undecodable = true;
    return buf.toString('utf8', start, end);
  };

  /**
   * One string for each distinct kind, schema and owner of the TOC's entries: an archive of a
   * million large objects has a million `BLOB` entries, each of the same kind and one of a few
   * owners, and an entry's own copies of them cost more than the rest of it.
   */
  private readonly names = new Map<string, string>();
  private shared(value: string | null): string | null {
    if (value === null) return null;
    const known = this.names.get(value);
    if (known !== undefined) return known;
    this.names.set(value, value);
    return value;
  }

  constructor(
    private readonly onToc?: (toc: ArchiveTocEntry[]) => void,
    /**
     * Which entries `toc` keeps (all by default). It must keep every entry with data
     * (`hadDumper`): a pass that only counts the data (core/postgres/tools.ts, its tables' sizes)
     * need not hold a second copy of a TOC of a million large objects.
     */
    private readonly kept?: (entry: ArchiveTocEntry) => boolean,
  ) {}

  /**
   * Feeds the next bytes of the archive, not kept once this returns (the caller may reuse
   * `piece`). Throws on a structure this reader cannot accept.
   */
  write(piece: Buffer): void {
    let buf = piece;
    let pos = 0;
    let base = this.fed; // the archive offset of buf[0]
    this.fed += piece.length;
    if (this.carry) {
      const fixed = this.fixedSize();
      if (fixed > 0) {
        // Complete the small structure alone rather than copying the whole piece behind it.
        const missing = fixed - this.carry.length;
        if (piece.length < missing) {
          this.carry = Buffer.concat([this.carry, piece]);
          return;
        }
        const whole = Buffer.concat([this.carry, piece.subarray(0, missing)]);
        this.carry = undefined;
        this.scan(whole, 0, base - (whole.length - missing));
        pos = missing;
      } else {
        base -= this.carry.length;
        buf = Buffer.concat([this.carry, piece]);
        this.carry = undefined;
      }
    }
    this.scan(buf, pos, base);
  }

  /** How many bytes have been fed. */
  get bytesRead(): number {
    return this.fed;
  }

  /** Whether everything pg_dump writes has been read: the TOC and every data block it announced. */
  get complete(): boolean {
    if (this.phase !== Phase.BlockStart || this.carry) return false;
    return this.toc.every((e) => !e.hadDumper || this.blocksSeen.has(e.dumpId));
  }

  /** Each table's rows, in schema and name order (bytewise in UTF-8, as a UTF8 database's `name` sorts). */
  tables(): TableDataRows[] {
    if (!this.complete) {
      const missing = this.toc.filter((e) => e.hadDumper && !this.blocksSeen.has(e.dumpId));
      throw malformed(
        this.header === undefined || this.phase <= Phase.TocEntry
          ? 'it ended before its table of contents'
          : `it ended before the data of ${missing.length ? describeEntry(missing[0]) : 'its last block'}`,
      );
    }
    return [...this.tableData.values()].sort(
      (a, b) =>
        Buffer.compare(Buffer.from(a.schema), Buffer.from(b.schema)) ||
        Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
    );
  }

  /** Bytes of each table's data (its COPY text, as pg_restore sends it), by TABLE DATA dumpId. */
  tableDataBytes(): Map<number, number> {
    return new Map(this.dataBytes);
  }

  /**
   * Where each table's data chunks start in the archive (the first chunk's length), by TABLE DATA
   * dumpId: what `loadTableData` (core/postgres/copy-load.ts) reads from.
   */
  tableDataOffsets(): Map<number, number> {
    return new Map(this.dataOffsets);
  }

  /** The size of the structure the reader is in, when that size is fixed (data phase); else 0. */
  private fixedSize(): number {
    switch (this.phase) {
      case Phase.BlockStart:
        return 2 + this.intSize;
      case Phase.DataChunkLength:
      case Phase.BlobOid:
      case Phase.BlobChunkLength:
        return 1 + this.intSize;
      default:
        return 0;
    }
  }

  private scan(buf: Buffer, start: number, base: number): void {
    let pos = start;
    while (pos < buf.length) {
      const intBytes = 1 + this.intSize; // known once the header is read
      switch (this.phase) {
        case Phase.DataChunkBody:
        case Phase.BlobChunkBody: {
          const end = Math.min(buf.length, pos + this.chunkRemaining);
          if (this.phase === Phase.DataChunkBody && this.table) {
            this.ranges[0] = pos;
            this.ranges[1] = end;
            this.readRanges(buf, 1, newlines(buf, pos, end), end - pos);
          }
          this.chunkRemaining -= end - pos;
          pos = end;
          if (this.chunkRemaining === 0) {
            this.phase = this.phase === Phase.DataChunkBody ? Phase.DataChunkLength : Phase.BlobChunkLength;
          }
          break;
        }
        case Phase.DataChunkLength:
        case Phase.BlobChunkLength: {
          if (this.phase === Phase.DataChunkLength && this.table) pos = this.readWholeChunks(buf, pos);
          if (buf.length - pos < intBytes) {
            this.keep(buf, pos);
            return;
          }
          const length = readArchiveInt(buf, pos, this.intSize);
          pos += intBytes;
          if (length < 0) throw malformed(`a data chunk of negative length ${length}`);
          if (length > 0) {
            this.chunkRemaining = length;
            this.phase = this.phase === Phase.DataChunkLength ? Phase.DataChunkBody : Phase.BlobChunkBody;
          } else if (this.phase === Phase.DataChunkLength) {
            this.endTableData();
            this.phase = Phase.BlockStart;
          } else {
            this.phase = Phase.BlobOid;
          }
          break;
        }
        case Phase.BlobOid: {
          if (buf.length - pos < intBytes) {
            this.keep(buf, pos);
            return;
          }
          const oid = readArchiveInt(buf, pos, this.intSize);
          pos += intBytes;
          this.phase = oid === 0 ? Phase.BlockStart : Phase.BlobChunkLength;
          break;
        }
        case Phase.BlockStart: {
          if (buf.length - pos < 1 + intBytes) {
            this.keep(buf, pos);
            return;
          }
          const type = buf[pos];
          const dumpId = readArchiveInt(buf, pos + 1, this.intSize);
          pos += 1 + intBytes;
          this.startBlock(type, dumpId);
          if (this.table) this.dataOffsets.set(dumpId, base + pos);
          break;
        }
        default: {
          // Header and TOC: variable-length structures, each read whole or not at all.
          const cursor = new Cursor(buf, pos, this.intSize, this.decodeString);
          try {
            this.readStructure(cursor);
          } catch (err) {
            if (err !== NEED_MORE) throw err;
            this.keep(buf, pos);
            return;
          }
          pos = cursor.pos;
          if ((this.phase as Phase) === Phase.BlockStart) {
            this.tocEnd = base + pos;
            this.onToc?.(this.toc);
          }
        }
      }
    }
  }

  /** Keeps the rest of `buf` from `pos`, copied: the reader may reuse `buf` (core/file-chunks.ts). */
  private keep(buf: Buffer, pos: number): void {
    this.carry = pos < buf.length ? Buffer.from(buf.subarray(pos)) : undefined;
  }

  private readStructure(c: Cursor): void {
    if (this.phase === Phase.Header) {
      this.readHeader(c);
      this.phase = Phase.TocCount;
    } else if (this.phase === Phase.TocCount) {
      this.tocRemaining = c.int();
      if (this.tocRemaining < 0) throw malformed(`a table of contents of ${this.tocRemaining} entries`);
      this.phase = Phase.TocEntry;
    } else {
      this.undecodable = false;
      const entry = this.readTocEntry(c);
      if (this.undecodable) entry.undecodable = true;
      if (entry.desc === 'ENCODING') {
        this.encoding = encodingSet(entry.defn);
        this.decoder = nameDecoder(this.encoding ?? 'UTF8');
      }
      if (!this.kept || this.kept(entry)) this.toc.push(entry);
      if (entry.desc === 'TABLE DATA' && entry.hadDumper) {
        this.tableData.set(entry.dumpId, {
          dumpId: entry.dumpId,
          oid: entry.oid,
          schema: entry.namespace ?? '',
          name: entry.tag ?? '',
          rows: 0,
        });
      }
      this.tocRemaining--;
    }
    if (this.phase === Phase.TocEntry && this.tocRemaining === 0) this.phase = Phase.BlockStart;
  }

  private readHeader(c: Cursor): void {
    // Before the magic is whole, the layout (and intSize) is unknown: read it byte by byte.
    for (const byte of MAGIC) {
      if (c.byte() !== byte) throw malformed('it does not start with PGDMP (not a custom-format archive)');
    }
    const major = c.byte();
    const minor = c.byte();
    const rev = major > 1 || (major === 1 && minor > 0) ? c.byte() : 0;
    const version = archiveVersion(major, minor, rev);
    const versionText = `${major}.${minor}.${rev}`;
    if (version > K_VERS_MAX) {
      throw malformed(
        `its format ${versionText} is newer than this pgferry reads (up to 1.16, pg_dump 18): use a pg_dump of major 18 or older`,
      );
    }
    if (version < K_VERS_1_12) throw malformed(`its format ${versionText} is older than pg_dump 9.6's`);
    const intSize = c.byte();
    const offSize = c.byte();
    if (intSize < 1 || intSize > 8 || offSize < 1 || offSize > 16) {
      throw malformed(`integers of ${intSize} and offsets of ${offSize} bytes`);
    }
    const format = c.byte();
    if (format !== ARCHIVE_FORMAT_CUSTOM) throw malformed(`format ${format}, not custom (1)`);
    const ints = new Cursor(c.buf, c.pos, intSize);
    let compression: string;
    if (version >= K_VERS_1_15) {
      const algorithm = ints.byte();
      compression = COMPRESSION_ALGORITHMS[algorithm] ?? `algorithm ${algorithm}`;
    } else {
      const level = ints.int();
      compression = level === 0 ? 'none' : `gzip (level ${level})`;
    }
    for (let i = 0; i < 7; i++) ints.int(); // creation time: sec, min, hour, mday, mon, year, isdst
    const database = ints.str();
    const serverVersion = ints.str();
    const pgDumpVersion = ints.str();
    c.pos = ints.pos;
    this.version = version;
    this.intSize = intSize;
    this.offSize = offSize;
    this.header = {
      version: versionText,
      intSize,
      offSize,
      compression,
      database,
      serverVersion,
      pgDumpVersion,
    };
  }

  private readTocEntry(c: Cursor): ArchiveTocEntry {
    const dumpId = c.int();
    if (dumpId <= 0) throw malformed(`a TOC entry with id ${dumpId}`);
    const hadDumper = c.int() !== 0;
    const tableoid = Number(c.str() ?? 0);
    const oid = Number(c.str() ?? 0);
    const tag = c.str();
    const desc = this.shared(c.str());
    c.int(); // section
    const defn = c.str(desc !== 'ENCODING' && desc !== 'STDSTRINGS');
    // The drop statement: only whether there is one is kept (decoded all the same: a name in it
    // that its encoding's decoder cannot decode marks the entry undecodable).
    const dropped = Boolean(c.str());
    const copyStmt = c.str(desc !== 'TABLE DATA');
    const namespace = this.shared(c.str());
    c.str(true); // tablespace
    if (this.version >= K_VERS_1_14) c.str(true); // tableam
    if (this.version >= K_VERS_1_16) c.int(); // relkind
    const owner = this.shared(c.str());
    c.str(true); // WITH OIDS: "false"
    // One shared empty list for the entries that depend on nothing (a large object's `BLOB`).
    let dependencies = NO_DEPENDENCIES;
    for (let dep = c.str(); dep !== null; dep = c.str()) {
      if (dependencies === NO_DEPENDENCIES) dependencies = [];
      dependencies.push(Number(dep));
    }
    // The custom format's data offset: a flag byte and offSize bytes (unset when written to a pipe).
    c.skip(1 + this.offSize);
    return {
      dumpId,
      hadDumper,
      tableoid,
      oid,
      tag,
      desc,
      namespace,
      owner,
      dependencies,
      dropped,
      ...(copyStmt ? { copyStmt } : {}),
      ...(defn ? { defn } : {}),
    };
  }

  private startBlock(type: number, dumpId: number): void {
    if (type !== BLK_DATA && type !== BLK_BLOBS) {
      throw malformed(`a data block of unknown type ${type} (entry ${dumpId})`);
    }
    if (this.blocksSeen.has(dumpId)) throw malformed(`a second data block for entry ${dumpId}`);
    this.blocksSeen.add(dumpId);
    if (type === BLK_BLOBS) {
      this.phase = Phase.BlobOid;
      return;
    }
    this.table = this.tableData.get(dumpId);
    // Refused here, not in the header: the TOC of a compressed archive reads the same (a clean
    // restore's check needs only that); only its table data is not COPY text.
    const compression = this.header?.compression ?? 'none';
    if (this.table && compression !== 'none') {
      throw malformed(`its data is compressed (${compression}); rows can be counted only in a -Z0 dump`);
    }
    this.tailLength = 0;
    this.blockBytes = 0;
    this.phase = Phase.DataChunkLength;
  }

  /**
   * Reads the current table's chunks that lie whole in `buf` from `pos` (length and body) in one
   * loop, rather than round the phases twice a chunk: pg_dump writes a chunk per row, so this is
   * the loop a table's rows are read by. Stops before a chunk not whole in `buf`, or a length the
   * phases read (zero, the block's end; negative, refused there). Returns where it stopped.
   */
  private readWholeChunks(buf: Buffer, pos: number): number {
    const intSize = this.intSize;
    const ranges = this.ranges;
    let count = 0;
    let rows = 0;
    let bytes = 0;
    for (;;) {
      const start = pos + 1 + intSize;
      if (start > buf.length || buf[pos] !== 0) break;
      let length = 0;
      for (let i = intSize; i >= 1; i--) length = length * 256 + buf[pos + i];
      const end = start + length;
      if (length === 0 || end > buf.length) break;
      rows += newlines(buf, start, end);
      bytes += length;
      ranges[2 * count] = start;
      ranges[2 * count + 1] = end;
      count++;
      pos = end;
      if (count === RUN_RANGES) {
        this.readRanges(buf, count, rows, bytes);
        count = 0;
        rows = 0;
        bytes = 0;
      }
    }
    if (count > 0) this.readRanges(buf, count, rows, bytes);
    return pos;
  }

  /**
   * The current table's data just read, `count` ranges of `buf` in `this.ranges` holding `rows`
   * newlines and `bytes` bytes: counted, their last bytes kept (the end marker is looked for in
   * them), and given to the listener.
   */
  private readRanges(buf: Buffer, count: number, rows: number, bytes: number): void {
    const table = this.table as TableDataRows;
    const ranges = this.ranges;
    table.rows += rows;
    this.blockBytes += bytes;
    // Only the last ranges that hold a tail's length can reach the tail.
    let first = count;
    for (let kept = 0; first > 0 && kept < this.tail.length; ) {
      first--;
      kept += ranges[2 * first + 1] - ranges[2 * first];
    }
    for (let r = first; r < count; r++) this.keepTail(buf, ranges[2 * r], ranges[2 * r + 1]);
    this.dataListener?.data(table, buf, ranges, count);
  }

  /** The tail after the current table's next data, buf[start, end): its last bytes. */
  private keepTail(buf: Buffer, start: number, end: number): void {
    const tail = this.tail;
    const keep = Math.min(end - start, tail.length);
    const shift = Math.min(this.tailLength, tail.length - keep);
    for (let k = 0; k < shift; k++) tail[k] = tail[this.tailLength - shift + k];
    for (let k = 0; k < keep; k++) tail[shift + k] = buf[end - keep + k];
    this.tailLength = shift + keep;
  }

  /**
   * The end of a table's data: it must end with pg_dump's end marker, a line `\.` followed by
   * empty lines, whose newlines are not rows.
   */
  private endTableData(): void {
    const table = this.table;
    this.table = undefined;
    if (!table) return;
    const tail = this.tail.subarray(0, this.tailLength);
    let i = tail.length;
    while (i > 0 && tail[i - 1] === NEWLINE) i--;
    const markerNewlines = tail.length - i;
    const markerStart = i - 2;
    const atLineStart =
      markerStart === 0 ? this.blockBytes === tail.length : tail[markerStart - 1] === NEWLINE;
    if (
      markerNewlines === 0 ||
      markerStart < 0 ||
      tail[markerStart] !== 0x5c /* \ */ ||
      tail[markerStart + 1] !== 0x2e /* . */ ||
      !atLineStart
    ) {
      throw malformed(`the data of ${table.schema}.${table.name} does not end with COPY's end marker`);
    }
    table.rows -= markerNewlines;
    table.bytes = this.blockBytes;
    this.dataBytes.set(table.dumpId, this.blockBytes);
    this.dataListener?.end(table);
  }
}

/** The newlines in buf[start, end). */
function newlines(buf: Buffer, start: number, end: number): number {
  let count = 0;
  // A call to indexOf per newline: on rows of 20 bytes, cheaper than a loop over their bytes here.
  let i = buf.indexOf(NEWLINE, start);
  while (i !== -1 && i < end) {
    count++;
    // A row's text ends in its newline: stop without another search.
    if (i === end - 1) break;
    i = buf.indexOf(NEWLINE, i + 1);
  }
  return count;
}

/** The archive's encoding (PostgreSQL's name), as its ENCODING entry sets it; undefined without one. */
export function archiveEncoding(toc: readonly ArchiveTocEntry[]): string | undefined {
  return encodingSet(toc.find((e) => e.desc === 'ENCODING')?.defn);
}

/** The encoding an ENCODING entry's `SET client_encoding = 'LATIN1';` sets. */
function encodingSet(defn: string | undefined): string | undefined {
  return defn === undefined ? undefined : /client_encoding = '([^']*)'/.exec(defn)?.[1];
}

export function describeEntry(entry: ArchiveTocEntry): string {
  return `${entry.desc ?? 'entry'} ${entry.namespace ? `${entry.namespace}.` : ''}${entry.tag ?? entry.dumpId}`;
}

/**
 * A pass-through stream that reads the archive flowing through it (see `ArchiveScanner`): the
 * bytes leave unchanged; `onFirstBytes` is called when the first ones arrive (pg_dump writes
 * nothing before it holds every lock it takes), `onToc` when the table of contents is read.
 */
export class ArchiveRowCounter extends Transform {
  readonly scanner: ArchiveScanner;
  private started = false;

  private tocPassed = false;

  constructor(
    private readonly hooks: {
      onFirstBytes?: () => void;
      onToc?: (toc: ArchiveTocEntry[]) => void;
      /**
       * The archive's header and TOC, in pieces as they pass (`last` with the final one): on
       * their own, a valid archive of every object's definition and no data, which pg_restore
       * reads for the pre-data and post-data sections. Once `onToc` was called, the last piece
       * is given even if the bytes after the TOC fail the stream.
       */
      onTocBytes?: (bytes: Buffer, last: boolean) => void;
      /** Given each table's COPY text as it passes (see `ArchiveScanner.dataListener`). */
      tableData?: TableDataListener;
      /**
       * Asked after each piece is read: a promise holds the piece (and so the stream, and pg_dump
       * behind it) back until it settles; its rejection fails the stream.
       */
      ready?: () => Promise<void> | undefined;
    } = {},
  ) {
    super();
    this.scanner = new ArchiveScanner(hooks.onToc);
    this.scanner.dataListener = hooks.tableData;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.started) {
      this.started = true;
      this.hooks.onFirstBytes?.();
    }
    const offset = this.scanner.bytesRead;
    let failure: Error | undefined;
    try {
      this.scanner.write(chunk);
    } catch (err) {
      failure = err as Error;
    }
    // The header and TOC are handed whole once read, also when what follows them in this piece
    // fails: whoever `onToc` told waits for them.
    if (this.hooks.onTocBytes && !this.tocPassed && (!failure || this.scanner.tocEnd !== undefined)) {
      const end = this.scanner.tocEnd;
      this.tocPassed = end !== undefined;
      try {
        this.hooks.onTocBytes(end === undefined ? chunk : chunk.subarray(0, end - offset), this.tocPassed);
      } catch (err) {
        failure ??= err as Error;
      }
    }
    if (failure) {
      callback(failure);
      return;
    }
    const wait = this.hooks.ready?.();
    if (wait) {
      wait.then(
        () => callback(null, chunk),
        (err: Error) => callback(err),
      );
      return;
    }
    callback(null, chunk);
  }
}

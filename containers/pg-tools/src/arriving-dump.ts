/**
 * A backup's dump while it downloads: its decompressed archive is read from its file as the file
 * grows (core/postgres/archive.ts, core/growing-file.ts), so that a restore can begin before the download ends — the archive's
 * header and TOC written to a file of their own as soon as they have passed (on their own a valid
 * archive of every definition and no data, from which pg_restore runs the pre-data), and where each
 * table's data block starts known as soon as it arrives, to be loaded from the file as it grows
 * (core/growing-file.ts). Nothing here judges the archive: a structure the reader cannot follow
 * ends the reading, not the download (the checksum and pg_restore judge it, as without this).
 */
import { writeFile } from 'node:fs/promises';
import { GrowingFile } from '../../../core/growing-file';
import { ArchiveScanner, type ArchiveTocEntry } from '../../../core/postgres/archive';
import type { ArchiveSizes } from '../../../core/postgres/tools';

/** The archive's TOC, once read: `definitions` holds its header and TOC alone. */
export interface ArrivedToc {
  definitions: string;
  toc: ArchiveTocEntry[];
  intSize: number;
}

export class ArrivingDump {
  /** The archive's TOC once read and written to `definitionsFile`; undefined when it never was. */
  readonly toc: Promise<ArrivedToc | undefined>;
  private settleToc: (toc: ArrivedToc | undefined) => void = () => undefined;
  private scanner: ArchiveScanner | undefined;
  private tocBytes: Buffer[] | undefined = [];
  private readonly starts = new Map<number, number>();
  private readonly waiting = new Map<number, ((offset: number | undefined) => void)[]>();
  private ended = false;
  /** The only data blocks whose start is still wanted: once all have arrived, reading stops. */
  private wanted: Set<number> | undefined;
  /** The archive's file, being written (once the download of the dump began). */
  file: GrowingFile | undefined;
  /** The whole archive's TOC and each table's data bytes and start, once it was read to its end. */
  sizes: ArchiveSizes | undefined;

  constructor(private readonly definitionsFile: string) {
    this.toc = new Promise((resolve) => {
      this.settleToc = resolve;
    });
    this.scanner = new ArchiveScanner(undefined, (dumpId, offset) => {
      this.starts.set(dumpId, offset);
      for (const wake of this.waiting.get(dumpId) ?? []) wake(offset);
      this.waiting.delete(dumpId);
    });
  }

  /** The archive's file, which the download writes as it arrives. */
  growing(path: string): GrowingFile {
    this.file = new GrowingFile(path);
    return this.file;
  }

  /**
   * Reads the archive's file as it is written, to its end (or until the reader cannot follow it,
   * or the download failed); then {@link end}.
   */
  async scan(): Promise<void> {
    try {
      if (!this.file) return;
      for await (const chunk of this.file.read(0)) {
        this.read(chunk);
        if (!this.scanner || this.satisfied()) break;
      }
      const scanner = this.scanner;
      if (scanner?.complete && scanner.header) {
        const { toc, header } = scanner;
        const bytes = scanner.tableDataBytes();
        this.sizes = { toc, bytes, offsets: scanner.tableDataOffsets(), intSize: header.intSize };
      }
    } catch {
      // The download failed: it says why.
    } finally {
      this.end();
    }
  }

  /** Where `dumpId`'s data block starts, once it has arrived; undefined if it never does. */
  dataStart(dumpId: number): Promise<number | undefined> {
    const known = this.starts.get(dumpId);
    if (known !== undefined || this.ended) return Promise.resolve(known);
    return new Promise((resolve) => this.waiting.set(dumpId, [...(this.waiting.get(dumpId) ?? []), resolve]));
  }

  /**
   * Only these data blocks' starts are wanted (and not the sizes): reading stops once they have
   * arrived — at once when none is — instead of going through the rest of the archive.
   */
  wantOnly(dumpIds: readonly number[]): void {
    this.wanted = new Set(dumpIds);
  }

  private satisfied(): boolean {
    return this.wanted !== undefined && [...this.wanted].every((id) => this.starts.has(id));
  }

  /** Whether `dumpId`'s data block start is known now. */
  arrived(dumpId: number): boolean {
    return this.starts.has(dumpId);
  }

  /** No more of the archive is coming (the download ended, or failed): what is awaited and unknown is undefined. */
  end(): void {
    this.ended = true;
    this.scanner = undefined;
    if (this.tocBytes) {
      this.tocBytes = undefined;
      this.settleToc(undefined);
    }
    for (const wakes of this.waiting.values()) for (const wake of wakes) wake(undefined);
    this.waiting.clear();
  }

  private read(chunk: Buffer): void {
    const scanner = this.scanner;
    if (!scanner) return;
    const offset = scanner.bytesRead;
    try {
      scanner.write(chunk);
    } catch {
      this.end();
      return;
    }
    if (!this.tocBytes) return;
    const end = scanner.tocEnd;
    this.tocBytes.push(end === undefined ? chunk : chunk.subarray(0, end - offset));
    if (end === undefined || !scanner.header) return;
    const bytes = Buffer.concat(this.tocBytes);
    this.tocBytes = undefined;
    const arrived = { definitions: this.definitionsFile, toc: scanner.toc, intSize: scanner.header.intSize };
    writeFile(this.definitionsFile, bytes, { mode: 0o600 }).then(
      () => this.settleToc(arrived),
      () => this.settleToc(undefined),
    );
  }
}

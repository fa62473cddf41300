/**
 * An archive's definitions file: its header and table of contents as they stream past
 * (`ArchiveRowCounter`'s `onTocBytes`), on their own a valid archive of every object's definition
 * and no data, which pg_restore reads for the pre-data, the sequences' values and the post-data
 * while the data is loaded from the stream itself (containers/pg-tools/src/restore-stream.ts,
 * migrate.ts).
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';

/**
 * Writes the definitions to a new file (never one that exists; readable by its owner alone). The
 * file is whole when `written` resolves: its last piece written and the file closed. A file that
 * cannot be created or written, or is discarded before its last piece, is not: `written` rejects,
 * and what was written is removed (never a file that existed before).
 */
export class DefinitionsFile {
  /** Settles once the file is closed: whole, or not (see the class); never unhandled. */
  readonly written: Promise<void>;
  private readonly out: WriteStream;
  private created = false;

  constructor(readonly path: string) {
    this.out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    this.out.once('open', () => {
      this.created = true;
    });
    this.written = once(this.out, 'close')
      .then(() => {
        if (!this.out.writableFinished) {
          throw new Error(`${path}: discarded before the archive's table of contents ended`);
        }
      })
      .catch(async (err: unknown) => {
        if (this.created) await rm(path, { force: true });
        throw err;
      });
    this.written.catch(() => undefined);
  }

  /** The next piece of the header and TOC, `last` with the final one (`onTocBytes`' arguments). */
  write(bytes: Buffer, last: boolean): void {
    if (this.out.writableEnded || this.out.destroyed) return;
    this.out.write(bytes);
    if (last) this.out.end();
  }

  /**
   * Unless its last piece was given, the file is abandoned (removed); resolves once it is closed,
   * whole or removed.
   */
  async discard(): Promise<void> {
    if (!this.out.writableEnded) this.out.destroy();
    await this.written.catch(() => undefined);
  }
}

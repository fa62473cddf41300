/**
 * The progress line of a local run, on a terminal: what the run does, in words, and for its long
 * steps the bytes done (of how many, when that is known), the rate and the time left —
 *
 *     restore: restoring tables  1.2 GB of 3.4 GB (35%)  45.0 MB/s  ETA 0:49
 *
 * one line on stderr, rewritten in place and cut to the terminal's width; nothing at all when
 * stderr is not a terminal, so that pipes and logs stay clean. The task reports its phases and its
 * steps' bytes (core/task-progress.ts); the rate and the time left are measured here.
 */
import type { TaskProgress } from '../core/task-progress';
import { formatBytes, printable } from './output';

/** The commands that run a workflow locally. */
export type RunCommand = 'backup' | 'restore' | 'verify' | 'migrate';

/** What the task's phases (`RestoreProgress.timed`'s names) do, in words. */
const PHASE_WORDS: Record<string, string> = {
  download: 'downloading and checking',
  checkTarget: 'checking the target',
  createDatabase: 'creating the database',
  globals: 'creating missing roles',
  pgRestore: 'restoring tables',
  // A create restore's: the archive loaded as it downloads (the tables created first), then the
  // indexes and constraints; and its end.
  load: 'downloading and loading the tables',
  preData: 'creating the tables',
  postData: 'building indexes and constraints',
  rename: 'renaming the database into place',
  analyze: 'analyzing tables',
  rowCounts: 'counting rows',
  databaseProperties: 'setting database properties',
  startServer: 'starting a throwaway server',
  checkServer: 'checking the throwaway server',
  // A migration's, each followed by the database's name.
  schemaTest: 'testing the schema on the target:',
  data: 'copying',
  verify: 'comparing with the source:',
  retry: 'retrying',
};

/** Where a migration's phase means something else than a restore's. */
const MIGRATE_PHASE_WORDS: Record<string, string> = {
  createDatabase: 'creating the database',
  globals: 'storing the roles of',
  analyze: 'analyzing',
  postData: 'building indexes and constraints:',
  databaseProperties: 'setting the database properties of',
  // An online migration's.
  replication: 'creating the publication and slot of',
  subscribe: 'subscribing the target to',
  catchUp: 'catching up with',
  cutover: 'cutting over (the source is read-only):',
};

/** The words of phase `phase` (as the task logs it) of `command`. */
export function phaseWords(command: RunCommand, phase: string): string {
  const space = phase.indexOf(' ');
  const name = space < 0 ? phase : phase.slice(0, space);
  const rest = space < 0 ? '' : phase.slice(space + 1);
  const words = (command === 'migrate' ? MIGRATE_PHASE_WORDS[name] : undefined) ?? PHASE_WORDS[name];
  if (!words) return printable(phase);
  return rest ? `${words} ${printable(rest)}` : words;
}

/** The words of a step that reports bytes. */
export function stepWords(command: RunCommand, progress: TaskProgress): string {
  switch (progress.step) {
    case 'dump':
      // A restore's dump is the safety backup of the target it is about to replace.
      return command === 'restore' ? 'backing up the target first' : 'dumping';
    case 'download':
      return 'downloading and checking';
    case 'restore':
      return 'restoring tables';
    case 'postData':
      return 'building indexes and constraints';
    case 'copy':
      return progress.database === undefined ? 'copying' : `copying ${printable(progress.database)}`;
    case 'catchUp':
      return (
        `catching up${progress.database === undefined ? '' : ` with ${printable(progress.database)}`}: ` +
        `${formatBytes(progress.lagBytes ?? 0)} and ${(progress.lagSeconds ?? 0).toFixed(1)}s behind`
      );
    default:
      return printable(String(progress.step));
  }
}

/** What one progress line shows. */
export interface ProgressView {
  command: RunCommand;
  words: string;
  /** The step's bytes, when it reports them. */
  doneBytes?: number;
  totalBytes?: number;
  /** `totalBytes` is the database's size on disk, an estimate (shown with `~`). */
  estimated?: boolean;
  /** Measured over the last seconds; absent until two reports are far enough apart. */
  bytesPerSecond?: number;
  storedBytes?: number;
  /** Seconds since the step began (shown when it reports no bytes). */
  elapsedSeconds: number;
}

/** `0:07`, `12:05`, `1:02:03`: a duration as a clock shows it. */
export function formatClock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

/** The time left at `bytesPerSecond`, in seconds; undefined when it cannot be told. */
export function secondsLeft(view: Pick<ProgressView, 'doneBytes' | 'totalBytes' | 'bytesPerSecond'>) {
  const { doneBytes, totalBytes, bytesPerSecond } = view;
  if (doneBytes === undefined || totalBytes === undefined || !bytesPerSecond || bytesPerSecond <= 0)
    return undefined;
  if (doneBytes > totalBytes) return undefined;
  return (totalBytes - doneBytes) / bytesPerSecond;
}

/**
 * The progress line, at most `columns - 1` characters (a line as wide as the terminal would wrap
 * and break the rewriting). When it does not fit, the least telling parts go first: the bytes
 * stored, the rate, the time left, then the bytes; the words are cut last, with `…`.
 */
export function formatProgress(view: ProgressView, columns: number): string {
  const head = `${view.command}: ${view.words}`;
  const tilde = view.estimated ? '~' : '';
  const parts: { text: string; rank: number }[] = [];
  if (view.doneBytes === undefined) {
    parts.push({ text: formatClock(view.elapsedSeconds), rank: 2 });
  } else {
    const { doneBytes, totalBytes } = view;
    const percent =
      totalBytes && !view.estimated ? ` (${Math.min(100, Math.floor((doneBytes / totalBytes) * 100))}%)` : '';
    parts.push({
      text:
        totalBytes === undefined
          ? formatBytes(doneBytes)
          : `${formatBytes(doneBytes)} of ${tilde}${formatBytes(totalBytes)}${percent}`,
      rank: 4,
    });
    if (view.bytesPerSecond !== undefined)
      parts.push({ text: `${formatBytes(view.bytesPerSecond)}/s`, rank: 2 });
    const left = secondsLeft(view);
    if (left !== undefined) parts.push({ text: `ETA ${tilde}${formatClock(left)}`, rank: 3 });
    if (view.storedBytes !== undefined)
      parts.push({ text: `${formatBytes(view.storedBytes)} stored`, rank: 1 });
  }
  const width = Math.max(1, columns - 1);
  const line = (kept: typeof parts) => [head, ...kept.map((p) => p.text)].join('  ');
  let kept = parts;
  for (let rank = 1; rank <= 4 && line(kept).length > width; rank++) kept = kept.filter((p) => p.rank > rank);
  const text = line(kept);
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/** The rate of a step's bytes over the last {@link windowMs} of its reports. */
export class RateMeter {
  private samples: { at: number; bytes: number }[] = [];

  constructor(private readonly windowMs = 10_000) {}

  add(at: number, bytes: number): void {
    this.samples.push({ at, bytes });
    // Keep one sample older than the window, so that the rate always spans it.
    while (this.samples.length > 2 && at - this.samples[1].at >= this.windowMs) this.samples.shift();
  }

  /** Bytes per second; undefined before two reports at least half a second apart. */
  bytesPerSecond(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || last.at - first.at < 500) return undefined;
    return Math.max(0, last.bytes - first.bytes) / ((last.at - first.at) / 1000);
  }
}

export interface ProgressDisplayOptions {
  /** @default process.stderr */
  stream?: NodeJS.WriteStream;
  /** @default whether `stream` is a terminal */
  enabled?: boolean;
  /** @default Date.now */
  now?: () => number;
}

/**
 * A local run's progress line on stderr (see the module's comment). Fed the task's phases and
 * progress reports; `line()` prints a line of its own above it; `close()` clears it.
 */
export class ProgressDisplay {
  private readonly stream: NodeJS.WriteStream;
  private readonly enabled: boolean;
  private readonly now: () => number;
  private view: ProgressView | undefined;
  private stepKey = '';
  private stepStarted = 0;
  private rate = new RateMeter();
  private shown = false;
  private drawn = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly command: RunCommand,
    options: ProgressDisplayOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = options.enabled ?? Boolean(this.stream.isTTY);
    this.now = options.now ?? Date.now;
  }

  /** The task entered phase `phase` (as it logs it: `pgRestore`, `data shop`). */
  phase(phase: string): void {
    this.begin(`phase ${phase}`, phaseWords(this.command, phase));
    this.draw();
  }

  /** The task reported the bytes of a step. */
  progress(progress: TaskProgress): void {
    const words = stepWords(this.command, progress);
    this.begin(`step ${progress.step} ${progress.database ?? ''}`, words);
    const view = this.view as ProgressView;
    // Building indexes moves no bytes of its own: its time is what tells.
    if (progress.step !== 'postData') {
      this.rate.add(this.now(), progress.doneBytes);
      view.doneBytes = progress.doneBytes;
      view.totalBytes = progress.totalBytes;
      view.estimated = progress.estimated;
      view.storedBytes = progress.storedBytes;
      view.bytesPerSecond = this.rate.bytesPerSecond();
    }
    this.draw();
  }

  /** Prints `text` as a line of its own, above the progress line. */
  line(text: string): void {
    this.clear();
    this.stream.write(`${text}\n`);
    this.draw();
  }

  /** Clears the line and stops redrawing it; what is printed next starts a clean line. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
    this.view = undefined;
  }

  private begin(key: string, words: string): void {
    if (key === this.stepKey && this.view) {
      this.view.words = words;
      return;
    }
    this.stepKey = key;
    this.stepStarted = this.now();
    this.rate = new RateMeter();
    this.view = { command: this.command, words, elapsedSeconds: 0 };
    if (this.enabled && !this.timer) {
      // The time of a step without bytes moves on between reports.
      this.timer = setInterval(() => this.draw(), 1000);
      this.timer.unref();
    }
  }

  private draw(): void {
    if (!this.enabled || !this.view) return;
    this.view.elapsedSeconds = (this.now() - this.stepStarted) / 1000;
    const text = formatProgress(this.view, this.stream.columns || 80);
    if (this.shown && text === this.drawn) return;
    this.stream.write(`\r\x1b[K${text}`);
    this.drawn = text;
    this.shown = true;
  }

  private clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

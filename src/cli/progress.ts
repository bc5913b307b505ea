import { SingleBar } from 'cli-progress';

/**
 * A long command's progress: a bar on a terminal, and elsewhere (a log, CI, a pipe) one line per finished item on
 * stderr, so a run that takes hours is never silent. Nothing with --quiet.
 */
export class Progress {
  private readonly bar: SingleBar | undefined;
  private readonly lines: boolean;
  private done = 0;
  private total = 0;

  constructor(
    private readonly what: string,
    quiet: boolean | undefined,
    format: string,
  ) {
    const terminal = !!process.stderr.isTTY;
    this.bar = !quiet && terminal ? new SingleBar({ format, hideCursor: true, clearOnComplete: true }) : undefined;
    this.lines = !quiet && !terminal;
  }

  start(total: number, done = 0, payload: Record<string, string> = {}): void {
    this.total = total;
    this.done = done;
    this.bar?.start(total, done, payload);
  }

  /** One more item finished (`name` says which). */
  increment(name = ''): void {
    this.done++;
    this.bar?.update(this.done, { image: name });
    if (this.lines) process.stderr.write(`${this.what} ${this.done}/${this.total}${name ? ` ${name}` : ''}\n`);
  }

  /** A line about the run itself (Redis lost and back), always said: on a terminal above the bar. */
  note(line: string): void {
    process.stderr.write(`${this.bar ? '\r\x1b[K' : ''}${line}\n`);
  }

  /** How many items finished. */
  get finished(): number {
    return this.done;
  }

  stop(): void {
    this.bar?.stop();
  }
}

/**
 * Ctrl-C (SIGINT) or SIGTERM on a long command: say what is done and how to resume, then exit 130 (or 143). What
 * the command wrote is whole (every file is written to a temporary name and renamed), so stopping is safe.
 */
export function onInterrupt(say: () => string): () => void {
  const stop = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${say()}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
}

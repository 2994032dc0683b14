/**
 * A one-line progress bar for long sweeps, on stderr so stdout stays clean for data. It draws
 * only on an interactive terminal: in CI logs and redirected output, carriage-return redraws
 * become thousands of lines, so there only note() writes.
 */
export class Progress {
  private total = 0;
  private done = 0;
  private label = '';
  private startedAt = 0;
  private lastDoneAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private barShown = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = Boolean(stream.isTTY) && !process.env.CI,
  ) {}

  begin(totalSteps: number): void {
    this.total = totalSteps;
    this.done = 0;
    this.label = '';
    this.startedAt = this.lastDoneAt = Date.now();
    if (!this.enabled) return;
    clearInterval(this.timer);
    // Redrawn on a timer, not only on step(), so elapsed time moves during a long point.
    // unref(): a forgotten end() must not keep the process alive.
    this.timer = setInterval(() => this.draw(), 200).unref();
    this.draw();
  }

  /** Names the point now running. */
  step(label: string): void {
    this.label = label;
    if (this.enabled) this.draw();
  }

  /** Marks one step finished. */
  advance(): void {
    this.done += 1;
    this.lastDoneAt = Date.now();
    if (this.enabled) this.draw();
  }

  /** A message on a line of its own, TTY or not; the bar is cleared first and redrawn after. */
  note(message: string): void {
    const hadBar = this.barShown;
    this.clear();
    this.stream.write(`${message}\n`);
    if (hadBar) this.draw();
  }

  end(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private clear(): void {
    if (!this.barShown) return;
    this.stream.write('\r\x1b[K');
    this.barShown = false;
  }

  private draw(): void {
    const now = Date.now();
    const current = Math.min(this.done + 1, this.total);
    let line = `[${current}/${this.total}] ${this.label}  ${clock(now - this.startedAt)} elapsed`;
    // The mean of finished steps is the only estimate until one finishes; before that, no ETA.
    if (this.done > 0) {
      const meanStep = (this.lastDoneAt - this.startedAt) / this.done;
      line += `, ~${clock(meanStep * (this.total - this.done))} left`;
    }
    // A line wider than the terminal wraps, and '\r' then returns only to the wrapped part.
    const width = this.stream.columns;
    if (width && line.length >= width) line = line.slice(0, width - 1);
    this.stream.write(`\r${line}\x1b[K`);
    this.barShown = true;
  }
}

/** mm:ss, or h:mm:ss from an hour on. */
function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  const mmss = `${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mmss}` : mmss;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

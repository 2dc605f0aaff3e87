// A block of lines redrawn in place on a terminal (raw ANSI: cursor up, erase line, erase below). Every
// line must fit the terminal's width, or a wrapped line would throw off the count of lines to go back up.
import type { Writable } from "node:stream";

const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

export class LiveBlock {
  private readonly out: Writable;
  private height = 0;
  private last = "";
  private active = false;

  constructor(out: Writable) {
    this.out = out;
  }

  draw(lines: string[]): void {
    const frame = lines.join("\n");
    if (this.active && frame === this.last) return;
    let s = this.active ? "" : HIDE_CURSOR;
    // Back to the first line of the block, then each line erased and rewritten, then anything below.
    if (this.height > 0) s += `\x1b[${this.height}A\r`;
    for (const line of lines) s += `\x1b[2K${line}\n`;
    s += "\x1b[J";
    this.out.write(s);
    this.height = lines.length;
    this.last = frame;
    this.active = true;
  }

  /** Removes the block (the cursor ends where it began) and shows the cursor again. */
  clear(): void {
    if (!this.active) return;
    this.out.write(`${this.height > 0 ? `\x1b[${this.height}A\r` : ""}\x1b[J${SHOW_CURSOR}`);
    this.height = 0;
    this.last = "";
    this.active = false;
  }

  /** Leaves the block on screen as it is and shows the cursor again. */
  release(): void {
    if (!this.active) return;
    this.out.write(SHOW_CURSOR);
    this.height = 0;
    this.last = "";
    this.active = false;
  }
}

/** A one-line progress bar: `[########------------]  41%  5.2 MB / 12.7 MB  3.1 MB/s`. */
export function progressBar(done: number, total: number | null, width: number, extra: string): string {
  if (!total) return extra;
  const pct = Math.min(1, done / total);
  const barWidth = Math.max(10, Math.min(30, width - extra.length - 10));
  const filled = Math.round(pct * barWidth);
  return `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}] ${String(Math.floor(pct * 100)).padStart(3)}%  ${extra}`;
}

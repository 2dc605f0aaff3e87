// Small text helpers for what the CLI prints: durations, money, sizes, colours, columns.

/** 7 s → "0:07", 83 s → "1:23", 2 h → "2:00:00". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** "$0.0048" below a dollar (agent costs are often fractions of a cent), "$1.23" above. */
export function usd(n: number): string {
  return n < 1 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}

/** How long ago, roughly: "12s ago", "5m ago", "3h ago", "2d ago". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** Seconds from "90", "90s", "30m", "12h", "7d". */
export function parseDuration(raw: string): number | null {
  const m = /^(\d+)\s*(s|m|h|d)?$/i.exec(raw.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] ?? "s").toLowerCase();
  return n * (unit === "d" ? 86400 : unit === "h" ? 3600 : unit === "m" ? 60 : 1);
}

const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;
export const stripAnsi = (s: string) => s.replace(ANSI, "");

/** Cuts plain text to a width, marking the cut with "…". */
export function truncate(s: string, width: number): string {
  if (width <= 0) return "";
  const chars = [...s];
  return chars.length <= width ? s : `${chars.slice(0, Math.max(0, width - 1)).join("")}…`;
}

/**
 * What a terminal must not be handed from text the CLI did not write (agents' messages and errors,
 * prompts, anything in an API answer): escape sequences (colours, cursor moves, OSC titles and links),
 * other C0 and C1 control characters, and bidirectional overrides that make text read other than it is.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** Text from elsewhere, made safe to print: sequences and control characters gone, newlines and tabs kept. */
export const plainText = (s: string) => stripAnsi(s).replace(CONTROL, "");

/** One line: newlines and runs of spaces folded, for prompts and messages in a table cell; safe to print. */
export const oneLine = (s: string) => plainText(s).replace(/\s+/g, " ").trim();

export interface Colors {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export function colors(enabled: boolean): Colors {
  const wrap = (open: number, close: number) => (s: string) => (enabled && s ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39), cyan: wrap(36, 39) };
}

/** Rows padded into columns by their visible width (colour codes do not count); trailing cells unpadded. */
export function columns(rows: string[][], gap = "  "): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...stripAnsi(cell)].length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell + " ".repeat(widths[i]! - [...stripAnsi(cell)].length)))
      .join(gap)
      .trimEnd(),
  );
}

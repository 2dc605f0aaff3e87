// A round as the CLI shows it while it runs: the newest run view from the API, brought forward by each
// event of the live log as it arrives (a phase change shows at once, not at the next fetch). The view
// stays the truth for what only it knows (diff stats, verify results, previews). Rendering here is pure
// text, so the live screen, the plain log and the tests share it.
import type { AttemptView, RoundView, RunEvent, RunView } from "./api.ts";
import { bytes, columns, duration, oneLine, stripAnsi, usd, type Colors } from "./format.ts";

export type AttemptStatus = AttemptView["status"];

/** The order an attempt moves in: a later phase never goes back to an earlier one. */
const RANK: Record<AttemptStatus, number> = {
  queued: 0,
  creating_sandbox: 1,
  installing_agent: 2,
  seeding_workspace: 3,
  running_agent: 4,
  collecting_result: 5,
  done: 6,
  failed: 6,
  cancelled: 6,
};
export const isFinal = (s: AttemptStatus) => RANK[s] === 6;

export interface AttemptRow {
  number: number;
  status: AttemptStatus;
  startedAt: number;
  endedAt: number | null;
  error: string | null;
  /** Turns from the agent's final summary, else tool calls seen so far (a live lower bound). */
  turns: number | null;
  costUsd: number | null;
  diffStats: AttemptView["diffStats"];
  verify: AttemptView["verify"];
  finalMessage: string | null;
  preview: string | null;
  /** The latest retry's reason, while the attempt is still going. */
  retrying: string | null;
}

interface Overlay {
  status: AttemptStatus;
  at: number;
  error: string | null;
}

export class RoundProgress {
  view: RunView;
  readonly roundNo: number;
  private readonly overlay = new Map<number, Overlay>();
  private readonly toolCalls = new Map<number, number>();
  private readonly results = new Map<number, { turns: number | null; costUsd: number | null; finalMessage: string | null }>();
  private readonly retries = new Map<number, string>();

  constructor(view: RunView, roundNo: number) {
    this.view = view;
    this.roundNo = roundNo;
  }

  get round(): RoundView {
    const r = this.view.rounds.find((x) => x.number === this.roundNo);
    if (!r) throw new Error(`run ${this.view.id} has no round ${this.roundNo}`);
    return r;
  }

  get ended(): boolean {
    return this.round.status !== "running";
  }

  applyView(view: RunView): void {
    this.view = view;
  }

  /** Folds one event into the round; true when it changed what is shown. */
  applyEvent(e: RunEvent): boolean {
    if (e.round !== this.roundNo || e.attempt === null) return false;
    const d = (e.data ?? {}) as Record<string, unknown>;
    switch (e.type) {
      case "attempt.status": {
        const to = d.to as AttemptStatus;
        if (!(to in RANK)) return false;
        this.overlay.set(e.attempt, { status: to, at: e.at, error: typeof d.reason === "string" ? d.reason : null });
        if (isFinal(to) || to === "running_agent") this.retries.delete(e.attempt);
        return true;
      }
      case "attempt.retry":
        this.retries.set(e.attempt, `retry ${String(d.retry ?? "")}: ${String(d.reason ?? "")}`);
        return true;
      case "agent.tool":
        this.toolCalls.set(e.attempt, (this.toolCalls.get(e.attempt) ?? 0) + 1);
        return true;
      case "agent.result": {
        const s = (d.summary ?? {}) as { turns?: number | null; costUsd?: number | null; finalMessage?: string | null };
        this.results.set(e.attempt, { turns: s.turns ?? null, costUsd: s.costUsd ?? null, finalMessage: s.finalMessage ?? null });
        return true;
      }
      default:
        return false;
    }
  }

  rows(): AttemptRow[] {
    const round = this.round;
    return round.attempts.map((a) => {
      const o = this.overlay.get(a.number);
      const ahead = o && RANK[o.status] > RANK[a.status];
      const status = ahead ? o.status : a.status;
      const timestamps = ahead ? { ...a.timestamps, [o.status]: o.at } : a.timestamps;
      const result = this.results.get(a.number);
      const summary = a.summary ?? (result ? { ...result, isError: false } : null);
      const tools = this.toolCalls.get(a.number);
      return {
        number: a.number,
        status,
        startedAt: timestamps.queued ?? round.createdAt,
        endedAt: timestamps.done ?? timestamps.failed ?? timestamps.cancelled ?? null,
        error: (ahead ? o.error : null) ?? a.error,
        turns: summary?.turns ?? tools ?? null,
        costUsd: summary?.costUsd ?? null,
        diffStats: a.diffStats,
        verify: a.verify,
        finalMessage: summary?.finalMessage ?? null,
        preview: a.preview?.url ?? null,
        retrying: isFinal(status) ? null : (this.retries.get(a.number) ?? null),
      };
    });
  }
}

// ------------------------------------------------------------------------------------------ text

/** The longest phase name: live lines pad to it, so columns stay put as phases change. */
const PHASE_WIDTH = Math.max(...Object.keys(RANK).map((s) => s.length));

export function statusText(s: AttemptStatus, c: Colors, width = 0): string {
  const text = s.padEnd(width);
  if (s === "done") return c.green(text);
  if (s === "failed") return c.red(text);
  if (s === "cancelled") return c.dim(text);
  return c.yellow(text);
}

export const diffText = (d: AttemptRow["diffStats"]) =>
  d ? `${d.files} file${d.files === 1 ? "" : "s"} +${d.additions} -${d.deletions}` : "";

const verifyText = (v: AttemptRow["verify"], c: Colors) => (v ? (v.passed ? c.green("verify passed") : c.red(`verify failed (${v.exitCode})`)) : "");

/** The cells of one attempt's line: number, phase, elapsed, turns, cost, changes, verify, note. */
function attemptCells(a: AttemptRow, now: number, c: Colors, live = false): string[] {
  const elapsed = duration((a.endedAt ?? now) - a.startedAt).padStart(live ? 5 : 0);
  const note = a.status === "failed" || a.status === "cancelled" ? (a.error ?? "") : (a.retrying ?? "");
  return [
    `#${a.number}`,
    statusText(a.status, c, live ? PHASE_WIDTH : 0),
    elapsed,
    a.turns === null ? "" : `${a.turns} turn${a.turns === 1 ? "" : "s"}`,
    a.costUsd === null ? "" : usd(a.costUsd),
    diffText(a.diffStats),
    verifyText(a.verify, c),
    c.dim(oneLine(note)),
  ];
}

export function headerLines(view: RunView, round: RoundView, c: Colors): string[] {
  const from = round.fromRound ? ` (from round ${round.fromRound}'s winner)` : "";
  return [
    `${c.bold(view.id)} · round ${round.number}${from} · ${round.attempts.length} attempt${round.attempts.length === 1 ? "" : "s"} · ${view.agent}`,
    c.dim(`“${oneLine(round.prompt)}”`),
  ];
}

/** The live block: the header, then one line per attempt. Each line fits `width` (no wrapping). */
export function liveLines(p: RoundProgress, now: number, width: number, c: Colors): string[] {
  const round = p.round;
  const rows = columns(p.rows().map((a) => attemptCells(a, now, c, true)));
  const lines = [...headerLines(p.view, round, c), ...rows.map((r) => `  ${r}`)];
  return lines.map((l) => fit(l, width));
}

/**
 * What the round came to: a table of its attempts, then errors, final messages and previews. It stays
 * in the scrollback, so only the agents' final messages (which can be long) are cut to `width`.
 */
export function summaryLines(p: RoundProgress, width: number, c: Colors): string[] {
  const round = p.round;
  const rows = p.rows();
  const counts = new Map<string, number>();
  for (const a of rows) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
  const tally = [...counts].map(([s, n]) => `${n} ${s}`).join(", ");
  const took = round.finishedAt ? ` in ${duration(round.finishedAt - round.createdAt)}` : "";
  const lines = [`round ${round.number} ${round.status === "running" ? "is running" : round.status}${took}: ${tally}`];
  lines.push(...columns(rows.map((a) => attemptCells({ ...a, error: null, retrying: null }, a.endedAt ?? Date.now(), c))).map((r) => `  ${r}`));
  for (const a of rows) {
    if (a.error && a.status !== "done") lines.push(`  #${a.number} ${a.status}: ${oneLine(a.error)}`);
    else if (a.finalMessage) lines.push(fit(`  #${a.number} says: ${oneLine(a.finalMessage)}`, width));
    if (a.preview) lines.push(`  #${a.number} preview: ${a.preview}`);
  }
  if (round.winner) lines.push(winnerLine(round));
  return lines;
}

export function winnerLine(round: RoundView): string {
  const w = round.winner!;
  const tarball = w.tarball ? ` (${bytes(w.tarball.size)}, sha256 ${w.tarball.sha256.slice(0, 12)}…)` : "";
  return `  winner: #${w.attempt}, ${w.status}${w.error ? `: ${w.error}` : tarball}`;
}

/** One plain log line for an event of the watched round, or null for events not worth a line. */
export function logLine(e: RunEvent, p: RoundProgress, c: Colors): string | null {
  if (e.round !== p.roundNo) return null;
  const at = `[${duration(e.at - p.round.createdAt)}]`;
  const d = (e.data ?? {}) as Record<string, unknown>;
  if (e.attempt === null) return null;
  const who = `attempt ${e.attempt}`;
  if (e.type === "attempt.retry") return `${at} ${who}  retrying (${String(d.retry)}): ${oneLine(String(d.reason ?? ""))}`;
  if (e.type !== "attempt.status") return null;
  const to = d.to as AttemptStatus;
  const row = p.rows().find((a) => a.number === e.attempt);
  if (!row || !isFinal(to)) return `${at} ${who}  ${statusText(to, c)}`;
  const facts = [duration((row.endedAt ?? e.at) - row.startedAt)];
  if (row.turns !== null) facts.push(`${row.turns} turn${row.turns === 1 ? "" : "s"}`);
  if (row.costUsd !== null) facts.push(usd(row.costUsd));
  const why = to !== "done" && typeof d.reason === "string" ? `: ${oneLine(d.reason)}` : "";
  return `${at} ${who}  ${statusText(to, c)} (${facts.join(", ")})${why}`;
}

/** Cuts a line to the terminal's width by its visible characters, keeping colour codes intact. */
export function fit(line: string, width: number): string {
  if (!Number.isFinite(width) || width <= 0 || [...stripAnsi(line)].length <= width) return line;
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length && visible < width - 1; ) {
    const esc = /^\x1b\[[0-9;]*m/.exec(line.slice(i));
    if (esc) {
      out += esc[0];
      i += esc[0].length;
      continue;
    }
    const ch = String.fromCodePoint(line.codePointAt(i)!);
    out += ch;
    visible++;
    i += ch.length;
  }
  return `${out}…${out.includes("\x1b[") ? "\x1b[0m" : ""}`;
}

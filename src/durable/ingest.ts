// What the runners in the sandboxes report, and the agent's transcript (tables `reports`, `agent_lines`,
// `agent_placeholders`). A report is only recorded here and the step it concerns poked: the step itself
// runs in the alarm (work started inside an RPC belongs to its request, whose outstanding I/O does not
// outlive it). Exit reports are kept apart from the attempt, so a report never races a step's commit.
import { MS_DIR } from "../agents/index.ts";
import { parseAgentLine, type AgentEvent } from "../agents/stream-json.ts";
import { isAttemptEnded, type JobName } from "../vocabulary.ts";
import type { IngestReport } from "./contract.ts";
import type { RunCore } from "./core.ts";
import type { AgentSummary, AttemptState, JobReport } from "./state.ts";

/** The most of the agent's log read back from the sandbox. */
export const MAX_ARTIFACT_BYTES = 8_000_000;

type Row = Record<string, SqlStorageValue>;

export class Ingest {
  private readonly core: RunCore;
  private readonly sql: SqlStorage;

  constructor(core: RunCore, sql: SqlStorage) {
    this.core = core;
    this.sql = sql;
  }

  /** A report from an attempt's runner: agent output lines, or a job's exit code. False when it is too late. */
  report(round: number, n: number, report: IngestReport): boolean {
    const { state, timers } = this.core;
    const now = Date.now();
    if (report.job === "pack") {
      const r = state.round(round);
      if (!r || r.winnerStatus !== "packing" || r.winnerAttempt !== n || report.kind !== "exit") return false;
      this.recordExit(round, n, "pack", report.try, report.exitCode ?? 1, now);
      timers.poke({ kind: "winner", round });
      return true;
    }
    const a = state.attempt(round, n);
    if (!a || isAttemptEnded(a.status)) return false;
    if (report.kind === "output" && report.job === "agent" && report.try === a.jobTry) {
      this.recordAgentOutput(a, report.lines ?? [], report.first ?? 0);
    } else if (report.kind === "exit" && typeof report.exitCode === "number") {
      this.recordExit(round, n, report.job, report.try, report.exitCode, now);
      timers.poke({ kind: "attempt", round, attempt: n });
    }
    return true;
  }

  /** Lines of the agent's stdout read from its followed log (src/durable/follow.ts). */
  followedLines(round: number, n: number, jobTry: number, lines: string[], first: number): void {
    const a = this.core.state.attempt(round, n);
    if (!a || isAttemptEnded(a.status) || a.job !== "agent" || a.jobTry !== jobTry) return;
    this.recordAgentOutput(a, lines, first);
  }

  /** A job's exit read from its followed log: recorded as a report is, unless one came first. False if it was known. */
  followedExit(round: number, n: number, job: JobName, jobTry: number, exitCode: number): boolean {
    if (job === "pack") return this.followedPackExit(round, n, jobTry, exitCode);
    const a = this.core.state.attempt(round, n);
    if (!a || isAttemptEnded(a.status) || this.reportedExit(round, n, job, jobTry)) return false;
    this.recordExit(round, n, job, jobTry, exitCode, Date.now());
    this.core.events.append(round, n, "job.exit_followed", { job, exitCode });
    this.core.timers.poke({ kind: "attempt", round, attempt: n });
    return true;
  }

  /** The winner's pack job's exit, read from its followed log while its round is packing that try. */
  private followedPackExit(round: number, n: number, packTry: number, exitCode: number): boolean {
    const r = this.core.state.round(round);
    if (!r || r.winnerStatus !== "packing" || r.winnerAttempt !== n || r.pack?.try !== packTry) return false;
    if (this.reportedExit(round, n, "pack", packTry)) return false;
    this.recordExit(round, n, "pack", packTry, exitCode, Date.now());
    this.core.events.append(round, n, "job.exit_followed", { job: "pack", exitCode });
    this.core.timers.poke({ kind: "winner", round });
    return true;
  }

  reportedExit(round: number, number: number, job: JobName, jobTry: number): JobReport | null {
    const row = this.sql
      .exec<Row>("SELECT exit_code, at FROM reports WHERE round = ? AND number = ? AND job = ? AND try = ?", round, number, job, jobTry)
      .toArray()[0];
    return row ? { exitCode: Number(row.exit_code), at: Number(row.at) } : null;
  }

  /** The agent's summary, from its result event. */
  agentSummary(a: AttemptState): AgentSummary | null {
    const e = this.core.events.last(a.round, a.number, "agent.result");
    return e ? ((e.data as { summary: AgentSummary }).summary ?? null) : null;
  }

  /**
   * When some of the runner's pushes were lost (the result never arrived, or the line numbers show a
   * gap), the transcript is completed from the log the runner kept in the sandbox.
   */
  async recoverTranscript(a: AttemptState, sandboxId: string): Promise<void> {
    const lines = this.agentLinesSeen(a.round, a.number, a.jobTry);
    if (this.core.events.last(a.round, a.number, "agent.result") && lines.seen === lines.implied) return;
    const log = await this.core.sandboxes.exec(sandboxId, `head -c ${MAX_ARTIFACT_BYTES} "${MS_DIR}/jobs/agent.out"`, 120);
    const current = this.core.state.attempt(a.round, a.number);
    // Numbered as the runner numbers them: non-empty lines only. Lines pushed before are not repeated.
    if (current && current.version === a.version) this.recordAgentOutput(a, log.output.split("\n").filter((l) => l.trim()), 0);
  }

  /** Records lines of the agent's stdout, numbered from `first`; a line already recorded is skipped. */
  private recordAgentOutput(a: AttemptState, lines: string[], first: number): void {
    lines.forEach((line, i) => {
      // An empty line is the runner's placeholder for an over-long one: its number counts as seen, and
      // the line itself is read back from the sandbox's log if the result does not come otherwise.
      if (!this.firstSighting(a.round, a.number, a.jobTry, first + i, line)) return;
      for (const e of parseAgentLine(line)) this.core.events.append(a.round, a.number, e.type, agentEventData(e));
    });
  }

  private recordExit(round: number, number: number, job: JobName, jobTry: number, exitCode: number, at: number): void {
    this.sql.exec(
      "INSERT OR IGNORE INTO reports (round, number, job, try, exit_code, at) VALUES (?, ?, ?, ?, ?, ?)",
      round,
      number,
      job,
      jobTry,
      exitCode,
      at,
    );
  }

  /**
   * Whether this is the first sighting of a line's content. An empty `text` is the runner's placeholder
   * for an over-long line: its number counts as seen (no gap), and its content is still to come, from
   * the read-back of the sandbox's log.
   */
  private firstSighting(round: number, number: number, jobTry: number, line: number, text: string): boolean {
    const fresh = this.sql.exec("INSERT OR IGNORE INTO agent_lines (round, number, try, line) VALUES (?, ?, ?, ?)", round, number, jobTry, line).rowsWritten > 0;
    if (!text) {
      if (fresh) this.sql.exec("INSERT OR IGNORE INTO agent_placeholders (round, number, try, line) VALUES (?, ?, ?, ?)", round, number, jobTry, line);
      return false;
    }
    if (fresh) return true;
    return this.sql.exec("DELETE FROM agent_placeholders WHERE round = ? AND number = ? AND try = ? AND line = ?", round, number, jobTry, line).rowsWritten > 0;
  }

  /** How many of the agent's lines (of one try) arrived, and how many the highest number implies. */
  private agentLinesSeen(round: number, number: number, jobTry: number): { seen: number; implied: number } {
    const row = this.sql
      .exec<{ seen: number; top: number | null }>("SELECT COUNT(*) AS seen, MAX(line) AS top FROM agent_lines WHERE round = ? AND number = ? AND try = ?", round, number, jobTry)
      .one();
    return { seen: row.seen, implied: row.top === null ? 0 : row.top + 1 };
  }
}

function agentEventData(e: AgentEvent): unknown {
  const { type: _type, ...data } = e;
  return data;
}

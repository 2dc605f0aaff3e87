// The run's state in the object's storage: the run, its rounds and their attempts (tables `run`, `rounds`,
// `attempts`), and their mirror in D1. Durable Object storage writes are synchronous and transactional
// within one event, so a step that records "create requested" before calling Daytona cannot lose that
// record to a crash after the call.
//
// Attempts change only through `commit`, which is version-checked: a step that read an attempt, awaited
// Daytona, and finds the attempt changed meanwhile (a cancel, a report, a deadline) writes nothing.
// Every write marks its row dirty; `mirror` copies dirty rows to D1 and marks them clean unless they
// changed again meanwhile.
import { db } from "../db/client.ts";
import { mirrorRunState } from "../db/queries.ts";
import type { Env } from "../env.ts";
import type { Redact } from "../redact.ts";
import { redactDeep } from "../redact.ts";
import type { RunRequest } from "../run-request.ts";
import { isAttemptEnded, type AttemptStatus, type JobName, type RunStatus } from "../vocabulary.ts";
import type { EventLog } from "./event-log.ts";
import type { AttemptState, RoundState, RunState } from "./state.ts";

type Row = Record<string, SqlStorageValue>;

export interface RunStateHost {
  sql: SqlStorage;
  env: Env;
  redact: Redact;
  events: EventLog;
  /** Mirroring failed: try again no later than `at`. */
  retryMirrorAt(at: number): void;
}

/** An attempt's columns, in storage order; the JSON ones hold objects. */
const SCALAR_COLUMNS = [
  ["round", "round"],
  ["number", "number"],
  ["status", "status"],
  ["sandboxId", "sandbox_id"],
  ["createRequestedAt", "create_requested_at"],
  ["job", "job"],
  ["jobTry", "job_try"],
  ["cmdId", "cmd_id"],
  ["jobStartedAt", "job_started_at"],
  ["deadlineAt", "deadline_at"],
  ["exitCode", "exit_code"],
  ["error", "error"],
  ["retries", "retries"],
  ["homeDir", "home_dir"],
  ["cleanupTries", "cleanup_tries"],
  ["quotaWaits", "quota_waits"],
  ["version", "version"],
  ["updatedAt", "updated_at"],
] as const satisfies readonly (readonly [keyof AttemptState, string])[];
const BOOLEAN_COLUMNS = [
  ["cleanupPending", "cleanup_pending"],
  ["sandboxDeleted", "sandbox_deleted"],
  ["deletePending", "delete_pending"],
] as const satisfies readonly (readonly [keyof AttemptState, string])[];
/** Booleans that may be unknown: null, 0 or 1. */
const MAYBE_BOOLEAN_COLUMNS = [["reachesWorker", "reaches_worker"]] as const satisfies readonly (readonly [keyof AttemptState, string])[];
const JSON_COLUMNS = [
  ["summary", "summary"],
  ["diffStats", "diff_stats"],
  ["verify", "verify"],
  ["usage", "usage"],
  ["agentSetup", "agent_setup"],
  ["timestamps", "timestamps"],
] as const satisfies readonly (readonly [keyof AttemptState, string])[];
const ATTEMPT_COLUMNS = [...SCALAR_COLUMNS, ...BOOLEAN_COLUMNS, ...MAYBE_BOOLEAN_COLUMNS, ...JSON_COLUMNS].map(([, c]) => c);
const UPSERT_ATTEMPT = `INSERT INTO attempts (${ATTEMPT_COLUMNS.join(", ")}, dirty) VALUES (${ATTEMPT_COLUMNS.map(() => "?").join(", ")}, 1)
  ON CONFLICT(round, number) DO UPDATE SET ${ATTEMPT_COLUMNS.filter((c) => c !== "round" && c !== "number")
    .map((c) => `${c} = excluded.${c}`)
    .join(", ")}, dirty = 1`;

function attemptRow(a: AttemptState): SqlStorageValue[] {
  return [
    ...SCALAR_COLUMNS.map(([k]) => a[k] as SqlStorageValue),
    ...BOOLEAN_COLUMNS.map(([k]) => (a[k] ? 1 : 0)),
    ...MAYBE_BOOLEAN_COLUMNS.map(([k]) => (a[k] === null ? null : a[k] ? 1 : 0)),
    ...JSON_COLUMNS.map(([k]) => (a[k] === null ? null : JSON.stringify(a[k]))),
  ];
}

function attemptOf(row: Row): AttemptState {
  const a: Record<string, unknown> = {};
  for (const [k, c] of SCALAR_COLUMNS) a[k] = row[c] ?? null;
  for (const [k, c] of BOOLEAN_COLUMNS) a[k] = Number(row[c]) === 1;
  for (const [k, c] of MAYBE_BOOLEAN_COLUMNS) a[k] = row[c] === null || row[c] === undefined ? null : Number(row[c]) === 1;
  for (const [k, c] of JSON_COLUMNS) a[k] = row[c] === null || row[c] === undefined ? null : JSON.parse(String(row[c]));
  const attempt = a as unknown as AttemptState;
  attempt.status = String(row.status) as AttemptStatus;
  attempt.job = (row.job ?? null) as JobName | null;
  attempt.timestamps ??= {};
  return attempt;
}

/** Rounds are JSON documents; fields a round of an older release lacked read as null. */
function roundOf(state: string): RoundState {
  return { baseWinner: null, preview: null, sandbox: null, ...(JSON.parse(state) as Partial<RoundState>) } as RoundState;
}

export class RunStore {
  private readonly host: RunStateHost;
  private readonly sql: SqlStorage;
  private mirrorChain: Promise<void> = Promise.resolve();

  constructor(host: RunStateHost) {
    this.host = host;
    this.sql = host.sql;
  }

  // ---- the run ----

  getRun(): RunState | null {
    const row = this.sql.exec<Row>("SELECT * FROM run LIMIT 1").toArray()[0];
    if (!row) return null;
    return {
      id: String(row.id),
      accountId: String(row.account_id),
      request: JSON.parse(String(row.request)) as RunRequest,
      status: row.status as RunStatus,
      error: (row.error as string | null) ?? null,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
      finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    };
  }

  requireRun(): RunState {
    const run = this.getRun();
    if (!run) throw new Error("this run has not been started");
    return run;
  }

  putRun(run: RunState): void {
    this.sql.exec(
      `INSERT INTO run (id, account_id, request, status, error, created_at, updated_at, finished_at, dirty)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
       ON CONFLICT(id) DO UPDATE SET status=excluded.status, error=excluded.error, updated_at=excluded.updated_at,
         finished_at=excluded.finished_at, dirty=1`,
      run.id,
      run.accountId,
      JSON.stringify(run.request),
      run.status,
      run.error,
      run.createdAt,
      run.updatedAt,
      run.finishedAt,
    );
  }

  setRunStatus(status: RunStatus, error: string | null): void {
    const run = this.requireRun();
    const now = Date.now();
    this.putRun({ ...run, status, error, updatedAt: now, finishedAt: status === "running" ? null : now });
    this.host.events.append(null, null, "run.status", { status, error, from: run.status });
  }

  // ---- rounds ----

  rounds(): RoundState[] {
    return this.sql
      .exec<Row>("SELECT state FROM rounds ORDER BY number")
      .toArray()
      .map((r) => roundOf(String(r.state)));
  }

  round(number: number): RoundState | null {
    const row = this.sql.exec<Row>("SELECT state FROM rounds WHERE number = ?", number).toArray()[0];
    return row ? roundOf(String(row.state)) : null;
  }

  latestRound(): RoundState | null {
    const row = this.sql.exec<Row>("SELECT state FROM rounds ORDER BY number DESC LIMIT 1").toArray()[0];
    return row ? roundOf(String(row.state)) : null;
  }

  /** Writes a round (its error redacted, its updatedAt now). */
  putRound(round: RoundState): void {
    const stored = { ...round, winnerError: round.winnerError && this.host.redact(round.winnerError), updatedAt: Date.now() };
    this.sql.exec(
      `INSERT INTO rounds (number, state, dirty) VALUES (?, ?, 1) ON CONFLICT(number) DO UPDATE SET state=excluded.state, dirty=1`,
      round.number,
      JSON.stringify(stored),
    );
  }

  // ---- attempts ----

  attempts(round?: number): AttemptState[] {
    const rows =
      round === undefined
        ? this.sql.exec<Row>("SELECT * FROM attempts ORDER BY round, number").toArray()
        : this.sql.exec<Row>("SELECT * FROM attempts WHERE round = ? ORDER BY number", round).toArray();
    return rows.map(attemptOf);
  }

  attempt(round: number, number: number): AttemptState | null {
    const row = this.sql.exec<Row>("SELECT * FROM attempts WHERE round = ? AND number = ?", round, number).toArray()[0];
    return row ? attemptOf(row) : null;
  }

  /** A new attempt. Every later change goes through `commit`. */
  addAttempt(a: AttemptState): void {
    this.sql.exec(UPSERT_ATTEMPT, ...attemptRow(a));
  }

  /**
   * Writes a change to an attempt unless the attempt changed since `prev` was read (a cancel or another
   * step got there first); returns the new state, or null when `prev` was superseded. A change of status
   * is an `attempt.status` event, with the reason when the attempt ended.
   */
  commit(prev: AttemptState, patch: Partial<AttemptState>): AttemptState | null {
    const current = this.attempt(prev.round, prev.number);
    if (!current || current.version !== prev.version) return null;
    const now = Date.now();
    const next: AttemptState = { ...current, ...redactDeep(patch, this.host.redact), version: current.version + 1, updatedAt: now };
    if (patch.status && patch.status !== current.status) {
      next.timestamps = { ...current.timestamps, [patch.status]: now };
      this.host.events.append(prev.round, prev.number, "attempt.status", {
        from: current.status,
        to: patch.status,
        ...(next.error && isAttemptEnded(patch.status) ? { reason: next.error } : {}),
      });
    }
    this.sql.exec(UPSERT_ATTEMPT, ...attemptRow(next));
    return next;
  }

  // ---- the D1 mirror ----

  /** Mirrors changed rows to D1; calls queue behind each other so two batches never race. */
  mirror(): Promise<void> {
    this.mirrorChain = this.mirrorChain.then(() => this.mirrorOnce());
    return this.mirrorChain;
  }

  private async mirrorOnce(): Promise<void> {
    const changed = this.dirty();
    if (!changed.run && changed.rounds.length === 0 && changed.attempts.length === 0) return;
    try {
      await mirrorRunState(db(this.host.env.DB), changed, this.requireRun().id);
      this.markMirrored(changed);
    } catch (err) {
      console.error("mirroring to D1 failed; will retry", err instanceof Error ? err.message : err);
      this.host.retryMirrorAt(Date.now() + 5_000);
    }
  }

  private dirty(): { run: RunState | null; rounds: RoundState[]; attempts: AttemptState[] } {
    const runDirty = this.sql.exec<Row>("SELECT 1 FROM run WHERE dirty = 1").toArray().length > 0;
    return {
      run: runDirty ? this.getRun() : null,
      rounds: this.sql
        .exec<Row>("SELECT state FROM rounds WHERE dirty = 1")
        .toArray()
        .map((r) => roundOf(String(r.state))),
      attempts: this.sql.exec<Row>("SELECT * FROM attempts WHERE dirty = 1").toArray().map(attemptOf),
    };
  }

  /** Marks mirrored rows clean, unless they changed again since (compared by their updatedAt). */
  private markMirrored(m: { run: RunState | null; rounds: RoundState[]; attempts: AttemptState[] }): void {
    if (m.run) this.sql.exec("UPDATE run SET dirty = 0 WHERE updated_at = ?", m.run.updatedAt);
    for (const r of m.rounds) {
      this.sql.exec("UPDATE rounds SET dirty = 0 WHERE number = ? AND json_extract(state, '$.updatedAt') = ?", r.number, r.updatedAt);
    }
    for (const a of m.attempts) {
      this.sql.exec("UPDATE attempts SET dirty = 0 WHERE round = ? AND number = ? AND updated_at = ?", a.round, a.number, a.updatedAt);
    }
  }
}

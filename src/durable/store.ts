// The RunCoordinator's own SQLite storage: the live state of one run.
// Durable Object storage writes are synchronous and transactional within one event, so a step that
// records "create requested" before calling Daytona cannot lose that record to a crash after the call.
import type { AttemptStatus, RoundStatus, RunStatus, WinnerStatus } from "../vocabulary.ts";
import type { LlmUsage } from "../agents/usage.ts";
import type { PreviewConfig, RunRequest } from "../run-request.ts";

export const FINAL: ReadonlySet<AttemptStatus> = new Set(["done", "failed", "cancelled"]);

export interface RunState {
  id: string;
  accountId: string;
  request: RunRequest;
  status: RunStatus;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface Tarball {
  key: string;
  size: number;
  sha256: string;
}

/** Packing the winner's workspace: one try is one multipart upload, started by one pack job. */
export interface PackState {
  try: number;
  retries: number;
  uploadId: string | null;
  cmdId: string | null;
  startedAt: number | null;
}

export interface RoundState {
  number: number;
  prompt: string;
  status: RoundStatus;
  fromRound: number | null;
  /** A first round may start from another run's winner (the request's `base: {run, round}`). */
  baseWinner?: { runId: string; round: number; attempt: number; sha256: string } | null;
  /** Attempts in this round and their variations (the first round's come from the run request). */
  attempts: number;
  variations: { model?: string; promptSuffix?: string }[] | null;
  /** How to serve this round's attempts for previews, when set on the round. */
  preview?: PreviewConfig | null;
  winnerAttempt: number | null;
  winnerStatus: WinnerStatus | null;
  winnerError: string | null;
  tarball: Tarball | null;
  pack: PackState | null;
  createdAt: number;
  finishedAt: number | null;
  updatedAt: number;
}

export interface UploadedPart {
  part: number;
  etag: string;
  size: number;
}

export type JobName = "install" | "seed" | "agent" | "collect" | "pack";

export interface AgentSummary {
  finalMessage: string | null;
  turns: number | null;
  costUsd: number | null;
  isError: boolean;
}

export interface DiffStats {
  files: number;
  additions: number;
  deletions: number;
}

export interface VerifyResult {
  command: string;
  exitCode: number;
  passed: boolean;
  outputTail: string;
}

export interface AttemptState {
  round: number;
  number: number;
  status: AttemptStatus;
  sandboxId: string | null;
  /** Set before Daytona is asked for a sandbox, so a crash mid-create is noticed and the sandbox adopted. */
  createRequestedAt: number | null;
  /** The job now running (or last run) in the sandbox, the try it belongs to, and what is known of it. */
  job: JobName | null;
  jobTry: number;
  cmdId: string | null;
  exitCode: number | null;
  error: string | null;
  retries: number;
  summary: AgentSummary | null;
  diffStats: DiffStats | null;
  verify: VerifyResult | null;
  /** Model calls through the credential gateway: tokens and cost, as the answers reported them. */
  usage?: LlmUsage;
  timestamps: Partial<Record<AttemptStatus, number>>;
  /** The sandbox must still be deleted (a delete that failed is tried again). */
  cleanupPending: boolean;
  /** Failed tries at deleting the sandbox so far. */
  cleanupTries?: number;
  /** The sandbox was deleted (its id stays, for the record). */
  sandboxDeleted?: boolean;
  /** The sandbox user's home, asked once. */
  homeDir: string | null;
  /** When the running job (its command) was started. */
  jobStartedAt?: number;
  /** When the running job is killed and the attempt failed. */
  deadlineAt: number | null;
  /** Bumped on every write; a step whose attempt changed under it (a cancel, a report) drops its result. */
  version: number;
  updatedAt: number;
}

/** How an attempt's workspace is served, and the server and link of its latest preview. */
export interface PreviewState {
  /** The sandbox and workspace this was detected on; a change of either drops the detection. */
  sandboxId: string;
  workspaceKey: string;
  detected: { kind: string; command: string; port: number; install: string | null } | null;
  installed: boolean;
  /** The server's session command, while it may be running. */
  cmdId: string | null;
  url: string | null;
  expiresAt: number | null;
  /** When someone last asked for the preview; the server is stopped after the idle limit. */
  lastRequestedAt: number;
}

export interface JobReport {
  exitCode: number;
  at: number;
}

export interface RunEvent {
  seq: number;
  at: number;
  round: number | null;
  attempt: number | null;
  type: string;
  data: unknown;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS run (
  id TEXT PRIMARY KEY, account_id TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL,
  error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER,
  dirty INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS rounds (number INTEGER PRIMARY KEY, state TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS upload_parts (
  round INTEGER NOT NULL, try INTEGER NOT NULL, part INTEGER NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
  PRIMARY KEY (round, try, part));
CREATE TABLE IF NOT EXISTS attempts (
  round INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (round, number));
CREATE TABLE IF NOT EXISTS reports (
  round INTEGER NOT NULL, number INTEGER NOT NULL, job TEXT NOT NULL, try INTEGER NOT NULL,
  exit_code INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (round, number, job, try));
CREATE TABLE IF NOT EXISTS agent_lines (
  round INTEGER NOT NULL, number INTEGER NOT NULL, try INTEGER NOT NULL, line INTEGER NOT NULL,
  PRIMARY KEY (round, number, try, line));
-- Lines the runner pushed as empty placeholders (it does not push over-long lines): seen, not yet read.
CREATE TABLE IF NOT EXISTS agent_placeholders (
  round INTEGER NOT NULL, number INTEGER NOT NULL, try INTEGER NOT NULL, line INTEGER NOT NULL,
  PRIMARY KEY (round, number, try, line));
CREATE TABLE IF NOT EXISTS timers (key TEXT PRIMARY KEY, due_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, round INTEGER, attempt INTEGER,
  type TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_attempt ON events (round, attempt, seq);
CREATE TABLE IF NOT EXISTS previews (
  round INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (round, number));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
`;

type Row = Record<string, SqlStorageValue>;

export class RunStore {
  private readonly sql: SqlStorage;

  constructor(storage: DurableObjectStorage) {
    this.sql = storage.sql;
    this.sql.exec(SCHEMA);
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

  // ---- rounds ----

  getRounds(): RoundState[] {
    return this.sql
      .exec<Row>("SELECT state FROM rounds ORDER BY number")
      .toArray()
      .map((r) => JSON.parse(String(r.state)) as RoundState);
  }

  getRound(number: number): RoundState | null {
    const row = this.sql.exec<Row>("SELECT state FROM rounds WHERE number = ?", number).toArray()[0];
    return row ? (JSON.parse(String(row.state)) as RoundState) : null;
  }

  putRound(round: RoundState): void {
    this.sql.exec(
      `INSERT INTO rounds (number, state, dirty) VALUES (?, ?, 1)
       ON CONFLICT(number) DO UPDATE SET state=excluded.state, dirty=1`,
      round.number,
      JSON.stringify(round),
    );
  }

  // ---- parts of a winner's tarball, as the Worker's upload route received them ----

  recordPart(round: number, packTry: number, p: UploadedPart): void {
    this.sql.exec(
      `INSERT INTO upload_parts (round, try, part, etag, size) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(round, try, part) DO UPDATE SET etag=excluded.etag, size=excluded.size`,
      round,
      packTry,
      p.part,
      p.etag,
      p.size,
    );
  }

  parts(round: number, packTry: number): UploadedPart[] {
    return this.sql
      .exec<Row>("SELECT part, etag, size FROM upload_parts WHERE round = ? AND try = ? ORDER BY part", round, packTry)
      .toArray()
      .map((r) => ({ part: Number(r.part), etag: String(r.etag), size: Number(r.size) }));
  }

  // ---- attempts ----

  getAttempts(round?: number): AttemptState[] {
    const rows =
      round === undefined
        ? this.sql.exec<Row>("SELECT state FROM attempts ORDER BY round, number").toArray()
        : this.sql.exec<Row>("SELECT state FROM attempts WHERE round = ? ORDER BY number", round).toArray();
    return rows.map((r) => JSON.parse(String(r.state)) as AttemptState);
  }

  getAttempt(round: number, number: number): AttemptState | null {
    const row = this.sql
      .exec<Row>("SELECT state FROM attempts WHERE round = ? AND number = ?", round, number)
      .toArray()[0];
    return row ? (JSON.parse(String(row.state)) as AttemptState) : null;
  }

  putAttempt(a: AttemptState): void {
    this.sql.exec(
      `INSERT INTO attempts (round, number, state, dirty) VALUES (?, ?, ?, 1)
       ON CONFLICT(round, number) DO UPDATE SET state=excluded.state, dirty=1`,
      a.round,
      a.number,
      JSON.stringify(a),
    );
  }

  // ---- exit reports pushed by the runner; kept apart from the attempt so a report never races a step ----

  recordExit(round: number, number: number, job: JobName, jobTry: number, exitCode: number, at: number): void {
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

  reportedExit(round: number, number: number, job: JobName, jobTry: number): JobReport | null {
    const row = this.sql
      .exec<Row>("SELECT exit_code, at FROM reports WHERE round = ? AND number = ? AND job = ? AND try = ?", round, number, job, jobTry)
      .toArray()[0];
    return row ? { exitCode: Number(row.exit_code), at: Number(row.at) } : null;
  }

  // ---- which of an agent's stdout lines are in the event log already (by their number) ----

  /** Marks the line seen; false when it was seen before. */
  /**
   * Whether this is the first sighting of a line's content. An empty `text` is the runner's placeholder
   * for an over-long line: its number counts as seen (no gap), and its content is still to come, from
   * the read-back of the sandbox's log.
   */
  firstSighting(round: number, number: number, jobTry: number, line: number, text: string): boolean {
    const fresh = this.sql.exec("INSERT OR IGNORE INTO agent_lines (round, number, try, line) VALUES (?, ?, ?, ?)", round, number, jobTry, line).rowsWritten > 0;
    if (!text) {
      if (fresh) this.sql.exec("INSERT OR IGNORE INTO agent_placeholders (round, number, try, line) VALUES (?, ?, ?, ?)", round, number, jobTry, line);
      return false;
    }
    if (fresh) return true;
    return this.sql.exec("DELETE FROM agent_placeholders WHERE round = ? AND number = ? AND try = ? AND line = ?", round, number, jobTry, line).rowsWritten > 0;
  }

  /** How many of the agent's lines (of one try) arrived, and how many the highest number implies. */
  agentLinesSeen(round: number, number: number, jobTry: number): { seen: number; implied: number } {
    const row = this.sql
      .exec<{ seen: number; top: number | null }>("SELECT COUNT(*) AS seen, MAX(line) AS top FROM agent_lines WHERE round = ? AND number = ? AND try = ?", round, number, jobTry)
      .one();
    return { seen: row.seen, implied: row.top === null ? 0 : row.top + 1 };
  }

  // ---- the D1 mirror: rows changed since the last successful mirror ----

  dirty(): { run: RunState | null; rounds: RoundState[]; attempts: AttemptState[] } {
    const runDirty = this.sql.exec<Row>("SELECT 1 FROM run WHERE dirty = 1").toArray().length > 0;
    return {
      run: runDirty ? this.getRun() : null,
      rounds: this.sql
        .exec<Row>("SELECT state FROM rounds WHERE dirty = 1")
        .toArray()
        .map((r) => JSON.parse(String(r.state)) as RoundState),
      attempts: this.sql
        .exec<Row>("SELECT state FROM attempts WHERE dirty = 1")
        .toArray()
        .map((r) => JSON.parse(String(r.state)) as AttemptState),
    };
  }

  /** Marks mirrored rows clean, unless they changed again since (compared by their updatedAt). */
  markMirrored(m: { run: RunState | null; rounds: RoundState[]; attempts: AttemptState[] }): void {
    if (m.run) this.sql.exec("UPDATE run SET dirty = 0 WHERE updated_at = ?", m.run.updatedAt);
    for (const r of m.rounds) {
      this.sql.exec(
        "UPDATE rounds SET dirty = 0 WHERE number = ? AND json_extract(state, '$.updatedAt') = ?",
        r.number,
        r.updatedAt,
      );
    }
    for (const a of m.attempts) {
      this.sql.exec(
        "UPDATE attempts SET dirty = 0 WHERE round = ? AND number = ? AND json_extract(state, '$.updatedAt') = ?",
        a.round,
        a.number,
        a.updatedAt,
      );
    }
  }

  // ---- timers: one row per pending wake-up; the single alarm is set to the earliest ----

  schedule(key: string, dueAt: number): void {
    this.sql.exec(
      "INSERT INTO timers (key, due_at) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET due_at = excluded.due_at",
      key,
      dueAt,
    );
  }

  /** Schedules only if the key has no earlier wake-up already. */
  scheduleNoLaterThan(key: string, dueAt: number): void {
    this.sql.exec(
      `INSERT INTO timers (key, due_at) VALUES (?, ?)
       ON CONFLICT(key) DO UPDATE SET due_at = min(due_at, excluded.due_at)`,
      key,
      dueAt,
    );
  }

  dueAt(key: string): number | null {
    const row = this.sql.exec<Row>("SELECT due_at FROM timers WHERE key = ?", key).toArray()[0];
    return row ? Number(row.due_at) : null;
  }

  unschedule(key: string): void {
    this.sql.exec("DELETE FROM timers WHERE key = ?", key);
  }

  /** The keys due at `now`, earliest first. They stay until their handler reschedules or removes them. */
  dueKeys(now: number): string[] {
    return this.sql
      .exec<Row>("SELECT key FROM timers WHERE due_at <= ? ORDER BY due_at", now)
      .toArray()
      .map((r) => String(r.key));
  }

  nextDue(): number | null {
    const row = this.sql.exec<Row>("SELECT min(due_at) AS due FROM timers").toArray()[0];
    return row && row.due !== null ? Number(row.due) : null;
  }

  timers(): { key: string; dueAt: number }[] {
    return this.sql
      .exec<Row>("SELECT key, due_at FROM timers ORDER BY due_at")
      .toArray()
      .map((r) => ({ key: String(r.key), dueAt: Number(r.due_at) }));
  }

  // ---- the ordered event log ----

  appendEvent(e: Omit<RunEvent, "seq">): number {
    this.sql.exec(
      "INSERT INTO events (at, round, attempt, type, data) VALUES (?, ?, ?, ?, ?)",
      e.at,
      e.round,
      e.attempt,
      e.type,
      JSON.stringify(e.data),
    );
    return Number(this.sql.exec<Row>("SELECT last_insert_rowid() AS seq").one().seq);
  }

  /** The newest event of a type for one attempt. */
  lastEvent(round: number, attempt: number, type: string): RunEvent | null {
    const row = this.sql
      .exec<Row>("SELECT * FROM events WHERE round = ? AND attempt = ? AND type = ? ORDER BY seq DESC LIMIT 1", round, attempt, type)
      .toArray()[0];
    return row ? toEvent(row) : null;
  }

  // ---- previews: one row per attempt that was ever previewed ----

  getPreview(round: number, number: number): PreviewState | null {
    const row = this.sql.exec<Row>("SELECT state FROM previews WHERE round = ? AND number = ?", round, number).toArray()[0];
    return row ? (JSON.parse(String(row.state)) as PreviewState) : null;
  }

  putPreview(round: number, number: number, state: PreviewState): void {
    this.sql.exec(
      "INSERT INTO previews (round, number, state) VALUES (?, ?, ?) ON CONFLICT (round, number) DO UPDATE SET state = excluded.state",
      round,
      number,
      JSON.stringify(state),
    );
  }

  getPreviews(): (PreviewState & { round: number; number: number })[] {
    return this.sql
      .exec<Row>("SELECT round, number, state FROM previews")
      .toArray()
      .map((r) => ({ ...(JSON.parse(String(r.state)) as PreviewState), round: Number(r.round), number: Number(r.number) }));
  }

  lastSeq(): number {
    return Number(this.sql.exec<Row>("SELECT coalesce(max(seq), 0) AS seq FROM events").one().seq);
  }

  /** One attempt's transcript (its `agent.*` events): how many there are, and the newest `limit`, oldest first. */
  transcript(round: number, attempt: number, limit: number): { total: number; entries: RunEvent[] } {
    const where = "round = ? AND attempt = ? AND type LIKE 'agent.%'";
    const total = Number(this.sql.exec<Row>(`SELECT count(*) AS n FROM events WHERE ${where}`, round, attempt).one().n);
    const entries = this.sql
      .exec<Row>(`SELECT * FROM events WHERE ${where} ORDER BY seq DESC LIMIT ?`, round, attempt, limit)
      .toArray()
      .map(toEvent)
      .reverse();
    return { total, entries };
  }

  events(afterSeq: number, limit: number): RunEvent[] {
    return this.sql
      .exec<Row>("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
      .toArray()
      .map(toEvent);
  }

  // ---- wake-ups: what this object is billed for (each alarm, each request), for the operator ----

  /** One row write per wake-up: the counter is the cost meter, so it must not cost much itself. */
  countWakeUp(kind: keyof WakeUps): void {
    this.sql.exec("INSERT INTO counters (name, n) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1", kind);
  }

  wakeUps(): WakeUps {
    const counts = new Map(this.sql.exec<Row>("SELECT name, n FROM counters").toArray().map((r) => [String(r.name), Number(r.n)]));
    return { alarms: counts.get("alarms") ?? 0, requests: counts.get("requests") ?? 0 };
  }
}

/** How often the object was woken: by its alarm, and by requests (fetches and runner reports). */
export interface WakeUps {
  alarms: number;
  requests: number;
}

function toEvent(r: Row): RunEvent {
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    round: r.round === null ? null : Number(r.round),
    attempt: r.attempt === null ? null : Number(r.attempt),
    type: String(r.type),
    data: JSON.parse(String(r.data)),
  };
}

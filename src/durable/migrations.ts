// The run object's own SQLite schema, versioned: an ordered list of migrations, each applied once (in one
// transaction with the recorded version) when the object starts. A migration is never edited after it has
// shipped: a change is a new entry. Each table has one owning module, named beside it.
//
// Objects made before versions existed have the tables of migration 1 already (it only creates what is
// missing), so they go through the same list from the start.

const MIGRATIONS: readonly string[] = [
  // 1: the schema as it stood before versions.
  `
  -- run-state.ts
  CREATE TABLE IF NOT EXISTS run (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL,
    error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER,
    dirty INTEGER NOT NULL DEFAULT 1);
  CREATE TABLE IF NOT EXISTS rounds (number INTEGER PRIMARY KEY, state TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 1);
  CREATE TABLE IF NOT EXISTS attempts (
    round INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (round, number));
  -- winner.ts
  CREATE TABLE IF NOT EXISTS upload_parts (
    round INTEGER NOT NULL, try INTEGER NOT NULL, part INTEGER NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (round, try, part));
  -- ingest.ts
  CREATE TABLE IF NOT EXISTS reports (
    round INTEGER NOT NULL, number INTEGER NOT NULL, job TEXT NOT NULL, try INTEGER NOT NULL,
    exit_code INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (round, number, job, try));
  CREATE TABLE IF NOT EXISTS agent_lines (
    round INTEGER NOT NULL, number INTEGER NOT NULL, try INTEGER NOT NULL, line INTEGER NOT NULL,
    PRIMARY KEY (round, number, try, line));
  CREATE TABLE IF NOT EXISTS agent_placeholders (
    round INTEGER NOT NULL, number INTEGER NOT NULL, try INTEGER NOT NULL, line INTEGER NOT NULL,
    PRIMARY KEY (round, number, try, line));
  -- scheduler.ts
  CREATE TABLE IF NOT EXISTS timers (key TEXT PRIMARY KEY, due_at INTEGER NOT NULL);
  -- event-log.ts
  CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, round INTEGER, attempt INTEGER,
    type TEXT NOT NULL, data TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS events_by_attempt ON events (round, attempt, seq);
  -- previews.ts
  CREATE TABLE IF NOT EXISTS previews (
    round INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (round, number));
  -- wake-ups.ts
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
  `,
  // 2 (run-state.ts): an attempt's fields become columns. The fields added after the first release
  // (cleanupTries, sandboxDeleted, jobStartedAt) were optional in the JSON document; here they get their
  // defaults once, instead of every reader guessing.
  `
  CREATE TABLE attempts_v2 (
    round INTEGER NOT NULL, number INTEGER NOT NULL, status TEXT NOT NULL,
    sandbox_id TEXT, create_requested_at INTEGER,
    job TEXT, job_try INTEGER NOT NULL, cmd_id TEXT, job_started_at INTEGER, deadline_at INTEGER,
    exit_code INTEGER, error TEXT, retries INTEGER NOT NULL,
    summary TEXT, diff_stats TEXT, verify TEXT, usage TEXT, timestamps TEXT NOT NULL,
    home_dir TEXT, cleanup_pending INTEGER NOT NULL, cleanup_tries INTEGER NOT NULL, sandbox_deleted INTEGER NOT NULL,
    version INTEGER NOT NULL, updated_at INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (round, number));
  INSERT INTO attempts_v2
    SELECT round, number, json_extract(state, '$.status'),
      json_extract(state, '$.sandboxId'), json_extract(state, '$.createRequestedAt'),
      json_extract(state, '$.job'), json_extract(state, '$.jobTry'), json_extract(state, '$.cmdId'),
      json_extract(state, '$.jobStartedAt'), json_extract(state, '$.deadlineAt'),
      json_extract(state, '$.exitCode'), json_extract(state, '$.error'), json_extract(state, '$.retries'),
      json_extract(state, '$.summary'), json_extract(state, '$.diffStats'), json_extract(state, '$.verify'),
      json_extract(state, '$.usage'), coalesce(json_extract(state, '$.timestamps'), '{}'),
      json_extract(state, '$.homeDir'), coalesce(json_extract(state, '$.cleanupPending'), 0),
      coalesce(json_extract(state, '$.cleanupTries'), 0), coalesce(json_extract(state, '$.sandboxDeleted'), 0),
      json_extract(state, '$.version'), json_extract(state, '$.updatedAt'), dirty
    FROM attempts;
  DROP TABLE attempts;
  ALTER TABLE attempts_v2 RENAME TO attempts;
  `,
  // 3 (run-state.ts, cleanup.ts, attempts.ts): a delete Daytona has marked but not finished, creates
  // refused for quota, and whether the sandbox reached PUBLIC_URL when it was probed (null: not probed).
  `
  ALTER TABLE attempts ADD COLUMN quota_waits INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE attempts ADD COLUMN delete_pending INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE attempts ADD COLUMN reaches_worker INTEGER;
  `,
  // 4 (budget.ts): the gateway's open reservations: each model call in flight holds its most possible
  // cost against the budgets until its usage is read; `counted` is the part of its usage recorded so far.
  `
  CREATE TABLE IF NOT EXISTS llm_reservations (
    id TEXT PRIMARY KEY, round INTEGER NOT NULL, attempt INTEGER NOT NULL, usd REAL NOT NULL,
    counted TEXT, at INTEGER NOT NULL);
  `,
  // 5 (attempts.ts): how each attempt got its agent (preinstalled in a snapshot, or installed, and how long).
  `
  ALTER TABLE attempts ADD COLUMN agent_setup TEXT;
  `,
];

/** The schema version an object is at once `migrate` has run. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Applies every migration the object has not had yet, each with its version, atomically. */
export function migrate(storage: DurableObjectStorage): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  const current = Number(sql.exec<{ v: number | null }>("SELECT max(version) AS v FROM schema_version").one().v ?? 0);
  for (let v = current + 1; v <= MIGRATIONS.length; v++) {
    storage.transactionSync(() => {
      sql.exec(MIGRATIONS[v - 1]!);
      sql.exec("DELETE FROM schema_version");
      sql.exec("INSERT INTO schema_version (version) VALUES (?)", v);
    });
  }
}

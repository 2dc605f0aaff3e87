// The D1 schema: the index of accounts, runs, rounds and attempts.
// While a run is live its Durable Object is the source of truth; every state change is mirrored here
// so that listing, pages and other surfaces can read without waking the object.
// Migrations are generated from this file (`npm run db:generate`) and never edited by hand.
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const createdAt = () =>
  integer("created_at", { mode: "number" })
    .notNull()
    .default(sql`(unixepoch('subsec') * 1000)`);

export const accounts = sqliteTable("accounts", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt(),
});

/** API keys are stored as SHA-256 hashes; `prefix` is the short visible part used to find a key. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    name: text("name").notNull().default(""),
    prefix: text("prefix").notNull(),
    hash: text("hash").notNull(),
    scopes: text("scopes").notNull().default("runs:read runs:write"),
    createdAt: createdAt(),
    lastUsedAt: integer("last_used_at", { mode: "number" }),
    revokedAt: integer("revoked_at", { mode: "number" }),
  },
  (t) => [uniqueIndex("api_keys_hash").on(t.hash), index("api_keys_prefix").on(t.prefix)],
);

/**
 * Idempotency-Key: the first answer to a creating POST, replayed for the same key within 24 hours.
 * A row without a status is a request still being answered.
 */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    accountId: text("account_id").notNull(),
    key: text("key").notNull(),
    /** `METHOD path` and a hash of the body: the same key with another request is refused. */
    route: text("route").notNull(),
    requestHash: text("request_hash").notNull(),
    status: integer("status"),
    response: text("response"),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.key] })],
);

export type RunStatus = "running" | "succeeded" | "failed" | "cancelled";

export const runs = sqliteTable(
  "runs",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    status: text("status").$type<RunStatus>().notNull(),
    prompt: text("prompt").notNull(),
    agent: text("agent").notNull(),
    /** The validated run request (prompt aside), as JSON: attempts, model, variations, base, verify, limits. */
    config: text("config", { mode: "json" }).notNull(),
    attemptCount: integer("attempt_count").notNull(),
    error: text("error"),
    createdAt: createdAt(),
    updatedAt: integer("updated_at", { mode: "number" }).notNull(),
    finishedAt: integer("finished_at", { mode: "number" }),
  },
  (t) => [index("runs_account_created").on(t.accountId, t.createdAt)],
);

export type RoundStatus = "running" | "finished" | "cancelled";
export type WinnerStatus = "packing" | "stored" | "failed";

export const rounds = sqliteTable(
  "rounds",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id),
    number: integer("number").notNull(),
    prompt: text("prompt").notNull(),
    status: text("status").$type<RoundStatus>().notNull(),
    /** The round whose winner this round starts from; null for the first round. */
    fromRound: integer("from_round"),
    winnerAttempt: integer("winner_attempt"),
    /** packing -> stored, or failed (the pick can then be made again). */
    winnerStatus: text("winner_status").$type<WinnerStatus>(),
    winnerError: text("winner_error"),
    /** The winner's workspace tarball in R2: key, byte size and SHA-256 (hex), once stored. */
    tarballKey: text("tarball_key"),
    tarballSize: integer("tarball_size"),
    tarballSha256: text("tarball_sha256"),
    createdAt: createdAt(),
    finishedAt: integer("finished_at", { mode: "number" }),
  },
  (t) => [primaryKey({ columns: [t.runId, t.number] })],
);

export type AttemptStatus =
  | "queued"
  | "creating_sandbox"
  | "installing_agent"
  | "seeding_workspace"
  | "running_agent"
  | "collecting_result"
  | "done"
  | "failed"
  | "cancelled";

export const attempts = sqliteTable(
  "attempts",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id),
    round: integer("round").notNull(),
    /** 1-based position of the attempt in its round. */
    number: integer("number").notNull(),
    status: text("status").$type<AttemptStatus>().notNull(),
    sandboxId: text("sandbox_id"),
    exitCode: integer("exit_code"),
    error: text("error"),
    retries: integer("retries").notNull().default(0),
    /** {final message, turns, costUsd} from the agent's result event. */
    summary: text("summary", { mode: "json" }),
    /** {files, additions, deletions} of `git diff` against the round's base. */
    diffStats: text("diff_stats", { mode: "json" }),
    /** {command, exitCode, passed, outputTail}. */
    verify: text("verify", { mode: "json" }),
    /** Milliseconds since epoch at which each phase began, keyed by status. */
    timestamps: text("timestamps", { mode: "json" }),
    updatedAt: integer("updated_at", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.round, t.number] })],
);

export type ShareScope = "view" | "control";

/**
 * Share links: `/r/<token>` shows one run to whoever holds the token. Only the token's SHA-256 is
 * stored; a view link shows the run, a control link also lets its holder pick winners, start rounds
 * and cancel. Revoked or expired links show nothing.
 */
export const shareLinks = sqliteTable(
  "share_links",
  {
    id: text("id").primaryKey(),
    runId: text("run_id")
      .notNull()
      .references(() => runs.id),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    scope: text("scope").$type<ShareScope>().notNull(),
    hash: text("hash").notNull(),
    createdAt: createdAt(),
    expiresAt: integer("expires_at", { mode: "number" }),
    revokedAt: integer("revoked_at", { mode: "number" }),
  },
  (t) => [uniqueIndex("share_links_hash").on(t.hash), index("share_links_run").on(t.runId)],
);

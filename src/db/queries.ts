// Every D1 read and write multishot makes. Queries are typed from ./schema.ts.
import { and, desc, eq, lt, or } from "drizzle-orm";
import type { AttemptState, RoundState, RunState } from "../durable/state.ts";
import type { RunStatus } from "../vocabulary.ts";
import { accounts, apiKeys, attempts, idempotencyKeys, keyStreams, rounds, runs } from "./schema.ts";

import type { Db } from "./client.ts";

export const LOCAL_ACCOUNT_ID = "acct_local";

/** Made once per isolate (a D1 write on every dev-key request was most of a GET's cost). */
let localAccountReady: Promise<void> | null = null;

export async function ensureLocalAccount(d: Db): Promise<string> {
  localAccountReady ??= d
    .insert(accounts)
    .values({ id: LOCAL_ACCOUNT_ID, name: "local" })
    .onConflictDoNothing()
    .then(() => undefined)
    .catch((err: unknown) => {
      localAccountReady = null;
      throw err;
    });
  await localAccountReady;
  return LOCAL_ACCOUNT_ID;
}

/** The keys with this visible prefix (the caller compares hashes timing-safely). */
export async function keysWithPrefix(d: Db, prefix: string) {
  return d
    .select({
      id: apiKeys.id,
      accountId: apiKeys.accountId,
      hash: apiKeys.hash,
      scopes: apiKeys.scopes,
      revokedAt: apiKeys.revokedAt,
      lastUsedAt: apiKeys.lastUsedAt,
    })
    .from(apiKeys)
    .where(eq(apiKeys.prefix, prefix))
    .all();
}

/** How stale a key's last-used time may get: it is written at most once a minute, not on every request. */
export const KEY_TOUCH_INTERVAL_MS = 60_000;

export async function touchKey(d: Db, id: string): Promise<void> {
  await d.update(apiKeys).set({ lastUsedAt: Date.now() }).where(eq(apiKeys.id, id));
}

export async function createAccount(d: Db, id: string, name: string): Promise<void> {
  await d.insert(accounts).values({ id, name });
}

export async function insertKey(
  d: Db,
  k: { id: string; accountId: string; name: string; prefix: string; hash: string; scopes: string },
): Promise<void> {
  await d.insert(apiKeys).values(k);
}

export async function listKeys(d: Db, accountId: string) {
  return d
    .select({
      id: apiKeys.id,
      name: apiKeys.name,
      prefix: apiKeys.prefix,
      scopes: apiKeys.scopes,
      createdAt: apiKeys.createdAt,
      lastUsedAt: apiKeys.lastUsedAt,
      revokedAt: apiKeys.revokedAt,
    })
    .from(apiKeys)
    .where(eq(apiKeys.accountId, accountId))
    .orderBy(desc(apiKeys.createdAt))
    .all();
}

/** Revokes one of the account's keys; false when the account has no such key. */
export async function revokeKey(d: Db, accountId: string, id: string, now: number): Promise<boolean> {
  const row = await d
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.id, id), eq(apiKeys.accountId, accountId)))
    .returning({ id: apiKeys.id })
    .get();
  return Boolean(row);
}

// ---- Idempotency-Key ----

export async function idempotencyRecord(d: Db, accountId: string, key: string) {
  return d
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.accountId, accountId), eq(idempotencyKeys.key, key)))
    .get();
}

/** Claims the key for a request being answered; false when another request holds it already. */
export async function claimIdempotencyKey(d: Db, accountId: string, key: string, route: string, requestHash: string): Promise<boolean> {
  const row = await d
    .insert(idempotencyKeys)
    .values({ accountId, key, route, requestHash })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key })
    .get();
  return Boolean(row);
}

export async function settleIdempotencyKey(d: Db, accountId: string, key: string, status: number, response: string): Promise<void> {
  await d
    .update(idempotencyKeys)
    .set({ status, response })
    .where(and(eq(idempotencyKeys.accountId, accountId), eq(idempotencyKeys.key, key)));
}

export async function releaseIdempotencyKey(d: Db, accountId: string, key: string): Promise<void> {
  await d.delete(idempotencyKeys).where(and(eq(idempotencyKeys.accountId, accountId), eq(idempotencyKeys.key, key)));
}

// ---- streams held by API keys ----

/** Notes that a key opened a stream on a run (before the stream opens, so a revoke finds it). */
export async function recordKeyStream(d: Db, keyId: string, runId: string): Promise<void> {
  await d
    .insert(keyStreams)
    .values({ keyId, runId, openedAt: Date.now() })
    .onConflictDoUpdate({ target: [keyStreams.keyId, keyStreams.runId], set: { openedAt: Date.now() } });
}

/** The runs a key has opened streams on; they are forgotten as they are read (the key is being revoked). */
export async function takeKeyStreamRuns(d: Db, keyId: string): Promise<string[]> {
  const rows = await d.delete(keyStreams).where(eq(keyStreams.keyId, keyId)).returning({ runId: keyStreams.runId });
  return rows.map((r) => r.runId);
}

export async function purgeKeyStreams(d: Db, before: number): Promise<void> {
  await d.delete(keyStreams).where(lt(keyStreams.openedAt, before));
}

/** Deletes Idempotency-Key rows made before `before` (they no longer replay); how many went. */
export async function purgeIdempotencyKeys(d: Db, before: number): Promise<number> {
  const gone = await d.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, before)).returning({ key: idempotencyKeys.key });
  return gone.length;
}

export async function runOwner(d: Db, runId: string): Promise<string | null> {
  const row = await d.select({ accountId: runs.accountId }).from(runs).where(eq(runs.id, runId)).get();
  return row?.accountId ?? null;
}

export interface RunListItem {
  id: string;
  status: RunStatus;
  prompt: string;
  agent: string;
  attempts: number;
  createdAt: number;
  finishedAt: number | null;
}

/** Newest first; the cursor is `<createdAt>.<id>` of the last row of the previous page. */
export async function listRuns(
  d: Db,
  accountId: string,
  opts: { limit: number; cursor?: { createdAt: number; id: string }; status?: RunStatus },
): Promise<RunListItem[]> {
  const conditions = [eq(runs.accountId, accountId)];
  if (opts.status) conditions.push(eq(runs.status, opts.status));
  if (opts.cursor) {
    const c = opts.cursor;
    conditions.push(or(lt(runs.createdAt, c.createdAt), and(eq(runs.createdAt, c.createdAt), lt(runs.id, c.id)))!);
  }
  return d
    .select({
      id: runs.id,
      status: runs.status,
      prompt: runs.prompt,
      agent: runs.agent,
      attempts: runs.attemptCount,
      createdAt: runs.createdAt,
      finishedAt: runs.finishedAt,
    })
    .from(runs)
    .where(and(...conditions))
    .orderBy(desc(runs.createdAt), desc(runs.id))
    .limit(opts.limit)
    .all();
}

/** Mirrors the Durable Object's changed rows into D1 in one batch (upserts, so a replay is harmless). */
export async function mirrorRunState(
  d: Db,
  m: { run: RunState | null; rounds: RoundState[]; attempts: AttemptState[] },
  runId: string,
): Promise<void> {
  const statements = [];
  if (m.run) {
    const { request, ...r } = m.run;
    const { prompt, ...config } = request;
    statements.push(
      d
        .insert(runs)
        .values({
          id: r.id,
          accountId: r.accountId,
          status: r.status,
          prompt,
          agent: request.agent,
          config,
          attemptCount: request.attempts,
          error: r.error,
          createdAt: r.createdAt,
          updatedAt: r.updatedAt,
          finishedAt: r.finishedAt,
        })
        .onConflictDoUpdate({
          target: runs.id,
          set: { status: r.status, error: r.error, updatedAt: r.updatedAt, finishedAt: r.finishedAt },
        }),
    );
  }
  for (const r of m.rounds) {
    const row = {
      status: r.status,
      winnerAttempt: r.winnerAttempt,
      winnerStatus: r.winnerStatus,
      winnerError: r.winnerError,
      tarballKey: r.tarball?.key ?? null,
      tarballSize: r.tarball?.size ?? null,
      tarballSha256: r.tarball?.sha256 ?? null,
      finishedAt: r.finishedAt,
    };
    statements.push(
      d
        .insert(rounds)
        .values({ runId, number: r.number, prompt: r.prompt, fromRound: r.fromRound, createdAt: r.createdAt, ...row })
        .onConflictDoUpdate({ target: [rounds.runId, rounds.number], set: row }),
    );
  }
  for (const a of m.attempts) {
    const row = {
      status: a.status,
      sandboxId: a.sandboxId,
      exitCode: a.exitCode,
      error: a.error,
      retries: a.retries,
      summary: a.summary,
      diffStats: a.diffStats,
      verify: a.verify,
      timestamps: a.timestamps,
      costUsd: a.usage?.costUsd ?? 0,
      updatedAt: a.updatedAt,
    };
    statements.push(
      d
        .insert(attempts)
        .values({ runId, round: a.round, number: a.number, ...row })
        .onConflictDoUpdate({ target: [attempts.runId, attempts.round, attempts.number], set: row }),
    );
  }
  const [first, ...rest] = statements;
  if (first) await d.batch([first, ...rest]);
}

/** A round's stored winner tarball, if the round exists and its winner is stored. */
export async function storedWinner(d: Db, runId: string, round: number) {
  const row = await d
    .select({ attempt: rounds.winnerAttempt, status: rounds.winnerStatus, sha256: rounds.tarballSha256 })
    .from(rounds)
    .where(and(eq(rounds.runId, runId), eq(rounds.number, round)))
    .get();
  if (!row) return null;
  return row.status === "stored" && row.sha256 && row.attempt ? { attempt: row.attempt, sha256: row.sha256 } : { attempt: null, sha256: null };
}

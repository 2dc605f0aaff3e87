// Per-account limits, checked before a run or round adds attempts: attempts working at once, and runs
// started per hour. Beyond either the answer is 429 with Retry-After. The counts come from D1's mirror
// of every run's state (written before each start answers), plus the attempts of starts still under
// way: each start reserves its attempts in one conditional INSERT (D1 runs one statement at a time, so
// the check and the reservation are one step), and gives the reservation back once its run's object
// has mirrored them. Two starts racing each other can never pass a limit together.
import type { Env } from "./env.ts";
import { ApiError } from "./errors.ts";

const HOUR_MS = 60 * 60_000;
/** When a slot frees is unknown; this is when asking again is worth it. */
const CONCURRENCY_RETRY_SECONDS = 30;
/** A reservation older than this belongs to a start that died half-way: it no longer counts. */
const RESERVATION_TTL_MS = 60_000;

export interface AccountUsage {
  limits: { concurrentAttempts: number; runsPerHour: number };
  activeAttempts: number;
  runsLastHour: number;
  /** When the oldest run of the last hour leaves the window. */
  oldestRunInHourAt: number | null;
}

/**
 * The counts both the check and the usage view read, written once. Parameters: ?1 the account, ?2 the
 * oldest live reservation's time, ?3 an hour ago. A reserved start's run counts by its reservation only,
 * never twice while its object has mirrored it and has not given the reservation back yet.
 */
const COUNT = {
  concurrentLimit: "coalesce((SELECT max_concurrent_attempts FROM accounts WHERE id = ?1), 8)",
  runsPerHourLimit: "coalesce((SELECT runs_per_hour FROM accounts WHERE id = ?1), 60)",
  activeAttempts: `(SELECT count(*) FROM attempts a JOIN runs r ON r.id = a.run_id
      WHERE r.account_id = ?1 AND a.status NOT IN ('done', 'failed', 'cancelled')
        AND a.run_id NOT IN (SELECT run_id FROM limit_reservations WHERE account_id = ?1 AND created_at > ?2))
    + (SELECT coalesce(sum(attempts), 0) FROM limit_reservations WHERE account_id = ?1 AND created_at > ?2)`,
  runsLastHour: `(SELECT count(*) FROM runs WHERE account_id = ?1 AND created_at > ?3
        AND id NOT IN (SELECT run_id FROM limit_reservations WHERE account_id = ?1 AND new_run = 1 AND created_at > ?2))
    + (SELECT count(*) FROM limit_reservations WHERE account_id = ?1 AND new_run = 1 AND created_at > ?2)`,
};

export async function accountUsage(env: Env, accountId: string, now = Date.now()): Promise<AccountUsage> {
  const row = await env.DB.prepare(
    `SELECT ${COUNT.concurrentLimit} AS c, ${COUNT.runsPerHourLimit} AS h, ${COUNT.activeAttempts} AS active,
       ${COUNT.runsLastHour} AS recent, (SELECT min(created_at) FROM runs WHERE account_id = ?1 AND created_at > ?3) AS oldest`,
  )
    .bind(accountId, now - RESERVATION_TTL_MS, now - HOUR_MS)
    .first<{ c: number; h: number; active: number; recent: number; oldest: number | null }>();
  return {
    limits: { concurrentAttempts: Number(row!.c), runsPerHour: Number(row!.h) },
    activeAttempts: Number(row!.active),
    runsLastHour: Number(row!.recent),
    oldestRunInHourAt: row!.oldest ?? null,
  };
}

/**
 * Runs `start` while `attemptCount` attempts are reserved against the account's limits, or refuses
 * (429, Retry-After) a new run or round that would pass one, starting nothing.
 */
export async function withinAccountLimits<T>(
  env: Env,
  input: { accountId: string; runId: string; attempts: number; newRun: boolean },
  start: () => Promise<T>,
  /** The round `start` started, or null when it started nothing (a refusal it answered with). */
  startedRound: (result: T) => number | null,
): Promise<T> {
  const now = Date.now();
  const id = crypto.randomUUID();
  const { accountId, runId, attempts: count, newRun } = input;
  const live = now - RESERVATION_TTL_MS;
  const reserved = await env.DB.prepare(
    `INSERT INTO limit_reservations (id, account_id, run_id, attempts, new_run, created_at)
     SELECT ?4, ?1, ?5, ?6, ?7, ?8
     WHERE ${COUNT.activeAttempts} + ?6 <= ${COUNT.concurrentLimit}
       AND (?7 = 0 OR ${COUNT.runsLastHour} < ${COUNT.runsPerHourLimit})`,
  )
    .bind(accountId, live, now - HOUR_MS, id, runId, count, newRun ? 1 : 0, now)
    .run();
  if (reserved.meta.changes !== 1) {
    await refuse(env, accountId, count, newRun);
    throw new ApiError(429, "too_many_attempts", "this account's limits are reached; try again shortly", { retryAfter: CONCURRENCY_RETRY_SECONDS });
  }
  let keep = false;
  try {
    const result = await start();
    const round = startedRound(result);
    if (round !== null) {
      // The object mirrors its new attempts to D1 before it answers, but a D1 error there is retried
      // later: until they are in D1 the reservation is what counts them (at most RESERVATION_TTL_MS).
      const mirrored = await env.DB.prepare("SELECT count(*) AS n FROM attempts WHERE run_id = ? AND round = ?").bind(runId, round).first<{ n: number }>();
      keep = Number(mirrored?.n ?? 0) < count;
    }
    return result;
  } finally {
    // The reservation has done its work (or nothing started). Old ones (a start that died half-way)
    // go too. A failure here changes no answer: the start happened, and the TTL ends the row anyway.
    try {
      await env.DB.prepare("DELETE FROM limit_reservations WHERE (id = ? AND ?) OR created_at <= ?").bind(id, keep ? 0 : 1, live).run();
    } catch (err) {
      console.error("giving back a limit reservation failed; it lapses by itself", err instanceof Error ? err.message : err);
    }
  }
}

/** Throws the 429 that says which limit a refused start would pass, and when to ask again. */
async function refuse(env: Env, accountId: string, attemptCount: number, newRun: boolean): Promise<void> {
  const now = Date.now();
  const u = await accountUsage(env, accountId, now);
  if (newRun && u.runsLastHour >= u.limits.runsPerHour) {
    const retry = Math.max(1, Math.ceil(((u.oldestRunInHourAt ?? now) + HOUR_MS - now) / 1000));
    throw new ApiError(429, "rate_limited", `this account may start ${u.limits.runsPerHour} runs per hour; try again in ${retry} s`, {
      retryAfter: retry,
    });
  }
  if (u.activeAttempts + attemptCount > u.limits.concurrentAttempts) {
    throw new ApiError(
      429,
      "too_many_attempts",
      `this account may have ${u.limits.concurrentAttempts} attempts working at once; ${u.activeAttempts} are, and this needs ${attemptCount} more`,
      { retryAfter: CONCURRENCY_RETRY_SECONDS },
    );
  }
}

/** How many attempts a next round will have: as asked, or one per variation, or the run's count. */
export function nextRoundAttempts(runAttempts: number, req: { attempts?: number | undefined; variations?: unknown[] | undefined }): number {
  return req.attempts ?? req.variations?.length ?? runAttempts;
}

// Per-account limits, checked before a run or round adds attempts: attempts working at once, and runs
// started per hour. Beyond either the answer is 429 with Retry-After. The counts come from D1's mirror
// of every run's state (written before each start answers), so they are exact but for requests that
// race each other by milliseconds.
import { and, eq, gt, notInArray, sql } from "drizzle-orm";
import { db } from "./db/queries.ts";
import { accounts, attempts, runs } from "./db/schema.ts";
import type { Env } from "./env.ts";
import { ApiError } from "./errors.ts";

const HOUR_MS = 60 * 60_000;
/** When a slot frees is unknown; this is when asking again is worth it. */
const CONCURRENCY_RETRY_SECONDS = 30;

export interface AccountUsage {
  limits: { concurrentAttempts: number; runsPerHour: number };
  activeAttempts: number;
  runsLastHour: number;
  /** When the oldest run of the last hour leaves the window. */
  oldestRunInHourAt: number | null;
}

export async function accountUsage(env: Env, accountId: string, now = Date.now()): Promise<AccountUsage> {
  const d = db(env.DB);
  const [account, active, recent] = await Promise.all([
    d.select({ c: accounts.maxConcurrentAttempts, h: accounts.runsPerHour }).from(accounts).where(eq(accounts.id, accountId)).get(),
    d
      .select({ n: sql<number>`count(*)` })
      .from(attempts)
      .innerJoin(runs, eq(runs.id, attempts.runId))
      .where(and(eq(runs.accountId, accountId), notInArray(attempts.status, ["done", "failed", "cancelled"])))
      .get(),
    d
      .select({ n: sql<number>`count(*)`, oldest: sql<number | null>`min(${runs.createdAt})` })
      .from(runs)
      .where(and(eq(runs.accountId, accountId), gt(runs.createdAt, now - HOUR_MS)))
      .get(),
  ]);
  return {
    limits: { concurrentAttempts: account?.c ?? 8, runsPerHour: account?.h ?? 60 },
    activeAttempts: Number(active?.n ?? 0),
    runsLastHour: Number(recent?.n ?? 0),
    oldestRunInHourAt: recent?.oldest ?? null,
  };
}

/** Refuses (429, Retry-After) a new run or round of `attemptCount` attempts that would pass a limit. */
export async function checkAccountLimits(env: Env, accountId: string, attemptCount: number, newRun: boolean): Promise<void> {
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

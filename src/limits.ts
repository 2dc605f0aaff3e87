// Per-account limits, checked before a run or round adds attempts: attempts working at once, and runs
// started per hour. Beyond either the answer is 429 with Retry-After. The counts come from D1's mirror
// of every run's state (written before each start answers), plus the attempts of starts still under
// way: each start reserves its attempts in one conditional INSERT (D1 runs one statement at a time, so
// the check and the reservation are one step), and gives the reservation back once its run's object
// has mirrored them. Two starts racing each other can never pass a limit together.
import { db } from "./db/client.ts";
import { holdPreviewSlot, mirroredAttempts, releasePreviewSlot, releaseReservations, reserve, usageCounts } from "./db/limit-queries.ts";
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

export async function accountUsage(env: Env, accountId: string, now = Date.now()): Promise<AccountUsage> {
  const u = await usageCounts(db(env.DB), { accountId, liveSince: now - RESERVATION_TTL_MS, hourAgo: now - HOUR_MS, now });
  return {
    limits: { concurrentAttempts: u.concurrentLimit, runsPerHour: u.runsPerHourLimit },
    activeAttempts: u.activeAttempts,
    runsLastHour: u.runsLastHour,
    oldestRunInHourAt: u.oldestRunInHour,
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
  const d = db(env.DB);
  const reserved = await reserve(d, { accountId, liveSince: live, hourAgo: now - HOUR_MS, now }, { id, runId, attempts: count, newRun, now });
  if (!reserved) {
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
      keep = (await mirroredAttempts(d, runId, round)) < count;
    }
    return result;
  } finally {
    // The reservation has done its work (or nothing started). Old ones (a start that died half-way)
    // go too. A failure here changes no answer: the start happened, and the TTL ends the row anyway.
    try {
      await releaseReservations(d, id, keep, live);
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

/**
 * A preview of an ended attempt keeps its sandbox running: it takes one of the account's attempts at
 * once until `until` (extended by each request), or is refused when none is free.
 */
export async function holdPreview(env: Env, accountId: string, ref: { runId: string; round: number; number: number }, until: number): Promise<boolean> {
  const now = Date.now();
  return holdPreviewSlot(db(env.DB), { accountId, liveSince: now - RESERVATION_TTL_MS, hourAgo: now - HOUR_MS, now }, { ...ref, until });
}

export async function releasePreview(env: Env, ref: { runId: string; round: number; number: number }): Promise<void> {
  await releasePreviewSlot(db(env.DB), ref);
}

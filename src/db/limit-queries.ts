// The counting SQL behind per-account limits (src/limits.ts): attempts working at once and runs started in
// the last hour, from D1's mirror of every run plus the reservations of starts still under way. Written
// once, read by both the check (one conditional INSERT: D1 runs one statement at a time, so the count and
// the reservation are one step) and the usage view, so the two can never drift apart.
import { inArray, notInArray, sql, type SQL } from "drizzle-orm";
import { ENDED_ATTEMPT_STATUSES } from "../vocabulary.ts";
import type { Db } from "./client.ts";
import { accounts, attempts, limitReservations as lr, runs } from "./schema.ts";

/** What the counts need: the account, the oldest live reservation's time, an hour ago, now. */
interface Window {
  accountId: string;
  liveSince: number;
  hourAgo: number;
  now: number;
}

const DEFAULT_CONCURRENT = sql.raw(String(accounts.maxConcurrentAttempts.default));
const DEFAULT_RUNS_PER_HOUR = sql.raw(String(accounts.runsPerHour.default));

const concurrentLimit = (w: Window): SQL =>
  sql`coalesce((SELECT ${accounts.maxConcurrentAttempts} FROM ${accounts} WHERE ${accounts.id} = ${w.accountId}), ${DEFAULT_CONCURRENT})`;
const runsPerHourLimit = (w: Window): SQL =>
  sql`coalesce((SELECT ${accounts.runsPerHour} FROM ${accounts} WHERE ${accounts.id} = ${w.accountId}), ${DEFAULT_RUNS_PER_HOUR})`;

/** A reserved start's run counts by its reservation only, never twice while both exist. */
const liveReservations = (w: Window, newRunsOnly = false): SQL =>
  sql`${lr.accountId} = ${w.accountId} AND ${lr.createdAt} > ${w.liveSince}${newRunsOnly ? sql` AND ${lr.newRun} = 1` : sql``}`;

/** Sandboxes an account keeps running: working attempts (and reserved ones), and ended ones a preview keeps up. */
const activeAttempts = (w: Window): SQL =>
  sql`((SELECT count(*) FROM ${attempts} JOIN ${runs} ON ${runs.id} = ${attempts.runId}
      WHERE ${runs.accountId} = ${w.accountId} AND ${notInArray(attempts.status, [...ENDED_ATTEMPT_STATUSES])}
        AND ${attempts.runId} NOT IN (SELECT ${lr.runId} FROM ${lr} WHERE ${liveReservations(w)}))
    + (SELECT coalesce(sum(${lr.attempts}), 0) FROM ${lr} WHERE ${liveReservations(w)})
    + (SELECT count(*) FROM ${attempts} JOIN ${runs} ON ${runs.id} = ${attempts.runId}
      WHERE ${runs.accountId} = ${w.accountId} AND ${inArray(attempts.status, [...ENDED_ATTEMPT_STATUSES])} AND ${attempts.previewUntil} > ${w.now}))`;

const runsLastHour = (w: Window): SQL =>
  sql`((SELECT count(*) FROM ${runs} WHERE ${runs.accountId} = ${w.accountId} AND ${runs.createdAt} > ${w.hourAgo}
        AND ${runs.id} NOT IN (SELECT ${lr.runId} FROM ${lr} WHERE ${liveReservations(w, true)}))
    + (SELECT count(*) FROM ${lr} WHERE ${liveReservations(w, true)}))`;

export interface UsageCounts {
  concurrentLimit: number;
  runsPerHourLimit: number;
  activeAttempts: number;
  runsLastHour: number;
  /** When the oldest run of the last hour was made. */
  oldestRunInHour: number | null;
}

export async function usageCounts(d: Db, w: Window): Promise<UsageCounts> {
  const row = await d.get<{ c: number; h: number; active: number; recent: number; oldest: number | null }>(
    sql`SELECT ${concurrentLimit(w)} AS c, ${runsPerHourLimit(w)} AS h, ${activeAttempts(w)} AS active, ${runsLastHour(w)} AS recent,
      (SELECT min(${runs.createdAt}) FROM ${runs} WHERE ${runs.accountId} = ${w.accountId} AND ${runs.createdAt} > ${w.hourAgo}) AS oldest`,
  );
  return {
    concurrentLimit: Number(row.c),
    runsPerHourLimit: Number(row.h),
    activeAttempts: Number(row.active),
    runsLastHour: Number(row.recent),
    oldestRunInHour: row.oldest === null ? null : Number(row.oldest),
  };
}

/**
 * Reserves `attempts` attempts (and a run, for a new one) in one statement, only if the account's limits
 * allow it; false when they do not.
 */
export async function reserve(
  d: Db,
  w: Window,
  r: { id: string; runId: string; attempts: number; newRun: boolean; now: number },
): Promise<boolean> {
  const col = (c: { name: string }) => sql.identifier(c.name);
  const newRun = r.newRun ? 1 : 0;
  const result = await d.run(
    sql`INSERT INTO ${lr} (${col(lr.id)}, ${col(lr.accountId)}, ${col(lr.runId)}, ${col(lr.attempts)}, ${col(lr.newRun)}, ${col(lr.createdAt)})
     SELECT ${r.id}, ${w.accountId}, ${r.runId}, ${r.attempts}, ${newRun}, ${r.now}
     WHERE ${activeAttempts(w)} + ${r.attempts} <= ${concurrentLimit(w)}
       AND (${newRun} = 0 OR ${runsLastHour(w)} < ${runsPerHourLimit(w)})`,
  );
  return result.meta.changes === 1;
}

/** Attempts of a run's round that D1's mirror holds. */
export async function mirroredAttempts(d: Db, runId: string, round: number): Promise<number> {
  const row = await d.get<{ n: number }>(
    sql`SELECT count(*) AS n FROM ${attempts} WHERE ${attempts.runId} = ${runId} AND ${attempts.round} = ${round}`,
  );
  return Number(row?.n ?? 0);
}

/** Gives back a reservation (unless `keep`), and drops every reservation older than `liveSince`. */
export async function releaseReservations(d: Db, id: string, keep: boolean, liveSince: number): Promise<void> {
  await d.run(sql`DELETE FROM ${lr} WHERE (${lr.id} = ${id} AND ${keep ? 0 : 1}) OR ${lr.createdAt} <= ${liveSince}`);
}

/**
 * What the credential gateway's budgets need from D1: the account's own budgets (null: the defaults)
 * and what its runs made this month have spent, leaving out `exceptRunId` (whose object knows its own
 * cost better than its mirror does).
 */
export async function gatewaySpend(
  d: Db,
  q: { accountId: string; monthStart: number; exceptRunId?: string },
): Promise<{ runBudgetUsd: number | null; monthlyBudgetUsd: number | null; monthSpentUsd: number }> {
  const row = await d.get<{ rb: number | null; mb: number | null; spent: number | null }>(
    sql`SELECT (SELECT ${accounts.runBudgetUsd} FROM ${accounts} WHERE ${accounts.id} = ${q.accountId}) AS rb,
      (SELECT ${accounts.monthlyBudgetUsd} FROM ${accounts} WHERE ${accounts.id} = ${q.accountId}) AS mb,
      (SELECT coalesce(sum(${attempts.costUsd}), 0) FROM ${attempts} JOIN ${runs} ON ${runs.id} = ${attempts.runId}
        WHERE ${runs.accountId} = ${q.accountId} AND ${runs.createdAt} >= ${q.monthStart}
          AND ${runs.id} != ${q.exceptRunId ?? ""}) AS spent`,
  );
  return {
    runBudgetUsd: row?.rb === null || row?.rb === undefined ? null : Number(row.rb),
    monthlyBudgetUsd: row?.mb === null || row?.mb === undefined ? null : Number(row.mb),
    monthSpentUsd: Number(row?.spent ?? 0),
  };
}

/**
 * Holds a slot of the account's attempts for a preview of an ended attempt until `until`, in one
 * statement: granted when the attempt's preview holds one already (it is extended), or when the
 * account's sandboxes at work leave room. False when they do not.
 */
export async function holdPreviewSlot(d: Db, w: Window, p: { runId: string; round: number; number: number; until: number }): Promise<boolean> {
  const result = await d.run(
    sql`UPDATE ${attempts} SET ${sql.identifier(attempts.previewUntil.name)} = ${p.until}
      WHERE ${attempts.runId} = ${p.runId} AND ${attempts.round} = ${p.round} AND ${attempts.number} = ${p.number}
        AND (coalesce(${attempts.previewUntil}, 0) > ${w.now} OR ${activeAttempts(w)} < ${concurrentLimit(w)})`,
  );
  return result.meta.changes === 1;
}

/** The preview of an attempt stopped: its sandbox no longer counts. */
export async function releasePreviewSlot(d: Db, p: { runId: string; round: number; number: number }): Promise<void> {
  await d.run(sql`UPDATE ${attempts} SET ${sql.identifier(attempts.previewUntil.name)} = NULL WHERE ${attempts.runId} = ${p.runId} AND ${attempts.round} = ${p.round} AND ${attempts.number} = ${p.number}`);
}

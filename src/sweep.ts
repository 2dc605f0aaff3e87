// The scheduled sweep: deletes sandboxes that multishot labelled but no longer needs, so a crash, a lost
// delete or a bug never leaves one running. An attempt's own cleanup is the normal path; this is the net.
// Every sweep is recorded in D1 (what it deleted and why, what it could not delete); GET /api/admin/stats
// reads the counters. A delete counts only once the sandbox is verifiably gone; one Daytona has only
// marked is counted pending (never deleted twice: that answers 409); one that errors is simply tried
// again by the next sweep.
import { and, eq, sql } from "drizzle-orm";

import { db } from "./db/client.ts";
import { attempts, rounds, runs, sweeps } from "./db/schema.ts";
import type { Env } from "./env.ts";
import { DEFAULT_ATTEMPT_MINUTES } from "./run-request.ts";
import { Sandboxes } from "./sandbox/client.ts";
import { describeSandboxError } from "./sandbox/errors.ts";

/** Sandboxes younger than this are left alone: their attempt may not be mirrored to D1 yet. */
const GRACE_MS = 10 * 60_000;
/**
 * A sandbox whose attempt D1 does not know is deleted only when this old: it may belong to another
 * deployment sharing the Daytona organization, or to an attempt whose mirror is lagging.
 */
const UNKNOWN_GRACE_MS = 24 * 60 * 60_000;
/** Beyond its agent's minutes, what an attempt's setup jobs and collection may take. */
const SETUP_MS = 4 * 20 * 60_000;
/** Every retry starts its job again with a fresh deadline: a sandbox may live through all of them. */
const MAX_TRIES = 4;
const LIMIT_MARGIN_MS = 60 * 60_000;

export interface SweepReport {
  at: number;
  seen: number;
  /** Deleted and verified gone, with the reason. */
  deleted: { id: string; reason: string }[];
  failed: { id: string; reason: string }[];
  /** Marked for destruction by Daytona and not gone yet (by this sweep or before it): not a failure. */
  pending: { id: string; reason: string }[];
}

/** Why the sandbox of this attempt may go, or null while something may still need it. */
function whyDelete(
  row: { status: string; runStatus: string; config: unknown; winnerStatus: string | null } | undefined,
  ageMs: number | null,
): string | null {
  if (!row) return ageMs !== null && ageMs >= UNKNOWN_GRACE_MS ? "its attempt is unknown" : null;
  if (row.status === "failed" || row.status === "cancelled") return `its attempt is ${row.status}`;
  if (row.runStatus === "cancelled") return "its run is cancelled";
  if (row.status === "done" && row.winnerStatus === "stored") return "its round's winner is stored";
  const minutes = (row.config as { limits?: { attemptMinutes?: number } } | null)?.limits?.attemptMinutes ?? DEFAULT_ATTEMPT_MINUTES;
  if (row.status !== "done" && ageMs !== null && ageMs > (minutes * 60_000 + SETUP_MS) * MAX_TRIES + LIMIT_MARGIN_MS) {
    return "it outlived its run's limits";
  }
  return null;
}

/** Sweeps every sandbox multishot labelled; `labels` narrows it (one run's, say). */
export async function sweepSandboxes(env: Env, now = Date.now(), labels: Record<string, string> = {}): Promise<SweepReport> {
  const sandboxes = new Sandboxes(env);
  const d = db(env.DB);
  const report: SweepReport = { at: now, seen: 0, deleted: [], failed: [], pending: [] };
  for (const sb of await sandboxes.findByLabels(labels)) {
    const label = sb.labels["multishot-attempt"];
    if (!label || sb.state === "destroyed") continue;
    report.seen++;
    // Already marked (by its attempt's cleanup, or an earlier sweep): deleting again would answer 409.
    if (sb.desiredState === "destroyed") {
      report.pending.push({ id: sb.id, reason: `marked for destruction (state ${sb.state})` });
      continue;
    }
    const ageMs = sb.createdAt ? now - Date.parse(sb.createdAt) : null;
    if (ageMs !== null && ageMs < GRACE_MS) continue;
    const [runId, round, number] = label.split(":");
    const row = await d
      .select({ status: attempts.status, runStatus: runs.status, config: runs.config, winnerStatus: rounds.winnerStatus })
      .from(attempts)
      .innerJoin(runs, eq(runs.id, attempts.runId))
      .leftJoin(rounds, and(eq(rounds.runId, attempts.runId), eq(rounds.number, attempts.round)))
      .where(and(eq(attempts.runId, runId ?? ""), eq(attempts.round, Number(round)), eq(attempts.number, Number(number))))
      .get();
    const reason = whyDelete(row, ageMs);
    if (!reason) continue;
    try {
      // Verified: gone, or marked and left to Daytona's runner (the next sweep sees it gone).
      if ((await sandboxes.delete(sb.id)) === "gone") report.deleted.push({ id: sb.id, reason });
      else report.pending.push({ id: sb.id, reason: `${reason}; marked for destruction` });
    } catch (err) {
      report.failed.push({ id: sb.id, reason: describeSandboxError(err) });
    }
  }
  return report;
}

/** The cron's sweep: every labelled sandbox, recorded in D1 and logged. */
export async function scheduledSweep(env: Env): Promise<SweepReport> {
  const report = await sweepSandboxes(env);
  await recordSweep(env, report);
  console.log("sandbox sweep", JSON.stringify(report));
  return report;
}

export async function recordSweep(env: Env, r: SweepReport): Promise<void> {
  await db(env.DB)
    .insert(sweeps)
    .values({ at: r.at, seen: r.seen, deleted: r.deleted.length, failed: r.failed.length, detail: { deleted: r.deleted, failed: r.failed, pending: r.pending } });
}

/** The sweeper's counters for GET /api/admin/stats. */
export async function sweepStats(env: Env) {
  const d = db(env.DB);
  const totals = await d
    .select({ sweeps: sql<number>`count(*)`, deleted: sql<number>`coalesce(sum(${sweeps.deleted}), 0)`, failed: sql<number>`coalesce(sum(${sweeps.failed}), 0)` })
    .from(sweeps)
    .get();
  const last = await d.select().from(sweeps).orderBy(sql`${sweeps.at} DESC`).limit(1).get();
  return {
    sweeps: Number(totals?.sweeps ?? 0),
    deleted: Number(totals?.deleted ?? 0),
    failed: Number(totals?.failed ?? 0),
    last: last ? { at: last.at, seen: last.seen, deleted: last.deleted, failed: last.failed, detail: last.detail } : null,
  };
}

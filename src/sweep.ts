// The scheduled sweep: deletes sandboxes that multishot labelled but no longer needs, so a crash, a lost
// delete or a bug never leaves one running. An attempt's own cleanup is the normal path; this is the net.
import { and, eq } from "drizzle-orm";
import { db } from "./db/queries.ts";
import { attempts } from "./db/schema.ts";
import type { Env } from "./env.ts";
import { Sandboxes } from "./sandbox/client.ts";
import { describeSandboxError } from "./sandbox/errors.ts";

/** Sandboxes younger than this are left alone: their attempt may not be mirrored to D1 yet. */
const GRACE_MS = 10 * 60_000;
/**
 * A sandbox whose attempt D1 does not know is deleted only when this old: it may belong to another
 * deployment sharing the Daytona organization, or to an attempt whose mirror is lagging.
 */
const UNKNOWN_GRACE_MS = 24 * 60 * 60_000;

export interface SweepReport {
  seen: number;
  deleted: string[];
  failed: { id: string; reason: string }[];
}

/** Sweeps every sandbox multishot labelled; `labels` narrows it (one run's, say). */
export async function sweepSandboxes(env: Env, now = Date.now(), labels: Record<string, string> = {}): Promise<SweepReport> {
  const sandboxes = new Sandboxes(env);
  const d = db(env.DB);
  const report: SweepReport = { seen: 0, deleted: [], failed: [] };
  for (const sb of await sandboxes.findByLabels(labels)) {
    const label = sb.labels["multishot-attempt"];
    if (!label) continue;
    report.seen++;
    if (sb.createdAt && now - Date.parse(sb.createdAt) < GRACE_MS) continue;
    const [runId, round, number] = label.split(":");
    const row = await d
      .select({ status: attempts.status })
      .from(attempts)
      .where(and(eq(attempts.runId, runId ?? ""), eq(attempts.round, Number(round)), eq(attempts.number, Number(number))))
      .get();
    // Attempts that failed or were cancelled have no use for a sandbox; unknown ones, after a day.
    if (row && row.status !== "failed" && row.status !== "cancelled") continue;
    if (!row && sb.createdAt && now - Date.parse(sb.createdAt) < UNKNOWN_GRACE_MS) continue;
    try {
      await sandboxes.delete(sb.id);
      report.deleted.push(sb.id);
    } catch (err) {
      report.failed.push({ id: sb.id, reason: describeSandboxError(err) });
    }
  }
  return report;
}

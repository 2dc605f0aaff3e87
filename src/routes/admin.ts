// GET /api/admin/stats: the operator's view (ADMIN_TOKEN): runs and attempts by status across every
// account, and the sandbox sweeper's counters.
import { Hono } from "hono";
import { sql } from "drizzle-orm";
import { db } from "../db/queries.ts";
import { attempts, runs } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { sweepStats } from "../sweep.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey } from "./auth.ts";

export const admin = new Hono<AppEnv>().use("*", requireApiKey).get("/stats", async (c) => {
  if (!c.get("operator")) throw new ApiError(403, "forbidden", "the stats are the operator's: use ADMIN_TOKEN");
  const d = db(c.env.DB);
  const byStatus = async (table: typeof runs | typeof attempts) =>
    Object.fromEntries(
      (await d.select({ status: table.status, n: sql<number>`count(*)` }).from(table).groupBy(table.status)).map((r) => [r.status, Number(r.n)]),
    );
  return c.json({ runs: await byStatus(runs), attempts: await byStatus(attempts), sweeper: await sweepStats(c.env) });
});

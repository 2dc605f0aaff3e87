// The operator's view (ADMIN_TOKEN), across every account:
//   GET /api/admin/stats             runs and attempts by status, and the sandbox sweeper's counters;
//   GET /api/admin/runs/:id/stats    how often one run's Durable Object was woken (its cost meter).
import { Hono } from "hono";
import { sql } from "drizzle-orm";
import { db } from "../db/client.ts";
import { runOwner } from "../db/queries.ts";
import { attempts, runs } from "../db/schema.ts";
import { ApiError, notFound } from "../errors.ts";
import { sweepStats } from "../sweep.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey } from "./auth.ts";
import { coordinator } from "./run-access.ts";

export const admin = new Hono<AppEnv>()
  .use("*", requireApiKey)
  .use("*", async (c, next) => {
    if (!c.get("operator")) throw new ApiError(403, "forbidden", "the stats are the operator's: use ADMIN_TOKEN");
    await next();
  })
  .get("/stats", async (c) => {
    const d = db(c.env.DB);
    const byStatus = async (table: typeof runs | typeof attempts) =>
      Object.fromEntries(
        (await d.select({ status: table.status, n: sql<number>`count(*)` }).from(table).groupBy(table.status)).map((r) => [r.status, Number(r.n)]),
      );
    return c.json({ runs: await byStatus(runs), attempts: await byStatus(attempts), sweeper: await sweepStats(c.env) });
  })
  .get("/runs/:id/stats", async (c) => {
    const id = c.req.param("id");
    // Asked by name, a Durable Object always exists: D1 says first whether the run does, so an unknown
    // id makes no empty object.
    if (!/^run_[a-z2-7]{20}$/.test(id) || (await runOwner(db(c.env.DB), id)) === null) throw notFound("run");
    return c.json({ id, ...(await coordinator(c.env, id).wakeUps()) });
  });

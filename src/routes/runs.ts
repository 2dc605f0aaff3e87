// /api/runs: start, read, list and cancel runs. Routes validate, authorize, and hand off to the run's
// Durable Object; D1 answers listings and ownership.
import { Hono } from "hono";
import { randomId } from "../crypto.ts";
import { db, listRuns, runOwner } from "../db/queries.ts";
import type { RunStatus } from "../db/schema.ts";
import type { RunEvent } from "../durable/store.ts";
import { ApiError, notFound } from "../errors.ts";
import { runRequestSchema } from "../run-request.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey } from "./auth.ts";
import { intParam, jsonBody } from "./validate.ts";

const RUN_STATUSES: RunStatus[] = ["running", "succeeded", "failed", "cancelled"];

const coordinator = (env: AppEnv["Bindings"], runId: string) => env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(runId));

/** The run's id if the caller's account owns it. Another account's run is indistinguishable from none. */
async function ownedRun(c: { env: AppEnv["Bindings"]; get(k: "accountId"): string; req: { param(k: "id"): string } }) {
  const id = c.req.param("id");
  const owner = /^run_[a-z2-7]{20}$/.test(id) ? await runOwner(db(c.env.DB), id) : null;
  if (owner !== c.get("accountId")) throw notFound("run");
  return id;
}

export const runs = new Hono<AppEnv>()
  .use("*", requireApiKey)

  .post("/", async (c) => {
    const request = await jsonBody(c, runRequestSchema);
    if (request.base && "run" in request.base) {
      const owner = await runOwner(db(c.env.DB), request.base.run);
      if (owner !== c.get("accountId")) throw new ApiError(404, "not_found", `base.run: run ${request.base.run} not found`);
      throw new ApiError(409, "no_winner", `base: round ${request.base.round} of run ${request.base.run} has no winner`);
    }
    const id = randomId("run");
    const view = await coordinator(c.env, id).start({ id, accountId: c.get("accountId"), request });
    return c.json({ id, status: view.status, links: view.links }, 202);
  })

  .get("/", async (c) => {
    const limit = Number(c.req.query("limit") ?? "20");
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw new ApiError(400, "invalid_parameter", "limit must be an integer from 1 to 100");
    }
    const status = c.req.query("status");
    if (status !== undefined && !RUN_STATUSES.includes(status as RunStatus)) {
      throw new ApiError(400, "invalid_parameter", `status must be one of ${RUN_STATUSES.join(", ")}`);
    }
    const cursorRaw = c.req.query("cursor");
    let cursor: { createdAt: number; id: string } | undefined;
    if (cursorRaw) {
      const m = /^(\d+)\.(run_[a-z2-7]{20})$/.exec(cursorRaw);
      if (!m) throw new ApiError(400, "invalid_parameter", "cursor is not one this API gave out");
      cursor = { createdAt: Number(m[1]), id: m[2]! };
    }
    const rows = await listRuns(db(c.env.DB), c.get("accountId"), {
      limit: limit + 1,
      ...(cursor ? { cursor } : {}),
      ...(status ? { status: status as RunStatus } : {}),
    });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return c.json({
      runs: page,
      nextCursor: rows.length > limit && last ? `${last.createdAt}.${last.id}` : null,
    });
  })

  .get("/:id", async (c) => c.json(await coordinator(c.env, await ownedRun(c)).view()))

  .get("/:id/events", async (c) => {
    const after = Number(c.req.query("after") ?? "0");
    if (!Number.isInteger(after) || after < 0) throw new ApiError(400, "invalid_parameter", "after must be a sequence number");
    const events = JSON.parse(await coordinator(c.env, await ownedRun(c)).eventsJson(after, 500)) as RunEvent[];
    return c.json({ events, next: events.length ? events[events.length - 1]!.seq : after });
  })

  .post("/:id/cancel", async (c) => c.json(await coordinator(c.env, await ownedRun(c)).cancel()))

  .post("/:id/attempts/:n/cancel", async (c) => {
    const id = await ownedRun(c);
    const n = intParam(c, "n");
    const stub = coordinator(c.env, id);
    const run = await stub.view();
    const round = run.rounds[run.rounds.length - 1]!.number;
    const view = await stub.cancelAttempt(round, n);
    if (!view) throw notFound(`attempt ${n}`);
    return c.json(view);
  })

  .get("/:id/rounds/:round/attempts/:n/:artifact{diff|log}", async (c) => {
    const id = await ownedRun(c);
    const round = intParam(c, "round");
    const n = intParam(c, "n");
    const artifact = c.req.param("artifact") === "diff" ? "diff.patch" : "agent.log";
    const object = await c.env.ARTIFACTS.get(`runs/${id}/rounds/${round}/attempts/${n}/${artifact}`);
    if (!object) throw notFound(`${c.req.param("artifact")} of attempt ${n} in round ${round}`);
    return new Response(object.body, {
      headers: {
        "content-type": object.httpMetadata?.contentType ?? "application/octet-stream",
        "content-length": String(object.size),
        etag: object.httpEtag,
      },
    });
  });


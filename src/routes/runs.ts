// /api/runs: start, read, list and cancel runs. Routes validate, authorize, and hand off to the run's
// Durable Object; D1 answers listings and ownership.
import { Hono, type Context } from "hono";
import { attemptArtifactKey } from "../artifact-keys.ts";
import { randomId } from "../crypto.ts";
import { db } from "../db/client.ts";
import { listRuns, recordKeyStream } from "../db/queries.ts";
import { RUN_STATUSES, type RunStatus } from "../vocabulary.ts";
import type { RunEvent } from "../durable/state.ts";
import { ApiError, notFound } from "../errors.ts";
import { runRequestSchema } from "../run-request.ts";
import { startRun } from "../runs/start.ts";
import type { AppEnv } from "./app-types.ts";
import { coordinator, ownedRun } from "./run-access.ts";
import { requireApiKey, requireRunScope } from "./auth.ts";
import { idempotent } from "./idempotency.ts";
import { intParam, jsonBody } from "./validate.ts";


export const runs = new Hono<AppEnv>()
  .use("*", requireApiKey)
  .use("*", requireRunScope)

  .post("/", idempotent, async (c) => {
    const request = await jsonBody(c, runRequestSchema);
    const id = randomId("run");
    const view = await startRun(c.env, { id, accountId: c.get("accountId"), request });
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

  // JSON pages by default; Server-Sent Events (live, resumable with Last-Event-ID) for
  // `Accept: text/event-stream`.
  .get("/:id/events", async (c) => {
    const id = await ownedRun(c);
    const after = Number(c.req.header("last-event-id") ?? c.req.query("after") ?? "0");
    if (!Number.isInteger(after) || after < 0) throw new ApiError(400, "invalid_parameter", "after must be a sequence number");
    if ((c.req.header("accept") ?? "").includes("text/event-stream")) {
      return coordinator(c.env, id).fetch(`https://run/events?after=${after}${await heldBy(c, id)}`, { signal: c.req.raw.signal });
    }
    const events = JSON.parse(await coordinator(c.env, id).eventsJson(after, 500)) as RunEvent[];
    return c.json({ events, next: events.length ? events[events.length - 1]!.seq : after });
  })

  // A WebSocket: the run's snapshot, then each event and each new view (see RunCoordinator.acceptLive).
  .get("/:id/live", async (c) => {
    const id = await ownedRun(c);
    const after = Number(c.req.query("after") ?? "0");
    if (!Number.isInteger(after) || after < 0) throw new ApiError(400, "invalid_parameter", "after must be a sequence number");
    return coordinator(c.env, id).fetch(`https://run/live?after=${after}${await heldBy(c, id)}`, { headers: c.req.raw.headers });
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

  .get("/:id/attempts/:n/:artifact{diff|log}", async (c) => {
    // The newest round's attempt; /rounds/:round/attempts/:n/... names any round.
    const id = await ownedRun(c);
    const view = await coordinator(c.env, id).view();
    return artifact(c.env, id, view.rounds[view.rounds.length - 1]!.number, intParam(c, "n"), c.req.param("artifact"));
  })

  .get("/:id/rounds/:round/attempts/:n/:artifact{diff|log}", async (c) => {
    const id = await ownedRun(c);
    return artifact(c.env, id, intParam(c, "round"), intParam(c, "n"), c.req.param("artifact"));
  });

/** An attempt's patch or raw agent log from R2. */
export async function artifact(env: AppEnv["Bindings"], id: string, round: number, n: number, which: string): Promise<Response> {
  const object = await env.ARTIFACTS.get(attemptArtifactKey(id, round, n, which === "diff" ? "diff.patch" : "agent.log"));
  if (!object) throw notFound(`${which} of attempt ${n} in round ${round}`);
  return new Response(object.body, {
    headers: {
      "content-type": object.httpMetadata?.contentType ?? "application/octet-stream",
      "content-length": String(object.size),
      etag: object.httpEtag,
    },
  });
}

/**
 * A stream or socket opened with an API key is noted against the key (in D1, before it opens) and tagged
 * with it in the run's object, so that revoking the key closes it there at once.
 */
async function heldBy(c: Context<AppEnv>, runId: string): Promise<string> {
  const keyId = c.get("keyId");
  if (!keyId) return "";
  await recordKeyStream(db(c.env.DB), keyId, runId);
  return `&key=${encodeURIComponent(keyId)}`;
}

// /api/runs/:id/rounds...: pick a winner, start the next round, download a winner's tarball.
import { Hono } from "hono";
import { tarballKey } from "../artifact-keys.ts";
import { errorBody, notFound } from "../errors.ts";
import { startNextRound } from "../runs/start.ts";
import { coordinator, ownedRun, unwrap } from "./run-access.ts";
import { roundRequestSchema, winnerRequestSchema } from "../run-request.ts";
import type { AppEnv } from "./app-types.ts";
import { idempotent } from "./idempotency.ts";
import { intParam, jsonBody } from "./validate.ts";

// Mounted after `runs`, whose middleware (API key, scopes) covers these routes too.
export const rounds = new Hono<AppEnv>()

  .post("/:id/rounds/:round/winner", idempotent, async (c) => {
    const id = await ownedRun(c);
    const round = intParam(c, "round");
    const { attempt } = await jsonBody(c, winnerRequestSchema);
    return c.json(unwrap(await coordinator(c.env, id).pickWinner(round, attempt)), 202);
  })

  .post("/:id/rounds", idempotent, async (c) => {
    const id = await ownedRun(c);
    const req = await jsonBody(c, roundRequestSchema);
    return c.json(unwrap(await startNextRound(c.env, c.get("accountId"), id, req)), 202);
  })

  // The winner's workspace as stored in R2: streamed, with Content-Length, ETag and Range.
  .get("/:id/rounds/:round/winner.tar.gz", async (c) => winnerTarball(c.env, c.req.raw, await ownedRun(c), intParam(c, "round")));

/** Streams a stored winner's tarball, honouring If-None-Match and a single Range. */
export async function winnerTarball(env: AppEnv["Bindings"], request: Request, id: string, round: number): Promise<Response> {
  const key = tarballKey(id, round);
  const head = await env.ARTIFACTS.head(key);
  if (!head) throw notFound(`round ${round}'s winner tarball`);
  const headers = new Headers({
    "content-type": "application/gzip",
    "content-disposition": `attachment; filename="${id}-round-${round}.tar.gz"`,
    "accept-ranges": "bytes",
    etag: head.httpEtag,
  });
  const ifNoneMatch = request.headers.get("if-none-match");
  if (ifNoneMatch && ifNoneMatch.split(",").some((t) => t.trim() === head.httpEtag)) {
    return new Response(null, { status: 304, headers });
  }
  const range = parseRange(request.headers.get("range") ?? undefined, head.size);
  if (range === "unsatisfiable") {
    headers.set("content-range", `bytes */${head.size}`);
    headers.set("content-type", "application/json");
    return new Response(JSON.stringify(errorBody("range_not_satisfiable", "the range is outside the file")), { status: 416, headers });
  }
  const object = await env.ARTIFACTS.get(key, range ? { range: { offset: range.start, length: range.end - range.start + 1 } } : {});
  if (!object) throw notFound(`round ${round}'s winner tarball`);
  if (range) {
    headers.set("content-range", `bytes ${range.start}-${range.end}/${head.size}`);
    headers.set("content-length", String(range.end - range.start + 1));
    return new Response(object.body, { status: 206, headers });
  }
  headers.set("content-length", String(head.size));
  return new Response(object.body, { headers });
}

/** One `bytes=` range (the common case; several ranges answer the whole file). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

// Previews: POST .../attempts/:a/preview (one attempt) and POST .../rounds/:n/preview (every attempt of
// the round, in parallel). Each answers {attempt, url, expiresAt, kind, port} or {attempt, error}; a
// single attempt that cannot be previewed answers 409 with its reason.
import { Hono, type Context } from "hono";
import type { PreviewResult } from "../durable/previews.ts";
import { previewRequestSchema, type PreviewRequest } from "../run-request.ts";
import type { AppEnv } from "./app-types.ts";
import { coordinator, ownedRun, unwrap } from "./run-access.ts";
import { intParam, jsonBody } from "./validate.ts";

/** The request's options; an empty body means the defaults. */
export async function previewOptions(c: Context): Promise<PreviewRequest> {
  const empty = c.req.header("content-length") === "0" || (!c.req.header("content-type") && !c.req.header("transfer-encoding"));
  return empty ? previewRequestSchema.parse({}) : jsonBody(c, previewRequestSchema);
}

export const answerPreview = (c: Context, result: PreviewResult) =>
  "error" in result && result.error.code === "too_many_attempts"
    ? c.json(result, 429, { "retry-after": "30" })
    : c.json(result, "error" in result ? 409 : 200);

// Mounted after `runs`, whose middleware (API key, scopes) covers these routes too.
export const previews = new Hono<AppEnv>()
  .post("/:id/attempts/:n/preview", async (c) => {
    const id = await ownedRun(c);
    return answerPreview(c, unwrap(await coordinator(c.env, id).preview(null, intParam(c, "n"), await previewOptions(c))));
  })
  .post("/:id/rounds/:round/attempts/:n/preview", async (c) => {
    const id = await ownedRun(c);
    return answerPreview(c, unwrap(await coordinator(c.env, id).preview(intParam(c, "round"), intParam(c, "n"), await previewOptions(c))));
  })
  .post("/:id/rounds/:round/preview", async (c) => {
    const id = await ownedRun(c);
    return c.json({ previews: unwrap(await coordinator(c.env, id).previewRound(intParam(c, "round"), await previewOptions(c))) });
  });

// The multishot Worker: the Hono app for every HTTP surface, the cron sweep, and the Durable Object class.
import { Hono } from "hono";
import type { Env } from "./env.ts";
import { BODY_TOO_LARGE, errorBody, handleError } from "./errors.ts";
import { MAX_BODY_BYTES } from "./routes/validate.ts";
import type { AppEnv } from "./routes/app-types.ts";
import { admin } from "./routes/admin.ts";
import { docs } from "./routes/docs.tsx";
import { health } from "./routes/health.ts";
import { ingest } from "./routes/ingest.ts";
import { accounts, keys } from "./routes/keys.ts";
import { llm } from "./routes/llm.ts";
import { page } from "./routes/page.tsx";
import { previews } from "./routes/previews.ts";
import { rounds } from "./routes/rounds.ts";
import { runs } from "./routes/runs.ts";
import { share } from "./routes/share.ts";
import { slack } from "./routes/slack.ts";
import { webhooks } from "./routes/webhooks.ts";
import { scheduledSweep } from "./sweep.ts";
import { scrubConsole } from "./redact.ts";
import { db } from "./db/client.ts";
import { purgeIdempotencyKeys, purgeKeyStreams } from "./db/queries.ts";
import { IDEMPOTENCY_TTL_MS } from "./routes/idempotency.ts";

export { RunCoordinator } from "./durable/run-coordinator.ts";

export const app = new Hono<AppEnv>()
  .route("/", health)
  .route("/", docs)
  .route("/api/admin", admin)
  .route("/api/keys", keys)
  .route("/api/accounts", accounts)
  .route("/api/runs", runs)
  .route("/api/runs", rounds)
  .route("/api/runs", share)
  .route("/api/runs", previews)
  .route("/r", page)
  .route("/ingest", ingest)
  .route("/llm", llm)
  .route("/", slack)
  .route("/", webhooks)
  .notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`), 404))
  .onError(handleError);

// Bearer tokens in URLs never reach the Worker's own logs.
scrubConsole();

/** The most any route reads of a body: the gateway passes Messages API requests (up to 32 MB) on, the rest take JSON. */
const bodyLimit = (path: string) => (path.startsWith("/llm/") ? 32 * 1024 * 1024 : MAX_BODY_BYTES);

/**
 * A body sent without Content-Length (chunked) is cut off past its route's limit while it is read, instead
 * of being read whole into memory first; a declared length is checked by each route before it reads.
 */
function capBody(request: Request): Request {
  if (!request.body || request.headers.has("content-length")) return request;
  const limit = bodyLimit(new URL(request.url).pathname);
  let seen = 0;
  const capped = request.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        seen += chunk.byteLength;
        if (seen > limit) throw new Error(BODY_TOO_LARGE);
        out.enqueue(chunk);
      },
    }),
  );
  return new Request(request, { body: capped });
}

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) => app.fetch(capBody(request), env, ctx),
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(scheduledSweep(env));
    // Idempotency-Key answers older than a day replay nothing: they go.
    ctx.waitUntil(purgeIdempotencyKeys(db(env.DB), Date.now() - IDEMPOTENCY_TTL_MS).catch((err) => console.error("purging idempotency keys failed", err)));
    // A stream a key opened over a month ago is long closed: its note goes.
    ctx.waitUntil(purgeKeyStreams(db(env.DB), Date.now() - 30 * 86_400_000).catch((err) => console.error("purging key streams failed", err)));
  },
} satisfies ExportedHandler<Env>;

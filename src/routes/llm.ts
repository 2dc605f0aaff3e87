// The credential gateway, /llm/<run>/<round>/<attempt>/<sig>/v1/...: in API-key mode an agent's model
// calls come here instead of to Anthropic. The signed path is the attempt's token (sandboxes never hold
// the real key); the run's object says whether the call may go (not after the attempt ended, not past
// the run's budget); the request goes on to the Messages API with the real key, and the answer streams
// back unchanged while its usage is read off it and recorded against the attempt.
import { Hono } from "hono";
import { UsageReader } from "../agents/usage.ts";
import { verifySignature } from "../signed-urls.ts";
import type { AppEnv } from "./app-types.ts";
import { coordinator } from "./run-access.ts";

const ANTHROPIC_API = "https://api.anthropic.com";
/** Request headers that are ours or the hop's, not the caller's to pass on. */
const DROP = new Set([
  "host",
  "x-api-key",
  "authorization",
  "proxy-authorization",
  "cookie",
  "forwarded",
  "cf-connecting-ip",
  "cf-ray",
  "cf-visitor",
  "x-real-ip",
]);
const ALLOWED_PATHS = new Set(["/v1/messages", "/v1/messages/count_tokens"]);

/** Errors in the Messages API's own shape, so the agent's CLI shows them as it would Anthropic's. */
const apiError = (status: number, type: string, message: string) =>
  new Response(JSON.stringify({ type: "error", error: { type, message: `multishot: ${message}` } }), {
    status,
    headers: { "content-type": "application/json" },
  });

export const llm = new Hono<AppEnv>().all("/:run/:round/:attempt/:sig/*", async (c) => {
  const runId = c.req.param("run");
  const round = Number(c.req.param("round"));
  const attempt = Number(c.req.param("attempt"));
  if (!Number.isInteger(round) || !Number.isInteger(attempt) || !(await verifySignature(c.env, "llm", [runId, round, attempt], c.req.param("sig")))) {
    return apiError(401, "authentication_error", "bad gateway token");
  }
  // Only the Messages API's two calls an agent makes, to the configured origin: nothing in the path can
  // name another host (a `//host` path would), and no other endpoint (batches, files) is reachable with
  // the shared key.
  const url = new URL(c.req.url);
  const rest = url.pathname.slice(`/llm/${runId}/${round}/${attempt}/${c.req.param("sig")}`.length);
  if (c.req.method !== "POST" || !ALLOWED_PATHS.has(rest)) {
    return apiError(404, "not_found_error", `${c.req.method} ${rest} is not a Messages API call the gateway forwards`);
  }
  const key = c.env.ANTHROPIC_API_KEY;
  if (!key) return apiError(503, "api_error", "the gateway has no ANTHROPIC_API_KEY");

  const stub = coordinator(c.env, runId);
  const gate = await stub.llmGate(round, attempt);
  if ("error" in gate) {
    const status = gate.error.status === 402 ? 403 : gate.error.status === 410 ? 403 : gate.error.status;
    return apiError(status, "permission_error", gate.error.message);
  }

  const query = url.searchParams.get("beta") === "true" ? "?beta=true" : "";
  const base = new URL(c.env.ANTHROPIC_BASE_URL || ANTHROPIC_API);
  const upstream = new URL(`${base.origin}${base.pathname.replace(/\/$/, "")}${rest}${query}`);
  const headers = new Headers();
  for (const [k, v] of c.req.raw.headers) {
    const name = k.toLowerCase();
    if (!DROP.has(name) && !name.startsWith("x-forwarded-")) headers.set(k, v);
  }
  headers.set("x-api-key", key);

  let answer: Response;
  try {
    answer = await fetch(upstream, {
      method: "POST",
      headers,
      body: c.req.raw.body,
    });
  } catch (err) {
    return apiError(502, "api_error", `the Messages API did not answer: ${err instanceof Error ? err.message : String(err)}`);
  }

  // Only message answers carry usage; token counts and errors pass straight through.
  if (!answer.ok || !answer.body || rest !== "/v1/messages") return answer;
  const reader = new UsageReader(answer.headers.get("content-type") ?? "");
  const ctx = c.executionCtx;
  const body = answer.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        reader.push(chunk);
        out.enqueue(chunk);
      },
      flush() {
        const usage = reader.end();
        if (usage) ctx.waitUntil(stub.recordUsage(round, attempt, usage));
      },
    }),
  );
  return new Response(body, { status: answer.status, headers: answer.headers });
});

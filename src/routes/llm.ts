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
const DROP = new Set(["host", "x-api-key", "authorization", "cf-connecting-ip", "cf-ray", "cf-visitor", "x-forwarded-for", "x-real-ip", "cookie"]);

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
  const key = c.env.ANTHROPIC_API_KEY;
  if (!key) return apiError(503, "api_error", "the gateway has no ANTHROPIC_API_KEY");

  const stub = coordinator(c.env, runId);
  const gate = await stub.llmGate(round, attempt);
  if ("error" in gate) {
    const status = gate.error.status === 402 ? 403 : gate.error.status === 410 ? 403 : gate.error.status;
    return apiError(status, "permission_error", gate.error.message);
  }

  const url = new URL(c.req.url);
  const prefix = `/llm/${runId}/${round}/${attempt}/${c.req.param("sig")}`;
  const upstream = new URL(url.pathname.slice(prefix.length) + url.search, (c.env.ANTHROPIC_BASE_URL || ANTHROPIC_API).replace(/\/?$/, "/"));
  const headers = new Headers();
  for (const [k, v] of c.req.raw.headers) if (!DROP.has(k.toLowerCase())) headers.set(k, v);
  headers.set("x-api-key", key);

  let answer: Response;
  try {
    answer = await fetch(upstream, {
      method: c.req.method,
      headers,
      ...(c.req.method === "GET" || c.req.method === "HEAD" ? {} : { body: c.req.raw.body }),
    });
  } catch (err) {
    return apiError(502, "api_error", `the Messages API did not answer: ${err instanceof Error ? err.message : String(err)}`);
  }

  // Only message answers carry usage; token counts and errors pass straight through.
  if (!answer.ok || !answer.body || !/\/v1\/messages\/?$/.test(upstream.pathname)) return answer;
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

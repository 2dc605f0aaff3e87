// The credential gateway, /llm/<run>/<round>/<attempt>/<sig>/v1/...: in API-key mode an agent's model
// calls come here instead of to Anthropic. The signed path is the attempt's token (sandboxes never hold
// the real key); the run's object says whether the call may go (not after the attempt ended, not past
// the run's or the account's budget) and reserves the most it may cost; the request goes on to the
// Messages API with the real key, and the answer streams back unchanged while its usage is read off a
// copy of it, to the end even if the agent hangs up, and recorded against the attempt.
import { Hono } from "hono";
import { estimateRequestCost, UsageReader, type CallUsage } from "../agents/usage.ts";
import { verifySignature } from "../signed-urls.ts";
import type { AppEnv } from "./app-types.ts";
import { coordinator } from "./run-access.ts";

const ANTHROPIC_API = "https://api.anthropic.com";
/**
 * The request headers an agent's call takes on to the Messages API: what the API and its SDKs send
 * (version and beta flags, content negotiation, the SDK's own x-stainless-* description). Nothing else
 * (cookies, forwarding headers, whatever code in the sandbox adds) goes on with the operator's key.
 */
const FORWARDED = new Set(["content-type", "accept", "anthropic-version", "anthropic-beta", "user-agent", "x-app"]);
const forwarded = (name: string) => FORWARDED.has(name) || name.startsWith("x-stainless-");
/** Answer headers about the operator's organization (its id, its rate limits): not the tenant's to see. */
const PRIVATE_ANSWER = (name: string) => name === "anthropic-organization-id" || name.startsWith("anthropic-ratelimit-") || name === "set-cookie";
const ALLOWED_PATHS = new Set(["/v1/messages", "/v1/messages/count_tokens"]);
/** The Messages API's own request limit. */
const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
/** Near a budget, calls in flight finish first: when the next is worth asking for. */
const NEAR_BUDGET_RETRY_SECONDS = 2;

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

  // The body is read whole before anything goes on: its size and max_tokens bound what the call may
  // cost, and that is reserved against the budgets first (the Messages API takes at most 32 MB).
  const declared = Number(c.req.header("content-length") ?? 0);
  if (declared > MAX_REQUEST_BYTES) return apiError(413, "request_too_large", `the request is over ${MAX_REQUEST_BYTES} bytes`);
  const bodyText = await c.req.text();
  if (bodyText.length > MAX_REQUEST_BYTES) return apiError(413, "request_too_large", `the request is over ${MAX_REQUEST_BYTES} bytes`);
  const messages = rest === "/v1/messages";

  const stub = coordinator(c.env, runId);
  const gate = await stub.llmGate(round, attempt, messages ? estimateRequestCost(bodyText).usd : null);
  if ("error" in gate) {
    // Near a budget the calls take turns: a rate limit the agent's CLI waits out and tries again.
    if (gate.error.status === 429) {
      const res = apiError(429, "rate_limit_error", gate.error.message);
      res.headers.set("retry-after", String(NEAR_BUDGET_RETRY_SECONDS));
      return res;
    }
    const status = gate.error.status === 402 ? 403 : gate.error.status === 410 ? 403 : gate.error.status;
    return apiError(status, "permission_error", gate.error.message);
  }
  const { reservation } = gate.ok;
  const ctx = c.executionCtx;
  const meter = (usage: CallUsage | null, final: boolean) =>
    stub.meterCall(round, attempt, reservation, usage, final).catch((err: unknown) => {
      // The reservation stays, and is charged whole once stale: the budget never loses the call.
      console.error("recording a model call's usage failed", err instanceof Error ? err.message : err);
    });

  const query = url.searchParams.get("beta") === "true" ? "?beta=true" : "";
  const base = new URL(c.env.ANTHROPIC_BASE_URL || ANTHROPIC_API);
  const upstream = new URL(`${base.origin}${base.pathname.replace(/\/$/, "")}${rest}${query}`);
  const headers = new Headers();
  for (const [k, v] of c.req.raw.headers) if (forwarded(k.toLowerCase())) headers.set(k, v);
  headers.set("x-api-key", key);

  let answer: Response;
  try {
    answer = await fetch(upstream, { method: "POST", headers, body: bodyText });
  } catch (err) {
    if (reservation) ctx.waitUntil(meter(null, true));
    return apiError(502, "api_error", `the Messages API did not answer: ${err instanceof Error ? err.message : String(err)}`);
  }

  const answerHeaders = new Headers();
  for (const [k, v] of answer.headers) if (!PRIVATE_ANSWER(k.toLowerCase())) answerHeaders.set(k, v);
  // Only message answers carry usage; token counts and errors pass straight through (and cost nothing).
  if (!messages || !answer.ok || !answer.body) {
    if (reservation) ctx.waitUntil(meter(null, true));
    return new Response(answer.body, { status: answer.status, headers: answerHeaders });
  }
  // The answer goes to the agent on one branch and is read for its usage on the other, to its end even
  // when the agent hangs up: what the upstream serves is paid for whether or not anyone reads it. The
  // input is counted as soon as the stream's message_start says it.
  const [toAgent, toMeter] = answer.body.tee();
  const usage = new UsageReader(answer.headers.get("content-type") ?? "");
  let started: Promise<void> = Promise.resolve();
  usage.onStart = (input) => {
    started = meter(input, false);
  };
  ctx.waitUntil(
    (async () => {
      const reader = toMeter.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          usage.push(value);
        }
      } catch {
        // The upstream broke off: what was read is what is counted.
      }
      await started;
      await meter(usage.end(), true);
    })(),
  );
  return new Response(toAgent, { status: answer.status, headers: answerHeaders });
});

// Signed URLs that sandboxes use to talk to the Worker without an API key, when they can reach it at all
// (on Daytona's Tiers 1 and 2 they cannot: nothing a run needs depends on these):
// - ingest:   POST /ingest/<run>/<round>/<attempt>/<sig>, the runner's reports; dies with its attempt.
// - llm:      /llm/<run>/<round>/<attempt>/<sig>/v1/..., the attempt's credential gateway; dies with it.
// Each signature is an HMAC of the purpose and every path part, so no URL can be bent to another use.
import { base64url, hmacSha256, timingSafeEqualStrings } from "./crypto.ts";
import { isLocalMode, type Env } from "./env.ts";
import { ApiError } from "./errors.ts";

/** Local mode without a configured secret gets a fixed development secret; a deployment must set one. */
export function signingSecret(env: Env): string {
  if (env.MULTISHOT_SIGNING_SECRET) return env.MULTISHOT_SIGNING_SECRET;
  if (isLocalMode(env)) return "multishot-local-development-only";
  throw new ApiError(503, "misconfigured", "MULTISHOT_SIGNING_SECRET is not set: this deployment cannot sign or check its URLs until the operator sets it");
}

type Purpose = "ingest" | "llm";

async function sign(env: Env, purpose: Purpose, parts: (string | number)[]): Promise<string> {
  return base64url(await hmacSha256(signingSecret(env), `${purpose}:${parts.join(":")}`));
}

const base = (env: Env) => env.PUBLIC_URL.replace(/\/$/, "");

export async function verifySignature(env: Env, purpose: Purpose, parts: (string | number)[], sig: string): Promise<boolean> {
  return timingSafeEqualStrings(sig, await sign(env, purpose, parts));
}

export async function ingestUrl(env: Env, runId: string, round: number, attempt: number): Promise<string> {
  return `${base(env)}/ingest/${runId}/${round}/${attempt}/${await sign(env, "ingest", [runId, round, attempt])}`;
}

/** The attempt's credential gateway: its agent's ANTHROPIC_BASE_URL in API-key mode. */
export async function llmGatewayUrl(env: Env, runId: string, round: number, attempt: number): Promise<string> {
  return `${base(env)}/llm/${runId}/${round}/${attempt}/${await sign(env, "llm", [runId, round, attempt])}`;
}

// Signed, per-attempt ingest URLs: the runner in a sandbox reports to `/ingest/<run>/<round>/<attempt>/<sig>`.
// The signature binds the URL to that one attempt; the Durable Object refuses reports for attempts
// that have ended, so a URL dies with its attempt.
import { base64url, hmacSha256, timingSafeEqualStrings } from "./crypto.ts";
import { isLocalMode, type Env } from "./env.ts";
import { ApiError } from "./errors.ts";

/** Local mode without a configured secret gets a fixed development secret; a deployment must set one. */
export function signingSecret(env: Env): string {
  if (env.MULTISHOT_SIGNING_SECRET) return env.MULTISHOT_SIGNING_SECRET;
  if (isLocalMode(env)) return "multishot-local-development-only";
  throw new ApiError(500, "misconfigured", "MULTISHOT_SIGNING_SECRET is not set");
}

async function signature(env: Env, runId: string, round: number, attempt: number): Promise<string> {
  return base64url(await hmacSha256(signingSecret(env), `ingest:${runId}:${round}:${attempt}`));
}

export async function ingestUrl(env: Env, runId: string, round: number, attempt: number): Promise<string> {
  const base = env.PUBLIC_URL.replace(/\/$/, "");
  return `${base}/ingest/${runId}/${round}/${attempt}/${await signature(env, runId, round, attempt)}`;
}

export async function verifyIngest(env: Env, runId: string, round: number, attempt: number, sig: string): Promise<boolean> {
  return timingSafeEqualStrings(sig, await signature(env, runId, round, attempt));
}

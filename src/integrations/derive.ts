// Values derived from MULTISHOT_SIGNING_SECRET instead of stored: a webhook endpoint's secret, the ids
// of runs started by a delivery (so a redelivery lands on the same run), and the key that seals the
// few values D1 must hold but must not show (a Slack run's share link).
//
// Deriving rather than storing means a copy of D1 names no working secret; the price is that changing
// MULTISHOT_SIGNING_SECRET changes every derived value (webhook secrets must then be handed out again).
import { base64, base64url, hmacSha256 } from "../crypto.ts";
import type { Env } from "../env.ts";
import { signingSecret } from "../signed-urls.ts";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

async function derive(env: Env, label: string): Promise<Uint8Array> {
  return hmacSha256(signingSecret(env), `multishot-derive:${label}`);
}

export type SecretFormat = "standard" | "legacy";

/** The 32 bytes of a webhook endpoint's secret (its key): derived, never stored. */
export function webhookKey(env: Env, endpointId: string, version: number): Promise<Uint8Array> {
  return derive(env, `webhook-secret:${endpointId}:${version}`);
}

/**
 * A webhook endpoint's secret as it is shown, once at creation (and at each rotation): Standard
 * Webhooks' form, `whsec_` + base64 of the key, or for an endpoint made before that, `whsec_` +
 * base64url of the same key.
 */
export async function webhookSecret(env: Env, endpointId: string, version: number, format: SecretFormat = "standard"): Promise<string> {
  const key = await webhookKey(env, endpointId, version);
  return `whsec_${format === "standard" ? base64(key) : base64url(key)}`;
}

/**
 * A run id that is the same every time for the same source (a Slack command's trigger, a webhook's
 * delivery id): starting that run again is a no-op in its Durable Object, so deliveries that race
 * each other still make one run.
 */
export async function derivedRunId(env: Env, source: string): Promise<string> {
  return `run_${base32(await derive(env, `run:${source}`), 20)}`;
}

/** Another derived identifier of the same shape as `randomId` (e.g. an endpoint made under an Idempotency-Key). */
export async function derivedId(env: Env, prefix: string, source: string): Promise<string> {
  return `${prefix}_${base32(await derive(env, `id:${prefix}:${source}`), 20)}`;
}

function base32(bytes: Uint8Array, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += BASE32[bytes[i]! & 31];
  return s;
}

/**
 * Seals a short value for D1 with AES-GCM under a key derived for `purpose`; `context` (e.g. the run
 * id) is bound as associated data, so a sealed value copied to another row does not open.
 */
export async function seal(env: Env, purpose: string, context: string, plaintext: string): Promise<string> {
  const key = await sealKey(env, purpose);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(context) },
    key,
    new TextEncoder().encode(plaintext),
  );
  return `v1.${base64url(iv)}.${base64url(ct)}`;
}

/** The sealed value, or null when it does not open (another key, another context, tampered). */
export async function unseal(env: Env, purpose: string, context: string, sealed: string): Promise<string | null> {
  const [v, iv, ct] = sealed.split(".");
  if (v !== "v1" || !iv || !ct) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromBase64url(iv), additionalData: new TextEncoder().encode(context) },
      await sealKey(env, purpose),
      fromBase64url(ct),
    );
    return new TextDecoder().decode(plain);
  } catch {
    return null;
  }
}

async function sealKey(env: Env, purpose: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", await derive(env, `seal:${purpose}`), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

function fromBase64url(s: string): Uint8Array {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

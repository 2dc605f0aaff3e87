// Request signatures, checked before anything else is read from a request.
//
// - Standard Webhooks (standardwebhooks.com, spec v1): webhook-id, webhook-timestamp (unix seconds,
//              within five minutes) and webhook-signature: space-separated `v1,<base64 HMAC-SHA256(key,
//              "<id>.<timestamp>.<raw body>")>`, the key being the secret after `whsec_`, base64-decoded.
//              Outbound events carry it (with the previous secret's signature too during a rotation's
//              grace); inbound hooks take it, the id being the delivery's identity.
// - Slack:     X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<timestamp>:<raw body>")>,
//              X-Slack-Request-Timestamp within five minutes of now.
// - multishot: X-Multishot-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>,
//              X-Multishot-Timestamp (unix seconds) within five minutes. The timestamp is inside the
//              signed text, so it cannot be moved forward to replay an old request. Outbound events are
//              signed so. An inbound sender with an X-Multishot-Delivery id signs
//              "<timestamp>.<delivery>.<raw body>": the id is then its own, and a retry under it (a new
//              timestamp) lands on the first run.
// - GitHub:    X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>. GitHub sends no
//              timestamp, and its X-GitHub-Delivery is not signed.
// What makes two requests the same delivery (`identity`) is only ever signed: a signed delivery id, else
// a hash of the signature and the body. An unsigned delivery id is kept to show (`senderDelivery`), never
// to tell deliveries apart: otherwise one captured request sent with new ids would start a run each time.
// Every comparison is timing-safe.
import { base64, base64url, hmacSha256, hmacSha256Bytes, sha256Hex, timingSafeEqualStrings, toHex } from "../crypto.ts";

export const SIGNATURE_WINDOW_SECONDS = 5 * 60;

export const MULTISHOT_SIGNATURE = "x-multishot-signature";
export const MULTISHOT_TIMESTAMP = "x-multishot-timestamp";
export const MULTISHOT_DELIVERY = "x-multishot-delivery";
export const MULTISHOT_EVENT = "x-multishot-event";
export const GITHUB_SIGNATURE = "x-hub-signature-256";
export const STANDARD_ID = "webhook-id";
export const STANDARD_TIMESTAMP = "webhook-timestamp";
export const STANDARD_SIGNATURE = "webhook-signature";
export const GITHUB_DELIVERY = "x-github-delivery";

/** Why a request was refused, in words safe to send back (they name no secret and no expected value). */
export type Verdict = { ok: true } | { ok: false; reason: string };

/** An inbound hook request's verdict, and what makes it the same delivery as another. */
export type HookVerdict = { ok: true; identity: string; senderDelivery: string | null } | { ok: false; reason: string };

const refused = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** A timestamp header in unix seconds, inside the window around `nowMs`. */
function checkTimestamp(raw: string | null, nowMs: number, header: string): { ok: true } | { ok: false; reason: string } {
  if (!raw) return refused(`missing ${header} header`);
  if (!/^\d{1,12}$/.test(raw)) return refused(`${header} must be unix seconds`);
  if (Math.abs(nowMs / 1000 - Number(raw)) > SIGNATURE_WINDOW_SECONDS) {
    return refused(`${header} is more than ${SIGNATURE_WINDOW_SECONDS / 60} minutes away from now`);
  }
  return { ok: true };
}

export async function slackSignature(secret: string, timestamp: string, body: string): Promise<string> {
  return `v0=${toHex(await hmacSha256(secret, `v0:${timestamp}:${body}`))}`;
}

export async function verifySlackRequest(secret: string, headers: Headers, body: string, nowMs = Date.now()): Promise<Verdict> {
  const signature = headers.get("x-slack-signature");
  const timestamp = headers.get("x-slack-request-timestamp");
  if (!signature) return refused("missing X-Slack-Signature header");
  const fresh = checkTimestamp(timestamp, nowMs, "X-Slack-Request-Timestamp");
  if (!fresh.ok) return fresh;
  const expected = await slackSignature(secret, timestamp!, body);
  return (await timingSafeEqualStrings(signature, expected)) ? { ok: true } : refused("the Slack signature does not match");
}

export async function multishotSignature(secret: string, timestamp: number | string, body: string): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, `${timestamp}.${body}`))}`;
}

export async function githubSignature(secret: string, body: string): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, body))}`;
}

/** Which scheme a request is signed with, judged by its headers (Standard Webhooks first, then multishot's, then GitHub's). */
export function signatureScheme(headers: Headers): "standard" | "multishot" | "github" | null {
  if (headers.has(STANDARD_SIGNATURE)) return "standard";
  if (headers.has(MULTISHOT_SIGNATURE)) return "multishot";
  if (headers.has(GITHUB_SIGNATURE)) return "github";
  return null;
}

/** One Standard Webhooks signature: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`. */
export async function standardSignature(key: Uint8Array, id: string, timestamp: number | string, body: string): Promise<string> {
  return `v1,${base64(await hmacSha256Bytes(key, `${id}.${timestamp}.${body}`))}`;
}

/** The secret's two written forms (Standard Webhooks' base64, and the base64url of older endpoints): the same key. */
const secretStrings = (key: Uint8Array) => [`whsec_${base64(key)}`, `whsec_${base64url(key)}`];

async function anyMatches(candidates: Promise<string>[], given: string[]): Promise<boolean> {
  const expected = await Promise.all(candidates);
  for (const g of given) for (const e of expected) if (await timingSafeEqualStrings(g, e)) return true;
  return false;
}

/**
 * An inbound hook request signed with one of the endpoint's keys (its current one, and during a
 * rotation's grace the previous one), in any of the three schemes.
 */
export async function verifyHookRequest(keys: Uint8Array[], headers: Headers, body: string, nowMs = Date.now()): Promise<HookVerdict> {
  const scheme = signatureScheme(headers);
  if (scheme === null) return refused("missing signature: send Standard Webhooks' webhook-signature (or X-Multishot-Signature, or GitHub's X-Hub-Signature-256)");
  const hashed = async (signed: string) => `sha256:${await sha256Hex(signed)}`;
  const strings = keys.flatMap(secretStrings);
  if (scheme === "standard") {
    const id = headers.get(STANDARD_ID);
    const timestamp = headers.get(STANDARD_TIMESTAMP);
    if (!id) return refused("missing webhook-id header");
    if (!/^[\x21-\x7e]{1,200}$/.test(id)) return refused("webhook-id must be 1 to 200 visible ASCII characters");
    const fresh = checkTimestamp(timestamp, nowMs, "webhook-timestamp");
    if (!fresh.ok) return refused(fresh.reason);
    const given = headers.get(STANDARD_SIGNATURE)!.split(" ").filter((p) => p.startsWith("v1,"));
    const ok = await anyMatches(keys.map((k) => standardSignature(k, id, timestamp!, body)), given);
    return ok ? { ok: true, identity: id, senderDelivery: null } : refused("the signature does not match");
  }
  if (scheme === "github") {
    const signature = headers.get(GITHUB_SIGNATURE)!;
    if (!(await anyMatches(strings.map((k) => githubSignature(k, body)), [signature]))) return refused("the signature does not match");
    return { ok: true, identity: await hashed(`${signature}\n${body}`), senderDelivery: headers.get(GITHUB_DELIVERY) };
  }
  const timestamp = headers.get(MULTISHOT_TIMESTAMP);
  const fresh = checkTimestamp(timestamp, nowMs, "X-Multishot-Timestamp");
  if (!fresh.ok) return refused(fresh.reason);
  const signature = headers.get(MULTISHOT_SIGNATURE)!;
  const delivery = headers.get(MULTISHOT_DELIVERY);
  if (delivery !== null && (await anyMatches(strings.map((k) => multishotSignature(k, `${timestamp}.${delivery}`, body)), [signature]))) {
    return { ok: true, identity: delivery, senderDelivery: null };
  }
  if (!(await anyMatches(strings.map((k) => multishotSignature(k, timestamp!, body)), [signature]))) return refused("the signature does not match");
  return { ok: true, identity: await hashed(`${timestamp}.${signature}.${body}`), senderDelivery: delivery };
}

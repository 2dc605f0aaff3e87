// Sending one outbound delivery: the stored body, signed with the endpoint's (derived) secret and this
// try's timestamp, in Standard Webhooks' headers (webhook-id, webhook-timestamp, webhook-signature; the
// previous secret's signature beside the current one during a rotation's grace) and, deprecated and
// kept for one release, multishot's own (X-Multishot-*). Used by the run's outbox and by manual
// redelivery alike. Only a 2xx is success; a 410 says the receiver wants no more (the outbox disables it).
import type { Env } from "../env.ts";
import { endpointKeys, type EndpointSecretState } from "./endpoint-secrets.ts";
import { refusedDestination } from "./destinations.ts";
import {
  MULTISHOT_DELIVERY,
  MULTISHOT_EVENT,
  MULTISHOT_SIGNATURE,
  MULTISHOT_TIMESTAMP,
  STANDARD_ID,
  STANDARD_SIGNATURE,
  STANDARD_TIMESTAMP,
  multishotSignature,
  standardSignature,
} from "./signatures.ts";

/** How long a receiver gets to answer one try. */
const DELIVERY_TIMEOUT_MS = 10_000;

export interface TryResult {
  ok: boolean;
  /** The receiver answered 410 Gone: it wants nothing more. */
  gone?: boolean;
  /** The receiver's HTTP status, or null when no answer came (network error, timeout). */
  status: number | null;
  error: string | null;
}

export async function sendDelivery(
  env: Env,
  endpoint: EndpointSecretState & { url: string },
  d: { id: string; eventType: string; payload: string },
): Promise<TryResult> {
  // Checked again before every try: the name may point elsewhere since the endpoint was made.
  const refused = await refusedDestination(env, endpoint.url);
  if (refused) return { ok: false, status: null, error: `not sent: ${refused}` };
  const timestamp = Math.floor(Date.now() / 1000);
  const keys = await endpointKeys(env, endpoint);
  const standard = await Promise.all([keys.current, ...(keys.previous ? [keys.previous] : [])].map((k) => standardSignature(k, d.id, timestamp, d.payload)));
  const signature = await multishotSignature(keys.currentSecret, timestamp, d.payload);
  try {
    const res = await fetch(endpoint.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "multishot-webhooks/1",
        [STANDARD_ID]: d.id,
        [STANDARD_TIMESTAMP]: String(timestamp),
        [STANDARD_SIGNATURE]: standard.join(" "),
        [MULTISHOT_EVENT]: d.eventType,
        [MULTISHOT_DELIVERY]: d.id,
        [MULTISHOT_TIMESTAMP]: String(timestamp),
        [MULTISHOT_SIGNATURE]: signature,
      },
      body: d.payload,
      // A redirect is the receiver's mistake, not a place to send a signed body to.
      redirect: "manual",
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, error: null };
    return { ok: false, status: res.status, error: `HTTP ${res.status}`, ...(res.status === 410 ? { gone: true } : {}) };
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    const error = name === "TimeoutError" ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : `could not connect: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, status: null, error: error.slice(0, 500) };
  }
}

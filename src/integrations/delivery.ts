// Sending one outbound delivery: the stored body, signed with the endpoint's (derived) secret and this
// try's timestamp. Used by the run's outbox and by manual redelivery alike.
import type { Env } from "../env.ts";
import { webhookSecret } from "./derive.ts";
import { refusedDestination } from "./destinations.ts";
import { MULTISHOT_DELIVERY, MULTISHOT_EVENT, MULTISHOT_SIGNATURE, MULTISHOT_TIMESTAMP, multishotSignature } from "./signatures.ts";

/** How long a receiver gets to answer one try. */
const DELIVERY_TIMEOUT_MS = 10_000;

export interface TryResult {
  ok: boolean;
  /** The receiver's HTTP status, or null when no answer came (network error, timeout). */
  status: number | null;
  error: string | null;
}

export async function sendDelivery(
  env: Env,
  endpoint: { id: string; url: string; secretVersion: number },
  d: { id: string; eventType: string; payload: string },
): Promise<TryResult> {
  // Checked again before every try: the name may point elsewhere since the endpoint was made.
  const refused = await refusedDestination(env, endpoint.url);
  if (refused) return { ok: false, status: null, error: `not sent: ${refused}` };
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = await multishotSignature(await webhookSecret(env, endpoint.id, endpoint.secretVersion), timestamp, d.payload);
  try {
    const res = await fetch(endpoint.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "multishot-webhooks/1",
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
    return res.status >= 200 && res.status < 300 ? { ok: true, status: res.status, error: null } : { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    const error = name === "TimeoutError" ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : `could not connect: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, status: null, error: error.slice(0, 500) };
  }
}

// An endpoint's secrets in effect: its current one and, during a rotation's grace period, the previous
// one, which keeps signing outbound deliveries (beside the new) and verifying inbound requests, so a
// consumer can move to the new secret at its own pace (Standard Webhooks' rotation).
import type { Env } from "../env.ts";
import { webhookKey, webhookSecret, type SecretFormat } from "./derive.ts";

export interface EndpointSecretState {
  id: string;
  secretVersion: number;
  secretFormat: SecretFormat;
  previousSecretVersion: number | null;
  previousSecretUntil: number | null;
}

/** A rotation's default grace: the previous secret keeps working this long. */
export const DEFAULT_ROTATION_GRACE_HOURS = 24;

export interface EndpointKeys {
  /** The current key, and the secret as its owner was shown it (the legacy signature's key). */
  current: Uint8Array;
  currentSecret: string;
  /** The previous key while its grace lasts, else null. */
  previous: Uint8Array | null;
}

export function inGrace(e: EndpointSecretState, now = Date.now()): boolean {
  return e.previousSecretVersion !== null && e.previousSecretUntil !== null && now < e.previousSecretUntil;
}

export async function endpointKeys(env: Env, e: EndpointSecretState, now = Date.now()): Promise<EndpointKeys> {
  const [current, currentSecret, previous] = await Promise.all([
    webhookKey(env, e.id, e.secretVersion),
    webhookSecret(env, e.id, e.secretVersion, e.secretFormat),
    inGrace(e, now) ? webhookKey(env, e.id, e.previousSecretVersion!) : Promise.resolve(null),
  ]);
  return { current, currentSecret, previous };
}

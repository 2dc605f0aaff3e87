// API keys: `msk_<prefix>_<secret>`. Only the SHA-256 of the whole key is stored, with the short visible
// prefix to find it by; the key itself is shown once, when it is made.
import { randomId, sha256Hex } from "./crypto.ts";

export const SCOPES = ["runs:read", "runs:write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
function randomBase32(n: number): string {
  let s = "";
  for (const b of crypto.getRandomValues(new Uint8Array(n))) s += ALPHABET[b & 31];
  return s;
}

export interface NewKey {
  id: string;
  key: string;
  prefix: string;
  hash: string;
}

export async function makeKey(): Promise<NewKey> {
  const prefix = randomBase32(8);
  const key = `msk_${prefix}_${randomBase32(32)}`;
  return { id: randomId("key"), key, prefix, hash: await sha256Hex(key) };
}

/** The visible prefix of a well-formed key, or null. */
export function keyPrefix(key: string): string | null {
  return /^msk_([a-z2-7]{8})_[a-z2-7]{32}$/.exec(key)?.[1] ?? null;
}

export function parseScopes(text: string): Scope[] {
  return text.split(/\s+/).filter((s): s is Scope => (SCOPES as readonly string[]).includes(s));
}

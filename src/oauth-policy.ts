// CLAUDE_CODE_OAUTH_TOKEN is one person's subscription, and in OAuth mode the agent process holds it (code
// the agent runs can read it). On a service with more than one account that hands it to every tenant:
// refused unless the operator says, with CLAUDE_CODE_OAUTH_SHARED=1, that sharing it is meant.
import { count } from "drizzle-orm";
import { db } from "./db/client.ts";
import { accounts } from "./db/schema.ts";
import type { Env } from "./env.ts";

/** Why the OAuth token may not be handed to an agent now, or null when it may (or there is none). */
export async function oauthRefusal(env: Env): Promise<string | null> {
  if (!env.CLAUDE_CODE_OAUTH_TOKEN || env.CLAUDE_CODE_OAUTH_SHARED === "1") return null;
  const row = await db(env.DB).select({ n: count() }).from(accounts).get();
  const n = Number(row?.n ?? 0);
  if (n <= 1) return null;
  return (
    `this service's agent credential is an OAuth token (CLAUDE_CODE_OAUTH_TOKEN: one subscription, readable by code the agent runs) ` +
    `and the service has ${n} accounts, so every tenant would hold it. The operator can set ANTHROPIC_API_KEY (the credential gateway keeps the key out of sandboxes), ` +
    "or set CLAUDE_CODE_OAUTH_SHARED=1 to share the token among the accounts knowingly"
  );
}

import type { Env } from "../env.ts";
import type { Scope } from "../keys.ts";

/** What every route sees: the bindings, and for /api routes the authenticated caller. */
export type AppEnv = {
  Bindings: Env;
  Variables: {
    accountId: string;
    scopes: Scope[];
    /** The caller used ADMIN_TOKEN: an operator, not an account. */
    operator: boolean;
    /** The API key's id (null for ADMIN_TOKEN and the local dev key, which cannot be revoked). */
    keyId: string | null;
    /** What Idempotency-Key replays instead of the answer, when the answer holds a secret (a new API key). */
    idempotentReplay?: unknown;
  };
};

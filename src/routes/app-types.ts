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
    /** What Idempotency-Key replays instead of the answer, when the answer holds a secret (a new API key). */
    idempotentReplay?: unknown;
  };
};

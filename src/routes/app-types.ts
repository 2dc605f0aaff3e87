import type { Env } from "../env.ts";

/** What every route sees: the bindings, and for /api routes the authenticated account. */
export type AppEnv = { Bindings: Env; Variables: { accountId: string } };

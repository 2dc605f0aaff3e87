// What every /api/runs route needs: the run's Durable Object, the caller's ownership of the run, and
// refusals from the object turned into HTTP errors.
import { db } from "../db/client.ts";
import { runOwner } from "../db/queries.ts";
import type { Outcome } from "../durable/contract.ts";
import { ApiError, notFound } from "../errors.ts";
import type { AppEnv } from "./app-types.ts";

export const coordinator = (env: AppEnv["Bindings"], runId: string) =>
  env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(runId));

/** The run's id if the caller's account owns it. Another account's run is indistinguishable from none. */
export async function ownedRun(c: { env: AppEnv["Bindings"]; get(k: "accountId"): string; req: { param(k: "id"): string } }) {
  const id = c.req.param("id");
  const owner = /^run_[a-z2-7]{20}$/.test(id) ? await runOwner(db(c.env.DB), id) : null;
  if (owner !== c.get("accountId")) throw notFound("run");
  return id;
}

export function unwrap<T>(outcome: Outcome<T>): T {
  if ("error" in outcome) throw new ApiError(outcome.error.status, outcome.error.code, outcome.error.message);
  return outcome.ok;
}

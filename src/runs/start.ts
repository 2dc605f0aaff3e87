// Starting a run, whatever asked for it (the API, a Slack command, an inbound webhook): the base
// winner a request names is looked up and authorized, then the run's Durable Object starts it.
// Starting the same id again changes nothing, which is what makes derived ids (a Slack trigger, a
// webhook delivery) safe to retry.
import { db, runOwner, storedWinner } from "../db/queries.ts";
import type { RunView } from "../durable/view.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { checkAccountLimits } from "../limits.ts";
import type { RunRequest } from "../run-request.ts";

export async function startRun(env: Env, input: { id: string; accountId: string; request: RunRequest }): Promise<RunView> {
  const { id, accountId, request } = input;
  // A start that repeats (a retried Slack command, a redelivered hook) adds nothing: no limit applies.
  if ((await runOwner(db(env.DB), id)) === null) await checkAccountLimits(env, accountId, request.attempts, true);
  let baseWinner;
  if (request.base && "run" in request.base) {
    const { run, round } = request.base;
    const owner = await runOwner(db(env.DB), run);
    if (owner !== accountId) throw new ApiError(404, "not_found", `base.run: run ${run} not found`);
    const winner = await storedWinner(db(env.DB), run, round);
    if (!winner) throw new ApiError(404, "not_found", `base.round: run ${run} has no round ${round}`);
    if (!winner.attempt) throw new ApiError(409, "no_winner", `base: round ${round} of run ${run} has no stored winner`);
    baseWinner = { runId: run, round, attempt: winner.attempt, sha256: winner.sha256 };
  }
  const stub = env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(id));
  return stub.start({ id, accountId, request, ...(baseWinner ? { baseWinner } : {}) });
}

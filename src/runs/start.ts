// Starting a run, whatever asked for it (the API, a Slack command, an inbound webhook): the base
// winner a request names is looked up and authorized, then the run's Durable Object starts it.
// Starting the same id again changes nothing, which is what makes derived ids (a Slack trigger, a
// webhook delivery) safe to retry.
import { db } from "../db/client.ts";
import { runOwner, storedWinner } from "../db/queries.ts";
import type { Outcome } from "../durable/contract.ts";
import type { RunView } from "../durable/view.ts";
import type { Env } from "../env.ts";
import { agentUnavailable } from "../agents/requirements.ts";
import { ApiError } from "../errors.ts";
import { oauthRefusal } from "../oauth-policy.ts";
import { nextRoundAttempts, withinAccountLimits } from "../limits.ts";
import type { RoundRequest, RunRequest } from "../run-request.ts";

export async function startRun(env: Env, input: { id: string; accountId: string; request: RunRequest }): Promise<RunView> {
  const { id, accountId, request } = input;
  // A start that repeats (a retried Slack command, a redelivered hook) adds nothing: no limit applies.
  if ((await runOwner(db(env.DB), id)) !== null) return begin(env, input);
  // Refused before any sandbox is made: otherwise the agent would fail minutes later, not logged in.
  const unavailable = agentUnavailable(env, request.agent) ?? (request.agent === "claude-code" && !env.ANTHROPIC_API_KEY ? await oauthRefusal(env) : null);
  if (unavailable) throw new ApiError(422, "agent_unavailable", unavailable);
  return withinAccountLimits(env, { accountId, runId: id, attempts: request.attempts, newRun: true }, () => begin(env, input), () => 1);
}

/** A next round of a run, within its account's limits (429 otherwise, starting nothing). */
export async function startNextRound(env: Env, accountId: string, runId: string, req: RoundRequest, view?: RunView): Promise<Outcome<RunView>> {
  const stub = env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(runId));
  // A caller that has the run's view already saves a call (Slack's modal answers within 3 s).
  const attempts = nextRoundAttempts((view ?? (await stub.view())).config.attempts, req);
  return withinAccountLimits(
    env,
    { accountId, runId, attempts, newRun: false },
    async (): Promise<Outcome<RunView>> => (await stub.startRound(req)) as Outcome<RunView>,
    (outcome) => ("ok" in outcome ? outcome.ok.rounds[outcome.ok.rounds.length - 1]!.number : null),
  );
}

async function begin(env: Env, input: { id: string; accountId: string; request: RunRequest }): Promise<RunView> {
  const { id, accountId, request } = input;
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

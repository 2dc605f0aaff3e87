// The run engine's decisions, as pure functions: no storage, no Daytona, no clock but what they are given.
// The modules that act (attempts, rounds, winner, budget) ask these what to do; test/unit runs them in
// plain Node.
import { DEFAULT_ATTEMPT_MINUTES, type SandboxRequest } from "../run-request.ts";
import { isAttemptEnded, type AttemptJobName, type AttemptStatus, type JobName, type RoundStatus, type RunStatus } from "../vocabulary.ts";
import type { AgentSummary, DiffStats } from "./state.ts";

/** Exit code a job uses for "transient, try again" (BSD's EX_TEMPFAIL). */
export const EXIT_TRANSIENT = 75;
/** Jobs other than the agent get this long before they are killed. */
export const SETUP_JOB_MINUTES = 20;

const JOB_OF_PHASE: Partial<Record<AttemptStatus, AttemptJobName>> = {
  installing_agent: "install",
  seeding_workspace: "seed",
  running_agent: "agent",
  collecting_result: "collect",
};
const PHASE_AFTER: Partial<Record<AttemptStatus, AttemptStatus>> = {
  installing_agent: "seeding_workspace",
  seeding_workspace: "running_agent",
  running_agent: "collecting_result",
};

/** The job a working phase runs in the sandbox, or null for a phase without one. */
export function jobOf(phase: AttemptStatus): AttemptJobName | null {
  return JOB_OF_PHASE[phase] ?? null;
}

/** The phase after a working phase whose job exited 0 (collecting ends in `done` instead). */
export function phaseAfter(phase: AttemptStatus): AttemptStatus | null {
  return PHASE_AFTER[phase] ?? null;
}

/** How long a job may run before the attempt is stopped. */
export function jobMinutes(job: JobName | null, attemptMinutes: number | undefined): number {
  return job === "agent" ? (attemptMinutes ?? DEFAULT_ATTEMPT_MINUTES) : SETUP_JOB_MINUTES;
}

/**
 * What a job's exit means: `advance` to the next phase, `collect` the result (collect's own success),
 * `retry` the attempt after a backoff (an install that hit the network), or `fail` it.
 */
export type ExitOutcome = "advance" | "collect" | "retry" | "fail";

export function exitOutcome(job: AttemptJobName, exitCode: number): ExitOutcome {
  if (job === "collect") return exitCode === 0 ? "collect" : "fail";
  if (exitCode === 0) return "advance";
  return job === "install" && exitCode === EXIT_TRANSIENT ? "retry" : "fail";
}

/** Why a job that did not succeed stopped the attempt (or retried it), from its exit and output tail. */
export function exitReason(job: AttemptJobName, exitCode: number, tail: string, summary: AgentSummary | null): string {
  switch (job) {
    case "install":
      return exitCode === EXIT_TRANSIENT ? `agent install hit a network error: ${tail}` : `agent install failed (exit ${exitCode}): ${tail}`;
    case "seed":
      return `seeding the workspace failed (exit ${exitCode}): ${tail}`;
    case "collect":
      return `collecting the result failed (exit ${exitCode}): ${tail}`;
    case "agent": {
      const why = summary?.isError && summary.finalMessage ? summary.finalMessage : tail || "no output";
      const how = exitCode > 128 ? `was killed by signal ${exitCode - 128}` : `exited with code ${exitCode}`;
      return `the agent ${how}: ${why}`;
    }
  }
}

/** How a failed Daytona call classifies (src/sandbox/errors.ts says which errors are which). */
export type SandboxErrorClass = "gone" | "stopped" | "retryable" | "final";

/**
 * What a step does after a Daytona call failed: the attempt's sandbox is `gone` (fail it); a job is
 * already started, so `look_again` later (a failed poll says nothing about the job, and starting it again
 * would run it twice: its deadline bounds this); `retry` the step after a backoff; or `fail` now.
 */
export type StepErrorOutcome = "sandbox_gone" | "look_again" | "restart" | "retry" | "fail";

/**
 * A sandbox that is `stopped` (Daytona auto-stops on API inactivity, whatever runs inside) or lost the
 * job's session (a started-again sandbox has none) is started again and its job `restart`ed: the job's
 * processes went with the stop.
 */
export function stepErrorOutcome(error: SandboxErrorClass, attempt: { hasSandbox: boolean; jobStarted: boolean }): StepErrorOutcome {
  if (error === "gone" && attempt.hasSandbox) return "sandbox_gone";
  if (error === "stopped" && attempt.hasSandbox) return "restart";
  if (error === "retryable") return attempt.jobStarted ? "look_again" : "retry";
  return "fail";
}

/** After `retries` retries, under a limit of `limit`: give up, or wait `backoff` ms and try again. */
export function retryDecision(retries: number, limit: number, backoff: (retriesSoFar: number) => number): { giveUp: true } | { giveUp: false; delayMs: number } {
  return retries >= limit ? { giveUp: true } : { giveUp: false, delayMs: backoff(retries) };
}

/**
 * How a round ends once every attempt has: `cancelled` when all were, otherwise `finished`; and the run's
 * status with it: `succeeded` with any done attempt, `cancelled` when all were, else `failed`. Null while
 * an attempt is still working.
 */
export function roundSettlement(statuses: readonly AttemptStatus[]): { round: RoundStatus; run: RunStatus; error: string | null } | null {
  if (!statuses.every(isAttemptEnded)) return null;
  if (statuses.every((s) => s === "cancelled")) return { round: "cancelled", run: "cancelled", error: null };
  if (statuses.some((s) => s === "done")) return { round: "finished", run: "succeeded", error: null };
  return { round: "finished", run: "failed", error: "every attempt failed" };
}

/** Why a run may spend no more on model calls, or null while it may. */
export function budgetSpent(budgetUsd: number | undefined, costsUsd: readonly (number | null | undefined)[]): string | null {
  if (budgetUsd === undefined) return null;
  const spent = costsUsd.reduce<number>((sum, c) => sum + (c ?? 0), 0);
  return spent >= budgetUsd ? `budget: the run's model calls cost $${spent.toFixed(4)} of its $${budgetUsd} budget` : null;
}

/** Why an account may spend no more this month, or null while it may. */
export function monthlyBudgetSpent(monthlyBudgetUsd: number, spentUsd: number): string | null {
  return spentUsd >= monthlyBudgetUsd
    ? `budget: this account's runs made this month have spent $${spentUsd.toFixed(4)} of its $${monthlyBudgetUsd} monthly budget`
    : null;
}

/** `git diff --numstat` lines: "<added>\t<deleted>\t<path>", with "-" for binary files. */
export function parseNumstat(text: string): DiffStats {
  let files = 0;
  let additions = 0;
  let deletions = 0;
  for (const line of text.split("\n")) {
    const m = /^(-|\d+)\t(-|\d+)\t/.exec(line);
    if (!m) continue;
    files++;
    if (m[1] !== "-") additions += Number(m[1]);
    if (m[2] !== "-") deletions += Number(m[2]);
  }
  return { files, additions, deletions };
}

/** The image a sandbox with resources of its own is made from when DAYTONA_IMAGE names none: Daytona's default. */
export const DEFAULT_SANDBOX_IMAGE = "daytonaio/sandbox:0.5.0-slim";

/**
 * What a round's sandboxes are made from: resources asked for mean the image (Daytona takes resources only
 * with one), else the round's or run's snapshot, else the service's DAYTONA_SNAPSHOT, else Daytona's default.
 */
export function sandboxSource(
  req: SandboxRequest | null,
  env: { DAYTONA_SNAPSHOT?: string; DAYTONA_IMAGE?: string },
): { snapshot?: string; image?: { name: string; resources: NonNullable<SandboxRequest["resources"]> } } {
  if (req?.resources) return { image: { name: env.DAYTONA_IMAGE || DEFAULT_SANDBOX_IMAGE, resources: req.resources } };
  const snapshot = req?.snapshot ?? env.DAYTONA_SNAPSHOT;
  return snapshot ? { snapshot } : {};
}

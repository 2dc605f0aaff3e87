// The run's words, each written once: the statuses of attempts, rounds, runs and winners, and the jobs an
// attempt runs. The drizzle schema, the zod schemas, the object, the page, Slack's messages and the CLI
// all read these arrays, so a new status is added in one place and every surface learns of it.

/** An attempt's path: queued -> creating_sandbox -> ... -> done | failed | cancelled. */
export const ATTEMPT_STATUSES = [
  "queued",
  "creating_sandbox",
  "installing_agent",
  "seeding_workspace",
  "running_agent",
  "collecting_result",
  "done",
  "failed",
  "cancelled",
] as const;
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];

/** The statuses an attempt never leaves. */
export const ENDED_ATTEMPT_STATUSES = ["done", "failed", "cancelled"] as const satisfies readonly AttemptStatus[];
export type EndedAttemptStatus = (typeof ENDED_ATTEMPT_STATUSES)[number];
const ENDED: ReadonlySet<string> = new Set(ENDED_ATTEMPT_STATUSES);
export const isAttemptEnded = (status: string): status is EndedAttemptStatus => ENDED.has(status);

export const ROUND_STATUSES = ["running", "finished", "cancelled"] as const;
export type RoundStatus = (typeof ROUND_STATUSES)[number];

/**
 * A run's status. `awaiting_pick`: its newest round has ended with done attempts and no winner yet, so a
 * person's pick is what comes next (manual pick, or no attempt passed `first-verified`); picking makes it
 * `succeeded`, a next round `running` again.
 */
export const RUN_STATUSES = ["running", "awaiting_pick", "succeeded", "failed", "cancelled"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** A picked winner: packing -> stored, or failed (the pick can then be made again). */
export const WINNER_STATUSES = ["packing", "stored", "failed"] as const;
export type WinnerStatus = (typeof WINNER_STATUSES)[number];

/** The jobs that run in an attempt's sandbox: one per working phase, and the winner's pack. */
export const JOB_NAMES = ["install", "seed", "agent", "collect", "pack"] as const;
export type JobName = (typeof JOB_NAMES)[number];
/** The jobs every attempt runs (their scripts go up with the attempt's first upload). */
export const ATTEMPT_JOB_NAMES = ["install", "seed", "agent", "collect"] as const satisfies readonly JobName[];
export type AttemptJobName = (typeof ATTEMPT_JOB_NAMES)[number];

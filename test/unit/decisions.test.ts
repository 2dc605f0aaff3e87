// The run engine's decisions, in plain Node: what a job's exit, a failed Daytona call, a round's
// statuses and a run's spending mean for the run.
import { describe, expect, it } from "vitest";
import {
  budgetSpent,
  EXIT_TRANSIENT,
  exitOutcome,
  exitReason,
  jobMinutes,
  jobOf,
  parseNumstat,
  phaseAfter,
  retryDecision,
  roundSettlement,
  sandboxSource,
  SETUP_JOB_MINUTES,
  stepErrorOutcome,
} from "../../src/durable/decisions.ts";
import { DEFAULT_ATTEMPT_MINUTES } from "../../src/run-request.ts";
import { ATTEMPT_STATUSES, type AttemptStatus } from "../../src/vocabulary.ts";

describe("an attempt's phases", () => {
  it("run one job each, in order, and the ends run none", () => {
    const path: (string | null)[] = [];
    for (let s: AttemptStatus | null = "installing_agent"; s; s = phaseAfter(s)) path.push(`${s}:${jobOf(s)}`);
    expect(path).toEqual(["installing_agent:install", "seeding_workspace:seed", "running_agent:agent", "collecting_result:collect"]);
    for (const s of ["queued", "creating_sandbox", "done", "failed", "cancelled"] as const) {
      expect(jobOf(s)).toBeNull();
      expect(phaseAfter(s)).toBeNull();
    }
    // Collecting ends the attempt (done), not another phase.
    expect(phaseAfter("collecting_result")).toBeNull();
    expect(ATTEMPT_STATUSES.filter((s) => jobOf(s) !== null)).toHaveLength(4);
  });

  it("give the agent the run's minutes and every other job the setup limit", () => {
    expect(jobMinutes("agent", 7)).toBe(7);
    expect(jobMinutes("agent", undefined)).toBe(DEFAULT_ATTEMPT_MINUTES);
    for (const job of ["install", "seed", "collect", "pack", null] as const) expect(jobMinutes(job, 7)).toBe(SETUP_JOB_MINUTES);
  });
});

describe("a job's exit", () => {
  it("advances on 0, collects when collect succeeds, retries only an install's network failure, and fails otherwise", () => {
    expect(exitOutcome("install", 0)).toBe("advance");
    expect(exitOutcome("seed", 0)).toBe("advance");
    expect(exitOutcome("agent", 0)).toBe("advance");
    expect(exitOutcome("collect", 0)).toBe("collect");
    expect(exitOutcome("install", EXIT_TRANSIENT)).toBe("retry");
    expect(exitOutcome("seed", EXIT_TRANSIENT)).toBe("fail");
    expect(exitOutcome("agent", EXIT_TRANSIENT)).toBe("fail");
    expect(exitOutcome("install", 1)).toBe("fail");
    expect(exitOutcome("collect", 2)).toBe("fail");
  });

  it("is explained with the job's own words: its tail, or the agent's error message, or the signal that killed it", () => {
    expect(exitReason("install", EXIT_TRANSIENT, "ECONNRESET", null)).toBe("agent install hit a network error: ECONNRESET");
    expect(exitReason("install", 1, "E404", null)).toBe("agent install failed (exit 1): E404");
    expect(exitReason("seed", 1, "git clone failed", null)).toBe("seeding the workspace failed (exit 1): git clone failed");
    expect(exitReason("collect", 128, "fatal", null)).toBe("collecting the result failed (exit 128): fatal");
    expect(exitReason("agent", 1, "stderr", { finalMessage: "Not logged in", isError: true, turns: 1, costUsd: 0 })).toBe(
      "the agent exited with code 1: Not logged in",
    );
    expect(exitReason("agent", 1, "", { finalMessage: "fine", isError: false, turns: 1, costUsd: 0 })).toBe("the agent exited with code 1: no output");
    expect(exitReason("agent", 137, "killed", null)).toBe("the agent was killed by signal 9: killed");
  });
});

describe("a failed Daytona call", () => {
  it("fails the attempt when its sandbox is gone, looks again when a job runs, retries a transient failure, and fails a final one", () => {
    expect(stepErrorOutcome("gone", { hasSandbox: true, jobStarted: true })).toBe("sandbox_gone");
    // No sandbox yet: a 404 is about something else, and final.
    expect(stepErrorOutcome("gone", { hasSandbox: false, jobStarted: false })).toBe("fail");
    expect(stepErrorOutcome("retryable", { hasSandbox: true, jobStarted: true })).toBe("look_again");
    expect(stepErrorOutcome("retryable", { hasSandbox: true, jobStarted: false })).toBe("retry");
    expect(stepErrorOutcome("retryable", { hasSandbox: false, jobStarted: false })).toBe("retry");
    expect(stepErrorOutcome("final", { hasSandbox: true, jobStarted: true })).toBe("fail");
    // Stopped (Daytona's auto-stop) or its session lost: start it and the job again, never "gone".
    expect(stepErrorOutcome("stopped", { hasSandbox: true, jobStarted: true })).toBe("restart");
    expect(stepErrorOutcome("stopped", { hasSandbox: false, jobStarted: false })).toBe("fail");
  });

  it("is retried with the backoff until the limit, then given up", () => {
    const backoff = (n: number) => 100 * 2 ** n;
    expect(retryDecision(0, 3, backoff)).toEqual({ giveUp: false, delayMs: 100 });
    expect(retryDecision(2, 3, backoff)).toEqual({ giveUp: false, delayMs: 400 });
    expect(retryDecision(3, 3, backoff)).toEqual({ giveUp: true });
    expect(retryDecision(0, 0, backoff)).toEqual({ giveUp: true });
  });
});

describe("a round", () => {
  it("is not settled while an attempt works", () => {
    for (const working of ["queued", "creating_sandbox", "running_agent", "collecting_result"] as const) {
      expect(roundSettlement(["done", working])).toBeNull();
    }
  });

  it("finishes with the run succeeded when any attempt is done, failed when none is, cancelled when all were", () => {
    expect(roundSettlement(["done", "failed", "cancelled"])).toEqual({ round: "finished", run: "succeeded", error: null });
    expect(roundSettlement(["failed", "cancelled"])).toEqual({ round: "finished", run: "failed", error: "every attempt failed" });
    expect(roundSettlement(["cancelled", "cancelled"])).toEqual({ round: "cancelled", run: "cancelled", error: null });
  });
});

describe("a run's budget", () => {
  it("is spent once the attempts' costs reach it, and never without one", () => {
    expect(budgetSpent(undefined, [100])).toBeNull();
    expect(budgetSpent(0.5, [0.1, null, 0.2])).toBeNull();
    expect(budgetSpent(0.5, [0.25, undefined, 0.25])).toBe("budget: the run's model calls cost $0.5000 of its $0.5 budget");
  });
});

describe("git's numstat", () => {
  it("counts files, additions and deletions, binary files as files only", () => {
    expect(parseNumstat("3\t1\ta.txt\n-\t-\timage.png\n10\t0\tdir/b.ts\n")).toEqual({ files: 3, additions: 13, deletions: 1 });
    expect(parseNumstat("")).toEqual({ files: 0, additions: 0, deletions: 0 });
    expect(parseNumstat("warning: not a line\n")).toEqual({ files: 0, additions: 0, deletions: 0 });
  });
});

describe("what a round's sandboxes are made from", () => {
  it("takes the round's snapshot, else the service's, else Daytona's default; resources mean the image", () => {
    expect(sandboxSource(null, {})).toEqual({});
    expect(sandboxSource(null, { DAYTONA_SNAPSHOT: "svc" })).toEqual({ snapshot: "svc" });
    expect(sandboxSource({ snapshot: "mine" }, { DAYTONA_SNAPSHOT: "svc" })).toEqual({ snapshot: "mine" });
    // Daytona sizes a sandbox only when it is made from an image: the service's snapshot is not used then.
    expect(sandboxSource({ resources: { cpu: 2, memory: 4 } }, { DAYTONA_SNAPSHOT: "svc" })).toEqual({
      image: { name: "daytonaio/sandbox:0.5.0-slim", resources: { cpu: 2, memory: 4 } },
    });
    expect(sandboxSource({ resources: { disk: 20 } }, { DAYTONA_IMAGE: "node:22" })).toEqual({ image: { name: "node:22", resources: { disk: 20 } } });
  });
});

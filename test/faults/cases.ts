// The fault cases of issue 9, each with the faults it injects, what it does while its runs go, and the
// outcome it must see. Every case has an account of its own: the local sandbox server's faults are
// scoped to that account's sandboxes (label `multishot-account`), and D1 faults to that account's rows,
// so all cases can run side by side, and beside the load.
import { evictDurableObject, env, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import {
  type RunEvent,
  attemptsOf,
  d1Differences,
  everySandbox,
  failD1Writes,
  faultsLeft,
  healD1,
  killSandbox,
  noFollow,
  readRun,
  runEvents,
  sandboxAdmin,
  setFaults,
  sleep,
} from "./harness.ts";
import { type Ctx, type FaultCase, type Phase, type RunRecord, d1Statuses } from "./scenario.ts";

/** How long each turn of the demo agent waits: 4 waits, so ~25 s of work per agent. */
export const AGENT_TURN_MS = 6_000;
/** The Worker's STEP_LEASE_MS: a step whose object died mid-way is tried again after this. */
const STEP_LEASE_MS = 10_000;
/** The pool's POLL_INTERVAL_MS (see the faults project's config). */
export const POLL_MS = Number(env.POLL_INTERVAL_MS);
/** run-job.sh retries an unanswered exit report 3 times, sleeping 0.2 + 0.4 + 0.8 s, before it ends. */
const RUNNER_REPORT_RETRIES_MS = 1_400;
const JOBS = ["install", "seed", "agent", "collect"];
const PRE_AGENT = new Set(["queued", "creating_sandbox", "installing_agent", "seeding_workspace"]);

const prompt = (name: string, i: number, turnMs = AGENT_TURN_MS) => `${name} ${i} [slow:${turnMs}]`;
const scope = (ctx: Ctx) => ({ "multishot-account": ctx.account.id });
const of = (r: RunRecord, n: number) => r.events.filter((e) => e.attempt === n);
const view = (r: RunRecord) => {
  expect(r.view, `run ${r.id} is unknown to the API`).not.toBeNull();
  expect(r.notes.driveError, String(r.notes.driveError)).toBeUndefined();
  expect(r.notes.timedOut, `run ${r.id} did not settle: ${String(r.notes.timedOut)}`).toBeUndefined();
  return r.view!;
};

/** An attempt that worked: done, no error, the demo agent's three files, its transcript once. */
function expectDone(r: RunRecord, n: number, opts: { retries?: number } = {}): void {
  const a = attemptsOf(view(r)).find((x) => x.number === n)!;
  expect(a, `attempt ${n} of ${r.id}`).toMatchObject({ status: "done", error: null, exitCode: 0 });
  if (opts.retries !== undefined) expect(a.retries).toBe(opts.retries);
  expect(a.diffStats).toMatchObject({ files: 3 });
  expect(a.summary).toMatchObject({ turns: 5, isError: false });
  expectJobsOnce(r, n);
  // The whole transcript, each line once (soft: the rest of the run's checks still run and report).
  const ev = of(r, n);
  const count = (type: string) => ev.filter((e) => e.type === type).length;
  expect.soft({ init: count("agent.init"), text: count("agent.text"), tool: count("agent.tool"), result: count("agent.result") }, `transcript of attempt ${n} of ${r.id}`).toEqual({
    init: 1,
    text: 2,
    tool: 3,
    result: 1,
  });
}

/** Each job was started once: never twice, whatever failed or restarted around it. */
function expectJobsOnce(r: RunRecord, n: number, jobs = JOBS): void {
  const started = of(r, n)
    .filter((e) => e.type === "job.started")
    .map((e) => e.data.job);
  expect(started, `jobs started by attempt ${n} of ${r.id}`).toEqual(jobs);
}

/** The agent's transcript arrived while it worked (pushed), not read back after its exit. */
function expectPushedTranscript(r: RunRecord, n: number): void {
  const ev = of(r, n);
  const firstLine = ev.find((e) => e.type.startsWith("agent."));
  const collecting = ev.find((e) => e.type === "attempt.status" && e.data.to === "collecting_result");
  expect(firstLine && collecting && firstLine.seq < collecting.seq, `attempt ${n} of ${r.id}: transcript pushed while working`).toBe(true);
}

/**
 * The run ended well: when it settled it was waiting for its pick (or succeeded, its newest round's winner
 * picked); the scenario's cancel, which gives the done attempts' sandboxes back, then ends one waiting.
 */
function expectSucceeded(r: RunRecord): void {
  const v = view(r);
  const picked = v.rounds[v.rounds.length - 1]!.winner !== null;
  expect(r.settledAs, r.id).toEqual({ status: picked ? "succeeded" : "awaiting_pick", error: null });
  expect(v.status, r.id).toBe(picked ? "succeeded" : "cancelled");
}

const allAttempts = (r: RunRecord) => attemptsOf(view(r)).map((a) => a.number);

// ---------------------------------------------------------------- the cases

/** No injected fault: the reference for everything else, billed time above all. */
export function baseline(name: string, runs: Record<Phase, number>, turnMs = AGENT_TURN_MS, attempts: Record<Phase, number> = { cases: 4, load: 4 }): FaultCase {
  return {
    name,
    covers: "no injected fault (reference)",
    runs,
    request: (phase, i) => ({ prompt: prompt(name, i, turnMs), attempts: attempts[phase] }),
    checkRun(_ctx, r) {
      expectSucceeded(r);
      for (const n of allAttempts(r)) {
        expectDone(r, n, { retries: 0 });
        expectPushedTranscript(r, n);
      }
    },
  };
}

/**
 * The ingest URL is unreachable (every report is reset on the way) and every log stream of the case's
 * sandboxes is reset as it opens: polling alone carries the attempts.
 */
export const pushLost: FaultCase = {
  name: "push-lost",
  covers: "the ingest URL unreachable (push lost), and no log stream to follow",
  runs: { cases: 1, load: 6 },
  pushLost: true,
  request: (phase, i) => ({ prompt: prompt("push-lost", i), attempts: phase === "cases" ? 2 : 4 }),
  async arm(ctx) {
    await setFaults({ scoped: noFollow(ctx.account.id) });
  },
  async disarm(ctx) {
    await setFaults({ scoped: { [`nofollow-${ctx.account.id}`]: null } });
  },
  checkRun(_ctx, r) {
    expectSucceeded(r);
    for (const n of allAttempts(r)) {
      expectDone(r, n, { retries: 0 });
      const ev = of(r, n);
      // Every job's exit was found by the poll, none reported...
      expect(ev.filter((e) => e.type === "job.exit_polled").map((e) => e.data.job)).toEqual(JOBS);
      // ...and the transcript was read back from the sandbox after the agent's exit, each line once.
      const agentExit = ev.find((e) => e.type === "job.exit_polled" && e.data.job === "agent")!;
      expect(ev.filter((e) => e.type.startsWith("agent.")).every((e) => e.seq > agentExit.seq)).toBe(true);
    }
  },
  // Each of the 4 jobs' exits is seen by a poll, up to POLL_MS late; the 3 setup jobs' runner first
  // retries its lost report for 1.4 s before its command ends (run-job.sh), which the poll waits for.
  extraAllowanceMs: () => 4 * POLL_MS + 3 * RUNNER_REPORT_RETRIES_MS,
};

/** Creates answered 503, and creates whose connection is reset: retried with backoff, one sandbox each. */
export const createFaults: FaultCase = {
  name: "create-faults",
  covers: "create 503s and resets",
  runs: { cases: 1, load: 3 },
  request: (_phase, i) => ({ prompt: prompt("create-faults", i), attempts: 4 }),
  async arm(ctx) {
    // At most 3 + 3 failures for the case: no attempt can meet more than RETRY_LIMIT (3) of them.
    await setFaults({
      scoped: {
        [`503-${ctx.account.id}`]: { labels: scope(ctx), createFailures: { count: 3, mode: "503" } },
        [`reset-${ctx.account.id}`]: { labels: scope(ctx), createFailures: { count: 3, mode: "reset" } },
      },
    });
  },
  async disarm(ctx) {
    ctx.notes.left = (await faultsLeft()).scoped;
    await setFaults({ scoped: { [`503-${ctx.account.id}`]: null, [`reset-${ctx.account.id}`]: null } });
  },
  checkRun(_ctx, r) {
    expectSucceeded(r);
    for (const n of allAttempts(r)) {
      expectDone(r, n);
      expectPushedTranscript(r, n);
    }
  },
  checkCase(ctx) {
    const left = ctx.notes.left as Record<string, { createFailures: { count: number } }>;
    expect(left[`503-${ctx.account.id}`]!.createFailures.count).toBe(0);
    expect(left[`reset-${ctx.account.id}`]!.createFailures.count).toBe(0);
    // Every injected failure cost exactly one retry, and the reasons say what happened.
    const attempts = ctx.runs.flatMap((r) => attemptsOf(view(r)));
    expect(attempts.reduce((t, a) => t + a.retries, 0)).toBe(6);
    const reasons = ctx.runs.flatMap((r) => r.events.filter((e) => e.type === "attempt.retry").map((e) => String(e.data.reason)));
    expect(reasons).toHaveLength(6);
    expect(reasons.filter((x) => /^creating sandbox: .*503/.test(x))).toHaveLength(3);
    expect(reasons.filter((x) => /^creating sandbox: /.test(x) && !/503/.test(x))).toHaveLength(3);
  },
};

/** The agent's command hangs (never ends, prints nothing) in attempts 1 and 2: the deadline ends them. */
export const execHang: FaultCase = {
  name: "exec-hang",
  covers: "exec hangs",
  runs: { cases: 1, load: 3 },
  request: (phase, i) => ({
    prompt: prompt("exec-hang", i),
    attempts: phase === "cases" ? 3 : 4,
    // Long enough for the healthy attempts' ~25 s agents (slower under the load), short enough for the suite.
    limits: { attemptMinutes: phase === "cases" ? 0.75 : 1.5 },
  }),
  async arm(ctx) {
    // The agent job's command of attempts 1 and 2 of every run (its report URL names round and attempt).
    await setFaults({
      scoped: {
        [`hang-${ctx.account.id}`]: {
          labels: scope(ctx),
          hangExec: { count: 2 * execHang.runs[ctx.phase], match: "/1/[12]/[A-Za-z0-9_-]+' # multishot-job:agent:1$" },
        },
      },
    });
  },
  async disarm(ctx) {
    ctx.notes.left = (await faultsLeft()).scoped;
    await setFaults({ scoped: { [`hang-${ctx.account.id}`]: null } });
  },
  checkRun(ctx, r) {
    const minutes = ctx.phase === "cases" ? 0.75 : 1.5;
    expectSucceeded(r);
    for (const a of attemptsOf(view(r))) {
      if (a.number > 2) {
        expectDone(r, a.number, { retries: 0 });
        continue;
      }
      expect(a).toMatchObject({ status: "failed", error: `timed out: agent ran longer than ${minutes} minutes and was stopped`, retries: 0 });
      // The hung command was never the agent: nothing of a transcript.
      expect(of(r, a.number).filter((e) => e.type.startsWith("agent."))).toEqual([]);
      // It was stopped at its deadline, not before, and not much after.
      const ran = a.timestamps.failed! - a.timestamps.running_agent!;
      expect(ran).toBeGreaterThanOrEqual(minutes * 60_000);
      // (Under the load the alarm that enforces it waits its turn on the busy machine: up to 45 s late.)
      expect(ran).toBeLessThan(minutes * 60_000 + (ctx.phase === "cases" ? 15_000 : 45_000));
    }
  },
  // The healthy attempts are done ~25 s in, but keep their sandbox (for the winner pick) until the run
  // settles, when the hung ones meet their deadline: up to the deadline less the agent's ~25 s each.
  extraAllowanceMs: (phase) => (phase === "cases" ? 0.75 : 1.5) * 60_000 - 4 * AGENT_TURN_MS,
  checkCase(ctx) {
    const left = ctx.notes.left as Record<string, { hangExec: { count: number } }>;
    expect(left[`hang-${ctx.account.id}`]!.hangExec.count).toBe(0);
  },
};

/** Sandboxes that die while their agent works: processes killed; or the sandbox in error; or stopped (started again). */
export const sandboxDies: FaultCase = {
  name: "sandbox-dies",
  covers: "a sandbox dying mid-agent",
  runs: { cases: 1, load: 3 },
  request: (_phase, i) => ({ prompt: prompt("sandbox-dies", i), attempts: 4 }),
  async drive(ctx, r, hooks) {
    const how: Record<number, { state?: "error" | "stopped"; errorReason?: string }> = {
      1: {},
      2: { state: "error", errorReason: "the host went away" },
      3: { state: "stopped" },
    };
    const killed: Record<number, string> = {};
    while (!hooks.isSettled() && Object.keys(killed).length < 3) {
      const run = await readRun(ctx.account, r.id);
      const events = await runEvents(ctx.account, r.id);
      for (const n of [1, 2, 3]) {
        if (killed[n]) continue;
        // Mid-agent: the agent has spoken (its first line was pushed to the Worker), or its job has run
        // for 5 s (under the load, pushes may be late) of its ~25 s.
        const started = events.find((e) => e.attempt === n && e.type === "job.started" && e.data.job === "agent");
        const spoke = events.some((e) => e.attempt === n && e.type === "agent.init");
        if (!started || !(spoke || Date.now() - started.at > 5_000)) continue;
        const a = attemptsOf(run!).find((x) => x.number === n)!;
        if (a.status !== "running_agent") continue;
        await killSandbox(a.sandboxId!, how[n]!);
        killed[n] = a.sandboxId!;
      }
      await sleep(300);
    }
    r.notes.killed = killed;
  },
  checkRun(ctx, r) {
    expect(Object.keys(r.notes.killed as object)).toEqual(["1", "2", "3"]);
    expectSucceeded(r);
    const [a1, a2, a3] = attemptsOf(view(r));
    // Under the load the driver's view of an attempt can be seconds old: a kill aimed at a working agent
    // may land just after it finished, while its result is collected. The reason must then say that.
    const lateKill = (n: number) =>
      ctx.phase === "load" && of(r, n).some((e) => e.type === "attempt.status" && e.data.to === "collecting_result");
    const late = { status: "failed", exitCode: 0, error: expect.stringMatching(/^(the sandbox disappeared while collecting result|collecting (the )?result)/) };
    expect(a1).toMatchObject(lateKill(1) ? late : { status: "failed", exitCode: 137, error: expect.stringMatching(/^the agent was killed by signal 9: /) });
    // An errored sandbox that Daytona does not call recoverable fails its attempt with Daytona's reason.
    expect(a2).toMatchObject(lateKill(2) ? late : { status: "failed", error: "running agent failed: the sandbox is in state error: the host went away (HTTP 400)" });
    // A stopped one (as Daytona's auto-stop does, whatever runs inside) is started again and its job
    // with it: the attempt is done, after one retry that says why.
    if (!lateKill(3)) {
      expect(a3).toMatchObject({ status: "done", error: null, retries: 1 });
      const retry = of(r, 3).find((e) => e.type === "attempt.retry");
      expect(String(retry?.data.reason)).toMatch(/^running agent: the sandbox was stopped or lost its session/);
    }
    if ([1, 2, 3].some(lateKill)) console.log(`[faults:${ctx.phase}] sandbox-dies: run ${r.id}: kills that landed after the agent finished: ${[1, 2, 3].filter(lateKill).join(", ")}`);
    for (const a of [a1!, a2!, a3!]) expect(a.sandboxId).toBe((r.notes.killed as Record<number, string>)[a.number]);
    expectDone(r, 4, { retries: 0 });
  },
};

/** Every toolbox call of the case's sandboxes 700 ms slow (control-plane calls 200 ms), and 4 polls 502. */
export const slowToolbox: FaultCase = {
  name: "slow-toolbox",
  covers: "a slow toolbox (delayMs), and transient toolbox 502s",
  runs: { cases: 1, load: 3 },
  request: (phase, i) => ({ prompt: prompt("slow-toolbox", i), attempts: phase === "cases" ? 2 : 4 }),
  async arm(ctx) {
    await setFaults({
      scoped: {
        [`slow-${ctx.account.id}`]: {
          labels: scope(ctx),
          delayMs: { toolbox: 700, api: 200 },
          toolboxFailures: { count: 4, mode: "502", match: "^/process/session/[^/]+/command/[^/]+$" },
        },
      },
    });
  },
  async disarm(ctx) {
    ctx.notes.left = (await faultsLeft()).scoped;
    await setFaults({ scoped: { [`slow-${ctx.account.id}`]: null } });
  },
  checkRun(_ctx, r) {
    expectSucceeded(r);
    for (const n of allAttempts(r)) {
      expectDone(r, n, { retries: 0 });
      expectPushedTranscript(r, n);
    }
  },
  checkCase(ctx) {
    const left = ctx.notes.left as Record<string, { toolboxFailures: { count: number } }>;
    expect(left[`slow-${ctx.account.id}`]!.toolboxFailures.count).toBe(0);
    // A failed poll says nothing about the job: it is looked at again, never restarted.
    const unreachable = ctx.runs.flatMap((r) => r.events.filter((e) => e.type === "sandbox.unreachable"));
    expect(unreachable).toHaveLength(4);
    expect(unreachable.every((e) => /502/.test(String(e.data.reason)))).toBe(true);
  },
  // About 8 toolbox calls of an attempt fall outside its agent's working time (home dir, the upload,
  // session create and the install, seed and collect commands, the result read-back): 8 x 700 ms, and
  // the delete's control-plane calls 2 x 200 ms.
  extraAllowanceMs: () => 8 * 700 + 2 * 200,
};

/**
 * D1 refuses the write of one step: every mirror of an attempt's move to running_agent fails (a
 * trigger aborts it, for this account's rows only). The run must go on (its object is the truth), D1 must
 * lag meanwhile, and catch up by itself once the attempts move on, with the fault still in place.
 */
export const d1StepFailure: FaultCase = {
  name: "d1-step-failure",
  covers: "a D1 write failure on one step (the mirror of running_agent)",
  runs: { cases: 1, load: 2 },
  request: (phase, i) => ({ prompt: prompt("d1-step-failure", i), attempts: phase === "cases" ? 2 : 4 }),
  async arm(ctx) {
    await failD1Writes(
      `faults_d1_step_${ctx.account.id}`,
      `BEFORE UPDATE ON attempts WHEN NEW.status = 'running_agent'
         AND NEW.run_id IN (SELECT id FROM runs WHERE account_id = '${ctx.account.id}')
       BEGIN SELECT RAISE(ABORT, 'injected D1 fault: the attempts table refuses running_agent'); END`,
    );
  },
  async drive(ctx, r, hooks) {
    let stale = 0;
    while (!hooks.isSettled()) {
      const run = await readRun(ctx.account, r.id);
      const d1 = await d1Statuses(r.id);
      attemptsOf(run!).forEach((a, i) => {
        if (a.status === "running_agent" && PRE_AGENT.has(d1[i] ?? "")) stale++;
      });
      await sleep(500);
    }
    r.notes.staleSeen = stale;
    // The fault is still armed: D1 must catch up by itself (the object retries the mirror).
    const t0 = Date.now();
    for (;;) {
      const diffs = await d1Differences((await readRun(ctx.account, r.id))!);
      if (diffs.length === 0) break;
      if (Date.now() - t0 > 20_000) {
        r.notes.d1Lag = diffs;
        return;
      }
      await sleep(250);
    }
    r.notes.d1CaughtUpMs = Date.now() - t0;
  },
  async disarm(ctx) {
    await healD1(`faults_d1_step_${ctx.account.id}`);
  },
  async checkRun(_ctx, r) {
    expectSucceeded(r);
    for (const n of allAttempts(r)) {
      expectDone(r, n, { retries: 0 });
      expectPushedTranscript(r, n);
    }
    expect(r.notes.staleSeen, "D1 lagged behind the object while the fault was armed").toBeGreaterThan(0);
    expect(r.notes.d1Lag).toBeUndefined();
    expect(r.notes.d1CaughtUpMs).toBeLessThan(20_000);
    expect(await d1Differences(view(r))).toEqual([]);
  },
};

/**
 * D1 refuses the very first write of a run (its row): the run starts anyway, works while the API does not
 * know it (404: the API finds runs through D1), and shows up with everything once D1 heals.
 */
export const d1StartFailure: FaultCase = {
  name: "d1-start-failure",
  covers: "a D1 write failure on one step (the run's first mirror)",
  runs: { cases: 1, load: 1 },
  request: (phase, i) => ({ prompt: prompt("d1-start-failure", i), attempts: phase === "cases" ? 2 : 4 }),
  async arm(ctx) {
    await failD1Writes(
      `faults_d1_start_${ctx.account.id}`,
      `BEFORE INSERT ON runs WHEN NEW.account_id = '${ctx.account.id}'
       BEGIN SELECT RAISE(ABORT, 'injected D1 fault: the runs table refuses the row'); END`,
    );
  },
  async drive(ctx, r) {
    const attempts = Number(d1StartFailure.request(ctx.phase, r.index).attempts);
    // While D1 fails, the run is invisible to its owner, yet its sandboxes are made and work.
    let working = 0;
    for (const until = Date.now() + 90_000; Date.now() < until; ) {
      expect(await readRun(ctx.account, r.id)).toBeNull();
      working = everySandbox(await sandboxAdmin()).filter((s) => s.labels["multishot-run"] === r.id && s.state === "started").length;
      if (working === attempts) break;
      await sleep(300);
    }
    r.notes.workingWhileUnknown = working;
    await healD1(`faults_d1_start_${ctx.account.id}`);
    const healed = Date.now();
    while (!(await readRun(ctx.account, r.id))) {
      if (Date.now() - healed > 20_000) return;
      await sleep(200);
    }
    r.notes.visibleAfterHealMs = Date.now() - healed;
  },
  async disarm(ctx) {
    await healD1(`faults_d1_start_${ctx.account.id}`);
  },
  async checkRun(ctx, r) {
    expect(r.notes.workingWhileUnknown).toBe(Number(d1StartFailure.request(ctx.phase, r.index).attempts));
    expect(r.notes.visibleAfterHealMs).toBeLessThan(20_000);
    expectSucceeded(r);
    for (const n of allAttempts(r)) expectDone(r, n, { retries: 0 });
    expect(await d1Differences(view(r))).toEqual([]);
  },
};

/** The statuses of attempt 1 at which the run's object is evicted or aborted, besides start and cleanup. */
const EVICT_AT = ["creating_sandbox", "installing_agent", "seeding_workspace", "running_agent", "collecting_result", "done"];
/**
 * Where the object is crashed (ctx.abort) rather than evicted gracefully: mid-step, where a graceful
 * eviction would wait for the step (and time out: "it still has active references"). It is evicted
 * while its agent works and once attempt 1 is done, when it is mostly idle.
 */
const CRASH_AT = new Set(["start", "creating_sandbox", "installing_agent", "seeding_workspace", "collecting_result", "cleanup"]);

/**
 * The run's Durable Object goes away at every step of attempt 1: crashed (`ctx.abort()`: in-memory state
 * and in-flight I/O lost) or evicted (graceful). Creates are 3 s slow, so the crash at creating_sandbox
 * lands while the create is in flight: its answer is lost with the object, and the sandbox must be
 * adopted, not made twice. Toolbox calls are 300 ms slow, so every phase lasts long enough to be hit.
 */
export const evictions: FaultCase = {
  name: "do-eviction",
  covers: "Durable Object eviction at each step",
  runs: { cases: 1, load: 2 },
  request: (phase, i) => ({ prompt: prompt("do-eviction", i, phase === "cases" ? 2_000 : AGENT_TURN_MS), attempts: phase === "cases" ? 2 : 4 }),
  async arm(ctx) {
    await setFaults({ scoped: { [`evict-${ctx.account.id}`]: { labels: scope(ctx), delayMs: { create: 3000, toolbox: 300 } } } });
  },
  async drive(ctx, r, hooks) {
    // A fresh stub each time: a stub whose object was aborted stays broken (it throws the abort's reason).
    const stub = () => env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(r.id));
    const crash = async () => {
      let aborted = false;
      // Rejects by design: the abort ends the call that made it.
      await runInDurableObject(stub(), (_instance, state) => {
        aborted = true;
        state.abort("fault suite: crash");
      }).catch(() => undefined);
      return aborted;
    };
    const hits: string[] = [];
    const statusOf = async () => {
      const run = await readRun(ctx.account, r.id);
      return run ? attemptsOf(run)[0]!.status : "unknown";
    };
    const hit = async (at: string) => {
      if (CRASH_AT.has(at)) {
        if (await crash()) hits.push(`${at}:crashed`);
        return;
      }
      // A graceful eviction waits for the object to let go of what it holds, and gives up after a while
      // ("it still has active references"); one that is not done within 3 s, or finds the object not
      // running, becomes a crash.
      const evicted = await Promise.race([
        evictDurableObject(stub()).then(
          () => true,
          () => false,
        ),
        sleep(3_000).then(() => false),
      ]);
      if (evicted) hits.push(`${at}:evicted`);
      else if (await crash()) hits.push(`${at}:crashed`);
    };
    const seen = new Set<string>();
    // Right after the start: the status then counts as hit (it is creating_sandbox once the alarm ran).
    const first = await statusOf();
    await hit("start");
    if (first === "creating_sandbox") seen.add(first);
    hits[0] = `${hits[0]}:${first}`;
    while (!hooks.isSettled()) {
      const status = await statusOf();
      if (EVICT_AT.includes(status) && !seen.has(status)) {
        seen.add(status);
        await hit(status);
      }
      await sleep(100);
    }
    // Attempt 1 may be done only as its run settles: the hit at "done" is then right after.
    if (!seen.has("done")) await hit("done");
    await hooks.cancelled;
    await hit("cleanup");
    r.notes.evictions = hits;
  },
  async disarm(ctx) {
    await setFaults({ scoped: { [`evict-${ctx.account.id}`]: null } });
  },
  checkRun(ctx, r) {
    expectSucceeded(r);
    for (const n of allAttempts(r)) expectDone(r, n);
    const hits = r.notes.evictions as string[];
    expect(hits[0]).toMatch(/^start:crashed:/);
    expect(hits[hits.length - 1]).toBe("cleanup:crashed");
    if (ctx.phase === "cases") {
      // Every step was hit, and the crash during the create was survived by adoption.
      const at = hits.slice(1, -1).map((h) => h.split(":")[0]!);
      if (hits[0] === "start:crashed:creating_sandbox") at.unshift("creating_sandbox");
      expect(at).toEqual(EVICT_AT);
      expect(r.events.filter((e: RunEvent) => e.type === "sandbox.adopted").length).toBeGreaterThan(0);
    }
  },
  // By design a crash mid-step holds that step until its lease (10 s) runs out, for every attempt whose
  // step was in flight, and a done attempt keeps its sandbox until the others are done: up to 6 crashes
  // (start, create, install, seed, collect, cleanup) x 10 s. Creates are 3 s slower, and ~10 toolbox
  // calls outside the agent's working time 300 ms each.
  extraAllowanceMs: () => 6 * STEP_LEASE_MS + 3_000 + 10 * 300,
};

// One attempt's state machine, one idempotent step per wake-up of its timer:
//   queued -> creating_sandbox -> installing_agent -> seeding_workspace -> running_agent
//          -> collecting_result -> done | failed | cancelled
// Each working phase starts one job in the sandbox as an async session command, then waits for its exit:
// reported by the runner (ingest) or found by a poll. What an exit or an error means is decided in
// decisions.ts; this module carries it out.
import { AGENT_SETUP_MARKER, AGENTS, MS_DIR, shellQuote } from "../agents/index.ts";
import { attemptArtifactKey } from "../artifact-keys.ts";
import type { SandboxSpec } from "../sandbox/client.ts";
import { classifySandboxError, describeSandboxError, isQuotaRefusal, isRetryableSandboxError } from "../sandbox/errors.ts";
import { DEFAULT_ATTEMPT_MINUTES } from "../run-request.ts";
import { ingestUrl } from "../signed-urls.ts";
import { isAttemptEnded, type AttemptJobName } from "../vocabulary.ts";
import type { SandboxCleanup } from "./cleanup.ts";
import { homeDirOf, jobTail, SESSION, type RunCore } from "./core.ts";
import { exitOutcome, exitReason, jobMinutes, jobOf, parseNumstat, phaseAfter, retryDecision, sandboxSource, stepErrorOutcome } from "./decisions.ts";
import type { LogFollower } from "./follow.ts";
import type { Ingest } from "./ingest.ts";
import { MAX_ARTIFACT_BYTES } from "./ingest.ts";
import type { JobInputs } from "./job-inputs.ts";
import { AGENT_ENV_FILE, jobCommand, jobMarker } from "./jobs.ts";
import { backoffMs, nextPollMs, retryPolicy } from "./retry.ts";
import type { AgentSetup, AttemptState, VerifyResult } from "./state.ts";

/** Idle minutes before Daytona stops a sandbox, and minutes stopped before it deletes it. */
const AUTO_STOP_MINUTES = 15;
const AUTO_DELETE_MINUTES = 24 * 60;

export interface AttemptsHost {
  /** An attempt ended: its round may be over. */
  attemptEnded(): void;
  /** An attempt is done and its verify command passed. */
  verified(a: AttemptState): void;
}

export class AttemptSteps {
  private readonly core: RunCore;
  private readonly host: AttemptsHost;
  private readonly ingest: Ingest;
  private readonly inputs: JobInputs;
  private readonly cleanup: SandboxCleanup;
  private readonly follower: LogFollower;

  constructor(core: RunCore, parts: { host: AttemptsHost; follower: LogFollower; ingest: Ingest; inputs: JobInputs; cleanup: SandboxCleanup }) {
    this.core = core;
    this.host = parts.host;
    this.follower = parts.follower;
    this.ingest = parts.ingest;
    this.inputs = parts.inputs;
    this.cleanup = parts.cleanup;
  }

  /** The attempt timer's handler. */
  async step(round: number, n: number): Promise<void> {
    const { state, timers } = this.core;
    const a = state.attempt(round, n);
    if (!a) return timers.unschedule({ kind: "attempt", round, attempt: n });
    if (isAttemptEnded(a.status)) return this.cleanup.cleanup(a);
    try {
      if (a.status === "queued") {
        state.commit(a, { status: "creating_sandbox" });
        return timers.schedule({ kind: "attempt", round, attempt: n }, Date.now());
      }
      if (a.status === "creating_sandbox") return await this.createSandbox(a);
      return await this.advanceJob(a);
    } catch (err) {
      this.onStepError(a, err);
    }
  }

  /** The deadline timer's handler: a job that ran past its time limit ends its attempt. */
  deadline(round: number, n: number): void {
    this.core.timers.unschedule({ kind: "deadline", round, attempt: n });
    const a = this.core.state.attempt(round, n);
    if (!a || isAttemptEnded(a.status) || a.deadlineAt === null || a.deadlineAt > Date.now()) return;
    const minutes = jobMinutes(a.job, this.core.state.requireRun().request.limits?.attemptMinutes);
    // Failing the attempt deletes its sandbox, which ends the command and everything it started.
    this.fail(a, `timed out: ${a.job ?? "the attempt"} ran longer than ${minutes} minute${minutes === 1 ? "" : "s"} and was stopped`);
  }

  fail(a: AttemptState, reason: string, extra: Partial<AttemptState> = {}): void {
    this.finish(a, "failed", reason, extra);
  }

  /** Ends an attempt. Failed and cancelled attempts give their sandbox back at once. */
  finish(a: AttemptState, status: "failed" | "cancelled", reason: string, extra: Partial<AttemptState> = {}): void {
    const { state, timers } = this.core;
    const current = state.attempt(a.round, a.number);
    if (!current || isAttemptEnded(current.status)) return;
    state.commit(current, { ...extra, status, error: reason, cleanupPending: true, deadlineAt: null });
    this.follower.stop(a.round, a.number);
    timers.unschedule({ kind: "deadline", round: a.round, attempt: a.number });
    timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now());
    this.host.attemptEnded();
  }

  /** A failed Daytona call: retried with backoff when it may pass, otherwise the attempt fails now. */
  private onStepError(stepStart: AttemptState, err: unknown): void {
    // The step may have written progress before it failed; what matters is whether it is still this step.
    const a = this.core.state.attempt(stepStart.round, stepStart.number);
    if (!a || isAttemptEnded(a.status) || a.status !== stepStart.status || a.jobTry !== stepStart.jobTry) return;
    const reason = describeSandboxError(err);
    const phase = a.status.replace(/_/g, " ");
    const outcome = stepErrorOutcome(classifySandboxError(err), { hasSandbox: a.sandboxId !== null, jobStarted: a.job !== null && a.job === jobOf(a.status) });
    switch (outcome) {
      case "sandbox_gone":
        return this.fail(a, `the sandbox disappeared while ${phase}: ${reason}`);
      case "look_again": {
        this.core.events.append(a.round, a.number, "sandbox.unreachable", { reason });
        const policy = retryPolicy(this.core.env);
        return this.core.timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now() + Math.max(policy.pollMs, backoffMs(policy, 0)));
      }
      case "restart":
        // The next start of the job starts the sandbox first (startJob's ensureStarted).
        return this.retryOrFail(a, `${phase}: the sandbox was stopped or lost its session (${reason}); starting it and the job again`);
      case "retry":
        return this.retryOrFail(a, `${phase}: ${reason}`);
      case "fail":
        return this.fail(a, `${phase} failed: ${reason}`);
    }
  }

  private retryOrFail(a: AttemptState, reason: string): void {
    const { state, events, timers, env } = this.core;
    const policy = retryPolicy(env);
    const current = state.attempt(a.round, a.number);
    if (!current || current.version !== a.version) return; // superseded (cancelled, reported)
    const decision = retryDecision(current.retries, policy.limit, (n) => backoffMs(policy, n));
    if (decision.giveUp) {
      this.fail(current, `${reason} (gave up after ${current.retries} ${current.retries === 1 ? "retry" : "retries"})`);
      return;
    }
    state.commit(current, { retries: current.retries + 1, job: null, cmdId: null, jobTry: current.jobTry + 1 });
    events.append(a.round, a.number, "attempt.retry", { reason, retry: current.retries + 1, inMs: decision.delayMs });
    timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now() + decision.delayMs);
  }

  private async createSandbox(a: AttemptState): Promise<void> {
    const { state, events, env, sandboxes } = this.core;
    const run = state.requireRun();
    const labels = {
      "multishot-run": run.id,
      "multishot-round": String(a.round),
      "multishot-attempt": `${run.id}:${a.round}:${a.number}`,
      "multishot-account": run.accountId,
    };
    // A create that was asked for before may have made a sandbox whose id never reached us (a crash, a
    // timeout, a reset): find it by its labels and adopt it, and delete any that cannot be used.
    if (a.createRequestedAt !== null) {
      const found = await sandboxes.findByLabels(labels);
      // A sandbox marked for destruction is still listed (Daytona deletes in the background): never adopted.
      const usable = found.filter((s) => s.desiredState !== "destroyed" && (s.state === "started" || s.state === "starting" || s.state === "creating"));
      const keep = usable[0];
      await Promise.all(found.filter((s) => s !== keep).map((s) => sandboxes.delete(s.id)));
      if (keep) {
        events.append(a.round, a.number, "sandbox.adopted", { sandboxId: keep.id });
        return this.sandboxReady(a, keep.id);
      }
    }
    // The first request's time stays: a create refused for quota is asked again from it (waitForQuota).
    const requested = state.commit(a, { createRequestedAt: a.createRequestedAt ?? Date.now() });
    if (!requested) return;
    const spec: SandboxSpec = {
      labels,
      envVars: {
        ...AGENTS[run.request.agent].sandboxEnv(env),
        MULTISHOT_RUN: run.id,
        MULTISHOT_ROUND: String(a.round),
        MULTISHOT_ATTEMPT: String(a.number),
      },
      autoStopInterval: AUTO_STOP_MINUTES,
      autoDeleteInterval: AUTO_DELETE_MINUTES,
      ...sandboxSource(state.round(a.round)?.sandbox ?? null, env),
    };
    let sandboxId: string;
    try {
      sandboxId = await sandboxes.create(spec);
    } catch (err) {
      if (isQuotaRefusal(err)) return this.waitForQuota(requested, describeSandboxError(err));
      if (spec.snapshot && !isRetryableSandboxError(err)) return this.fail(requested, await this.snapshotRefusal(spec.snapshot, err));
      throw err;
    }
    this.sandboxReady(requested, sandboxId);
  }

  /**
   * Why Daytona would not make a sandbox from the snapshot, with the snapshot's name and state: it does
   * not exist, or it is not `active` (still building, or its build failed, and why).
   */
  private async snapshotRefusal(snapshot: string, err: unknown): Promise<string> {
    const refused = describeSandboxError(err);
    const found = await this.core.sandboxes.snapshotState(snapshot).catch(() => undefined);
    if (found === null) return `snapshot "${snapshot}" does not exist: build it with \`npm run snapshot\`, or name one that does (${refused})`;
    if (found && found.state !== "active") {
      return `snapshot "${snapshot}" is ${found.state}${found.errorReason ? ` (${found.errorReason})` : ""}: a sandbox needs an active snapshot (${refused})`;
    }
    return `creating a sandbox from snapshot "${snapshot}" failed: ${refused}`;
  }

  /**
   * Daytona refused the sandbox for the organization's quota (its CPU, memory or disk in use): the attempt
   * goes back to `queued`, showing why, and asks again with a growing pause (2 s doubling to a minute)
   * until its time limit has passed waiting, then fails with the reason. Never a busy loop.
   */
  private waitForQuota(a: AttemptState, refusal: string): void {
    const { state, events, timers } = this.core;
    const reason = `Daytona quota: ${refusal}`;
    const since = a.createRequestedAt ?? Date.now();
    const limitMinutes = state.requireRun().request.limits?.attemptMinutes ?? DEFAULT_ATTEMPT_MINUTES;
    if (Date.now() - since > limitMinutes * 60_000) return this.fail(a, `${reason} (waited ${limitMinutes} minutes for room)`);
    const waits = a.quotaWaits + 1;
    const queued = state.commit(a, { status: "queued", error: reason, quotaWaits: waits });
    if (!queued) return;
    const delayMs = Math.min(60_000, 2000 * 2 ** (waits - 1));
    events.append(a.round, a.number, "sandbox.quota_wait", { reason, inMs: delayMs, waits });
    timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now() + delayMs);
  }

  private sandboxReady(a: AttemptState, sandboxId: string): void {
    const { state, events, timers } = this.core;
    const timer = { kind: "attempt", round: a.round, attempt: a.number } as const;
    const next = state.commit(a, { sandboxId, status: "installing_agent", ...(a.quotaWaits > 0 ? { error: null } : {}) });
    if (!next) {
      // The attempt ended while the sandbox was being made (a cancel): it must not outlive it.
      const now = state.attempt(a.round, a.number);
      if (now) state.commit(now, { cleanupPending: true, sandboxId: now.sandboxId ?? sandboxId });
      return timers.schedule(timer, Date.now());
    }
    events.append(a.round, a.number, "sandbox.created", { sandboxId });
    timers.schedule(timer, Date.now());
  }

  /** The phases that run a job in the sandbox: start it once, then wait for its exit report or poll. */
  private async advanceJob(a: AttemptState): Promise<void> {
    const job = jobOf(a.status);
    const sandboxId = a.sandboxId;
    if (!job || !sandboxId) return this.fail(a, `no job for ${a.status}`);
    if (a.job !== job || !a.cmdId) return this.startJob(a, job, sandboxId);

    const reported = this.ingest.reportedExit(a.round, a.number, job, a.jobTry);
    const exitCode = reported?.exitCode ?? (await this.core.sandboxes.commandExitCode(sandboxId, SESSION, a.cmdId));
    if (exitCode === undefined) {
      // Still running: followed again if the stream was lost (or the object woke up anew).
      return this.followAndPoll(a);
    }
    this.follower.stop(a.round, a.number);
    if (!reported) this.core.events.append(a.round, a.number, "job.exit_polled", { job, exitCode });
    await this.onJobExit(a, job, sandboxId, exitCode);
  }

  private async startJob(a: AttemptState, job: AttemptJobName, sandboxId: string): Promise<void> {
    const { state, events, timers, env, sandboxes } = this.core;
    const run = state.requireRun();
    // A sandbox may have been stopped since the last job (Daytona's auto-stop, an errored one recovered).
    // (A new sandbox is started already: Daytona's create waited for it.)
    if (a.retries > 0) await sandboxes.ensureStarted(sandboxId);
    let homeDir = a.homeDir;
    if (job === "install" || !homeDir) {
      homeDir ??= await homeDirOf(sandboxes, sandboxId);
      if (a.reachesWorker === null) {
        const reachesWorker = await this.probeWorker(sandboxId);
        const probed = state.commit(a, { reachesWorker, homeDir });
        if (!probed) return;
        events.append(a.round, a.number, "sandbox.probed", { reachesWorker });
        a = probed;
      }
      // An attempt whose agent could get no credential fails now, before anything is installed.
      const credentials = await this.inputs.agentEnv(a);
      if ("fail" in credentials) return this.fail(a, credentials.fail);
      const files = await this.inputs.attemptFiles(a);
      await sandboxes.uploadFiles(sandboxId, files.map((f) => ({ path: `${homeDir}/${f.path}`, content: f.content })));
    }
    // A next round's base goes in before its seed job starts: the Worker carries it, not the sandbox.
    if (job === "seed") await this.inputs.pushBase(a, sandboxId, homeDir);

    // "Starting" is written down before the command is, so that a step repeated after a crash looks
    // for the command it may have started (by its marker) instead of starting it twice.
    let current: AttemptState | null = a;
    if (a.job !== job) {
      current = state.commit(a, { job, cmdId: null, homeDir });
      if (!current) return;
    }
    const existing = a.job === job ? await sandboxes.findCommand(sandboxId, SESSION, jobMarker(job, a.jobTry)) : null;
    // Runner reports are an optimization for sandboxes that reach the Worker; polling carries the rest.
    const report = a.reachesWorker === false ? null : await ingestUrl(env, run.id, a.round, a.number);
    if (job === "agent" && !existing) {
      const credentials = await this.inputs.agentEnv(a);
      if ("fail" in credentials) return this.fail(current, credentials.fail);
      await sandboxes.uploadFiles(sandboxId, [{ path: `${homeDir}/${AGENT_ENV_FILE}`, content: JSON.stringify(credentials.env) }]);
    }
    const cmdId = existing?.cmdId ?? (await sandboxes.startCommand(sandboxId, SESSION, jobCommand(job, a.jobTry, report)));

    const minutes = jobMinutes(job, run.request.limits?.attemptMinutes);
    const now = Date.now();
    const started = state.commit(current, { cmdId, jobStartedAt: now, deadlineAt: now + minutes * 60_000 });
    if (!started) return;
    events.append(a.round, a.number, "job.started", { job, try: a.jobTry });
    timers.schedule({ kind: "deadline", round: a.round, attempt: a.number }, now + minutes * 60_000);
    // The followed log (or a report) normally wakes us; the poll is the safety net.
    await this.followAndPoll(started);
  }

  /**
   * Follows the job's log and sets the poll that backs it up. The poll is set before the stream is
   * opened, so that an object that dies during the handshake looks again soon, not after the step's lease.
   */
  private async followAndPoll(a: AttemptState): Promise<void> {
    const current = () => this.core.state.attempt(a.round, a.number)?.version === a.version;
    // Unless the attempt changed meanwhile (a cancel, a deadline: they scheduled their own wake-up).
    if (!current()) return;
    this.schedulePoll(a, this.follower.following(a));
    if ((await this.follower.follow(a)) && current()) this.schedulePoll(a, true);
  }

  /**
   * The next look at a running job. Followed, its exit line wakes us within about a second, so the poll
   * only guards against a stream that stalls unseen: every 4 x pollMs. Not followed: soon at first, then
   * every pollMs (nextPollMs), counted from the job's own start.
   */
  private schedulePoll(a: AttemptState, following: boolean): void {
    const policy = retryPolicy(this.core.env);
    const since = a.jobStartedAt ?? a.timestamps[a.status] ?? Date.now();
    const inMs = following ? 4 * policy.pollMs : nextPollMs(policy, Date.now() - since);
    this.core.timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now() + inMs);
  }

  /**
   * Whether the sandbox reaches PUBLIC_URL: an HTTP 200 from its /health within 3 s. On Daytona's Tiers 1
   * and 2 it never does (only an allowlist is reachable), and nothing a run needs depends on it.
   */
  private async probeWorker(sandboxId: string): Promise<boolean> {
    const url = `${this.core.env.PUBLIC_URL.replace(/\/$/, "")}/health`;
    const res = await this.core.sandboxes.exec(sandboxId, `curl -s -o /dev/null -m 3 -w '%{http_code}' ${shellQuote(url)} || true`, 20);
    return res.output.trim().endsWith("200");
  }

  private async onJobExit(a: AttemptState, job: AttemptJobName, sandboxId: string, exitCode: number): Promise<void> {
    if (job === "agent") await this.ingest.recoverTranscript(a, sandboxId);
    const outcome = exitOutcome(job, exitCode);
    if (outcome === "collect") return this.collectResult(a, sandboxId);
    if (outcome === "advance") {
      const patch: Partial<AttemptState> = { status: phaseAfter(a.status)! };
      if (job === "agent") patch.exitCode = 0;
      if (job === "install") patch.agentSetup = await this.agentSetup(a, sandboxId);
      const next = this.core.state.commit(a, patch);
      if (!next) return;
      if (patch.agentSetup) this.core.events.append(a.round, a.number, "attempt.agent_setup", { ...patch.agentSetup });
      this.core.timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now());
      return;
    }
    const summary = job === "agent" ? this.ingest.agentSummary(a) : null;
    const reason = exitReason(job, exitCode, await jobTail(this.core.sandboxes, sandboxId, job), summary);
    if (outcome === "retry") return this.retryOrFail(a, reason);
    return this.fail(a, reason, job === "agent" ? { exitCode, summary } : {});
  }

  /** How the agent came to be there, from its install job's marker line, and how long that took. */
  private async agentSetup(a: AttemptState, sandboxId: string): Promise<AgentSetup> {
    const { state, env, sandboxes } = this.core;
    const res = await sandboxes.exec(sandboxId, `grep -h '^${AGENT_SETUP_MARKER}' "${MS_DIR}/jobs/install.out" 2>/dev/null | tail -n 1`, 20).catch(() => null);
    const m = /^\S+ (preinstalled|installed) (\S+)/.exec(res?.output.trim() ?? "");
    // Until the exit was seen (followed or reported), not until this step ran.
    const endedAt = this.ingest.reportedExit(a.round, a.number, "install", a.jobTry)?.at ?? Date.now();
    const seconds = a.jobStartedAt ? Math.max(0, Math.round((endedAt - a.jobStartedAt) / 100) / 10) : 0;
    return {
      how: m?.[1] === "preinstalled" ? "preinstalled" : "installed",
      version: m?.[2] ?? null,
      snapshot: sandboxSource(state.round(a.round)?.sandbox ?? null, env).snapshot ?? null,
      seconds,
    };
  }

  /** Reads the diff, the verify result and the agent log, stores patch and log in R2, and ends the attempt. */
  private async collectResult(a: AttemptState, sandboxId: string): Promise<void> {
    const { state, timers, env, sandboxes, redact } = this.core;
    const run = state.requireRun();
    // One round trip for everything: numstat, verify exit and tail, the patch, the agent's log.
    const sep = `@@multishot-${crypto.randomUUID()}@@`;
    const res = await sandboxes.exec(
      sandboxId,
      `cd "${MS_DIR}" && cat diff.numstat; echo ${sep}; cat verify.exit 2>/dev/null; echo ${sep}; ` +
        `tail -c 4000 verify.out 2>/dev/null; echo ${sep}; head -c ${MAX_ARTIFACT_BYTES} diff.patch; echo ${sep}; ` +
        `head -c ${MAX_ARTIFACT_BYTES} jobs/agent.out`,
      120,
    );
    const [numstat = "", verifyExit = "", verifyTail = "", patch = "", log = ""] = res.output.split(`${sep}\n`);
    const verify: VerifyResult | null =
      run.request.verify && verifyExit.trim() !== ""
        ? { command: run.request.verify, exitCode: Number(verifyExit.trim()), passed: Number(verifyExit.trim()) === 0, outputTail: verifyTail.slice(-4000) }
        : null;
    await Promise.all([
      env.ARTIFACTS.put(attemptArtifactKey(run.id, a.round, a.number, "diff.patch"), redact(patch), { httpMetadata: { contentType: "text/x-diff" } }),
      env.ARTIFACTS.put(attemptArtifactKey(run.id, a.round, a.number, "agent.log"), redact(log), { httpMetadata: { contentType: "application/x-ndjson" } }),
    ]);

    const done = state.commit(a, { status: "done", diffStats: parseNumstat(numstat), verify, summary: this.ingest.agentSummary(a), deadlineAt: null });
    if (!done) return;
    this.follower.stop(a.round, a.number);
    timers.unschedule({ kind: "deadline", round: a.round, attempt: a.number });
    timers.unschedule({ kind: "attempt", round: a.round, attempt: a.number });
    if (verify?.passed) this.host.verified(done);
    this.host.attemptEnded();
  }
}

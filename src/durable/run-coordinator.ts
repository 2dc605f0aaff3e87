// The RunCoordinator: one Durable Object per run, the single owner of that run's live state.
//
// The class is the object's shell: it wires the run engine's modules together, answers the routes' RPC
// calls by handing each to the module that owns it, and hands the platform's events (fetch, WebSocket
// messages, the alarm) to theirs. Where things live:
//   scheduler.ts   the timers and the one alarm      run-state.ts  run, rounds, attempts, the D1 mirror
//   event-log.ts   the ordered event log             attempts.ts   an attempt's state machine
//   rounds.ts      rounds, picks, settling           winner.ts     packing a winner into R2
//   ingest.ts      runner reports, the transcript    cleanup.ts    deleting sandboxes
//   live.ts        SSE and live WebSockets           budget.ts     the credential gateway's budget
//   previews.ts    previews                          decisions.ts  the engine's decisions, pure
// Nothing here sleeps: every wait is a timer, and only the alarm runs steps (work started inside an RPC
// belongs to its request, and a request's outstanding I/O does not survive the request's end).
import { DurableObject } from "cloudflare:workers";
import type { CallUsage } from "../agents/usage.ts";
import type { Env } from "../env.ts";
import { holdPreview, releasePreview } from "../limits.ts";
import { redactorFor } from "../redact.ts";
import type { PreviewRequest, RoundRequest } from "../run-request.ts";
import { Sandboxes } from "../sandbox/client.ts";
import { AttemptSteps } from "./attempts.ts";
import { Budget } from "./budget.ts";
import { SandboxCleanup } from "./cleanup.ts";
import { refuse, type IngestReport, type Outcome, type StartRun } from "./contract.ts";
import type { RunCore } from "./core.ts";
import { EventLog } from "./event-log.ts";
import { RunHooks } from "./hooks.ts";
import { LogFollower } from "./follow.ts";
import { Ingest } from "./ingest.ts";
import { JobInputs } from "./job-inputs.ts";
import { Live } from "./live.ts";
import { migrate } from "./migrations.ts";
import { DEFAULT_PREVIEW_IDLE_MINUTES, Previews, type PreviewResult } from "./previews.ts";
import { Rounds } from "./rounds.ts";
import { RunStore } from "./run-state.ts";
import { Scheduler, type TimerHandlers } from "./scheduler.ts";
import type { RunEvent, WakeUps } from "./state.ts";
import { transcriptLine } from "./transcript.ts";
import { toRunView, type RunView } from "./view.ts";
import { WakeUpMeter } from "./wake-ups.ts";
import { WinnerTransfer } from "./winner.ts";

/** Transcript entries per page of GET …/transcript (at most TRANSCRIPT_PAGE_MAX when asked). */
const TRANSCRIPT_PAGE = 5_000;
const TRANSCRIPT_PAGE_MAX = 10_000;

export class RunCoordinator extends DurableObject<Env> {
  private readonly core: RunCore;
  private readonly meter: WakeUpMeter;
  private readonly live: Live;
  private readonly attempts: AttemptSteps;
  private readonly rounds: Rounds;
  private readonly winner: WinnerTransfer;
  private readonly ingestion: Ingest;
  private readonly budget: Budget;
  private readonly previews: Previews;
  private readonly hooks: RunHooks;
  private readonly handlers: TimerHandlers;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Keep-alive pings from live pages are answered without waking a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    migrate(ctx.storage);
    const sql = ctx.storage.sql;
    const redact = redactorFor(env);
    const timers = new Scheduler(ctx.storage);
    const events = new EventLog(sql, redact);
    const state = new RunStore({ sql, env, redact, events, retryMirrorAt: (at) => timers.scheduleNoLaterThan({ kind: "mirror" }, at) });
    let sandboxes: Sandboxes | null = null;
    const core: RunCore = {
      env,
      state,
      events,
      timers,
      redact,
      get sandboxes() {
        return (sandboxes ??= new Sandboxes(env));
      },
    };
    this.core = core;
    this.meter = new WakeUpMeter(sql);
    this.previews = new Previews({
      sql,
      get sandboxes() {
        return core.sandboxes;
      },
      idleMinutes: Number(env.PREVIEW_IDLE_MINUTES ?? DEFAULT_PREVIEW_IDLE_MINUTES),
      redact,
      holdSlot: (a, until) => {
        const run = state.requireRun();
        return holdPreview(env, run.accountId, { runId: run.id, round: a.round, number: a.number }, until);
      },
      releaseSlot: (round, n) => releasePreview(env, { runId: state.requireRun().id, round, number: n }),
      scheduleIdle: (round, n, at) => timers.schedule({ kind: "preview", round, attempt: n }, at),
    });
    this.live = new Live({ ctx, events, view: () => (state.getRun() ? this.viewNow() : null) });
    this.hooks = new RunHooks({
      env,
      sql,
      run: () => state.getRun(),
      view: async () => this.viewNow(),
      schedule: (key, dueAt) => timers.schedule({ kind: "hook", key }, dueAt),
      unschedule: (key) => timers.unschedule({ kind: "hook", key }),
    });
    events.subscribe((e) => this.live.onEvent(e));
    events.subscribe((e) => this.hooks.onEvent(e));

    const cleanup = new SandboxCleanup(core);
    this.ingestion = new Ingest(core, sql);
    // A followed log's news comes between wake-ups: recorded, and the alarm set for what it made due
    // (an alarm that fails to be set now is set by the next wake-up: the timer is in storage).
    const rearmSoon = () => void timers.rearm().catch((err) => console.error("re-arming after a followed log's news failed", err));
    const follower = new LogFollower(core, {
      agentLines: (round, n, jobTry, lines, first) => this.ingestion.followedLines(round, n, jobTry, lines, first),
      exited: (round, n, job, jobTry, exitCode) => {
        if (this.ingestion.followedExit(round, n, job, jobTry, exitCode)) rearmSoon();
      },
      lost: (round, n, job) => {
        timers.scheduleNoLaterThan(job === "pack" ? { kind: "winner", round } : { kind: "attempt", round, attempt: n }, Date.now() + 500);
        rearmSoon();
      },
    });
    this.attempts = new AttemptSteps(core, {
      host: { attemptEnded: () => this.rounds.settle(), verified: (a) => this.rounds.verified(a) },
      follower,
      ingest: this.ingestion,
      inputs: new JobInputs(core),
      cleanup,
    });
    const endAttempt = this.attempts.finish.bind(this.attempts);
    this.budget = new Budget(core, sql, { endAttempt });
    this.winner = new WinnerTransfer(core, { sql, ingest: this.ingestion, cleanup, follower, background: (p) => ctx.waitUntil(p) });
    this.rounds = new Rounds(core, {
      endAttempt,
      release: (a) => cleanup.release(a),
      abandonPacking: (r, reason) => this.winner.abandon(r, reason),
      budgetSpent: () => this.budget.spent(),
    });
    this.handlers = {
      attempt: (t) => this.attempts.step(t.round, t.attempt),
      deadline: (t) => this.attempts.deadline(t.round, t.attempt),
      winner: (t) => this.winner.step(t.round),
      preview: async (t) => {
        const next = await this.previews.idle(t.round, t.attempt);
        if (next === null) timers.unschedule(t);
        else timers.schedule(t, next);
        this.live.scheduleViewPush();
      },
      // The alarm mirrors after every step: the timer only has to wake it.
      mirror: (t) => timers.unschedule(t),
      hook: (t) => this.hooks.onTimer(t.key),
    };
  }

  // ---------------------------------------------------------------- RPC surface (called by routes)

  /** Starts the run: its first round and every attempt queued. Calling it again changes nothing. */
  async start(input: StartRun): Promise<RunView> {
    const { state, events } = this.core;
    if (!state.getRun()) {
      const now = Date.now();
      state.putRun({ id: input.id, accountId: input.accountId, request: input.request, status: "running", error: null, createdAt: now, updatedAt: now, finishedAt: null });
      this.rounds.open({
        number: 1,
        prompt: input.request.prompt,
        fromRound: null,
        attempts: input.request.attempts,
        variations: input.request.variations ?? null,
        baseWinner: input.baseWinner ?? null,
        sandbox: input.request.sandbox ?? null,
      });
      events.append(null, null, "run.created", { attempts: input.request.attempts, agent: input.request.agent });
      await this.afterChange();
    }
    return this.viewNow();
  }

  async view(): Promise<RunView> {
    return this.viewNow();
  }

  /** Serves one attempt's workspace for a preview and answers its signed link, or why not. `round` null is the newest. */
  async preview(round: number | null, n: number, req: PreviewRequest): Promise<Outcome<PreviewResult>> {
    const { state } = this.core;
    const run = state.requireRun();
    const r = round === null ? state.latestRound() : state.round(round);
    if (!r) return refuse(404, "not_found", `round ${round} not found`);
    const a = state.attempt(r.number, n);
    if (!a) return refuse(404, "not_found", `attempt ${n} of round ${r.number} not found`);
    const result = await this.previews.open(a, r, run.request.preview, req);
    await this.previewed();
    return { ok: result };
  }

  /** Every attempt of a round at once, in parallel. */
  async previewRound(round: number, req: PreviewRequest): Promise<Outcome<PreviewResult[]>> {
    const { state } = this.core;
    const run = state.requireRun();
    const r = state.round(round);
    if (!r) return refuse(404, "not_found", `round ${round} not found`);
    const results = await Promise.all(state.attempts(round).map((a) => this.previews.open(a, r, run.request.preview, req)));
    await this.previewed();
    return { ok: results };
  }

  /**
   * May the attempt's agent make a model call now? `reserveUsd` is the most it may cost (null: a free
   * call); the answer names the reservation the gateway settles with `meterCall`.
   */
  async llmGate(round: number, n: number, reserveUsd: number | null): Promise<Outcome<{ reservation: string | null }>> {
    const outcome = await this.budget.gate(round, n, reserveUsd);
    // A spent budget ended the attempts still working.
    if ("error" in outcome && outcome.error.status === 402) await this.afterChange();
    return outcome;
  }

  /** A model call's usage, read so far (its input, at the stream's start) or to its end (`final`). */
  async meterCall(round: number, n: number, reservation: string | null, usage: CallUsage | null, final: boolean): Promise<void> {
    this.budget.meter(round, n, reservation, usage, final);
    this.live.scheduleViewPush();
    await this.afterChange();
  }

  /** How often this object was woken (GET /api/admin/runs/:id/stats); this read itself is not counted. */
  async wakeUps(): Promise<WakeUps> {
    return this.meter.read();
  }

  /** Events after `afterSeq`, oldest first, as a JSON array (event data is free-form JSON). */
  async eventsJson(afterSeq: number, limit: number): Promise<string> {
    return JSON.stringify(this.core.events.after(afterSeq, limit));
  }

  /** What the run page renders: the view, each attempt's newest transcript entries, and the last event's seq. */
  async page(tail: number): Promise<{ run: RunView; seq: number; transcripts: Record<string, { total: number; entries: RunEvent[] }> }> {
    const run = this.viewNow();
    const transcripts: Record<string, { total: number; entries: RunEvent[] }> = {};
    for (const r of run.rounds) for (const a of r.attempts) transcripts[`${r.number}:${a.number}`] = this.core.events.transcript(r.number, a.number, tail);
    return { run, seq: this.core.events.lastSeq(), transcripts };
  }

  /**
   * One page of an attempt's transcript as plain text, one entry per line, oldest first: the entries
   * after `afterSeq`, at most `limit`; `next` is where the following page starts (null at the end).
   */
  async transcriptText(round: number, attempt: number, afterSeq = 0, limit = TRANSCRIPT_PAGE): Promise<{ text: string; next: number | null } | null> {
    if (!this.core.state.attempt(round, attempt)) return null;
    const { entries, more } = this.core.events.transcriptAfter(round, attempt, afterSeq, Math.min(Math.max(1, limit), TRANSCRIPT_PAGE_MAX));
    return {
      text: entries.map((e) => `${new Date(e.at).toISOString()} ${transcriptLine(e)}`).join("\n"),
      next: more ? entries[entries.length - 1]!.seq : null,
    };
  }

  /** Cancels every attempt that has not ended; every sandbox of the run is deleted. */
  async cancel(reason = "cancelled by request"): Promise<RunView> {
    this.rounds.cancel(reason);
    await this.afterChange();
    return this.viewNow();
  }

  async cancelAttempt(round: number, n: number, reason = "cancelled by request"): Promise<RunView | null> {
    this.core.state.requireRun();
    if (!this.rounds.cancelAttempt(round, n, reason)) return null;
    await this.afterChange();
    return this.viewNow();
  }

  async pickWinner(round: number, attempt: number): Promise<Outcome<RunView>> {
    return this.changed(this.rounds.pick(round, attempt));
  }

  async startRound(req: RoundRequest): Promise<Outcome<RunView>> {
    return this.changed(this.rounds.next(req));
  }

  /** A report from an attempt's runner: agent output lines, or a job's exit code. */
  async ingest(round: number, n: number, report: IngestReport): Promise<{ accepted: boolean }> {
    this.meter.count("requests");
    const accepted = this.ingestion.report(round, n, report);
    if (accepted) await this.core.timers.rearm();
    return { accepted };
  }

  /** Closes the live sockets and streams a share link opened (it was revoked). */
  async closeLink(linkId: string): Promise<number> {
    return this.live.closeLink(linkId);
  }

  /** Closes the live sockets and streams an API key opened (it was revoked); answers how many sockets. */
  async closeKey(keyId: string): Promise<number> {
    return this.live.closeKey(keyId);
  }

  // ---------------------------------------------------------------- the platform's events

  /** `/events`: the event log as SSE; `/live`: a live WebSocket. A share link's ends when the link does. */
  override async fetch(request: Request): Promise<Response> {
    this.meter.count("requests");
    const url = new URL(request.url);
    const after = Number(url.searchParams.get("after") ?? "0");
    const link = url.searchParams.get("link");
    const linkExpiresAt = Number(url.searchParams.get("expires") ?? "0") || null;
    const holder = { link, linkExpiresAt, key: url.searchParams.get("key") };
    if (url.pathname === "/live") return this.live.accept(request, after, holder);
    if (url.pathname === "/events") return this.live.events(after, holder);
    return new Response("not found", { status: 404 });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (message === "ping") ws.send("pong");
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  /** Runs every due timer's handler until nothing is due, mirroring as it goes, then re-arms. */
  override async alarm(): Promise<void> {
    this.meter.count("alarms");
    try {
      await this.core.timers.runDue(this.handlers, () => void this.core.state.mirror());
    } finally {
      await this.afterChange();
    }
  }

  // ---------------------------------------------------------------- helpers

  private viewNow(): RunView {
    const { state, events, env } = this.core;
    return toRunView(state.requireRun(), state.rounds(), state.attempts(), env.PUBLIC_URL, this.previews.all(), events.lastSeq());
  }

  private async changed(outcome: Outcome<true>): Promise<Outcome<RunView>> {
    if ("error" in outcome) return outcome;
    await this.afterChange();
    return { ok: this.viewNow() };
  }

  private async previewed(): Promise<void> {
    await this.core.timers.rearm();
    this.live.scheduleViewPush();
  }

  /** After a change: D1 mirrors it, and the alarm is set to whatever is due next. */
  private async afterChange(): Promise<void> {
    await this.core.state.mirror();
    await this.core.timers.rearm();
  }
}

// The RunCoordinator: one Durable Object per run, the single owner of that run's live state.
//
// Every attempt walks the same path, one idempotent step per wake-up:
//   queued -> creating_sandbox -> installing_agent -> seeding_workspace -> running_agent
//          -> collecting_result -> done | failed | cancelled
// Long work (installing, cloning, the agent itself) runs in the sandbox as an async session command
// under a small runner that pushes the agent's output and its exit code to this object (ingest); a
// slow poll of the session command is the safety net for a report that never comes. Nothing here
// sleeps: every wait is a row in the `timers` table, and the object's one alarm is set to the earliest.
import { DurableObject } from "cloudflare:workers";
import { AGENTS, MS_DIR } from "../agents/index.ts";
import runnerSource from "../agents/runner.agent.mjs";
import jobRunnerSource from "../agents/run-job.agent.sh";
import { parseAgentLine, type AgentEvent } from "../agents/stream-json.ts";
import { db } from "../db/client.ts";
import { mirrorRunState } from "../db/queries.ts";
import type { AttemptStatus, RunStatus } from "../vocabulary.ts";
import type { Env } from "../env.ts";
import { downloadUrl, ingestUrl, llmGatewayUrl, uploadUrl } from "../signed-urls.ts";
import {
  DEFAULT_ATTEMPT_MINUTES,
  DEFAULT_MAX_TURNS,
  type PreviewRequest,
  type RoundRequest,
  type RunRequest,
} from "../run-request.ts";
import { redactDeep, redactorFor, type Redact } from "../redact.ts";
import { Sandboxes, type SandboxSpec } from "../sandbox/client.ts";
import { describeSandboxError, isRetryableSandboxError, isSandboxGone } from "../sandbox/errors.ts";
import {
  EXIT_TRANSIENT,
  agentScript,
  collectScript,
  jobCommand,
  jobMarker,
  packScript,
  seedScript,
  verifyScript,
  type SeedSource,
} from "./jobs.ts";
import { backoffMs, nextPollMs, retryPolicy } from "./retry.ts";
import {
  FINAL,
  RunStore,
  type AgentSummary,
  type AttemptState,
  type DiffStats,
  type JobName,
  type RoundState,
  type RunEvent,
  type RunState,
  type UploadedPart,
  type VerifyResult,
  type WakeUps,
} from "./store.ts";
import { addUsage, NO_USAGE, type CallUsage } from "../agents/usage.ts";
import { RunHooks } from "./hooks.ts";
import { DEFAULT_PREVIEW_IDLE_MINUTES, Previews, type PreviewResult } from "./previews.ts";
import { transcriptLine } from "./transcript.ts";
import { toRunView, type RunView } from "./view.ts";
import { refuse, type IngestReport, type Outcome, type StartRun } from "./contract.ts";
import { attemptArtifactKey, tarballKey } from "../artifact-keys.ts";

/** The session every job of an attempt runs in. */
const SESSION = "multishot";
/** How long a step may hold its timer before another wake-up may try it again (a crash mid-step). */
const STEP_LEASE_MS = 10_000;
/** How soon after a change live sockets get the run's new view (changes in between share one push). */
const VIEW_PUSH_MS = 150;
/** How often an open event stream looks for new events. */
const SSE_TICK_MS = 250;
/** Tries at deleting an ended attempt's sandbox before leaving it to the scheduled sweep. */
const CLEANUP_TRIES = 8;
/** How often a running alarm looks for newly due timers while steps are in flight. */
const ALARM_TICK_MS = 250;
/** Jobs other than the agent get this long before they are killed. */
const SETUP_JOB_MINUTES = 20;
/** Idle minutes before Daytona stops a sandbox, and minutes stopped before it deletes it. */
const AUTO_STOP_MINUTES = 15;
const AUTO_DELETE_MINUTES = 24 * 60;
/** How long a next round's download URL for its base tarball stays good. */
const DOWNLOAD_URL_TTL_MS = 6 * 60 * 60_000;
/** How long one try at packing and uploading a winner may take. */
const PACK_MINUTES = 60;
/** How long a winner's upload URL stays good. */
const UPLOAD_URL_TTL_MS = 6 * 60 * 60_000;
/** The most of a patch or log kept in R2 per attempt. */
const MAX_ARTIFACT_BYTES = 8_000_000;

const PHASE_AFTER: Partial<Record<AttemptStatus, AttemptStatus>> = {
  installing_agent: "seeding_workspace",
  seeding_workspace: "running_agent",
  running_agent: "collecting_result",
};
const JOB_OF: Partial<Record<AttemptStatus, JobName>> = {
  installing_agent: "install",
  seeding_workspace: "seed",
  running_agent: "agent",
  collecting_result: "collect",
};

const attemptKey = (round: number, n: number) => `attempt:${round}:${n}`;
const deadlineKey = (round: number, n: number) => `deadline:${round}:${n}`;
const winnerKey = (round: number) => `winner:${round}`;
const previewKey = (round: number, n: number) => `preview:${round}:${n}`;
const MIRROR_KEY = "mirror";

export class RunCoordinator extends DurableObject<Env> {
  private readonly store: RunStore;
  private sandboxesClient: Sandboxes | null = null;
  private previewsService: Previews | null = null;
  /** Timer keys whose handler runs now, and those that were poked while it ran. */
  private readonly inFlight = new Set<string>();
  /** Share links revoked while this instance lives: their open SSE streams end. */
  private readonly revokedLinks = new Set<string>();
  private readonly poked = new Set<string>();
  private mirrorChain: Promise<void> = Promise.resolve();
  private viewPushTimer: ReturnType<typeof setTimeout> | null = null;

  private readonly redact: Redact;
  private readonly hooks: RunHooks;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Keep-alive pings from live pages are answered without waking a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    this.store = new RunStore(ctx.storage);
    this.redact = redactorFor(env);
    this.hooks = new RunHooks({
      env,
      sql: ctx.storage.sql,
      run: () => this.store.getRun(),
      view: () => this.view(),
      schedule: (key, dueAt) => this.store.schedule(key, dueAt),
      unschedule: (key) => this.store.unschedule(key),
    });
  }

  private get sandboxes(): Sandboxes {
    this.sandboxesClient ??= new Sandboxes(this.env);
    return this.sandboxesClient;
  }

  private get previewService(): Previews {
    const self = this;
    this.previewsService ??= new Previews({
      store: this.store,
      get sandboxes() {
        return self.sandboxes;
      },
      idleMinutes: Number(this.env.PREVIEW_IDLE_MINUTES ?? DEFAULT_PREVIEW_IDLE_MINUTES),
      scheduleIdle: (round, n, at) => this.store.schedule(previewKey(round, n), at),
    });
    return this.previewsService;
  }

  // ---------------------------------------------------------------- RPC surface (called by routes)

  /** Starts the run: its first round and every attempt queued. Calling it again changes nothing. */
  async start(input: StartRun): Promise<RunView> {
    if (!this.store.getRun()) {
      const now = Date.now();
      this.store.putRun({
        id: input.id,
        accountId: input.accountId,
        request: input.request,
        status: "running",
        error: null,
        createdAt: now,
        updatedAt: now,
        finishedAt: null,
      });
      this.openRound({
        number: 1,
        prompt: input.request.prompt,
        fromRound: null,
        attempts: input.request.attempts,
        variations: input.request.variations ?? null,
        baseWinner: input.baseWinner ?? null,
      });
      this.event(null, null, "run.created", { attempts: input.request.attempts, agent: input.request.agent });
      await this.mirror();
      await this.rearm();
    }
    return this.view();
  }

  async view(): Promise<RunView> {
    const run = this.requireRun();
    return this.viewOf(run);
  }

  private viewOf(run: RunState): RunView {
    return toRunView(run, this.store.getRounds(), this.store.getAttempts(), this.env.PUBLIC_URL, this.store.getPreviews(), this.store.lastSeq());
  }

  /**
   * Serves one attempt's workspace for a preview and answers its signed link, or why not. `round`
   * null is the newest round.
   */
  async preview(round: number | null, n: number, req: PreviewRequest): Promise<Outcome<PreviewResult>> {
    const run = this.requireRun();
    const r = round === null ? this.store.getRounds().at(-1)! : this.store.getRound(round);
    if (!r) return refuse(404, "not_found", `round ${round} not found`);
    const a = this.store.getAttempt(r.number, n);
    if (!a) return refuse(404, "not_found", `attempt ${n} of round ${r.number} not found`);
    const result = await this.previewService.open(a, r, run.request.preview, req);
    await this.rearm();
    this.scheduleViewPush();
    return { ok: result };
  }

  /** Every attempt of a round at once, in parallel. */
  async previewRound(round: number, req: PreviewRequest): Promise<Outcome<PreviewResult[]>> {
    const run = this.requireRun();
    const r = this.store.getRound(round);
    if (!r) return refuse(404, "not_found", `round ${round} not found`);
    const attempts = this.store.getAttempts().filter((a) => a.round === round);
    const results = await Promise.all(attempts.map((a) => this.previewService.open(a, r, run.request.preview, req)));
    await this.rearm();
    this.scheduleViewPush();
    return { ok: results };
  }

  // ---------------------------------------------------------------- the credential gateway

  /** May the attempt's agent make a model call now? Not once its attempt is over or the run's budget spent. */
  async llmGate(round: number, n: number): Promise<Outcome<true>> {
    const run = this.requireRun();
    const a = this.store.getAttempt(round, n);
    if (!a) return refuse(404, "not_found", "no such attempt");
    if (FINAL.has(a.status)) return refuse(410, "attempt_over", `the attempt is over (${a.status}); its gateway token died with it`);
    const over = this.budgetSpent(run);
    if (over) {
      this.overBudget(over);
      await this.afterChange();
      return refuse(402, "budget", over);
    }
    return { ok: true };
  }

  /** Adds one answer's usage to the attempt; past the run's budget, every attempt still working ends. */
  async recordUsage(round: number, n: number, call: CallUsage): Promise<void> {
    const run = this.requireRun();
    for (let tries = 0; tries < 5; tries++) {
      const a = this.store.getAttempt(round, n);
      if (!a) return;
      if (this.commit(a, { usage: addUsage(a.usage ?? NO_USAGE, call) })) break;
    }
    const over = this.budgetSpent(run);
    if (over) this.overBudget(over);
    this.scheduleViewPush();
    await this.afterChange();
  }

  /** Why the run may spend no more, or null while it may. */
  private budgetSpent(run: RunState): string | null {
    const budget = run.request.limits?.budgetUsd;
    if (budget === undefined) return null;
    const spent = this.store.getAttempts().reduce((sum, a) => sum + (a.usage?.costUsd ?? 0), 0);
    return spent >= budget ? `budget: the run's model calls cost $${spent.toFixed(4)} of its $${budget} budget` : null;
  }

  private overBudget(reason: string): void {
    // An attempt past its agent (collecting its result) keeps its finished work.
    for (const a of this.store.getAttempts()) if (!FINAL.has(a.status) && a.status !== "collecting_result") this.finish(a, "failed", reason);
  }

  /**
   * How often this object was woken (GET /api/admin/runs/:id/stats). Counted: every alarm, every
   * fetch (SSE streams, live sockets) and every runner report (ingest), the calls that come without a
   * user asking; the routes' other calls (view, cancel, …) are not, nor is this read itself.
   */
  async wakeUps(): Promise<WakeUps> {
    return this.store.wakeUps();
  }

  /** Events after `afterSeq`, oldest first, as a JSON array (event data is free-form JSON). */
  async eventsJson(afterSeq: number, limit: number): Promise<string> {
    return JSON.stringify(this.store.events(afterSeq, limit));
  }

  /**
   * The event log as Server-Sent Events: every event after `afterSeq` (each with its `id:`, so a client
   * resumes with Last-Event-ID and loses or repeats nothing), then new ones as they are appended, until
   * the client goes away. The stream reads the log from storage on its own short tick, so it never
   * shares an I/O object with the alarm's steps.
   */
  override async fetch(request: Request): Promise<Response> {
    this.store.countWakeUp("requests");
    const url = new URL(request.url);
    // A share link's stream says which link it is and when that link expires; the stream ends then, or
    // when the link is revoked (closeLink).
    const link = url.searchParams.get("link");
    const linkExpiresAt = Number(url.searchParams.get("expires") ?? "0") || null;
    if (url.pathname === "/live") return this.acceptLive(request, Number(url.searchParams.get("after") ?? "0"), link, linkExpiresAt);
    if (url.pathname !== "/events") return new Response("not found", { status: 404 });
    let last = Number(url.searchParams.get("after") ?? "0");
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const encoder = new TextEncoder();
    const pump = async () => {
      let idle = 0;
      try {
        await writer.write(encoder.encode(": multishot run events\n\n"));
        for (;;) {
          if (linkExpiresAt !== null && Date.now() >= linkExpiresAt) {
            await writer.write(encoder.encode("event: link.expired\ndata: {}\n\n"));
            await writer.close();
            return;
          }
          if (link !== null && this.revokedLinks.has(link)) {
            await writer.write(encoder.encode("event: link.revoked\ndata: {}\n\n"));
            await writer.close();
            return;
          }
          const batch = this.store.events(last, 200);
          for (const e of batch) {
            await writer.write(encoder.encode(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`));
            last = e.seq;
          }
          if (batch.length === 200) continue;
          idle = batch.length ? 0 : idle + 1;
          // A comment now and then keeps proxies from closing a quiet stream.
          if (idle > 0 && idle % 60 === 0) await writer.write(encoder.encode(": keep-alive\n\n"));
          await new Promise((r) => setTimeout(r, SSE_TICK_MS));
        }
      } catch {
        // The client went away.
      }
    };
    this.ctx.waitUntil(pump());
    return new Response(readable, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" },
    });
  }

  /**
   * A live WebSocket (hibernatable: the object may sleep while sockets stay open). It first gets every
   * event after `after` (if given), then `{type: "snapshot", seq, run}`, then each new event as
   * `{type: "event", event}` and the run's view as `{type: "run", seq, run}` shortly after it changes.
   * Nothing awaits between reading the log and accepting the socket, so no event falls in between.
   */
  private acceptLive(request: Request, after: number, link: string | null = null, linkExpiresAt: number | null = null): Response {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response(JSON.stringify({ error: { code: "upgrade_required", message: "connect with a WebSocket" } }), {
        status: 426,
        headers: { "content-type": "application/json", upgrade: "websocket" },
      });
    }
    // A link revoked between the route's check and this (closeLink already ran): refuse as the route would.
    if (link !== null && this.revokedLinks.has(link)) {
      return new Response(JSON.stringify({ error: { code: "link_expired", message: "this share link has expired or was revoked" } }), {
        status: 404,
        headers: { "content-type": "application/json" },
      });
    }
    const run = this.requireRun();
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, link ? [`link:${link}`] : []);
    server.serializeAttachment({ linkExpiresAt });
    if (Number.isInteger(after) && after > 0) {
      for (let batch = this.store.events(after, 500); batch.length; batch = this.store.events(after, 500)) {
        for (const event of batch) server.send(JSON.stringify({ type: "event", event }));
        after = batch[batch.length - 1]!.seq;
      }
    }
    const view = this.viewOf(run);
    server.send(JSON.stringify({ type: "snapshot", seq: this.store.lastSeq(), run: view }));
    return new Response(null, { status: 101, webSocket: client });
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

  /** Sends to every open live socket; a socket that fails is dropped. */
  /** Closes the live sockets a share link opened (it was revoked). */
  async closeLink(linkId: string): Promise<number> {
    // Its SSE streams (held in this instance's memory, as this set is) end at their next tick.
    this.revokedLinks.add(linkId);
    const sockets = this.ctx.getWebSockets(`link:${linkId}`);
    for (const ws of sockets) {
      try {
        ws.close(4001, "link revoked");
      } catch {
        // Gone.
      }
    }
    return sockets.length;
  }

  private broadcast(message: string): void {
    const now = Date.now();
    for (const ws of this.ctx.getWebSockets()) {
      const expiresAt = (ws.deserializeAttachment() as { linkExpiresAt?: number | null } | null)?.linkExpiresAt;
      if (expiresAt && now >= expiresAt) {
        try {
          ws.close(4001, "link expired");
        } catch {
          // Gone.
        }
        continue;
      }
      try {
        ws.send(message);
      } catch {
        try {
          ws.close(1011, "send failed");
        } catch {
          // Gone.
        }
      }
    }
  }

  /** Pushes the run's view to live sockets soon after a change, at most every VIEW_PUSH_MS. */
  private scheduleViewPush(): void {
    if (this.viewPushTimer !== null || this.ctx.getWebSockets().length === 0) return;
    this.viewPushTimer = setTimeout(() => {
      this.viewPushTimer = null;
      const run = this.store.getRun();
      if (!run) return;
      const view = this.viewOf(run);
      this.broadcast(JSON.stringify({ type: "run", seq: this.store.lastSeq(), run: view }));
    }, VIEW_PUSH_MS);
  }

  /** What the run page renders: the view, each attempt's newest transcript entries, and the last event's seq. */
  async page(tail: number): Promise<{ run: RunView; seq: number; transcripts: Record<string, { total: number; entries: RunEvent[] }> }> {
    const run = await this.view();
    const transcripts: Record<string, { total: number; entries: RunEvent[] }> = {};
    for (const r of run.rounds) {
      for (const a of r.attempts) transcripts[`${r.number}:${a.number}`] = this.store.transcript(r.number, a.number, tail);
    }
    return { run, seq: this.store.lastSeq(), transcripts };
  }

  /** One attempt's whole transcript as plain text, one entry per paragraph. */
  async transcriptText(round: number, attempt: number): Promise<string | null> {
    if (!this.store.getAttempt(round, attempt)) return null;
    const { entries } = this.store.transcript(round, attempt, 1_000_000);
    return entries.map((e) => `${new Date(e.at).toISOString()} ${transcriptLine(e)}`).join("\n");
  }

  /** Cancels every attempt that has not ended; their sandboxes are deleted. */
  async cancel(reason = "cancelled by request"): Promise<RunView> {
    if (this.requireRun().status === "running") this.setRunStatus("cancelled", reason);
    for (const a of this.store.getAttempts()) {
      if (!FINAL.has(a.status)) this.finish(a, "cancelled", reason);
      // A cancelled run keeps no sandbox, not even those of finished attempts.
      else this.release(a);
    }
    // A winner still being packed will not be: its sandbox is going.
    for (const r of this.store.getRounds()) {
      if (r.winnerStatus === "packing") {
        this.putRound({ ...r, winnerStatus: "failed", winnerError: reason });
        this.event(r.number, r.winnerAttempt, "winner.pack_failed", { try: r.pack?.try ?? null, reason, final: true });
        this.store.unschedule(winnerKey(r.number));
        if (r.pack?.uploadId) this.ctx.waitUntil(this.abortUpload(r.number, r.pack.uploadId));
      }
    }
    await this.afterChange();
    return this.view();
  }

  async cancelAttempt(round: number, n: number, reason = "cancelled by request"): Promise<RunView | null> {
    this.requireRun();
    const a = this.store.getAttempt(round, n);
    if (!a) return null;
    if (!FINAL.has(a.status)) this.finish(a, "cancelled", reason);
    await this.afterChange();
    return this.view();
  }

  // ---------------------------------------------------------------- rounds and winners

  /**
   * Picks a round's winner: its workspace is packed and streamed to R2 (see packStep), the round's other
   * sandboxes are given back now, and the winner's once its tarball is safe.
   */
  async pickWinner(roundNo: number, attemptNo: number): Promise<Outcome<RunView>> {
    const round = this.store.getRound(roundNo);
    if (!round) return refuse(404, "not_found", `round ${roundNo} not found`);
    const winner = this.store.getAttempt(roundNo, attemptNo);
    if (!winner) return refuse(404, "not_found", `attempt ${attemptNo} of round ${roundNo} not found`);
    if (round.winnerAttempt !== null && round.winnerStatus !== "failed") {
      return refuse(409, "winner_already_picked", `round ${roundNo} already has a winner: attempt ${round.winnerAttempt}`);
    }
    if (winner.status !== "done") {
      return refuse(409, "attempt_not_done", `attempt ${attemptNo} is ${winner.status}, only a done attempt can win`);
    }
    if (!winner.sandboxId || winner.cleanupPending || winner.sandboxDeleted) {
      return refuse(409, "workspace_gone", `attempt ${attemptNo}'s sandbox is gone, so its workspace cannot be packed`);
    }
    this.choose(round, winner);
    await this.afterChange();
    return { ok: await this.view() };
  }

  /** The next round: N fresh attempts seeded from a stored winner (the newest round's by default). */
  async startRound(req: RoundRequest): Promise<Outcome<RunView>> {
    const run = this.requireRun();
    const rounds = this.store.getRounds();
    if (rounds.some((r) => r.status === "running")) {
      return refuse(409, "round_running", "a round is still running: wait for it to finish or cancel it");
    }
    const maxRounds = run.request.limits?.maxRounds;
    if (maxRounds !== undefined && rounds.length >= maxRounds) {
      return refuse(409, "round_limit", `this run may have ${maxRounds} ${maxRounds === 1 ? "round" : "rounds"} (limits.maxRounds)`);
    }
    // A spent budget refuses every model call: a new round's agents could do nothing.
    const spent = this.budgetSpent(run);
    if (spent) return refuse(409, "budget_spent", `${spent}: no new round`);
    const fromNo = req.from ?? rounds[rounds.length - 1]!.number;
    const from = this.store.getRound(fromNo);
    if (!from) return refuse(404, "not_found", `round ${fromNo} not found`);
    if (from.winnerStatus !== "stored" || !from.tarball) {
      const why = from.winnerStatus === "packing" ? "is still being packed" : from.winnerStatus === "failed" ? `failed to pack: ${from.winnerError}` : "has not been picked";
      return refuse(409, "no_winner", `round ${fromNo}'s winner ${why}`);
    }
    const attempts = req.attempts ?? req.variations?.length ?? run.request.attempts;
    if (req.variations && req.variations.length !== attempts) {
      return refuse(400, "validation_failed", `variations must have one entry per attempt (${attempts})`);
    }
    this.openRound({
      number: rounds.length + 1,
      prompt: req.prompt,
      fromRound: fromNo,
      attempts,
      variations: req.variations ?? null,
      preview: req.preview ?? null,
    });
    if (run.status !== "running") this.setRunStatus("running", null);
    await this.afterChange();
    return { ok: await this.view() };
  }

  /** Where the upload route puts parts of a winner's tarball, while that packing try is current. */
  async uploadTarget(roundNo: number, packTry: number): Promise<{ key: string; uploadId: string } | null> {
    const round = this.store.getRound(roundNo);
    if (!round || round.winnerStatus !== "packing" || round.pack?.try !== packTry || !round.pack.uploadId) return null;
    return { key: tarballKey(this.requireRun().id, roundNo), uploadId: round.pack.uploadId };
  }

  async recordPart(roundNo: number, packTry: number, part: UploadedPart): Promise<boolean> {
    if (!(await this.uploadTarget(roundNo, packTry))) return false;
    this.store.recordPart(roundNo, packTry, part);
    this.event(roundNo, this.store.getRound(roundNo)!.winnerAttempt, "winner.part", { try: packTry, part: part.part, size: part.size });
    return true;
  }

  /**
   * Completes a packing try: every part must have arrived (each was checked against its SHA-256 as it
   * streamed in) and add up to the size the sandbox measured. Only then does the object exist in R2.
   */
  async completeWinner(roundNo: number, packTry: number, claim: { parts: number; size: number; sha256: string }): Promise<Outcome<{ size: number }>> {
    const target = await this.uploadTarget(roundNo, packTry);
    if (!target) return refuse(410, "gone", "this upload is not the current one");
    const parts = this.store.parts(roundNo, packTry);
    const expected = Array.from({ length: claim.parts }, (_, i) => i + 1);
    if (parts.length !== claim.parts || !parts.every((p, i) => p.part === expected[i])) {
      return refuse(409, "parts_missing", `expected parts 1..${claim.parts}, have ${parts.map((p) => p.part).join(",") || "none"}`);
    }
    const total = parts.reduce((n, p) => n + p.size, 0);
    if (total !== claim.size) return refuse(409, "size_mismatch", `parts add up to ${total} bytes, not ${claim.size}`);
    const object = await this.env.ARTIFACTS.resumeMultipartUpload(target.key, target.uploadId).complete(
      parts.map((p) => ({ partNumber: p.part, etag: p.etag })),
    );
    if (object.size !== claim.size) return refuse(409, "size_mismatch", `R2 holds ${object.size} bytes, not ${claim.size}`);
    const round = this.store.getRound(roundNo)!;
    if (round.winnerStatus !== "packing" || round.pack?.try !== packTry) return refuse(410, "gone", "this upload is not the current one");
    this.putRound({
      ...round,
      winnerStatus: "stored",
      winnerError: null,
      tarball: { key: target.key, size: claim.size, sha256: claim.sha256 },
    });
    this.event(roundNo, round.winnerAttempt, "winner.stored", { size: claim.size, sha256: claim.sha256, parts: claim.parts });
    // The tarball is safe: the winner's sandbox can go.
    const winner = this.store.getAttempt(roundNo, round.winnerAttempt!);
    if (winner) this.release(winner);
    this.poke(winnerKey(roundNo));
    await this.afterChange();
    return { ok: { size: claim.size } };
  }

  /** A report from an attempt's runner: agent output lines, or a job's exit code. */
  async ingest(round: number, n: number, report: IngestReport): Promise<{ accepted: boolean }> {
    this.store.countWakeUp("requests");
    const a = this.store.getAttempt(round, n);
    const now = Date.now();
    if (report.job === "pack") {
      const r = this.store.getRound(round);
      if (!r || r.winnerStatus !== "packing" || r.winnerAttempt !== n || report.kind !== "exit") return { accepted: false };
      this.store.recordExit(round, n, "pack", report.try, report.exitCode ?? 1, now);
      this.poke(winnerKey(round));
      await this.rearm();
      return { accepted: true };
    }
    if (!a || FINAL.has(a.status)) return { accepted: false };
    if (report.kind === "output" && report.job === "agent" && report.try === a.jobTry) {
      this.recordAgentOutput(a, report.lines ?? [], report.first ?? 0);
    } else if (report.kind === "exit" && typeof report.exitCode === "number") {
      this.store.recordExit(round, n, report.job, report.try, report.exitCode, now);
      this.poke(attemptKey(round, n));
    }
    // The step runs in the alarm, not here: work started inside this call would belong to its request,
    // and a request's outstanding I/O does not survive the request's end.
    await this.rearm();
    return { accepted: true };
  }

  // ---------------------------------------------------------------- the alarm: run whatever is due

  /**
   * Runs every due timer's handler, in parallel, until nothing is due, then sets the alarm to the next
   * timer. Only the alarm runs steps; anything else that wants work done schedules a timer and re-arms
   * (work started inside an RPC call belongs to that call's request and may not outlive it).
   */
  override async alarm(): Promise<void> {
    this.store.countWakeUp("alarms");
    // Each due key starts as soon as it is due, never waiting for a slower attempt's step to finish.
    const running = new Map<string, Promise<void>>();
    try {
      for (;;) {
        for (const key of this.store.dueKeys(Date.now())) {
          if (running.has(key) || this.inFlight.has(key)) continue;
          running.set(
            key,
            this.dispatch(key).finally(() => running.delete(key)),
          );
        }
        if (running.size === 0) break;
        // Wake when a step ends, or after a short tick, so that a slow step (a create, a long read)
        // never holds back a report or a cancel that made another attempt's step due.
        await Promise.race([...running.values(), new Promise((r) => setTimeout(r, ALARM_TICK_MS))]);
        void this.mirror();
      }
    } finally {
      await this.mirror();
      await this.rearm();
    }
  }

  private async dispatch(key: string): Promise<void> {
    this.inFlight.add(key);
    // The lease: if this isolate dies mid-step, the key falls due again and a later wake-up retries it.
    const lease = Date.now() + STEP_LEASE_MS;
    this.store.schedule(key, lease);
    try {
      const [kind, round, n] = key.split(":");
      if (kind === "attempt") await this.step(Number(round), Number(n));
      else if (kind === "deadline") await this.deadline(Number(round), Number(n));
      else if (kind === "winner") await this.packStep(Number(round));
      else if (kind === "hook") await this.hooks.onTimer(key);
      else if (kind === "preview") {
        const next = await this.previewService.idle(Number(round), Number(n));
        if (next === null) this.store.unschedule(key);
        else this.store.schedule(key, next);
        this.scheduleViewPush();
      }
      // The mirror key needs no handler: the alarm mirrors after every step.
      else this.store.unschedule(key);
    } catch (err) {
      console.error(`step ${key} failed unexpectedly`, err instanceof Error ? err.stack : err);
      this.store.schedule(key, Date.now() + 5_000);
    } finally {
      this.inFlight.delete(key);
      // A handler that neither rescheduled nor removed its key (its work was superseded) looks again soon.
      if (this.store.dueAt(key) === lease) this.store.schedule(key, Date.now() + 1_000);
      if (this.poked.delete(key)) this.store.schedule(key, Date.now());
    }
  }

  /** Wake the key's handler now (or right after it finishes, if it is running). */
  private poke(key: string): void {
    if (this.inFlight.has(key)) this.poked.add(key);
    else this.store.schedule(key, Date.now());
  }

  private async rearm(): Promise<void> {
    const next = this.store.nextDue();
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(next, Date.now()));
  }

  /** Mirrors changed rows to D1; calls queue behind each other so two batches never race. */
  private mirror(): Promise<void> {
    this.mirrorChain = this.mirrorChain.then(() => this.mirrorOnce());
    return this.mirrorChain;
  }

  private async mirrorOnce(): Promise<void> {
    const changed = this.store.dirty();
    if (!changed.run && changed.rounds.length === 0 && changed.attempts.length === 0) return;
    try {
      await mirrorRunState(db(this.env.DB), changed, this.requireRun().id);
      this.store.markMirrored(changed);
    } catch (err) {
      console.error("mirroring to D1 failed; will retry", err instanceof Error ? err.message : err);
      this.store.scheduleNoLaterThan(MIRROR_KEY, Date.now() + 5_000);
    }
  }

  private async afterChange(): Promise<void> {
    await this.mirror();
    await this.rearm();
  }

  // ---------------------------------------------------------------- one attempt's step

  private async step(round: number, n: number): Promise<void> {
    const a = this.store.getAttempt(round, n);
    if (!a) return this.store.unschedule(attemptKey(round, n));
    if (FINAL.has(a.status)) return this.cleanup(a);
    try {
      switch (a.status) {
        case "queued":
          this.commit(a, { status: "creating_sandbox" });
          return this.store.schedule(attemptKey(round, n), Date.now());
        case "creating_sandbox":
          return await this.createSandbox(a);
        default:
          return await this.advanceJob(a);
      }
    } catch (err) {
      this.onStepError(a, err);
    }
  }

  /** A failed Daytona call: retried with backoff when it may pass, otherwise the attempt fails now. */
  private onStepError(stepStart: AttemptState, err: unknown): void {
    // The step may have written progress before it failed; what matters is whether it is still this step.
    const a = this.store.getAttempt(stepStart.round, stepStart.number);
    if (!a || FINAL.has(a.status) || a.status !== stepStart.status || a.jobTry !== stepStart.jobTry) return;
    const reason = describeSandboxError(err);
    if (isSandboxGone(err) && a.sandboxId) {
      this.fail(a, `the sandbox disappeared while ${a.status.replace(/_/g, " ")}: ${reason}`);
    } else if (isRetryableSandboxError(err) && a.job === JOB_OF[a.status]) {
      // A job is (being) started: a failed poll or read says nothing about the job itself. Look again
      // later; starting it again would run it twice. Its deadline bounds how long this can go on.
      this.event(a.round, a.number, "sandbox.unreachable", { reason });
      this.store.schedule(attemptKey(a.round, a.number), Date.now() + Math.max(retryPolicy(this.env).pollMs, backoffMs(retryPolicy(this.env), 0)));
    } else if (isRetryableSandboxError(err)) {
      this.retryOrFail(a, `${a.status.replace(/_/g, " ")}: ${reason}`);
    } else {
      this.fail(a, `${a.status.replace(/_/g, " ")} failed: ${reason}`);
    }
  }

  private retryOrFail(a: AttemptState, reason: string): void {
    const policy = retryPolicy(this.env);
    const current = this.store.getAttempt(a.round, a.number);
    if (!current || current.version !== a.version) return; // superseded (cancelled, reported)
    if (current.retries >= policy.limit) {
      this.fail(current, `${reason} (gave up after ${current.retries} ${current.retries === 1 ? "retry" : "retries"})`);
      return;
    }
    const delay = backoffMs(policy, current.retries);
    this.commit(current, { retries: current.retries + 1, job: null, cmdId: null, jobTry: current.jobTry + 1 });
    this.event(a.round, a.number, "attempt.retry", { reason, retry: current.retries + 1, inMs: delay });
    this.store.schedule(attemptKey(a.round, a.number), Date.now() + delay);
  }

  private async createSandbox(a: AttemptState): Promise<void> {
    const run = this.requireRun();
    const labels = {
      "multishot-run": run.id,
      "multishot-round": String(a.round),
      "multishot-attempt": `${run.id}:${a.round}:${a.number}`,
      "multishot-account": run.accountId,
    };
    // A create that was asked for before may have made a sandbox whose id never reached us (a crash, a
    // timeout, a reset): find it by its labels and adopt it, and delete any that cannot be used.
    if (a.createRequestedAt !== null) {
      const found = await this.sandboxes.findByLabels(labels);
      const usable = found.filter((s) => s.state === "started" || s.state === "starting" || s.state === "creating");
      const keep = usable[0];
      await Promise.all(found.filter((s) => s !== keep).map((s) => this.sandboxes.delete(s.id)));
      if (keep) {
        this.event(a.round, a.number, "sandbox.adopted", { sandboxId: keep.id });
        return this.sandboxReady(a, keep.id);
      }
    }
    const requested = this.commit(a, { createRequestedAt: Date.now() });
    if (!requested) return;
    const agent = AGENTS[run.request.agent];
    const spec: SandboxSpec = {
      labels,
      envVars: {
        ...agent.sandboxEnv(this.env),
        MULTISHOT_RUN: run.id,
        MULTISHOT_ROUND: String(a.round),
        MULTISHOT_ATTEMPT: String(a.number),
      },
      autoStopInterval: AUTO_STOP_MINUTES,
      autoDeleteInterval: AUTO_DELETE_MINUTES,
      ...(this.env.DAYTONA_SNAPSHOT ? { snapshot: this.env.DAYTONA_SNAPSHOT } : {}),
    };
    const id = await this.sandboxes.create(spec);
    this.sandboxReady(requested, id);
  }

  private sandboxReady(a: AttemptState, sandboxId: string): void {
    const next = this.commit(a, { sandboxId, status: "installing_agent" });
    if (!next) {
      // The attempt ended while the sandbox was being made (a cancel): it must not outlive it.
      const now = this.store.getAttempt(a.round, a.number);
      if (now) this.commit(now, { cleanupPending: true, sandboxId: now.sandboxId ?? sandboxId });
      this.store.schedule(attemptKey(a.round, a.number), Date.now());
      return;
    }
    this.event(a.round, a.number, "sandbox.created", { sandboxId });
    this.store.schedule(attemptKey(a.round, a.number), Date.now());
  }

  /** The phases that run a job in the sandbox: start it once, then wait for its exit report or poll. */
  private async advanceJob(a: AttemptState): Promise<void> {
    const job = JOB_OF[a.status];
    const sandboxId = a.sandboxId;
    if (!job || !sandboxId) return this.fail(a, `no job for ${a.status}`);
    const key = attemptKey(a.round, a.number);

    if (a.job !== job || !a.cmdId) return this.startJob(a, job, sandboxId);

    const reported = this.store.reportedExit(a.round, a.number, job, a.jobTry);
    const exitCode =
      reported?.exitCode ?? (await this.sandboxes.commandExitCode(sandboxId, SESSION, a.cmdId));
    if (exitCode === undefined) {
      // Unless the attempt changed meanwhile (a cancel, a deadline: they scheduled their own wake-up).
      // Early polls for each job started, a retried one too: counted from its own start.
      const since = a.jobStartedAt ?? a.timestamps[a.status] ?? Date.now();
      if (this.store.getAttempt(a.round, a.number)?.version === a.version) this.store.schedule(key, Date.now() + nextPollMs(retryPolicy(this.env), Date.now() - since));
      return;
    }
    if (!reported) this.event(a.round, a.number, "job.exit_polled", { job, exitCode });
    await this.onJobExit(a, job, sandboxId, exitCode);
  }

  private async startJob(a: AttemptState, job: JobName, sandboxId: string): Promise<void> {
    const run = this.requireRun();
    let homeDir = a.homeDir;
    if (job === "install" || !homeDir) {
      // Everything the attempt will need goes up once, in one request, before its first job.
      homeDir ??= await this.homeDir(sandboxId);
      const files = [
        { path: ".multishot/runner.mjs", content: runnerSource },
        { path: ".multishot/run-job.sh", content: jobRunnerSource },
        { path: ".multishot/prompt.txt", content: this.instructionsFor(a).prompt },
        ...(await Promise.all(
          (["install", "seed", "agent", "collect"] as const).map(async (j) => ({
            path: `.multishot/jobs/${j}.sh`,
            content: await this.jobScript(run.request, a, j),
          })),
        )),
        { path: ".multishot/jobs/verify.sh", content: verifyScript(run.request) },
        ...AGENTS[run.request.agent].files(),
      ];
      await this.sandboxes.uploadFiles(sandboxId, files.map((f) => ({ path: `${homeDir}/${f.path}`, content: f.content })));
    }

    // "Starting" is written down before the command is, so that a step repeated after a crash looks
    // for the command it may have started (by its marker) instead of starting it twice.
    let current: AttemptState | null = a;
    if (a.job !== job) {
      current = this.commit(a, { job, cmdId: null, homeDir });
      if (!current) return;
    }
    const existing = a.job === job ? await this.sandboxes.findCommand(sandboxId, SESSION, jobMarker(job, a.jobTry)) : null;
    const report = await ingestUrl(this.env, run.id, a.round, a.number);
    const cmdId = existing?.cmdId ?? (await this.sandboxes.startCommand(sandboxId, SESSION, jobCommand(job, a.jobTry, report)));

    const minutes = job === "agent" ? (run.request.limits?.attemptMinutes ?? DEFAULT_ATTEMPT_MINUTES) : SETUP_JOB_MINUTES;
    const now = Date.now();
    const started = this.commit(current, { cmdId, jobStartedAt: now, deadlineAt: now + minutes * 60_000 });
    if (!started) return;
    this.event(a.round, a.number, "job.started", { job, try: a.jobTry });
    this.store.schedule(deadlineKey(a.round, a.number), now + minutes * 60_000);
    // The exit report normally wakes us; the poll is the safety net (soon at first, then every pollMs).
    this.store.schedule(attemptKey(a.round, a.number), now + nextPollMs(retryPolicy(this.env), 0));
  }

  private async onJobExit(a: AttemptState, job: JobName, sandboxId: string, exitCode: number): Promise<void> {
    const key = attemptKey(a.round, a.number);
    if (job === "agent") await this.recoverTranscript(a, sandboxId);
    if (job === "collect") {
      if (exitCode !== 0) return this.fail(a, `collecting the result failed (exit ${exitCode}): ${await this.jobTail(sandboxId, job)}`);
      return this.collectResult(a, sandboxId);
    }
    if (exitCode === 0) {
      const next = PHASE_AFTER[a.status]!;
      const patch: Partial<AttemptState> = { status: next };
      if (job === "agent") patch.exitCode = 0;
      if (this.commit(a, patch)) this.store.schedule(key, Date.now());
      return;
    }
    const tail = await this.jobTail(sandboxId, job);
    switch (job) {
      case "install":
        if (exitCode === EXIT_TRANSIENT) return this.retryOrFail(a, `agent install hit a network error: ${tail}`);
        return this.fail(a, `agent install failed (exit ${exitCode}): ${tail}`);
      case "seed":
        return this.fail(a, `seeding the workspace failed (exit ${exitCode}): ${tail}`);
      case "agent": {
        const summary = this.agentSummary(a);
        const why = summary?.isError && summary.finalMessage ? summary.finalMessage : tail || "no output";
        const how = exitCode > 128 ? `was killed by signal ${exitCode - 128}` : `exited with code ${exitCode}`;
        return this.fail(a, `the agent ${how}: ${why}`, { exitCode, summary });
      }
    }
  }

  /** Reads the diff, the verify result and the agent log, stores patch and log in R2, and ends the attempt. */
  private async collectResult(a: AttemptState, sandboxId: string): Promise<void> {
    const run = this.requireRun();
    // One round trip for everything: numstat, verify exit and tail, the patch, the agent's log.
    const sep = `@@multishot-${crypto.randomUUID()}@@`;
    const res = await this.sandboxes.exec(
      sandboxId,
      `cd "${MS_DIR}" && cat diff.numstat; echo ${sep}; cat verify.exit 2>/dev/null; echo ${sep}; ` +
        `tail -c 4000 verify.out 2>/dev/null; echo ${sep}; head -c ${MAX_ARTIFACT_BYTES} diff.patch; echo ${sep}; ` +
        `head -c ${MAX_ARTIFACT_BYTES} jobs/agent.out`,
      120,
    );
    const [numstat = "", verifyExit = "", verifyTail = "", patch = "", log = ""] = res.output.split(`${sep}\n`);
    const diffStats = parseNumstat(numstat);
    const verify: VerifyResult | null =
      run.request.verify && verifyExit.trim() !== ""
        ? {
            command: run.request.verify,
            exitCode: Number(verifyExit.trim()),
            passed: Number(verifyExit.trim()) === 0,
            outputTail: verifyTail.slice(-4000),
          }
        : null;

    await Promise.all([
      this.env.ARTIFACTS.put(attemptArtifactKey(run.id, a.round, a.number, "diff.patch"), this.redact(patch), { httpMetadata: { contentType: "text/x-diff" } }),
      this.env.ARTIFACTS.put(attemptArtifactKey(run.id, a.round, a.number, "agent.log"), this.redact(log), { httpMetadata: { contentType: "application/x-ndjson" } }),
    ]);

    const summary = this.agentSummary(a);
    const done = this.commit(a, { status: "done", diffStats, verify, summary, deadlineAt: null });
    if (!done) return;
    this.store.unschedule(deadlineKey(a.round, a.number));
    this.store.unschedule(attemptKey(a.round, a.number));
    // The "first-verified" policy: the first attempt whose check passes wins, the others are cancelled.
    const round = this.store.getRound(a.round)!;
    if (run.request.winner === "first-verified" && verify?.passed && round.winnerAttempt === null) this.choose(round, done);
    this.settle();
  }

  private async deadline(round: number, n: number): Promise<void> {
    this.store.unschedule(deadlineKey(round, n));
    const a = this.store.getAttempt(round, n);
    if (!a || FINAL.has(a.status) || a.deadlineAt === null || a.deadlineAt > Date.now()) return;
    const run = this.requireRun();
    const minutes = a.job === "agent" ? (run.request.limits?.attemptMinutes ?? DEFAULT_ATTEMPT_MINUTES) : SETUP_JOB_MINUTES;
    // Failing the attempt deletes its sandbox, which ends the command and everything it started.
    this.fail(a, `timed out: ${a.job ?? "the attempt"} ran longer than ${minutes} minute${minutes === 1 ? "" : "s"} and was stopped`);
  }

  // ---------------------------------------------------------------- packing a winner

  private openRound(r: {
    number: number;
    prompt: string;
    fromRound: number | null;
    attempts: number;
    variations: RoundState["variations"];
    baseWinner?: RoundState["baseWinner"];
    preview?: RoundState["preview"];
  }): void {
    const now = Date.now();
    this.putRound({
      ...r,
      status: "running",
      winnerAttempt: null,
      winnerStatus: null,
      winnerError: null,
      tarball: null,
      pack: null,
      createdAt: now,
      finishedAt: null,
      updatedAt: now,
    });
    for (let n = 1; n <= r.attempts; n++) {
      this.store.putAttempt(newAttempt(r.number, n, now));
      this.store.schedule(attemptKey(r.number, n), now);
    }
    if (r.number > 1) this.event(r.number, null, "round.started", { fromRound: r.fromRound, attempts: r.attempts });
  }

  private putRound(round: RoundState): void {
    this.store.putRound({ ...round, winnerError: round.winnerError && this.redact(round.winnerError), updatedAt: Date.now() });
  }

  /** Marks the winner, ends the round's other attempts and gives their sandboxes back. */
  private choose(round: RoundState, winner: AttemptState): void {
    this.putRound({
      ...round,
      winnerAttempt: winner.number,
      winnerStatus: "packing",
      winnerError: null,
      pack: { try: (round.pack?.try ?? 0) + 1, retries: 0, uploadId: null, cmdId: null, startedAt: null },
    });
    this.event(round.number, winner.number, "winner.selected", { attempt: winner.number });
    for (const other of this.store.getAttempts(round.number)) {
      if (other.number === winner.number) continue;
      if (!FINAL.has(other.status)) this.finish(other, "cancelled", `attempt ${winner.number} was picked as the winner`);
      else this.release(other);
    }
    this.store.schedule(winnerKey(round.number), Date.now());
  }

  /** Gives an ended attempt's sandbox back (deleted by its next step). */
  private release(a: AttemptState): void {
    const current = this.store.getAttempt(a.round, a.number);
    if (!current || !current.sandboxId || current.cleanupPending || current.sandboxDeleted) return;
    this.commit(current, { cleanupPending: true });
    this.store.schedule(attemptKey(a.round, a.number), Date.now());
  }

  /**
   * One try packs the winner's workspace in its sandbox and streams it to an R2 multipart upload through
   * the Worker's upload route. A try that fails (the job dies, an upload breaks) is aborted, so no
   * partial object ever becomes visible, and the next try starts a fresh upload after a backoff.
   */
  private async packStep(roundNo: number): Promise<void> {
    const key = winnerKey(roundNo);
    const round = this.store.getRound(roundNo);
    const pack = round?.pack;
    if (!round || !pack || round.winnerStatus !== "packing") return this.store.unschedule(key);
    const winner = this.store.getAttempt(roundNo, round.winnerAttempt!)!;
    const run = this.requireRun();
    const sandboxId = winner.sandboxId!;
    try {
      if (!pack.uploadId) {
        // A finished attempt's sandbox may have been stopped for idling since: start it again.
        await this.sandboxes.ensureStarted(sandboxId);
        const upload = await this.env.ARTIFACTS.createMultipartUpload(tarballKey(run.id, roundNo), {
          httpMetadata: { contentType: "application/gzip" },
        });
        this.putRound({ ...round, pack: { ...pack, uploadId: upload.uploadId, cmdId: null } });
        const url = await uploadUrl(this.env, run.id, roundNo, pack.try, Date.now() + UPLOAD_URL_TTL_MS);
        const homeDir = winner.homeDir ?? (await this.homeDir(sandboxId));
        await this.sandboxes.uploadFiles(sandboxId, [
          { path: `${homeDir}/.multishot/jobs/pack.sh`, content: packScript(run.request, url, retryPolicy(this.env).partBytes, pack.try) },
        ]);
        const report = await ingestUrl(this.env, run.id, roundNo, winner.number);
        const cmdId = await this.sandboxes.startCommand(sandboxId, SESSION, jobCommand("pack", pack.try, report));
        const now = this.store.getRound(roundNo)!;
        if (now.pack?.try === pack.try) this.putRound({ ...now, pack: { ...now.pack, cmdId, startedAt: Date.now() } });
        this.event(roundNo, winner.number, "winner.packing", { try: pack.try });
        return this.store.schedule(key, Date.now() + retryPolicy(this.env).pollMs);
      }
      if (pack.startedAt !== null && Date.now() - pack.startedAt > PACK_MINUTES * 60_000) {
        await this.sandboxes.deleteSession(sandboxId, SESSION).catch(() => {});
        return await this.retryPack(roundNo, pack.try, `packing the winner took longer than ${PACK_MINUTES} minutes`);
      }
      const reported = this.store.reportedExit(roundNo, winner.number, "pack", pack.try);
      const exitCode = reported?.exitCode ?? (pack.cmdId ? await this.sandboxes.commandExitCode(sandboxId, SESSION, pack.cmdId) : 1);
      if (exitCode === undefined) return this.store.schedule(key, Date.now() + retryPolicy(this.env).pollMs);
      if (this.store.getRound(roundNo)!.winnerStatus === "stored") return this.store.unschedule(key);
      await this.retryPack(roundNo, pack.try, `packing the winner failed (exit ${exitCode}): ${await this.jobTail(sandboxId, "pack")}`);
    } catch (err) {
      await this.retryPack(roundNo, pack.try, `packing the winner failed: ${describeSandboxError(err)}`);
    }
  }

  private async abortUpload(roundNo: number, uploadId: string): Promise<void> {
    try {
      await this.env.ARTIFACTS.resumeMultipartUpload(tarballKey(this.requireRun().id, roundNo), uploadId).abort();
    } catch (err) {
      console.error("aborting a failed upload failed (R2 expires it)", err instanceof Error ? err.message : err);
    }
  }

  private async retryPack(roundNo: number, packTry: number, reason: string): Promise<void> {
    const before = this.store.getRound(roundNo);
    // Only the try that failed may be retried: the round may have been stored or moved on meanwhile.
    if (!before || before.winnerStatus !== "packing" || before.pack?.try !== packTry) return;
    if (before.pack.uploadId) await this.abortUpload(roundNo, before.pack.uploadId);
    const round = this.store.getRound(roundNo)!;
    if (round.winnerStatus !== "packing" || round.pack?.try !== packTry) return;
    const pack = round.pack;
    const policy = retryPolicy(this.env);
    this.event(roundNo, round.winnerAttempt, "winner.pack_failed", { try: pack.try, reason });
    if (pack.retries >= policy.limit) {
      this.putRound({ ...round, winnerStatus: "failed", winnerError: reason });
      return this.store.unschedule(winnerKey(roundNo));
    }
    this.putRound({ ...round, pack: { try: pack.try + 1, retries: pack.retries + 1, uploadId: null, cmdId: null, startedAt: null } });
    this.store.schedule(winnerKey(roundNo), Date.now() + backoffMs(policy, pack.retries));
  }

  // ---------------------------------------------------------------- endings

  private fail(a: AttemptState, reason: string, extra: Partial<AttemptState> = {}): void {
    this.finish(a, "failed", reason, extra);
  }

  /** Ends an attempt. Failed and cancelled attempts give their sandbox back at once. */
  private finish(a: AttemptState, status: "failed" | "cancelled", reason: string, extra: Partial<AttemptState> = {}): void {
    const current = this.store.getAttempt(a.round, a.number);
    if (!current || FINAL.has(current.status)) return;
    this.commit(current, { ...extra, status, error: reason, cleanupPending: true, deadlineAt: null });
    this.store.unschedule(deadlineKey(a.round, a.number));
    this.store.schedule(attemptKey(a.round, a.number), Date.now());
    this.settle();
  }

  /** Deletes an ended attempt's sandbox (and any other carrying its labels); a failed delete is retried. */
  private async cleanup(a: AttemptState): Promise<void> {
    const key = attemptKey(a.round, a.number);
    if (!a.cleanupPending) return this.store.unschedule(key);
    const run = this.requireRun();
    try {
      if (a.sandboxId) await this.sandboxes.delete(a.sandboxId);
      if (a.createRequestedAt !== null) {
        const strays = await this.sandboxes.findByLabels({ "multishot-attempt": `${run.id}:${a.round}:${a.number}` });
        await Promise.all(strays.map((s) => this.sandboxes.delete(s.id)));
      }
      const current = this.store.getAttempt(a.round, a.number);
      if (current) this.commit(current, { cleanupPending: false, sandboxDeleted: true });
      this.event(a.round, a.number, "sandbox.deleted", { sandboxId: a.sandboxId });
      this.store.unschedule(key);
    } catch (err) {
      // Backing off up to the cap; the scheduled sweep is the net behind this, so the object's alarm
      // never spins on a delete that keeps failing.
      const current = this.store.getAttempt(a.round, a.number);
      const tries = (current?.cleanupTries ?? 0) + 1;
      if (current) this.commit(current, { cleanupTries: tries });
      const reason = describeSandboxError(err);
      if (tries >= CLEANUP_TRIES) {
        this.event(a.round, a.number, "sandbox.delete_failed", { sandboxId: a.sandboxId, reason, tries });
        if (current) this.commit(this.store.getAttempt(a.round, a.number)!, { cleanupPending: false });
        return this.store.unschedule(key);
      }
      console.error(`deleting the sandbox of ${key} failed; will retry`, reason);
      this.store.schedule(key, Date.now() + backoffMs(retryPolicy(this.env), tries));
    }
  }

  /** When every attempt of the newest round has ended, the round is finished and the run's status follows. */
  private settle(): void {
    const run = this.requireRun();
    const rounds = this.store.getRounds();
    const latest = rounds[rounds.length - 1];
    if (!latest || latest.status !== "running") return;
    const all = this.store.getAttempts(latest.number);
    if (!all.every((a) => FINAL.has(a.status))) return;
    const now = Date.now();
    this.putRound({ ...latest, status: all.every((a) => a.status === "cancelled") ? "cancelled" : "finished", finishedAt: now });
    this.event(latest.number, null, "round.finished", { attempts: all.map((a) => ({ number: a.number, status: a.status })) });
    if (run.status !== "running") return;
    const status: RunStatus = all.some((a) => a.status === "done")
      ? "succeeded"
      : all.every((a) => a.status === "cancelled")
        ? "cancelled"
        : "failed";
    this.setRunStatus(status, status === "failed" ? "every attempt failed" : null);
  }

  private setRunStatus(status: RunStatus, error: string | null): void {
    const run = this.requireRun();
    const now = Date.now();
    this.store.putRun({ ...run, status, error, updatedAt: now, finishedAt: status === "running" ? null : now });
    this.event(null, null, "run.status", { status, error });
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Writes a change to an attempt unless the attempt changed since `prev` was read (a cancel or another
   * step got there first); returns the new state, or null when `prev` was superseded.
   */
  private commit(prev: AttemptState, patch: Partial<AttemptState>): AttemptState | null {
    const current = this.store.getAttempt(prev.round, prev.number);
    if (!current || current.version !== prev.version) return null;
    const now = Date.now();
    const next: AttemptState = { ...current, ...redactDeep(patch, this.redact), version: current.version + 1, updatedAt: now };
    if (patch.status && patch.status !== current.status) {
      next.timestamps = { ...current.timestamps, [patch.status]: now };
      this.event(prev.round, prev.number, "attempt.status", {
        from: current.status,
        to: patch.status,
        ...(next.error && FINAL.has(patch.status) ? { reason: next.error } : {}),
      });
    }
    this.store.putAttempt(next);
    return next;
  }

  private event(round: number | null, attempt: number | null, type: string, data: unknown): void {
    const e = { at: Date.now(), round, attempt, type, data: redactDeep(data, this.redact) };
    const seq = this.store.appendEvent(e);
    if (this.ctx.getWebSockets().length) {
      this.broadcast(JSON.stringify({ type: "event", event: { seq, ...e } }));
      // A transcript entry changes no view: the event itself is what live readers need.
      if (!type.startsWith("agent.")) this.scheduleViewPush();
    }
    try {
      this.hooks.onEvent({ seq, ...e });
    } catch (err) {
      console.error(`hook for event ${type} failed`, err instanceof Error ? err.stack : err);
    }
  }

  /** Records lines of the agent's stdout, numbered from `first`; a line already recorded is skipped. */
  private recordAgentOutput(a: AttemptState, lines: string[], first: number): void {
    lines.forEach((line, i) => {
      // An empty line is the runner's placeholder for an over-long one: its number counts as seen, and
      // the line itself is read back from the sandbox's log if the result does not come otherwise.
      if (!this.store.firstSighting(a.round, a.number, a.jobTry, first + i, line)) return;
      for (const e of parseAgentLine(line)) this.event(a.round, a.number, e.type, agentEventData(e));
    });
  }

  /**
   * When some of the runner's pushes were lost (the result never arrived, or the line numbers show a
   * gap), the transcript is completed from the log the runner kept in the sandbox.
   */
  private async recoverTranscript(a: AttemptState, sandboxId: string): Promise<void> {
    const lines = this.store.agentLinesSeen(a.round, a.number, a.jobTry);
    if (this.store.lastEvent(a.round, a.number, "agent.result") && lines.seen === lines.implied) return;
    const log = await this.sandboxes.exec(sandboxId, `head -c ${MAX_ARTIFACT_BYTES} "${MS_DIR}/jobs/agent.out"`, 120);
    const current = this.store.getAttempt(a.round, a.number);
    // Numbered as the runner numbers them: non-empty lines only. Lines pushed before are not repeated.
    if (current && current.version === a.version) this.recordAgentOutput(a, log.output.split("\n").filter((l) => l.trim()), 0);
  }

  private agentSummary(a: AttemptState): AgentSummary | null {
    const e = this.store.lastEvent(a.round, a.number, "agent.result");
    return e ? ((e.data as { summary: AgentSummary }).summary ?? null) : null;
  }

  /** The prompt and model of one attempt: its round's prompt, with the round's variation applied. */
  private instructionsFor(a: AttemptState): { prompt: string; model?: string } {
    const run = this.requireRun();
    const round = this.store.getRound(a.round)!;
    const v = round.variations?.[a.number - 1];
    const prompt = v?.promptSuffix ? `${round.prompt}\n\n${v.promptSuffix}` : round.prompt;
    const model = v?.model ?? run.request.model;
    return model ? { prompt, model } : { prompt };
  }

  private async jobScript(req: RunRequest, a: AttemptState, job: Exclude<JobName, "pack">): Promise<string> {
    switch (job) {
      case "install":
        return AGENTS[req.agent].installScript();
      case "seed":
        return seedScript(req, a.round, await this.seedSource(a.round));
      case "agent":
      {
        // API-key mode: the agent gets its attempt's gateway URL, never the key.
        const gateway = this.env.ANTHROPIC_API_KEY ? await llmGatewayUrl(this.env, this.requireRun().id, a.round, a.number) : null;
        const agentEnv = AGENTS[req.agent].agentEnv(this.env, gateway);
        return agentScript(req, req.limits?.maxTurns ?? DEFAULT_MAX_TURNS, this.instructionsFor(a).model, agentEnv);
      }
      case "collect":
        return collectScript(req);
    }
  }

  private async seedSource(roundNo: number): Promise<SeedSource> {
    const round = this.store.getRound(roundNo)!;
    if (round.baseWinner) {
      const b = round.baseWinner;
      const url = await downloadUrl(this.env, b.runId, b.round, Date.now() + DOWNLOAD_URL_TTL_MS);
      return { kind: "winner", url, sha256: b.sha256, fromRound: b.round, winnerAttempt: b.attempt, fromRun: b.runId };
    }
    if (round.fromRound === null) return { kind: "run-base" };
    const from = this.store.getRound(round.fromRound)!;
    const run = this.requireRun();
    return {
      kind: "winner",
      url: await downloadUrl(this.env, run.id, from.number, Date.now() + DOWNLOAD_URL_TTL_MS),
      sha256: from.tarball!.sha256,
      fromRound: from.number,
      winnerAttempt: from.winnerAttempt!,
    };
  }

  private async homeDir(sandboxId: string): Promise<string> {
    const dir = await this.sandboxes.homeDir(sandboxId);
    if (!dir?.startsWith("/")) throw new Error(`the sandbox gave no usable home directory (${dir})`);
    return dir;
  }

  /** The last lines a failed job printed, to show as its reason. */
  private async jobTail(sandboxId: string, job: JobName): Promise<string> {
    try {
      const res = await this.sandboxes.exec(
        sandboxId,
        job === "agent"
          ? `tail -c 1500 "${MS_DIR}/jobs/agent.err"`
          : `tail -c 1500 "${MS_DIR}/jobs/${job}.out"; tail -c 1500 "${MS_DIR}/jobs/${job}.err"`,
      );
      return res.output.trim().split("\n").slice(-12).join("\n").slice(-1500);
    } catch (err) {
      return `(its output could not be read: ${describeSandboxError(err)})`;
    }
  }

  private requireRun(): RunState {
    const run = this.store.getRun();
    if (!run) throw new Error("this run has not been started");
    return run;
  }
}

function newAttempt(round: number, number: number, now: number): AttemptState {
  return {
    round,
    number,
    status: "queued",
    sandboxId: null,
    createRequestedAt: null,
    job: null,
    jobTry: 1,
    cmdId: null,
    exitCode: null,
    error: null,
    retries: 0,
    summary: null,
    diffStats: null,
    verify: null,
    timestamps: { queued: now },
    cleanupPending: false,
    homeDir: null,
    deadlineAt: null,
    version: 1,
    updatedAt: now,
  };
}

function agentEventData(e: AgentEvent): unknown {
  const { type: _type, ...data } = e;
  return data;
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

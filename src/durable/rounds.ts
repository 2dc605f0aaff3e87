// Rounds: opening one (its attempts queued), picking its winner (by a person, or the first attempt whose
// verify passes), the next round from a stored winner, cancelling, and settling a round and the run once
// every attempt has ended. Packing the winner is winner.ts's; ending attempts is attempts.ts's.
import { DEFAULT_MAX_ROUNDS, type RoundRequest } from "../run-request.ts";
import { refuse, type Outcome } from "./contract.ts";
import type { RunCore } from "./core.ts";
import { roundSettlement } from "./decisions.ts";
import { newAttempt, type AttemptState, type RoundState } from "./state.ts";
import { isAttemptEnded } from "../vocabulary.ts";

export interface RoundsHost {
  endAttempt(a: AttemptState, status: "failed" | "cancelled", reason: string): void;
  /** Gives an ended attempt's sandbox back. */
  release(a: AttemptState): void;
  /** A winner being packed will not be (its run was cancelled). */
  abandonPacking(round: RoundState, reason: string): void;
  /** Why the run may spend no more on model calls, or null. */
  budgetSpent(): string | null;
}

export interface OpenRound {
  number: number;
  prompt: string;
  fromRound: number | null;
  attempts: number;
  variations: RoundState["variations"];
  baseWinner?: RoundState["baseWinner"];
  preview?: RoundState["preview"];
  sandbox?: RoundState["sandbox"];
}

export class Rounds {
  private readonly core: RunCore;
  private readonly host: RoundsHost;

  constructor(core: RunCore, host: RoundsHost) {
    this.core = core;
    this.host = host;
  }

  /** A new round, its attempts queued (each one's timer due now). */
  open(r: OpenRound): void {
    const { state, timers, events } = this.core;
    const now = Date.now();
    state.putRound({
      ...r,
      baseWinner: r.baseWinner ?? null,
      preview: r.preview ?? null,
      sandbox: r.sandbox ?? null,
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
      state.addAttempt(newAttempt(r.number, n, now));
      timers.schedule({ kind: "attempt", round: r.number, attempt: n }, now);
    }
    if (r.number > 1) events.append(r.number, null, "round.started", { fromRound: r.fromRound, attempts: r.attempts });
  }

  /**
   * Picks a round's winner: its workspace is packed and streamed to R2 (winner.ts), the round's other
   * sandboxes are given back now, and the winner's once its tarball is safe.
   */
  pick(roundNo: number, attemptNo: number): Outcome<true> {
    const { state } = this.core;
    const round = state.round(roundNo);
    if (!round) return refuse(404, "not_found", `round ${roundNo} not found`);
    const winner = state.attempt(roundNo, attemptNo);
    if (!winner) return refuse(404, "not_found", `attempt ${attemptNo} of round ${roundNo} not found`);
    if (round.winnerAttempt !== null && round.winnerStatus !== "failed") {
      return refuse(409, "winner_already_picked", `round ${roundNo} already has a winner: attempt ${round.winnerAttempt}`);
    }
    if (winner.status !== "done") return refuse(409, "attempt_not_done", `attempt ${attemptNo} is ${winner.status}, only a done attempt can win`);
    if (!winner.sandboxId || winner.cleanupPending || winner.sandboxDeleted) {
      return refuse(409, "workspace_gone", `attempt ${attemptNo}'s sandbox is gone, so its workspace cannot be packed`);
    }
    this.choose(round, winner);
    return { ok: true };
  }

  /** The "first-verified" policy: the first attempt whose check passes wins, the others are cancelled. */
  verified(a: AttemptState): void {
    const round = this.core.state.round(a.round);
    if (this.core.state.requireRun().request.winner === "first-verified" && round && round.winnerAttempt === null) this.choose(round, a);
  }

  /** The next round: N fresh attempts seeded from a stored winner (the newest round's by default). */
  next(req: RoundRequest): Outcome<true> {
    const { state } = this.core;
    const run = state.requireRun();
    const rounds = state.rounds();
    if (rounds.some((r) => r.status === "running")) return refuse(409, "round_running", "a round is still running: wait for it to finish or cancel it");
    const maxRounds = run.request.limits?.maxRounds ?? DEFAULT_MAX_ROUNDS;
    if (rounds.length >= maxRounds) {
      const why = run.request.limits?.maxRounds === undefined ? `the default; set limits.maxRounds, up to 100, for more` : "limits.maxRounds";
      return refuse(409, "round_limit", `this run may have ${maxRounds} ${maxRounds === 1 ? "round" : "rounds"} (${why})`);
    }
    // A spent budget refuses every model call: a new round's agents could do nothing.
    const spent = this.host.budgetSpent();
    if (spent) return refuse(409, "budget_spent", `${spent}: no new round`);
    const fromNo = req.from ?? rounds[rounds.length - 1]!.number;
    const from = state.round(fromNo);
    if (!from) return refuse(404, "not_found", `round ${fromNo} not found`);
    if (from.winnerStatus !== "stored" || !from.tarball) {
      const why = from.winnerStatus === "packing" ? "is still being packed" : from.winnerStatus === "failed" ? `failed to pack: ${from.winnerError}` : "has not been picked";
      return refuse(409, "no_winner", `round ${fromNo}'s winner ${why}`);
    }
    const attempts = req.attempts ?? req.variations?.length ?? run.request.attempts;
    if (req.variations && req.variations.length !== attempts) {
      return refuse(400, "validation_failed", `variations must have one entry per attempt (${attempts})`);
    }
    this.open({ number: rounds.length + 1, prompt: req.prompt, fromRound: fromNo, attempts, variations: req.variations ?? null, preview: req.preview ?? null, sandbox: req.sandbox ?? run.request.sandbox ?? null });
    if (run.status !== "running") state.setRunStatus("running", null);
    return { ok: true };
  }

  /** Cancels every attempt that has not ended; every sandbox of the run is given back. */
  cancel(reason: string): void {
    const { state } = this.core;
    const status = state.requireRun().status;
    if (status === "running" || status === "awaiting_pick") state.setRunStatus("cancelled", reason);
    for (const a of state.attempts()) {
      if (!isAttemptEnded(a.status)) this.host.endAttempt(a, "cancelled", reason);
      // A cancelled run keeps no sandbox, not even those of finished attempts.
      else this.host.release(a);
    }
    // A winner still being packed will not be: its sandbox is going.
    for (const r of state.rounds()) if (r.winnerStatus === "packing") this.host.abandonPacking(r, reason);
  }

  /** Cancels one attempt; false when there is no such attempt. */
  cancelAttempt(round: number, n: number, reason: string): boolean {
    const a = this.core.state.attempt(round, n);
    if (!a) return false;
    if (!isAttemptEnded(a.status)) this.host.endAttempt(a, "cancelled", reason);
    return true;
  }

  /** When every attempt of the newest round has ended, the round is finished and the run's status follows. */
  settle(): void {
    const { state, events } = this.core;
    const latest = state.latestRound();
    if (!latest || latest.status !== "running") return;
    const all = state.attempts(latest.number);
    const outcome = roundSettlement(all.map((a) => a.status));
    if (!outcome) return;
    state.putRound({ ...latest, status: outcome.round, finishedAt: Date.now() });
    events.append(latest.number, null, "round.finished", { attempts: all.map((a) => ({ number: a.number, status: a.status })) });
    // Done attempts and no winner: the run waits for a person to pick one.
    const status = outcome.run === "succeeded" && latest.winnerAttempt === null ? "awaiting_pick" : outcome.run;
    if (state.requireRun().status === "running") state.setRunStatus(status, outcome.error);
  }

  /** Marks the winner, ends the round's other attempts and gives their sandboxes back. */
  private choose(round: RoundState, winner: AttemptState): void {
    const { state, events, timers } = this.core;
    state.putRound({
      ...round,
      winnerAttempt: winner.number,
      winnerStatus: "packing",
      winnerError: null,
      pack: { try: (round.pack?.try ?? 0) + 1, retries: 0, cmdId: null, startedAt: null, uploadId: null, manifest: null },
    });
    events.append(round.number, winner.number, "winner.selected", { attempt: winner.number });
    // The pick the run was waiting for.
    if (state.requireRun().status === "awaiting_pick" && state.latestRound()?.number === round.number) state.setRunStatus("succeeded", null);
    for (const other of state.attempts(round.number)) {
      if (other.number === winner.number) continue;
      if (!isAttemptEnded(other.status)) this.host.endAttempt(other, "cancelled", `attempt ${winner.number} was picked as the winner`);
      else this.host.release(other);
    }
    timers.schedule({ kind: "winner", round: round.number }, Date.now());
  }
}

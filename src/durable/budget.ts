// The credential gateway's side of a run: may an attempt's agent make a model call now, and what each
// call cost. Every call in flight holds a reservation of the most it may cost (src/agents/usage.ts
// estimateRequestCost) against the run's budget and its account's month, so parallel calls cannot pass a
// budget together: near one, they go one at a time (429, asked again shortly). A call's input is counted
// when its stream starts and the rest when it ends; a call whose end is never read (the Worker was cut
// off) is charged its whole reservation after RESERVATION_STALE_MS. Past a budget every attempt still
// working ends (one past its agent keeps its work).
import { addUsage, callCost, NO_USAGE, usageSince, type CallUsage } from "../agents/usage.ts";
import { accountSpend, defaultRunBudgetUsd, type AccountSpend } from "../spend.ts";
import { isAttemptEnded } from "../vocabulary.ts";
import { refuse, type Outcome } from "./contract.ts";
import type { RunCore } from "./core.ts";
import { budgetSpent, monthlyBudgetSpent } from "./decisions.ts";
import type { AttemptState } from "./state.ts";

/** Longer than any Messages API call runs (a 64k-token streamed answer takes about 20 minutes). */
export const RESERVATION_STALE_MS = 30 * 60_000;

export interface BudgetHost {
  endAttempt(a: AttemptState, status: "failed", reason: string): void;
}

interface Reservation {
  id: string;
  round: number;
  attempt: number;
  usd: number;
  counted: CallUsage | null;
  at: number;
}

export class Budget {
  private readonly core: RunCore;
  private readonly sql: SqlStorage;
  private readonly host: BudgetHost;
  /** The account's budgets and month as last read from D1 (for the checks that cannot wait for it). */
  private account: AccountSpend | null = null;

  constructor(core: RunCore, sql: SqlStorage, host: BudgetHost) {
    this.core = core;
    this.sql = sql;
    this.host = host;
  }

  /**
   * May the attempt's agent make a model call now? Not once its attempt is over or a budget is spent.
   * `reserveUsd` is the most the call may cost (null: a free call, such as counting tokens); the answer
   * names the reservation to settle with `meter`.
   */
  async gate(round: number, n: number, reserveUsd: number | null): Promise<Outcome<{ reservation: string | null }>> {
    const before = this.attemptCheck(round, n);
    if (before) return before;
    const run = this.core.state.requireRun();
    // D1 first: everything after it is one synchronous step, so two calls at once cannot both take the
    // last of a budget.
    try {
      this.account = await accountSpend(this.core.env, run.accountId, run.id);
    } catch (err) {
      if (!this.account) return refuse(429, "budget_unknown", `the account's spend could not be read (${err instanceof Error ? err.message : String(err)}); try again shortly`);
    }
    const again = this.attemptCheck(round, n);
    if (again) return again;
    this.chargeStale();
    const over = this.spent();
    if (over) {
      this.stopWorking(over);
      return refuse(402, "budget", over);
    }
    if (reserveUsd === null) return { ok: { reservation: null } };
    const open = this.open();
    const held = open.reduce((sum, r) => sum + this.heldOf(r), 0);
    const room = this.room();
    if (open.length > 0 && held + reserveUsd > room) {
      return refuse(429, "budget_near", `near the budget: model calls go one at a time now ($${held.toFixed(4)} held by calls in flight of $${room.toFixed(4)} left)`);
    }
    const id = crypto.randomUUID();
    this.sql.exec("INSERT INTO llm_reservations (id, round, attempt, usd, counted, at) VALUES (?, ?, ?, ?, NULL, ?)", id, round, n, reserveUsd, Date.now());
    return { ok: { reservation: id } };
  }

  /**
   * A call's usage as read so far (`final` false: its input, at message_start) or in all (`final`): what
   * it adds to what was counted for it is recorded; a final reading (or none, for an answer that carried
   * no usage) ends its reservation.
   */
  meter(round: number, n: number, reservation: string | null, usage: CallUsage | null, final: boolean): void {
    const row = reservation ? this.reservation(reservation) : null;
    // Settled already, or charged whole when it went stale: nothing more to count.
    if (reservation && !row) return;
    if (usage) this.add(row?.round ?? round, row?.attempt ?? n, usageSince(usage, row?.counted ?? null), !row?.counted);
    if (row) {
      if (final) this.sql.exec("DELETE FROM llm_reservations WHERE id = ?", row.id);
      else if (usage) this.sql.exec("UPDATE llm_reservations SET counted = ? WHERE id = ?", JSON.stringify(usage), row.id);
    }
    const over = this.spent();
    if (over) this.stopWorking(over);
  }

  /** Why the run may spend no more, or null while it may. */
  spent(): string | null {
    const run = this.core.state.requireRun();
    const runSpent = this.runSpent();
    const runBudget = run.request.limits?.budgetUsd ?? this.account?.runBudgetUsd ?? defaultRunBudgetUsd(this.core.env);
    const over = budgetSpent(runBudget, [runSpent]);
    if (over || !this.account) return over;
    return monthlyBudgetSpent(this.account.monthlyBudgetUsd, this.account.monthSpentUsd + runSpent);
  }

  /** What may still be spent before the nearer of the two budgets. */
  private room(): number {
    const run = this.core.state.requireRun();
    const runSpent = this.runSpent();
    const runBudget = run.request.limits?.budgetUsd ?? this.account?.runBudgetUsd ?? defaultRunBudgetUsd(this.core.env);
    const month = this.account ? this.account.monthlyBudgetUsd - this.account.monthSpentUsd - runSpent : Infinity;
    return Math.max(0, Math.min(runBudget - runSpent, month));
  }

  private attemptCheck(round: number, n: number): Outcome<never> | null {
    const a = this.core.state.attempt(round, n);
    if (!a) return refuse(404, "not_found", "no such attempt");
    if (isAttemptEnded(a.status)) return refuse(410, "attempt_over", `the attempt is over (${a.status}); its gateway token died with it`);
    return null;
  }

  private runSpent(): number {
    return this.core.state.attempts().reduce((sum, a) => sum + (a.usage?.costUsd ?? 0), 0);
  }

  /** What a reservation still holds: its most possible cost less what was counted of it. */
  private heldOf(r: Reservation): number {
    return Math.max(0, r.usd - (r.counted ? callCost(r.counted) : 0));
  }

  private add(round: number, n: number, call: CallUsage, newCall: boolean): void {
    const { state } = this.core;
    for (let tries = 0; tries < 5; tries++) {
      const a = state.attempt(round, n);
      if (!a) return;
      if (state.commit(a, { usage: addUsage(a.usage ?? NO_USAGE, call, newCall) })) return;
    }
  }

  /** A call whose end was never read is charged what it still held, so no cut-off stream goes unpaid. */
  private chargeStale(now = Date.now()): void {
    for (const r of this.open().filter((r) => r.at <= now - RESERVATION_STALE_MS)) {
      const charged = this.heldOf(r);
      const a = this.core.state.attempt(r.round, r.attempt);
      if (a) {
        const u = a.usage ?? NO_USAGE;
        this.core.state.commit(a, { usage: { ...u, calls: u.calls + (r.counted ? 0 : 1), costUsd: Number((u.costUsd + charged).toFixed(6)) } });
      }
      this.sql.exec("DELETE FROM llm_reservations WHERE id = ?", r.id);
      this.core.events.append(r.round, r.attempt, "llm.unsettled", { chargedUsd: Number(charged.toFixed(6)), reason: "the call's usage was never read to its end; its reservation is charged" });
    }
  }

  private open(): Reservation[] {
    return this.sql
      .exec<{ id: string; round: number; attempt: number; usd: number; counted: string | null; at: number }>("SELECT * FROM llm_reservations")
      .toArray()
      .map((r) => ({ ...r, counted: r.counted ? (JSON.parse(r.counted) as CallUsage) : null }));
  }

  private reservation(id: string): Reservation | null {
    return this.open().find((r) => r.id === id) ?? null;
  }

  private stopWorking(reason: string): void {
    // An attempt past its agent (collecting its result) keeps its finished work.
    for (const a of this.core.state.attempts()) if (!isAttemptEnded(a.status) && a.status !== "collecting_result") this.host.endAttempt(a, "failed", reason);
  }
}

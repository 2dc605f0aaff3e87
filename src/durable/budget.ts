// The credential gateway's side of a run: may an attempt's agent make a model call now, and what each
// call cost. Past the run's budget every attempt still working ends (one past its agent keeps its work).
import { addUsage, NO_USAGE, type CallUsage } from "../agents/usage.ts";
import { isAttemptEnded } from "../vocabulary.ts";
import { refuse, type Outcome } from "./contract.ts";
import type { RunCore } from "./core.ts";
import { budgetSpent } from "./decisions.ts";
import type { AttemptState } from "./state.ts";

export interface BudgetHost {
  endAttempt(a: AttemptState, status: "failed", reason: string): void;
}

export class Budget {
  private readonly core: RunCore;
  private readonly host: BudgetHost;

  constructor(core: RunCore, host: BudgetHost) {
    this.core = core;
    this.host = host;
  }

  /** May the attempt's agent make a model call now? Not once its attempt is over or the run's budget spent. */
  gate(round: number, n: number): Outcome<true> {
    const a = this.core.state.attempt(round, n);
    if (!a) return refuse(404, "not_found", "no such attempt");
    if (isAttemptEnded(a.status)) return refuse(410, "attempt_over", `the attempt is over (${a.status}); its gateway token died with it`);
    const over = this.spent();
    if (over) {
      this.stopWorking(over);
      return refuse(402, "budget", over);
    }
    return { ok: true };
  }

  /** Adds one answer's usage to the attempt; past the run's budget, every attempt still working ends. */
  record(round: number, n: number, call: CallUsage): void {
    const { state } = this.core;
    for (let tries = 0; tries < 5; tries++) {
      const a = state.attempt(round, n);
      if (!a) return;
      if (state.commit(a, { usage: addUsage(a.usage ?? NO_USAGE, call) })) break;
    }
    const over = this.spent();
    if (over) this.stopWorking(over);
  }

  /** Why the run may spend no more, or null while it may. */
  spent(): string | null {
    const run = this.core.state.requireRun();
    return budgetSpent(run.request.limits?.budgetUsd, this.core.state.attempts().map((a) => a.usage?.costUsd));
  }

  private stopWorking(reason: string): void {
    // An attempt past its agent (collecting its result) keeps its finished work.
    for (const a of this.core.state.attempts()) if (!isAttemptEnded(a.status) && a.status !== "collecting_result") this.host.endAttempt(a, "failed", reason);
  }
}

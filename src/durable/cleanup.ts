// Giving sandboxes back. An ended attempt's sandbox is marked for deletion (`release`, or by ending the
// attempt) and deleted by the attempt's next step (`cleanup`), which also deletes any stray sandbox
// carrying the attempt's labels (a create whose answer was lost). Daytona's delete only marks: the step
// looks again until the sandbox is gone, and only then counts it deleted. A failed delete is retried with
// backoff a few times; the scheduled sweep (src/sweep.ts) is the net behind it.
import { describeSandboxError } from "../sandbox/errors.ts";
import type { RunCore } from "./core.ts";
import { backoffMs, retryPolicy } from "./retry.ts";
import type { AttemptState } from "./state.ts";

/** Tries at deleting an ended attempt's sandbox before leaving it to the scheduled sweep. */
const CLEANUP_TRIES = 8;

export class SandboxCleanup {
  private readonly core: RunCore;

  constructor(core: RunCore) {
    this.core = core;
  }

  /** Gives an ended attempt's sandbox back (deleted by its next step). */
  release(a: AttemptState): void {
    const { state, timers } = this.core;
    const current = state.attempt(a.round, a.number);
    if (!current || !current.sandboxId || current.cleanupPending || current.sandboxDeleted) return;
    state.commit(current, { cleanupPending: true });
    timers.schedule({ kind: "attempt", round: a.round, attempt: a.number }, Date.now());
  }

  /** Deletes an ended attempt's sandbox (and any other carrying its labels); a failed delete is retried. */
  async cleanup(a: AttemptState): Promise<void> {
    const { state, timers, events, sandboxes } = this.core;
    const timer = { kind: "attempt", round: a.round, attempt: a.number } as const;
    if (!a.cleanupPending) return timers.unschedule(timer);
    const run = state.requireRun();
    try {
      // A delete already marked is only looked at again (a second DELETE answers 409).
      const marked = new Set(a.deletePending && a.sandboxId ? [a.sandboxId] : []);
      const ids = a.sandboxId ? [a.sandboxId] : [];
      if (a.createRequestedAt !== null) {
        const strays = await sandboxes.findByLabels({ "multishot-attempt": `${run.id}:${a.round}:${a.number}` });
        for (const s of strays) {
          if (s.desiredState === "destroyed") marked.add(s.id);
          if (!ids.includes(s.id)) ids.push(s.id);
        }
      }
      const standing = await Promise.all(ids.map((id) => (marked.has(id) ? sandboxes.deletion(id) : sandboxes.delete(id))));
      const current = state.attempt(a.round, a.number);
      if (standing.includes("pending")) {
        // Marked for destruction: Daytona's runner takes it from here. Look again (a GET, not another
        // delete) until it is gone; this is not a failed try.
        if (current && !current.deletePending) {
          state.commit(current, { deletePending: true });
          events.append(a.round, a.number, "sandbox.delete_pending", { sandboxId: a.sandboxId });
        }
        return timers.schedule(timer, Date.now() + Math.max(1000, Math.min(retryPolicy(this.core.env).pollMs, 5000)));
      }
      if (current) state.commit(current, { cleanupPending: false, sandboxDeleted: true, deletePending: false });
      events.append(a.round, a.number, "sandbox.deleted", { sandboxId: a.sandboxId });
      timers.unschedule(timer);
    } catch (err) {
      // Backing off up to the cap; the scheduled sweep is the net behind this, so the object's alarm
      // never spins on a delete that keeps failing.
      const current = state.attempt(a.round, a.number);
      const tries = (current?.cleanupTries ?? 0) + 1;
      if (current) state.commit(current, { cleanupTries: tries });
      const reason = describeSandboxError(err);
      if (tries >= CLEANUP_TRIES) {
        events.append(a.round, a.number, "sandbox.delete_failed", { sandboxId: a.sandboxId, reason, tries });
        if (current) state.commit(state.attempt(a.round, a.number)!, { cleanupPending: false });
        return timers.unschedule(timer);
      }
      console.error(`deleting the sandbox of attempt ${a.round}:${a.number} failed; will retry`, reason);
      timers.schedule(timer, Date.now() + backoffMs(retryPolicy(this.core.env), tries));
    }
  }
}

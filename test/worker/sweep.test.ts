// The scheduled sweep deletes labelled sandboxes no attempt needs, and leaves everything else alone.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Sandboxes } from "../../src/sandbox/client.ts";
import { recordSweep, sweepSandboxes, type SweepReport } from "../../src/sweep.ts";
import { ADMIN_TOKEN, api, DEV_KEY, liveSandboxes } from "./helpers.ts";

const HOUR = 60 * 60_000;

const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
/** What a sweep gave back: deleted at once, or marked (on Daytona a delete only marks; the runner destroys it later). */
const removed = (r: SweepReport) => [...r.deleted, ...r.pending.map((p) => ({ id: p.id, reason: p.reason.replace(/; marked for destruction$/, "") }))].sort(byId);

async function sandboxFor(sandboxes: Sandboxes, runId: string, round: number, attempt: number): Promise<string> {
  return sandboxes.create({
    labels: { "multishot-run": runId, "multishot-round": String(round), "multishot-attempt": `${runId}:${round}:${attempt}` },
    envVars: {},
    autoStopInterval: 0,
    autoDeleteInterval: -1,
  });
}

describe("the sandbox sweep", () => {
  it("deletes sandboxes of failed, cancelled and long-unknown attempts, and keeps the rest", async () => {
    const sandboxes = new Sandboxes(env);
    const runId = `run_sweep${crypto.randomUUID().replace(/-/g, "").slice(0, 15)}`;
    await env.DB.batch([
      env.DB.prepare("INSERT OR IGNORE INTO accounts (id, name) VALUES ('acct_sweep', 'sweep')"),
      env.DB.prepare(
        "INSERT INTO runs (id, account_id, status, prompt, agent, config, attempt_count, updated_at) VALUES (?, 'acct_sweep', 'running', 'p', 'demo', '{}', 3, 0)",
      ).bind(runId),
      ...[
        [1, "failed"],
        [2, "cancelled"],
        [3, "done"],
      ].map(([n, status]) =>
        env.DB.prepare("INSERT INTO attempts (run_id, round, number, status, updated_at) VALUES (?, 1, ?, ?, 0)").bind(runId, n, status),
      ),
    ]);
    const failed = await sandboxFor(sandboxes, runId, 1, 1);
    const cancelled = await sandboxFor(sandboxes, runId, 1, 2);
    const done = await sandboxFor(sandboxes, runId, 1, 3);
    const unknown = await sandboxFor(sandboxes, runId, 1, 4);
    // Carries the run label but no attempt label: not multishot's to judge.
    const unlabelled = await sandboxes.create({ labels: { "multishot-run": runId }, envVars: {}, autoStopInterval: 0, autoDeleteInterval: -1 });

    // Just made: nothing is old enough yet.
    // Scoped to this test's run: other test files share the local sandbox server.
    const scope = { "multishot-run": runId };
    const early = await sweepSandboxes(env, Date.now(), scope);
    expect(removed(early)).toEqual([]);

    // An hour on: ended attempts' sandboxes go; the done one stays for the winner pick; the unknown one waits a day.
    const hourLater = await sweepSandboxes(env, Date.now() + HOUR, scope);
    expect(removed(hourLater)).toEqual(
      [
        { id: failed, reason: "its attempt is failed" },
        { id: cancelled, reason: "its attempt is cancelled" },
      ].sort(byId),
    );
    expect(hourLater.failed).toEqual([]);
    const afterHour = (await liveSandboxes(runId)).map((s) => s.id).sort();
    expect(afterHour).toEqual([done, unknown, unlabelled].sort());

    const dayLater = await sweepSandboxes(env, Date.now() + 25 * HOUR, scope);
    // A marked sandbox still listed is counted pending, never deleted twice.
    expect(removed(dayLater).filter((r) => r.id === unknown)).toEqual([{ id: unknown, reason: "its attempt is unknown" }]);
    expect(dayLater.deleted.filter((r) => r.id === failed || r.id === cancelled)).toEqual([]);
    expect((await liveSandboxes(runId)).map((s) => s.id).sort()).toEqual([done, unlabelled].sort());

    for (const id of [done, unlabelled]) await sandboxes.delete(id);
  });

  it("deletes a working attempt's sandbox that outlived its run's limits, and a done one once its round's winner is stored", async () => {
    const sandboxes = new Sandboxes(env);
    const runId = `run_limit${crypto.randomUUID().replace(/-/g, "").slice(0, 15)}`;
    await env.DB.batch([
      env.DB.prepare("INSERT OR IGNORE INTO accounts (id, name) VALUES ('acct_sweep', 'sweep')"),
      env.DB.prepare(
        `INSERT INTO runs (id, account_id, status, prompt, agent, config, attempt_count, updated_at) VALUES (?, 'acct_sweep', 'running', 'p', 'demo', '{"limits":{"attemptMinutes":10}}', 2, 0)`,
      ).bind(runId),
      env.DB.prepare("INSERT INTO rounds (run_id, number, prompt, status, winner_attempt, winner_status) VALUES (?, 1, 'p', 'finished', 2, 'stored')").bind(runId),
      env.DB.prepare("INSERT INTO attempts (run_id, round, number, status, updated_at) VALUES (?, 1, 1, 'running_agent', 0)").bind(runId),
      env.DB.prepare("INSERT INTO attempts (run_id, round, number, status, updated_at) VALUES (?, 1, 2, 'done', 0)").bind(runId),
    ]);
    const working = await sandboxFor(sandboxes, runId, 1, 1);
    const winner = await sandboxFor(sandboxes, runId, 1, 2);
    const scope = { "multishot-run": runId };
    // An hour on, the winner's sandbox (stored) goes; the working one is well within its limits.
    const hour = await sweepSandboxes(env, Date.now() + HOUR, scope);
    expect(removed(hour)).toEqual([{ id: winner, reason: "its round's winner is stored" }]);
    // Its limit: (10 agent minutes + 80 of setup) for each of 4 tries, plus an hour: 7 hours. Eight hours on, it has outlived it.
    const later = await sweepSandboxes(env, Date.now() + 8 * HOUR, scope);
    expect(removed(later).filter((r) => r.id === working)).toEqual([{ id: working, reason: "it outlived its run's limits" }]);
    expect(await liveSandboxes(runId)).toEqual([]);

    // Recorded sweeps show in the operator's stats.
    const before = (await (await api("/api/admin/stats", { key: ADMIN_TOKEN })).json()) as { sweeper: { sweeps: number; deleted: number } };
    await recordSweep(env, later);
    const res = await api("/api/admin/stats", { key: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    const stats = (await res.json()) as { sweeper: { sweeps: number; deleted: number; last: { deleted: number; detail: unknown } }; runs: Record<string, number> };
    expect(stats.sweeper.sweeps).toBe(before.sweeper.sweeps + 1);
    expect(stats.sweeper.deleted).toBe(before.sweeper.deleted + later.deleted.length);
    expect(stats.sweeper.last).toMatchObject({ deleted: later.deleted.length, detail: { deleted: later.deleted, pending: later.pending, failed: [] } });
    expect(stats.runs.running).toBeGreaterThanOrEqual(1);
    expect((await api("/api/admin/stats", { key: DEV_KEY })).status).toBe(403);
  });
});

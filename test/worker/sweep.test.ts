// The scheduled sweep deletes labelled sandboxes no attempt needs, and leaves everything else alone.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Sandboxes } from "../../src/sandbox/client.ts";
import { sweepSandboxes } from "../../src/sweep.ts";
import { liveSandboxes } from "./helpers.ts";

const HOUR = 60 * 60_000;

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
    expect(early.deleted.filter((id) => [failed, cancelled, done, unknown, unlabelled].includes(id))).toEqual([]);

    // An hour on: ended attempts' sandboxes go; the done one stays for the winner pick; the unknown one waits a day.
    const hourLater = await sweepSandboxes(env, Date.now() + HOUR, scope);
    expect(hourLater.deleted.sort()).toEqual([failed, cancelled].sort());
    expect(hourLater.failed).toEqual([]);
    const afterHour = (await liveSandboxes(runId)).map((s) => s.id).sort();
    expect(afterHour).toEqual([done, unknown, unlabelled].sort());

    const dayLater = await sweepSandboxes(env, Date.now() + 25 * HOUR, scope);
    expect(dayLater.deleted).toEqual([unknown]);
    expect((await liveSandboxes(runId)).map((s) => s.id).sort()).toEqual([done, unlabelled].sort());

    for (const id of [done, unlabelled]) await sandboxes.delete(id);
  });
});

// The run engine end to end inside workerd: a real RunCoordinator, real D1 and R2, the real Daytona SDK
// against a real local sandbox server, and the demo agent as real processes. In this project every
// runner report is lost (PUBLIC_URL leads nowhere), so the poll alone must carry each attempt home.
import { abortAllDurableObjects, env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { api, clearFaults, getRun, injectFaults, liveSandboxes, runEvents, settled, startRun, waitForRun } from "./helpers.ts";

afterEach(clearFaults);

describe("a run", () => {
  it("runs 4 attempts in parallel to done, each with its own files, diff and summary", async () => {
    const id = await startRun({ prompt: "a landing page [slow:400]", attempts: 4, agent: "demo" });
    const run = await waitForRun(id, settled);
    // Four done attempts and no winner yet: the run waits for a pick.
    expect(run.status).toBe("awaiting_pick");
    const attempts = run.rounds[0]!.attempts;
    expect(attempts.map((a) => a.status)).toEqual(["done", "done", "done", "done"]);

    // In parallel: every agent had started before any attempt was done.
    const lastAgentStart = Math.max(...attempts.map((a) => a.timestamps.running_agent!));
    const firstDone = Math.min(...attempts.map((a) => a.timestamps.done!));
    expect(lastAgentStart).toBeLessThan(firstDone);

    const sandboxIds = new Set(attempts.map((a) => a.sandboxId));
    expect(sandboxIds.size).toBe(4);
    for (const a of attempts) {
      expect(a.exitCode).toBe(0);
      expect(a.error).toBeNull();
      expect(a.diffStats).toEqual({ files: 3, additions: expect.any(Number), deletions: 0 });
      expect(a.summary).toMatchObject({ turns: 5, isError: false, finalMessage: expect.stringContaining(`Attempt ${a.number} built`) });
      expect(a.summary!.costUsd).toBeGreaterThan(0);
      // The patch in R2 holds this attempt's own files.
      const patch = await env.ARTIFACTS.get(`runs/${id}/rounds/1/attempts/${a.number}/diff.patch`);
      const text = await patch!.text();
      expect(text).toContain("+++ b/index.html");
      expect(text).toContain(`<p>attempt ${a.number}</p>`);
      const viaApi = await api(`/api/runs/${id}/rounds/1/attempts/${a.number}/diff`);
      expect(await viaApi.text()).toBe(text);
    }

    // D1 mirrors the live state.
    const rows = await env.DB.prepare("SELECT number, status, sandbox_id, diff_stats FROM attempts WHERE run_id = ? ORDER BY number")
      .bind(id)
      .all<{ number: number; status: string; sandbox_id: string; diff_stats: string }>();
    expect(rows.results.map((r) => r.status)).toEqual(["done", "done", "done", "done"]);
    expect(JSON.parse(rows.results[0]!.diff_stats)).toMatchObject({ files: 3 });
    const runRow = await env.DB.prepare("SELECT status FROM runs WHERE id = ?").bind(id).first<{ status: string }>();
    expect(runRow?.status).toBe("awaiting_pick");

    // The event log tells the story in order, transcript included.
    const types = (await runEvents(id)).filter((e) => e.attempt === 1).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["attempt.status", "sandbox.created", "agent.text", "agent.tool", "agent.result"]));
    expect(types.indexOf("agent.tool")).toBeLessThan(types.indexOf("agent.result"));
    // Read back from the sandbox's log (every push was lost), each line once: three writes, one result.
    expect(types.filter((t) => t === "agent.tool")).toHaveLength(3);
    expect(types.filter((t) => t === "agent.result")).toHaveLength(1);

    // Finished attempts keep their sandboxes for the winner pick; cancelling the run gives them all back.
    expect((await liveSandboxes(id)).length).toBe(4);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
    await expect.poll(async () => (await liveSandboxes(id)).length, { timeout: 15_000 }).toBe(0);
  });

  it("fails only the attempt whose agent crashes, with its reason, and deletes its sandbox", async () => {
    const id = await startRun({
      prompt: "two pages",
      attempts: 2,
      agent: "demo",
      variations: [{}, { promptSuffix: "[crash]" }],
    });
    const run = await waitForRun(id, settled);
    const [ok, crashed] = run.rounds[0]!.attempts;
    expect(ok!.status).toBe("done");
    expect(crashed!.status).toBe("failed");
    expect(crashed!.error).toContain("killed by signal 9");
    expect(crashed!.exitCode).toBe(137);
    expect(run.status).toBe("awaiting_pick");
    await expect.poll(async () => (await liveSandboxes(id)).map((s) => s.labels["multishot-attempt"]), { timeout: 10_000 }).toEqual([`${id}:1:1`]);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("shows the agent's own error when it fails, and fails the run when every attempt fails", async () => {
    const id = await startRun({ prompt: "please [fail]", attempts: 1, agent: "demo" });
    const run = await waitForRun(id, settled);
    expect(run.status).toBe("failed");
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.error).toBe("the agent exited with code 1: I could not finish: the task asked me to fail.");
    expect(a.retries).toBe(0);
    await expect.poll(async () => (await liveSandboxes(id)).length, { timeout: 10_000 }).toBe(0);
  });

  it("retries transient sandbox faults and succeeds", async () => {
    await injectFaults({ createFailures: { count: 2, mode: "503" } });
    const id = await startRun({ prompt: "resilient page", attempts: 1, agent: "demo" });
    const run = await waitForRun(id, settled);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status).toBe("done");
    expect(a.retries).toBe(2);
    expect((await liveSandboxes(id)).length).toBe(1);
    await clearFaults();

    await injectFaults({ toolboxFailures: { count: 1, mode: "reset", match: "session/.*/exec" } });
    const id2 = await startRun({ prompt: "reset during install", attempts: 1, agent: "demo" });
    const run2 = await waitForRun(id2, settled);
    // A reset while starting a job is not a failed job: the step looks again, and starts it once.
    expect(run2.rounds[0]!.attempts[0]).toMatchObject({ status: "done", retries: 0 });
    const evs = await runEvents(id2);
    expect(evs.some((e) => e.type === "sandbox.unreachable")).toBe(true);
    expect(evs.filter((e) => e.type === "job.started").map((e) => e.data.job)).toEqual(["install", "seed", "agent", "collect"]);
    for (const r of [id, id2]) await api(`/api/runs/${r}/cancel`, { method: "POST" });
  });

  it("adopts a sandbox whose create answer was lost, instead of making a second one", async () => {
    await injectFaults({ createFailures: { count: 1, mode: "lost" } });
    const id = await startRun({ prompt: "lost answer", attempts: 1, agent: "demo" });
    const run = await waitForRun(id, settled);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status).toBe("done");
    const sandboxes = await liveSandboxes(id);
    expect(sandboxes.map((s) => s.id)).toEqual([a.sandboxId]);
    const events = await runEvents(id);
    expect(events.find((e) => e.type === "sandbox.adopted")?.data.sandboxId).toBe(a.sandboxId);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("fails fast, without retries, on a fault that will not pass", async () => {
    await injectFaults({ createFailures: { count: 1, mode: "400" } });
    const id = await startRun({ prompt: "forbidden", attempts: 1, agent: "demo" });
    const run = await waitForRun(id, settled);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status).toBe("failed");
    expect(a.retries).toBe(0);
    expect(a.error).toMatch(/creating sandbox failed: .*400/);
  });

  it("survives its Durable Object being aborted mid-run, with exactly one sandbox per attempt", async () => {
    const id = await startRun({ prompt: "survive eviction [slow:700]", attempts: 3, agent: "demo" });
    await waitForRun(id, (r) => r.rounds[0]!.attempts.some((a) => a.status === "running_agent"));
    await abortAllDurableObjects();
    await waitForRun(id, (r) => r.rounds[0]!.attempts.some((a) => a.status === "collecting_result" || a.status === "done"));
    await abortAllDurableObjects();
    const run = await waitForRun(id, settled);
    expect(run.rounds[0]!.attempts.map((a) => a.status)).toEqual(["done", "done", "done"]);
    const sandboxes = await liveSandboxes(id);
    expect(sandboxes.length).toBe(3);
    expect(new Set(sandboxes.map((s) => s.labels["multishot-attempt"])).size).toBe(3);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("records the verify command's result, with known secrets redacted from what is stored", async () => {
    // A hostile or careless check that prints a secret the Worker holds (here the signing secret).
    const id = await startRun({ prompt: "checked [fixtures]", attempts: 1, agent: "demo", verify: "echo leaked:$(printf 'test-signing-%s' secret) # not a comment in our script\nexit 3" });
    const run = await waitForRun(id, settled);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status).toBe("done");
    expect(a.verify).toMatchObject({ passed: false, exitCode: 3 });
    expect(a.verify!.outputTail).toContain("leaked:[redacted]");
    const row = await env.DB.prepare("SELECT verify FROM attempts WHERE run_id = ?").bind(id).first<{ verify: string }>();
    expect(row!.verify).toContain("leaked:[redacted]");
    const stored = JSON.stringify(run) + row!.verify + (await (await api(`/api/runs/${id}/events`)).text());
    expect(stored).not.toContain("test-signing-secret");
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("cancels: every sandbox of the run is deleted", async () => {
    const id = await startRun({ prompt: "cancel me [hang]", attempts: 4, agent: "demo" });
    await waitForRun(id, (r) => r.rounds[0]!.attempts.every((a) => a.status === "running_agent"));
    expect((await liveSandboxes(id)).length).toBe(4);
    const res = await api(`/api/runs/${id}/cancel`, { method: "POST" });
    expect(res.status).toBe(200);
    const run = await waitForRun(id, settled);
    expect(run.status).toBe("cancelled");
    expect(run.rounds[0]!.attempts.map((a) => a.status)).toEqual(["cancelled", "cancelled", "cancelled", "cancelled"]);
    await expect.poll(async () => (await liveSandboxes(id)).length, { timeout: 15_000 }).toBe(0);
  });

  it("cancels one attempt and lets the others finish", async () => {
    const id = await startRun({ prompt: "one goes [slow:300]", attempts: 2, agent: "demo", variations: [{}, { promptSuffix: "[hang]" }] });
    await waitForRun(id, (r) => r.rounds[0]!.attempts[1]!.status === "running_agent");
    const res = await api(`/api/runs/${id}/attempts/2/cancel`, { method: "POST" });
    expect(res.status).toBe(200);
    const run = await waitForRun(id, settled);
    expect(run.rounds[0]!.attempts.map((a) => a.status)).toEqual(["done", "cancelled"]);
    expect((await api(`/api/runs/${id}/attempts/7/cancel`, { method: "POST" })).status).toBe(404);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("sees each exit in the job's followed log when no report arrives, and kills a hung agent at its deadline", async () => {
    const id = await startRun({ prompt: "hang forever [hang]", attempts: 1, agent: "demo", limits: { attemptMinutes: 0.05 } });
    const run = await waitForRun(id, settled);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status).toBe("failed");
    expect(a.error).toMatch(/^timed out: agent ran longer than 0.05 minutes/);
    await expect.poll(async () => (await liveSandboxes(id)).length, { timeout: 10_000 }).toBe(0);
    const events = await runEvents(id);
    // Every earlier job ended without a report reaching the Worker: its exit line, read from the
    // command's followed log, carried each one (the poll is every 4 x 250 ms while a log is followed).
    expect(events.filter((e) => e.type === "job.exit_followed").map((e) => e.data.job)).toEqual(["install", "seed"]);
    expect(events.filter((e) => e.type === "job.exit_polled")).toEqual([]);
    expect((await getRun(id)).status).toBe("failed");
  });

  it("catches every exit by polling when no report arrives and no log can be followed", async () => {
    await injectFaults({ toolboxFailures: { count: 1000, mode: "502", match: "/logs$" } });
    const id = await startRun({ prompt: "no follow", attempts: 1, agent: "demo" });
    const run = await waitForRun(id, settled);
    expect(run.rounds[0]!.attempts[0]!).toMatchObject({ status: "done", error: null });
    const events = await runEvents(id);
    expect(events.filter((e) => e.type === "job.exit_polled").map((e) => e.data.job)).toEqual(["install", "seed", "agent", "collect"]);
    expect(events.filter((e) => e.type === "job.exit_followed")).toEqual([]);
    // Each job's first refused stream is shown once, with the toolbox's answer.
    const refused = events.filter((e) => e.type === "job.follow_failed");
    expect(refused.map((e) => e.data.job)).toEqual(["install", "seed", "agent", "collect"]);
    expect(String(refused[0]!.data.reason)).toMatch(/502/);
    // The transcript was read back from the sandbox once the agent had ended, each line once.
    expect(events.filter((e) => e.type === "agent.result")).toHaveLength(1);
  });
});

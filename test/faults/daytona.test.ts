// The engine against the local sandbox server's 'daytona' profile: every behaviour in which real Daytona
// is harsher than a kind stand-in (tools/local-sandbox/README.md, "Where this server is as harsh as
// Daytona", has each one's source), at once. Egress is restricted as on Tiers 1 and 2: no sandbox can
// reach PUBLIC_URL (the relay), so no runner report ever arrives and nothing may depend on one. The
// daemon answers as v0.190 does, deletes only mark, creates pass through `creating`, quotas hold.
// The faults project runs its files one at a time, so switching the shared server here touches no other.
import { env } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Account, api, attemptsOf, createAccount, killSandbox, runEvents, sandboxAdmin, startRun, watch } from "./harness.ts";

async function behaviour(body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/admin/behaviour`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}

/** A command in a sandbox through the local server's toolbox (the test looks inside, as a person would). */
async function inSandbox(id: string, command: string): Promise<string> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/toolbox/${id}/process/execute`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer test" },
    body: JSON.stringify({ command }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { result: string }).result;
}

/** No sandbox of the account is live (marked ones count as gone: Daytona destroys them on its own). */
async function liveOf(account: Account): Promise<string[]> {
  return (await sandboxAdmin()).sandboxes.filter((s) => s.labels["multishot-account"] === account.id).map((s) => `${s.id} ${s.state}`);
}

describe("on a server as harsh as Daytona (Tier 1: restricted egress, the v0.190 daemon, marking deletes, quotas)", () => {
  beforeAll(async () => {
    const b = await behaviour({ profile: "daytona", destroyDelayMs: 1500, createPendingMs: 500 });
    expect(b).toMatchObject({ profile: "daytona", egress: "restricted", daemon: "v0.190", lifecycle: "daytona" });
  });
  afterAll(async () => {
    await behaviour({ profile: "lenient" });
  });

  it("a whole run goes end to end with no sandbox reaching the Worker: round 1, pick, stored, round 2 seeded from the same bytes, pick, stored, cancel, nothing live", async () => {
    const account = await createAccount("daytona: end to end");
    const id = await startRun(account, { prompt: "round one [add-only]", attempts: 2 });
    const r1 = await watch(account, id, (r) => r.status !== "running", 120_000);
    expect(attemptsOf(r1).map((a) => a.status)).toEqual(["done", "done"]);
    const events1 = await runEvents(account, id);
    // Every sandbox found PUBLIC_URL unreachable, so no exit was reported: the Worker saw each one itself,
    // in the job's followed log (a poll that happens to look first may see one), though this daemon
    // never closes a followed log...
    expect(events1.filter((e) => e.type === "sandbox.probed").map((e) => e.data.reachesWorker)).toEqual([false, false]);
    const seen = events1.filter((e) => e.type === "job.exit_followed" || e.type === "job.exit_polled");
    expect(new Set(seen.map((e) => `${e.attempt}:${String(e.data.job)}`)).size).toBe(8);
    expect(new Set(events1.filter((e) => e.type === "job.exit_followed").map((e) => e.attempt))).toEqual(new Set([1, 2]));
    // ...and each agent's transcript arrived while it worked, read from the same log.
    for (const n of [1, 2]) {
      const firstLine = events1.find((e) => e.attempt === n && e.type.startsWith("agent."));
      const agentExit = seen.find((e) => e.attempt === n && e.data.job === "agent");
      expect(firstLine!.seq).toBeLessThan(agentExit!.seq);
    }

    expect((await api(`/api/runs/${id}/rounds/1/winner`, account.key, { method: "POST", json: { attempt: 2 } })).status).toBe(202);
    const stored1 = await watch(account, id, (r) => r.rounds[0]!.winner?.status === "stored" || r.rounds[0]!.winner?.status === "failed", 90_000);
    expect(stored1.rounds[0]!.winner).toMatchObject({ status: "stored" });
    const sha1 = stored1.rounds[0]!.winner!.tarball!.sha256;
    // The pack job's exit, too, was read off its followed log, not waited for by a poll.
    const packExit = (events: Awaited<ReturnType<typeof runEvents>>, round: number) =>
      events.filter((e) => e.round === round && e.data.job === "pack" && (e.type === "job.exit_followed" || e.type === "job.exit_polled")).map((e) => e.type);
    expect(packExit(await runEvents(account, id), 1)).toEqual(["job.exit_followed"]);

    expect((await api(`/api/runs/${id}/rounds`, account.key, { method: "POST", json: { prompt: "round two [add-only]", attempts: 2 } })).status).toBe(202);
    const r2 = await watch(account, id, (r) => r.rounds.length === 2 && r.rounds[1]!.status !== "running", 120_000);
    expect(r2.rounds[1]!.attempts.map((a) => a.status)).toEqual(["done", "done"]);
    // Each round-2 sandbox unpacked exactly the stored bytes: its seed checked them against the SHA-256.
    for (const a of r2.rounds[1]!.attempts) {
      expect(await inSandbox(a.sandboxId!, "cat ~/.multishot/jobs/seed.out")).toContain(`seeded from round 1's winner (attempt 2), sha256 ${sha1}`);
      expect(await inSandbox(a.sandboxId!, "ls ~/workspace")).toContain("added-r1-a2.txt");
    }

    expect((await api(`/api/runs/${id}/rounds/2/winner`, account.key, { method: "POST", json: { attempt: 1 } })).status).toBe(202);
    const stored2 = await watch(account, id, (r) => r.rounds[1]!.winner?.status === "stored" || r.rounds[1]!.winner?.status === "failed", 90_000);
    expect(stored2.rounds[1]!.winner).toMatchObject({ status: "stored" });
    expect(stored2.rounds[1]!.winner!.tarball!.sha256).not.toBe(sha1);
    expect(packExit(await runEvents(account, id), 2)).toEqual(["job.exit_followed"]);

    expect((await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" })).status).toBeLessThan(300);
    await expect.poll(() => liveOf(account), { timeout: 30_000, interval: 500 }).toEqual([]);
    // Deletes were marks first, confirmed later: each attempt's sandbox was deleted once, none failed.
    const events = await runEvents(account, id);
    expect(events.filter((e) => e.type === "sandbox.delete_failed")).toEqual([]);
    await expect
      .poll(async () => (await runEvents(account, id)).filter((e) => e.type === "sandbox.deleted").length, { timeout: 30_000, interval: 500 })
      .toBe(4);
    expect(events.some((e) => e.type === "sandbox.delete_pending")).toBe(true);
  }, 300_000);

  it("an errored sandbox that Daytona can recover is recovered once, and its job starts again", async () => {
    const account = await createAccount("daytona: recover");
    const id = await startRun(account, { prompt: "recover [slow:1500]", attempts: 1 });
    const running = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "running_agent", 90_000);
    await killSandbox(attemptsOf(running)[0]!.sandboxId!, { state: "error", errorReason: "the runner restarted", recoverable: true });
    const run = await watch(account, id, (r) => r.status !== "running", 120_000);
    expect(attemptsOf(run)[0]).toMatchObject({ status: "done", error: null, retries: 1 });
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
    await expect.poll(() => liveOf(account), { timeout: 30_000, interval: 500 }).toEqual([]);
  }, 240_000);

  it("a winner whose sandbox was stopped meanwhile (Daytona's auto-stop) is started again and stored", async () => {
    const account = await createAccount("daytona: stopped winner");
    const id = await startRun(account, { prompt: "stopped winner [add-only]", attempts: 1 });
    const r1 = await watch(account, id, (r) => r.status !== "running", 120_000);
    const sandboxId = attemptsOf(r1)[0]!.sandboxId!;
    await killSandbox(sandboxId, { state: "stopped" });
    expect((await api(`/api/runs/${id}/rounds/1/winner`, account.key, { method: "POST", json: { attempt: 1 } })).status).toBe(202);
    const stored = await watch(account, id, (r) => r.rounds[0]!.winner?.status === "stored" || r.rounds[0]!.winner?.status === "failed", 90_000);
    expect(stored.rounds[0]!.winner).toMatchObject({ status: "stored" });
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
    await expect.poll(() => liveOf(account), { timeout: 30_000, interval: 500 }).toEqual([]);
  }, 240_000);

  it("an agent whose sandbox Daytona auto-stopped mid-run is started again, in a new session (the old one is lost), not reported as gone", async () => {
    const account = await createAccount("daytona: auto-stop mid-agent");
    const id = await startRun(account, { prompt: "auto-stopped [slow:3000] [add-only]", attempts: 1 });
    const running = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "running_agent", 90_000);
    const sandboxId = attemptsOf(running)[0]!.sandboxId!;
    // Stopped as Daytona's auto-stop stops it: the agent's processes go, and with them the session.
    await killSandbox(sandboxId, { state: "stopped" });
    const run = await watch(account, id, (r) => r.status !== "running", 120_000);
    const [a] = attemptsOf(run);
    expect(a).toMatchObject({ status: "done", error: null, retries: 1, sandboxId });
    const events = await runEvents(account, id);
    const retry = events.find((e) => e.type === "attempt.retry");
    expect(String(retry?.data.reason)).toMatch(/^running agent: the sandbox was stopped or lost its session/);
    // The agent ran again to its end in the started-again sandbox: its file is there.
    expect(await inSandbox(sandboxId, "ls ~/workspace")).toContain("added-r1-a1.txt");
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
    await expect.poll(() => liveOf(account), { timeout: 30_000, interval: 500 }).toEqual([]);
  }, 240_000);

  it("a quota refusal keeps the attempt queued with Daytona's reason and asks again, with no busy loop, until there is room", async () => {
    // Room for two sandboxes of one CPU each; three attempts that fail fast, so room comes back.
    await behaviour({ quotaCpu: 2 });
    try {
      const account = await createAccount("daytona: quota");
      const id = await startRun(account, { prompt: "quota [fail]", attempts: 3 });
      const run = await watch(account, id, (r) => r.status !== "running", 180_000);
      const events = await runEvents(account, id);
      const waits = events.filter((e) => e.type === "sandbox.quota_wait");
      expect(waits.length).toBeGreaterThan(0);
      expect(String(waits[0]!.data.reason)).toMatch(/^Daytona quota: Total CPU limit exceeded/);
      // Asked again with a growing pause: a handful of times, not hundreds.
      expect(waits.length).toBeLessThan(15);
      // Every attempt got its sandbox in the end and failed for its own reason (the agent's), not the quota.
      for (const a of attemptsOf(run)) {
        expect(a.status).toBe("failed");
        expect(a.error).not.toMatch(/quota/);
      }
      await expect.poll(() => liveOf(account), { timeout: 30_000, interval: 500 }).toEqual([]);
    } finally {
      await behaviour({ quotaCpu: 10 });
    }
  }, 240_000);
});

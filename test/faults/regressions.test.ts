// Faults the engine did not survive until this suite found them; each test states the right behaviour,
// and failed before its fix (the notes say where the fix is).
import { afterEach, describe, expect, it } from "vitest";
import { type Pump, api, attemptsOf, createAccount, faultsLeft, everySandbox, noFollow, runEvents, runOfPath, sandboxAdmin, setFaults, sleep, startPump, startRun, watch } from "./harness.ts";

const POLL = "^/process/session/[^/]+/command/[^/]+$";

describe("regressions found by the fault suite", () => {
  // A pump belongs to the test that started it (its I/O context): each test stops its own.
  let pump: Pump | null = null;
  afterEach(async () => {
    await pump?.stop();
    pump = null;
  });

  // A Daytona call that is never answered. The SDK waits 24 h by default, and a step's timer key stays
  // "in flight" while its handler awaits: the alarm loop skips in-flight keys, so that attempt's steps
  // (its polls, and after its deadline its cleanup) never ran again while the call hung. Fixed by the
  // client's `requestTimeoutMs` (src/sandbox/client.ts, DAYTONA_REQUEST_TIMEOUT_MS, 30 s). Here one poll
  // of the agent's job hangs (the local server never answers it), the agent's exit report is lost and
  // no log stream opens, so only a poll can see the exit.
  it("an unanswered poll does not hold the attempt: its agent's exit is still seen", async () => {
    const account = await createAccount("bug: hung poll");
    await setFaults({ scoped: { [`hung-${account.id}`]: { labels: { "multishot-account": account.id }, toolboxFailures: { count: 1, mode: "hang", match: POLL } }, ...noFollow(account.id) } });
    const runs = new Set<string>();
    pump = startPump(({ url, body }) => (!runs.has(runOfPath(url) ?? "") ? "wait" : /"job":"agent"/.test(body) ? "drop" : "forward"));
    const id = await startRun(account, { prompt: "hung poll [slow:300]", attempts: 1, limits: { attemptMinutes: 3 } });
    runs.add(id);
    const started = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "running_agent", 30_000);
    expect(attemptsOf(started)[0]!.status).toBe("running_agent");
    // The agent is done ~2 s in. A poll is a small GET: a client-side timeout of 30 s, then another
    // poll, would see the exit well within 50 s.
    const run = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "done", 50_000);
    expect(attemptsOf(run)[0]!.status).toBe("done");
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
  }, 120_000);

  // The same hang, with the attempt's deadline shorter than the hang: the deadline fails the attempt (it
  // has its own timer key), but the attempt's cleanup is its step key's work, and that key is still in
  // flight: the failed attempt's sandbox was not deleted until the hung call returned (or the sweeper
  // came). Given back within 40 s of the failure holds with the request timeout of 30 s.
  // Every poll hangs here, so that one is in flight when the deadline comes.
  it("an attempt that failed at its deadline gives its sandbox back even while a call of its step hangs", async () => {
    const account = await createAccount("bug: hung poll, deadline");
    await setFaults({ scoped: { [`hung-${account.id}`]: { labels: { "multishot-account": account.id }, toolboxFailures: { count: 1000, mode: "hang", match: POLL } }, ...noFollow(account.id) } });
    const runs = new Set<string>();
    pump = startPump(({ url, body }) => (!runs.has(runOfPath(url) ?? "") ? "wait" : /"job":"agent"/.test(body) ? "drop" : "forward"));
    const id = await startRun(account, { prompt: "hung poll, deadline [slow:300]", attempts: 1, limits: { attemptMinutes: 0.2 } });
    runs.add(id);
    const run = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "failed", 60_000);
    expect(attemptsOf(run)[0]).toMatchObject({ status: "failed", error: "timed out: agent ran longer than 0.2 minutes and was stopped" });
    const failedAt = attemptsOf(run)[0]!.timestamps.failed!;
    let live = 1;
    for (const until = failedAt + 40_000; Date.now() < until && live > 0; await sleep(500)) {
      live = (await sandboxAdmin()).sandboxes.filter((s) => s.labels["multishot-run"] === id).length;
    }
    expect(live, "the failed attempt's sandbox, 40 s after it failed").toBe(0);
    expect(everySandbox(await sandboxAdmin()).filter((s) => s.labels["multishot-run"] === id)).toHaveLength(1);
  }, 120_000);

  // Lost output reports. The runner streams the agent's stdout in batches (each line numbered) and
  // gives up on a batch after two tries; the Worker read the agent's log back from the sandbox at its
  // exit only when no `agent.result` arrived. So when earlier batches were lost but the one with the
  // result arrived, the lost lines never reached the transcript, though the line numbers showed the gap.
  // Now a gap also triggers the read-back (recoverTranscript in src/durable/run-coordinator.ts). Seen
  // under the load (loaded Worker: pushes time out); here the relay drops every output batch but the
  // one carrying the result.
  it("a transcript whose early output reports were lost is completed from the sandbox's log", async () => {
    const account = await createAccount("bug: lost output");
    // No log stream either: its lines would fill the gap as they come.
    await setFaults({ scoped: noFollow(account.id) });
    const runs = new Set<string>();
    let dropped = 0;
    pump = startPump(({ url, body }) => {
      if (!runs.has(runOfPath(url) ?? "")) return "wait";
      if (/"job":"agent"/.test(body) && /"kind":"output"/.test(body) && !/\\"type\\":\\"result\\"/.test(body)) {
        dropped++;
        return "drop";
      }
      return "forward";
    });
    const id = await startRun(account, { prompt: "lost output [slow:700]", attempts: 1 });
    runs.add(id);
    const run = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "done", 60_000);
    expect(attemptsOf(run)[0]!.status).toBe("done");
    expect(dropped).toBeGreaterThan(0);
    const types = (await runEvents(account, id)).filter((e) => e.attempt === 1).map((e) => e.type);
    expect(types.filter((t) => t === "agent.result")).toHaveLength(1);
    expect(types.filter((t) => t === "agent.init")).toHaveLength(1);
    expect(types.filter((t) => t === "agent.tool")).toHaveLength(3);
    expect(types.filter((t) => t === "agent.text")).toHaveLength(2);
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
  }, 90_000);
  // An agent whose final result line is longer than the runner pushes (60 KB): the runner pushes an
  // empty placeholder for it. Since the gap check, its number counted as seen before the line was
  // parsed, so the read-back skipped it and the attempt lost its summary (final message, turns, cost).
  // Fixed by keeping placeholders apart from read lines (firstSighting in src/durable/ingest.ts).
  it("an over-long result line is read back from the sandbox's log, and the attempt keeps its summary", async () => {
    const account = await createAccount("bug: long result");
    const runs = new Set<string>();
    let placeholders = 0;
    pump = startPump(({ url, body }) => {
      if (!runs.has(runOfPath(url) ?? "")) return "wait";
      if (/"job":"agent"/.test(body) && /"kind":"output"/.test(body) && (JSON.parse(body) as { lines: string[] }).lines.includes("")) placeholders++;
      return "forward";
    });
    const id = await startRun(account, { prompt: "long result [long-result]", attempts: 1 });
    runs.add(id);
    const run = await watch(account, id, (r) => attemptsOf(r)[0]!.status === "done", 60_000);
    const attempt = attemptsOf(run)[0]!;
    expect(attempt.status).toBe("done");
    expect(placeholders).toBeGreaterThan(0);
    expect(attempt.summary).toMatchObject({ turns: 5, isError: false });
    expect(attempt.summary!.finalMessage).toMatch(/^Attempt 1 built "long result".*More detail\. More detail\./s);
    const events = (await runEvents(account, id)).filter((e) => e.attempt === 1);
    expect(events.filter((e) => e.type === "agent.result")).toHaveLength(1);
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
  }, 90_000);

  // The winner's bytes move through the toolbox now (src/durable/transfer.ts): the Worker pulls the
  // packed parts out of the winner's sandbox and pushes them into the next round's. A connection reset
  // on either leg is tried again: the first part's pull (within the part's own tries: no packing try
  // fails), and the first upload into the round-2 sandbox (its job files, which come before the base's
  // parts); the SHA-256s still match, and the next round seeds from the winner. Before, the seed streamed curl into tar from a
  // Worker URL that a Tier 1 sandbox cannot reach, and a reset failed the attempt at seeding.
  it("a winner's part whose pull breaks off, and a next-round upload that breaks off, are carried again, and round 2 seeds from it", async () => {
    const account = await createAccount("regression: broken transfer");
    const labels = { "multishot-account": account.id };
    await setFaults({
      scoped: {
        [`pull-${account.id}`]: { labels, toolboxFailures: { count: 1, mode: "reset", match: "^/files/download" } },
        [`push-${account.id}`]: { labels: { ...labels, "multishot-round": "2" }, toolboxFailures: { count: 1, mode: "reset", match: "^/files/bulk-upload" } },
      },
    });
    const runs = new Set<string>();
    pump = startPump(({ url }) => (!runs.has(runOfPath(url) ?? "") ? "wait" : "forward"));
    const id = await startRun(account, { prompt: "round one [slow:100]", attempts: 1 });
    runs.add(id);
    await watch(account, id, (r) => attemptsOf(r)[0]!.status === "done", 60_000);
    const pick = await api(`/api/runs/${id}/rounds/1/winner`, account.key, { method: "POST", json: { attempt: 1 } });
    expect(pick.status).toBeLessThan(300);
    const stored = await watch(account, id, (r) => r.rounds[0]!.winner?.status === "stored", 60_000);
    expect(stored.rounds[0]!.winner?.status).toBe("stored");
    const next = await api(`/api/runs/${id}/rounds`, account.key, { method: "POST", json: { prompt: "round two [add-only]", attempts: 1 } });
    expect(next.status).toBe(202);
    const run = await watch(account, id, (r) => r.rounds.length === 2 && r.status !== "running", 90_000);
    expect(run.rounds[1]!.attempts[0]).toMatchObject({ status: "done", error: null });
    // Both faults fired (each is spent once it has), and the winner's events say it was packed once.
    const faults = await faultsLeft();
    expect(faults.scoped?.[`pull-${account.id}`]?.toolboxFailures?.count ?? 0).toBe(0);
    expect(faults.scoped?.[`push-${account.id}`]?.toolboxFailures?.count ?? 0).toBe(0);
    const events = await runEvents(account, id);
    expect(events.filter((e) => e.type === "winner.stored")).toHaveLength(1);
    expect(events.filter((e) => e.type === "winner.pack_failed")).toHaveLength(0);
    await api(`/api/runs/${id}/cancel`, account.key, { method: "POST" });
  }, 180_000);
});

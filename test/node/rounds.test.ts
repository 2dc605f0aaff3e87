// Rounds and winners, end to end under `npm start`: the winner's workspace goes through R2 into every
// attempt of the next round, byte for byte.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { manifest } from "../support/manifest.ts";
import { ROOT } from "../support/processes.ts";
import { startService, type Service } from "../support/service.ts";

let service: Service;
beforeAll(async () => {
  // Small parts, so that even a modest workspace travels as a multipart upload.
  // A 32 MiB cap on a winner's tarball: the 12 MiB winner below fits, the 40 MiB one does not.
  service = await startService({ UPLOAD_PART_BYTES: String(5 * 1024 * 1024), POLL_INTERVAL_MS: "1000", WINNER_MAX_BYTES: String(32 * 1024 * 1024) });
});
afterAll(async () => {
  await service?.close();
});

async function run(id: string): Promise<RunView> {
  return (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
}

async function waitFor(id: string, done: (r: RunView) => boolean, timeoutMs = 90_000): Promise<RunView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await run(id);
    if (done(r)) return r;
    if (Date.now() > until) throw new Error(`run ${id} did not get there: ${JSON.stringify(r, null, 2)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function start(body: Record<string, unknown>): Promise<string> {
  const res = await service.api("/api/runs", { method: "POST", json: body });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

type Event = { type: string; attempt: number | null; data: Record<string, unknown> };
async function events(id: string): Promise<Event[]> {
  return ((await (await service.api(`/api/runs/${id}/events`)).json()) as { events: Event[] }).events;
}

async function liveSandboxes(runId: string): Promise<string[]> {
  const body = (await (await fetch(`${service.localSandboxUrl}/admin/sandboxes`)).json()) as {
    sandboxes: { id: string; state: string; labels: Record<string, string> }[];
  };
  return body.sandboxes.filter((s) => s.labels["multishot-run"] === runId && s.state !== "destroyed").map((s) => s.id);
}

const workspace = (sandboxId: string) => join(service.sandboxRoot, "sandboxes", sandboxId, "home", "workspace");
const notGitOrDeps = (p: string) => p === ".git" || p.startsWith(".git/") || p === "node_modules" || p.startsWith("node_modules/");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** The manifest of a tarball's contents, .git aside. */
function tarballManifest(tarball: Uint8Array): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "multishot-tarball-"));
  try {
    writeFileSync(join(dir, "w.tar.gz"), tarball);
    mkdirSync(join(dir, "x"));
    execFileSync("tar", ["-xzf", join(dir, "w.tar.gz"), "-C", join(dir, "x")]);
    return manifest(join(dir, "x"), (p) => p === ".git" || p.startsWith(".git/"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const storedWinner = (round: number) => (r: RunView) => r.rounds[round - 1]?.winner?.status === "stored" || r.rounds[round - 1]?.winner?.status === "failed";

describe("rounds and winners", () => {
  it("carries the winner's files byte for byte into every attempt of the next round", async () => {
    const id = await start({ prompt: "a site [fixtures]", agent: "demo", attempts: 4 });
    const round1 = await waitFor(id, (r) => r.status !== "running");
    expect(round1.rounds[0]!.attempts.map((a) => a.status)).toEqual(["done", "done", "done", "done"]);
    // Done attempts and no winner: the run waits for a pick, in the API and in D1's listing.
    expect(round1.status).toBe("awaiting_pick");
    const listed = (await (await service.api("/api/runs?status=awaiting_pick&limit=100")).json()) as { runs: { id: string }[] };
    expect(listed.runs.map((r) => r.id)).toContain(id);

    // Make B's workspace big enough for several parts; then take its manifest as the truth.
    const b = round1.rounds[0]!.attempts[1]!;
    writeFileSync(join(workspace(b.sandboxId!), "big.bin"), randomBytes(12 * 1024 * 1024));
    const expected = manifest(workspace(b.sandboxId!), notGitOrDeps);
    expect(Object.keys(expected)).toEqual(
      expect.arrayContaining(["logo.bin", "run.sh", "home.html", "empty", "empty/nested", "données/café ☕ ü.txt", "big.bin"]),
    );
    expect(expected["run.sh"]).toMatch(/^file 755 /);
    expect(expected["home.html"]).toBe("link -> index.html");

    const pick = await service.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 2 } });
    expect(pick.status).toBe(202);
    const again = await service.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 3 } });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("winner_already_picked");

    const picked = await waitFor(id, storedWinner(1));
    const winner = picked.rounds[0]!.winner!;
    expect(winner).toMatchObject({ attempt: 2, status: "stored", error: null });
    // The pick it waited for: succeeded.
    expect(picked.status).toBe("succeeded");
    const parts = (await events(id)).filter((e) => e.type === "winner.part");
    expect(parts.length).toBeGreaterThanOrEqual(3);

    // Losers went at the pick; the winner's sandbox once its tarball was safe.
    await expect.poll(() => liveSandboxes(id), { timeout: 15_000 }).toEqual([]);
    // The object records each delete once Daytona has answered it, a moment after the sandbox is gone.
    await expect
      .poll(async () => (await events(id)).filter((e) => e.type === "sandbox.deleted").length, { timeout: 15_000 })
      .toBe(4);
    const log = await events(id);
    const deleted = (n: number) => log.findIndex((e) => e.type === "sandbox.deleted" && e.attempt === n);
    const selectedAt = log.findIndex((e) => e.type === "winner.selected");
    const storedAt = log.findIndex((e) => e.type === "winner.stored");
    for (const loser of [1, 3, 4]) expect(deleted(loser)).toBeGreaterThan(selectedAt);
    expect(deleted(2)).toBeGreaterThan(storedAt);

    // The tarball through the API: whole, hashed as recorded, ranged, cached.
    const res = await service.api(`/api/runs/${id}/rounds/1/winner.tar.gz`);
    expect(res.status).toBe(200);
    const tarball = new Uint8Array(await res.arrayBuffer());
    expect(Number(res.headers.get("content-length"))).toBe(winner.tarball!.size);
    expect(tarball.length).toBe(winner.tarball!.size);
    expect(sha256(tarball)).toBe(winner.tarball!.sha256);
    const etag = res.headers.get("etag")!;
    const ranged = await fetch(`${service.url}/api/runs/${id}/rounds/1/winner.tar.gz`, {
      headers: { authorization: `Bearer ${service.key}`, range: "bytes=100-199" },
    });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 100-199/${tarball.length}`);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(tarball.slice(100, 200));
    const cached = await fetch(`${service.url}/api/runs/${id}/rounds/1/winner.tar.gz`, {
      headers: { authorization: `Bearer ${service.key}`, "if-none-match": etag },
    });
    expect(cached.status).toBe(304);
    expect(tarballManifest(tarball)).toEqual(expected);

    // Round 2 starts from B: every attempt begins with B's files, and its diff is against them.
    const next = await service.api(`/api/runs/${id}/rounds`, { method: "POST", json: { prompt: "one more file [add-only]" } });
    expect(next.status).toBe(202);
    const round2 = await waitFor(id, (r) => r.rounds.length === 2 && r.status !== "running");
    const attempts2 = round2.rounds[1]!.attempts;
    expect(round2.rounds[1]!.fromRound).toBe(1);
    expect(attempts2.map((a) => a.status), JSON.stringify(attempts2.map((a) => a.error))).toEqual(["done", "done", "done", "done"]);
    for (const a of attempts2) {
      const added = `added-r2-a${a.number}.txt`;
      const ws = workspace(a.sandboxId!);
      expect(manifest(ws, (p) => notGitOrDeps(p) || p === added)).toEqual(expected);
      expect(a.diffStats).toEqual({ files: 1, additions: 1, deletions: 0 });
      const patch = await (await service.api(`/api/runs/${id}/rounds/2/attempts/${a.number}/diff`)).text();
      expect(patch).toContain(`+++ b/${added}`);
      expect(patch).not.toContain("index.html");
      const log = execFileSync("git", ["log", "--format=%s"], { cwd: ws, encoding: "utf8" });
      expect(log).toContain("multishot: round 2 base (winner of round 1, attempt 2)");
      expect(log).toContain("multishot: round 1 base");
    }
    // D1 records the tarball's size and SHA-256.
    const rows = JSON.parse(
      execFileSync(
        "npx",
        ["wrangler", "d1", "execute", "DB", "--local", "--persist-to", service.stateDir, "--json", "--command",
          `SELECT winner_attempt, winner_status, tarball_size, tarball_sha256 FROM rounds WHERE run_id = '${id}' AND number = 1`],
        { encoding: "utf8", cwd: ROOT },
      ),
    ) as { results: Record<string, unknown>[] }[];
    expect(rows[0]!.results[0]).toEqual({
      winner_attempt: 2,
      winner_status: "stored",
      tarball_size: winner.tarball!.size,
      tarball_sha256: winner.tarball!.sha256,
    });

    // Another run can start from this winner too.
    const other = await start({ prompt: "built on B [add-only]", agent: "demo", attempts: 1, base: { run: id, round: 1 } });
    const otherRun = await waitFor(other, (r) => r.status !== "running");
    const o = otherRun.rounds[0]!.attempts[0]!;
    expect(o.status).toBe("done");
    expect(manifest(workspace(o.sandboxId!), (p) => notGitOrDeps(p) || p === "added-r1-a1.txt")).toEqual(expected);
    const missing = await service.api("/api/runs", { method: "POST", json: { prompt: "x", agent: "demo", base: { run: id, round: 2 } } });
    expect(missing.status).toBe(409);

    for (const r of [id, other]) await service.api(`/api/runs/${r}/cancel`, { method: "POST" });
    await expect.poll(async () => [...(await liveSandboxes(id)), ...(await liveSandboxes(other))], { timeout: 15_000 }).toEqual([]);
  });

  it("fails at once a winner whose workspace packs past WINNER_MAX_BYTES, pulling nothing into R2", async () => {
    const id = await start({ prompt: "a site", agent: "demo", attempts: 1 });
    const done = await waitFor(id, (r) => r.status !== "running");
    writeFileSync(join(workspace(done.rounds[0]!.attempts[0]!.sandboxId!), "huge.bin"), randomBytes(40 * 1024 * 1024));
    expect((await service.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 1 } })).status).toBe(202);
    const picked = await waitFor(id, storedWinner(1));
    const winner = picked.rounds[0]!.winner!;
    expect(winner.status).toBe("failed");
    expect(winner.error).toMatch(/^the winner's workspace packs to \d+ bytes, over this service's limit of 33554432 \(WINNER_MAX_BYTES\): add build outputs and dependencies to the run's excludes/);
    const log = await events(id);
    expect(log.filter((e) => e.type === "winner.part")).toEqual([]);
    expect(log.filter((e) => e.type === "winner.pack_failed")).toHaveLength(1);
    expect((await service.api(`/api/runs/${id}/rounds/1/winner.tar.gz`)).status).not.toBe(200);
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("refuses to pick an attempt that is not done, or a round that has none", async () => {
    const id = await start({ prompt: "x", agent: "demo", attempts: 2, variations: [{}, { promptSuffix: "[fail]" }] });
    await waitFor(id, (r) => r.status !== "running");
    const failed = await service.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 2 } });
    expect(failed.status).toBe(409);
    expect(((await failed.json()) as { error: { code: string } }).error.code).toBe("attempt_not_done");
    expect((await service.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 7 } })).status).toBe(404);
    expect((await service.api(`/api/runs/${id}/rounds/3/winner`, { method: "POST", json: { attempt: 1 } })).status).toBe(404);
    const early = await service.api(`/api/runs/${id}/rounds`, { method: "POST", json: { prompt: "next" } });
    expect(early.status).toBe(409);
    expect(((await early.json()) as { error: { code: string } }).error.code).toBe("no_winner");
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("retries a winner transfer that breaks half-way, and only the complete tarball ever becomes the winner", async () => {
    const id = await start({ prompt: "a site", agent: "demo", attempts: 1 });
    const r1 = await waitFor(id, (r) => r.status !== "running");
    const a = r1.rounds[0]!.attempts[0]!;
    const home = join(service.sandboxRoot, "sandboxes", a.sandboxId!, "home");
    writeFileSync(join(home, "workspace", "big.bin"), randomBytes(11 * 1024 * 1024));
    const expected = manifest(join(home, "workspace"), notGitOrDeps);
    // The Worker pulls the packed parts through the toolbox: the connection breaks on the first part as
    // often as the Worker tries it (3 times), so that try fails, is aborted, and the next one stores.
    const faults = await fetch(`${service.localSandboxUrl}/admin/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ toolboxFailures: { count: 3, mode: "reset", match: "^/files/download" } }),
    });
    expect(faults.status).toBe(200);

    expect((await service.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 1 } })).status).toBe(202);
    const done = await waitFor(id, storedWinner(1));
    expect(done.rounds[0]!.winner!.status).toBe("stored");
    const evs = await events(id);
    const failedAt = evs.findIndex((e) => e.type === "winner.pack_failed");
    expect(failedAt).toBeGreaterThan(-1);
    expect(String(evs[failedAt]!.data.reason)).toMatch(/toolbox did not answer|network connection lost/i);
    expect(((await (await fetch(`${service.localSandboxUrl}/admin/faults`)).json()) as { toolboxFailures?: { count: number } }).toolboxFailures?.count).toBe(0);
    // Nothing was stored by the broken try: the only stored event comes from the second try.
    expect(evs.filter((e) => e.type === "winner.stored")).toHaveLength(1);
    expect(evs.findIndex((e) => e.type === "winner.stored")).toBeGreaterThan(failedAt);

    const tarball = new Uint8Array(await (await service.api(`/api/runs/${id}/rounds/1/winner.tar.gz`)).arrayBuffer());
    expect(sha256(tarball)).toBe(done.rounds[0]!.winner!.tarball!.sha256);
    expect(tarballManifest(tarball)).toEqual(expected);
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it('picks the first attempt whose verify command passes under winner: "first-verified"', async () => {
    const id = await start({
      prompt: "verified",
      agent: "demo",
      attempts: 3,
      verify: 'test "$MULTISHOT_ATTEMPT" = 2 && test -f index.html',
      winner: "first-verified",
    });
    const r = await waitFor(id, storedWinner(1));
    const round = r.rounds[0]!;
    expect(round.winner).toMatchObject({ attempt: 2, status: "stored" });
    expect(round.attempts[1]!.verify).toMatchObject({ passed: true, exitCode: 0 });
    for (const other of [round.attempts[0]!, round.attempts[2]!]) {
      if (other.status === "done") expect(other.verify).toMatchObject({ passed: false, exitCode: 1 });
      else expect(other.status).toBe("cancelled");
    }
    await expect.poll(() => liveSandboxes(id), { timeout: 15_000 }).toEqual([]);
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});

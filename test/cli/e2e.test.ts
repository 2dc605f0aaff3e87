// The multishot CLI end to end, as a user and as a script drive it: the real command against the
// service started as `npm start` starts it (demo agent), through whole two-round runs in a terminal
// (a pseudo-terminal from util-linux `script`) and in --json mode, and through a connection that drops.
import { execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { bytes, usd } from "../../src/cli/format.ts";
import { startService, type Service } from "../support/service.ts";
import { freshConfigHome, removeTempDirs, runCli, screen, sha256, stripAnsi, tempDir } from "./helpers.ts";
import { startProxy } from "./proxy.ts";

let service: Service;
let env: Record<string, string | undefined>;
beforeAll(async () => {
  service = await startService();
  // Every create takes 1.5 s, as Daytona's often do: the live view's first frames show each attempt in
  // `creating_sandbox` however late a loaded machine runs the CLI's first look at the run.
  const slowCreates = await fetch(`${service.localSandboxUrl}/admin/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ delayMs: { create: 1500 } }),
  });
  expect(slowCreates.status).toBe(200);
  await slowCreates.body?.cancel();
  env = { MULTISHOT_URL: service.url, MULTISHOT_API_KEY: service.key, XDG_CONFIG_HOME: freshConfigHome() };
});
afterAll(async () => {
  await service?.close();
  removeTempDirs();
});

const getRun = async (id: string) => (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
const workdir = () => tempDir("work");
const PHASES = ["creating_sandbox", "installing_agent", "seeding_workspace", "running_agent", "collecting_result", "done"];

/** How the summary table shows an attempt, from what the API says of it. */
function summaryRow(a: RunView["rounds"][number]["attempts"][number]): RegExp {
  const { turns, costUsd } = a.summary!;
  const d = a.diffStats!;
  const files = `${d.files} file${d.files === 1 ? "" : "s"} \\+${d.additions} -${d.deletions}`;
  return new RegExp(`^  #${a.number}  done  \\d:\\d\\d  ${turns} turns?  \\${usd(costUsd!)}  ${files}$`);
}

describe("the multishot CLI", () => {
  it("in a terminal: watches round 1 live, picks, downloads the winner, and watches round 2", async () => {
    const cwd = workdir();
    const tty = { env, tty: true, columns: 100, cwd };

    const r1 = await runCli(["run", "a bakery site [slow:250]", "--agent", "demo", "--attempts", "3", "--watch", "--preview"], tty);
    expect(r1.code, r1.stdout).toBe(0);
    const id = /run_[a-z2-7]{20}/.exec(r1.stdout)![0];
    // Redrawn in place: the cursor hidden, moved up over the block, and shown again at the end.
    expect(r1.stdout).toContain("\x1b[?25l");
    expect(r1.stdout).toMatch(/\x1b\[5A/);
    expect(r1.stdout).toContain("\x1b[?25h");
    // While the agents ran, their lines showed phase, elapsed time and turns, and never wrapped.
    const frames = stripAnsi(r1.stdout).split("\n");
    expect(frames.some((l) => /^ {2}#\d {2}running_agent +\d:\d\d {2}\d+ turns?$/.test(l))).toBe(true);
    expect(frames.some((l) => /^ {2}#\d {2}creating_sandbox +\d:\d\d$/.test(l))).toBe(true);
    const live = frames.filter((l) => /^ {2}#\d {2}[a-z_]+ +\d:\d\d/.test(l) && !/ says: | preview: /.test(l));
    for (const l of live) expect(l.length).toBeLessThanOrEqual(100);

    // At the end: the round's table, as the API records it, and each attempt's preview link.
    const round1 = await getRun(id);
    expect(round1.rounds[0]!.attempts.map((a) => a.status)).toEqual(["done", "done", "done"]);
    const shown = screen(r1.stdout);
    expect(shown).toContain(`${id} · round 1 · 3 attempts · demo`);
    expect(shown.find((l) => l.startsWith("round 1 finished in "))).toMatch(/: 3 done$/);
    for (const a of round1.rounds[0]!.attempts) {
      expect(shown.some((l) => summaryRow(a).test(l)), `${JSON.stringify(a)}\n${shown.join("\n")}`).toBe(true);
      expect(a.preview?.url).toMatch(/^http/);
      expect(shown).toContain(`  #${a.number} preview: ${a.preview!.url}`);
    }
    expect(shown).toContain(`pick a winner: multishot pick ${id} <attempt>`);

    const picked = await runCli(["pick", id, "2"], tty);
    expect(picked.code, picked.stdout).toBe(0);
    const afterPick = await getRun(id);
    const winner = afterPick.rounds[0]!.winner!;
    expect(winner).toMatchObject({ attempt: 2, status: "stored" });
    expect(screen(picked.stdout)).toContain(`round 1 of ${id}: picked #2`);
    expect(screen(picked.stdout).some((l) => l.startsWith("  winner: #2, stored ("))).toBe(true);

    const dl = await runCli(["download", id], tty);
    expect(dl.code, dl.stdout).toBe(0);
    expect(stripAnsi(dl.stdout)).toMatch(/\[#+\] 100%/);
    const file = join(cwd, `${id}-round-1.tar.gz`);
    const tarball = readFileSync(file);
    expect(tarball.length).toBe(winner.tarball!.size);
    expect(sha256(tarball)).toBe(winner.tarball!.sha256);
    expect(execFileSync("tar", ["-tzf", file], { encoding: "utf8" })).toMatch(/index\.html/);
    expect(screen(dl.stdout)).toContain(`saved round 1's winner (#2) to ${id}-round-1.tar.gz: ${bytes(tarball.length)}, sha256 ${winner.tarball!.sha256} verified`);

    const r2 = await runCli(["next", id, "one more file [add-only]", "--watch"], tty);
    expect(r2.code, r2.stdout).toBe(0);
    const round2 = await getRun(id);
    expect(round2.rounds).toHaveLength(2);
    expect(round2.rounds[1]).toMatchObject({ number: 2, fromRound: 1, status: "finished" });
    // Round 2 has no winner yet: the run waits for a pick.
    expect(round2.status).toBe("awaiting_pick");
    const shown2 = screen(r2.stdout);
    expect(shown2).toContain(`${id} · round 2 (from round 1's winner) · 3 attempts · demo`);
    for (const a of round2.rounds[1]!.attempts) expect(shown2.some((l) => summaryRow(a).test(l)), shown2.join("\n")).toBe(true);

    const status = await runCli(["status", id], tty);
    expect(status.code).toBe(0);
    const lines = screen(status.stdout);
    expect(lines[0]).toMatch(new RegExp(`^${id} · awaiting_pick · demo · 2 rounds · started \\d+[sm] ago$`));
    expect(lines.at(-1)).toBe(`waiting for your pick: multishot pick ${id} <attempt>, then multishot next ${id} "<prompt>"`);
    expect(lines.filter((l) => /^round [12] finished in /.test(l))).toHaveLength(2);
    expect(lines).toContain("  “one more file [add-only]” (from round 1's winner)");
  });

  it("in --json mode: the same two rounds, each command printing one JSON document", async () => {
    const cwd = workdir();
    const json = async <T>(args: string[]) => {
      const r = await runCli([...args, "--json"], { env, cwd });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe("");
      return JSON.parse(r.stdout) as T;
    };

    const watched = await json<RunView>(["run", "a tea shop", "--agent", "demo", "--attempts", "2", "--watch"]);
    expect(watched.status).toBe("awaiting_pick");
    expect(watched.rounds[0]!.attempts.map((a) => [a.status, a.diffStats !== null, a.summary?.turns])).toEqual([
      ["done", true, 5],
      ["done", true, 5],
    ]);
    const id = watched.id;
    expect((await getRun(id)).rounds[0]!.attempts.map((a) => a.status)).toEqual(["done", "done"]);

    const picked = await json<RunView>(["pick", id, "1"]);
    const winner = picked.rounds[0]!.winner!;
    expect(winner).toMatchObject({ attempt: 1, status: "stored", error: null });

    const saved = await json<{ path: string; size: number; sha256: string }>(["download", id, "-o", "winner.tgz"]);
    expect(saved).toEqual({ run: id, round: 1, attempt: 1, path: "winner.tgz", size: winner.tarball!.size, sha256: winner.tarball!.sha256 });
    expect(sha256(readFileSync(join(cwd, "winner.tgz")))).toBe(winner.tarball!.sha256);

    const next = await json<RunView>(["next", id, "and a footer [add-only]", "--attempts", "1"]);
    expect(next.rounds.map((r) => [r.number, r.status])).toEqual([
      [1, "finished"],
      [2, "running"],
    ]);
    const round2 = await json<RunView>(["watch", id]);
    expect(round2.status).toBe("awaiting_pick");
    expect(round2.rounds[1]).toMatchObject({ number: 2, fromRound: 1, status: "finished" });
    expect(round2.rounds[1]!.attempts.map((a) => [a.status, a.diffStats])).toEqual([["done", { files: 1, additions: 1, deletions: 0 }]]);

    const status = await json<RunView>(["status", id]);
    const shape = (r: RunView) => ({ id: r.id, status: r.status, rounds: r.rounds.map((x) => [x.number, x.status, x.winner?.attempt, x.attempts.map((a) => a.status)]) });
    expect(shape(status)).toEqual(shape(await getRun(id)));
    expect(shape(status).rounds).toEqual([
      [1, "finished", 1, ["done", "done"]],
      [2, "finished", undefined, ["done"]],
    ]);
    const list = await json<{ runs: { id: string; status: string }[]; nextCursor: string | null }>(["list", "--limit", "100"]);
    expect(list.runs.find((r) => r.id === id)).toMatchObject({ status: "awaiting_pick", attempts: 2, agent: "demo" });

    const view = await json<{ scope: string; url: string; expiresAt: number | null }>(["open", id]);
    // Without --expires the link lives the service's default, 30 days.
    expect(view).toMatchObject({ scope: "view" });
    expect(view.expiresAt! - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const page = await fetch(view.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(id);
    const control = await json<{ scope: string; expiresAt: number; createdAt: number }>(["open", id, "--control", "--expires", "2h"]);
    expect(control.scope).toBe("control");
    expect(control.expiresAt - control.createdAt).toBe(2 * 3600 * 1000);
  });

  it("loses nothing when the event stream keeps dropping: each phase is logged once, in order", async () => {
    const proxy = await startProxy(service.url, (req) => (req.path.includes("/events") ? { cutAfterEvents: 4 } : "pass"));
    try {
      const r = await runCli(["run", "a flaky network [slow:200]", "--agent", "demo", "--attempts", "2", "--watch"], {
        env: { ...env, MULTISHOT_URL: proxy.url },
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const id = /run_[a-z2-7]{20}/.exec(r.stdout)![0];
      for (const n of [1, 2]) {
        const phases = [...r.stdout.matchAll(new RegExp(`^\\[\\d:\\d\\d\\] attempt ${n}  (\\w+)`, "gm"))].map((m) => m[1]);
        expect(phases, r.stdout).toEqual(PHASES);
      }
      // It took many connections, each resuming after the last event the one before delivered.
      const streams = proxy.seen.filter((s) => s.path === `/api/runs/${id}/events`);
      expect(streams.length).toBeGreaterThanOrEqual(4);
      const resumedAfter = streams.slice(1).map((s) => Number(s.headers["last-event-id"]));
      expect(resumedAfter.every((n, i) => n > 0 && (i === 0 || n > resumedAfter[i - 1]!))).toBe(true);
      expect(streams[0]!.headers["last-event-id"]).toBeUndefined();
      expect(r.stderr).toContain("reconnecting to the event stream");
      expect((await getRun(id)).status).toBe("awaiting_pick");
    } finally {
      await proxy.close();
    }
  });

  it("starts one run, not two, when the answer to its start is lost and the request is retried", async () => {
    let lost = false;
    const proxy = await startProxy(service.url, (req) => {
      if (req.method !== "POST" || req.path !== "/api/runs" || lost) return "pass";
      lost = true;
      return "lose-answer";
    });
    try {
      const before = (await (await service.api("/api/runs?limit=100")).json()) as { runs: { id: string }[] };
      const r = await runCli(["run", "one run only", "--agent", "demo", "--attempts", "1", "--json"], { env: { ...env, MULTISHOT_URL: proxy.url } });
      expect(r.code, r.stderr).toBe(0);
      const { id } = JSON.parse(r.stdout) as { id: string };
      const posts = proxy.seen.filter((s) => s.method === "POST" && s.path === "/api/runs");
      expect(posts).toHaveLength(2);
      expect(posts[0]!.headers["idempotency-key"]).toMatch(/^cli-/);
      expect(posts[1]!.headers["idempotency-key"]).toBe(posts[0]!.headers["idempotency-key"]);
      const after = (await (await service.api("/api/runs?limit=100")).json()) as { runs: { id: string }[] };
      const known = new Set(before.runs.map((x) => x.id));
      expect(after.runs.filter((x) => !known.has(x.id)).map((x) => x.id)).toEqual([id]);
    } finally {
      await proxy.close();
    }
  });

  it("exits 1 for a failed run; Ctrl-C stops watching but not the run; cancel ends it", async () => {
    const failed = await runCli(["run", "a broken site [fail]", "--agent", "demo", "--attempts", "2", "--watch"], { env });
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^\[\d:\d\d\] attempt 1 {2}failed \(/m);
    expect(failed.stdout).toMatch(/^round 1 finished in \d:\d\d: 2 failed$/m);

    const started = await runCli(["run", "a site that never ends [hang]", "--agent", "demo", "--attempts", "1"], { env });
    expect(started.code).toBe(0);
    // Not a terminal: only the id, for $(multishot run …).
    expect(started.stdout).toMatch(/^run_[a-z2-7]{20}\n$/);
    const id = started.stdout.trim();

    let child: ChildProcess | undefined;
    let sent = false;
    const watching = runCli(["watch", id], { env, onSpawn: (c) => (child = c) });
    let out = "";
    child!.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (!sent && /attempt 1 {2}running_agent/.test(out)) {
        sent = true;
        child!.kill("SIGINT");
      }
    });
    const interrupted = await watching;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toContain(`stopped watching; the run goes on. Resume with: multishot watch ${id}`);
    expect((await getRun(id)).status).toBe("running");

    const cancelled = await runCli(["cancel", id], { env });
    expect(cancelled).toMatchObject({ code: 0, stdout: `cancelled ${id}\n` });
    expect((await getRun(id)).status).toBe("cancelled");
    const after = await runCli(["watch", id], { env });
    expect(after.code).toBe(1);
    expect(after.stdout).toMatch(/^round 1 cancelled in \d:\d\d: 1 cancelled$/m);
    expect((await runCli(["status", id], { env })).code).toBe(1);
  });

  it("logs in with a checked key saved owner-only; a refused key exits 3, an unknown run 1, a rejected request 2", async () => {
    const home = freshConfigHome();
    const noEnv = { MULTISHOT_URL: undefined, MULTISHOT_API_KEY: undefined, XDG_CONFIG_HOME: home };
    const refused = await runCli(["login", "--url", service.url], { env: noEnv, input: "msk_wrong_key\n" });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`${service.url} refused this API key`);
    const file = join(home, "multishot", "config.json");
    expect(existsSync(file)).toBe(false);

    const login = await runCli(["login", "--url", `${service.url}/`], { env: noEnv, input: `${service.key}\n` });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toBe(`logged in to ${service.url}; saved to ${file}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "multishot")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: service.url, apiKey: service.key });
    // The saved login is enough; the environment still wins over it.
    const listed = await runCli(["list", "--json"], { env: noEnv });
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { runs: unknown[] }).runs.length).toBeGreaterThan(0);
    const badEnvKey = await runCli(["list"], { env: { ...noEnv, MULTISHOT_API_KEY: "nope" } });
    expect(badEnvKey.code).toBe(3);
    expect(badEnvKey.stderr).toContain("invalid API key");

    const unknown = await runCli(["status", "run_aaaaaaaaaaaaaaaaaaaa"], { env: noEnv });
    expect(unknown).toMatchObject({ code: 1, stdout: "" });
    expect(unknown.stderr).toContain("run not found");
    const rejected = await runCli(["run", "a site", "--agent", "nope", "--json"], { env: noEnv });
    expect(rejected.code).toBe(2);
    expect(JSON.parse(rejected.stderr).error).toMatchObject({ code: "validation_failed" });
    expect(JSON.parse(rejected.stderr).error.message).toMatch(/^agent: /);

    const logout = await runCli(["logout"], { env: noEnv });
    expect(logout.code).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect((await runCli(["list"], { env: noEnv })).code).toBe(3);
  });
});

// The round as the watch screen shows it: events move attempts forward at once, an older view fetched
// meanwhile never moves them back, and every live line fits the terminal.
import { describe, expect, it } from "vitest";
import type { AttemptView, RunEvent, RunView } from "../../src/cli/api.ts";
import { colors, stripAnsi } from "../../src/cli/format.ts";
import { fit, liveLines, logLine, RoundProgress, summaryLines } from "../../src/cli/progress.ts";

const T0 = 1_700_000_000_000;
// Only what the CLI reads; the API may add fields.
const attempt = (number: number, status: AttemptView["status"], extra: Partial<AttemptView> = {}): AttemptView =>
  ({
  number,
  status,
  sandboxId: `sb-${number}`,
  exitCode: null,
  error: null,
  retries: 0,
  summary: null,
  diffStats: null,
  verify: null,
  timestamps: { queued: T0, [status]: T0 + 1000 },
  updatedAt: T0 + 1000,
  preview: null,
  links: { diff: null, log: null, cancel: "", preview: "" },
  ...extra,
  }) as AttemptView;

function view(attempts: AttemptView[], roundStatus: "running" | "finished" = "running"): RunView {
  return ({
    id: "run_aaaaaaaaaaaaaaaaaaaa",
    status: roundStatus === "running" ? "running" : "succeeded",
    error: null,
    prompt: "a bakery site",
    agent: "demo",
    config: {} as RunView["config"],
    createdAt: T0,
    updatedAt: T0,
    finishedAt: null,
    rounds: [
      {
        number: 1,
        prompt: "a bakery site",
        status: roundStatus,
        fromRound: null,
        winner: null,
        createdAt: T0,
        finishedAt: roundStatus === "running" ? null : T0 + 9000,
        attempts,
        links: { winner: "", next: "" },
      },
    ],
    links: { self: "", events: "", cancel: "" },
  }) as RunView;
}

const ev = (seq: number, attempt: number | null, type: string, data: unknown, at = T0 + seq * 1000): RunEvent => ({ seq, at, round: 1, attempt, type, data });
const plain = colors(false);

describe("a watched round", () => {
  it("moves an attempt forward on its event, and an older view fetched meanwhile does not move it back", () => {
    const p = new RoundProgress(view([attempt(1, "running_agent"), attempt(2, "running_agent")]), 1);
    p.applyEvent(ev(5, 1, "agent.tool", { name: "Write" }));
    p.applyEvent(ev(6, 1, "agent.tool", { name: "Write" }));
    p.applyEvent(ev(7, 1, "agent.result", { summary: { turns: 3, costUsd: 0.0036, finalMessage: "made it", isError: false } }));
    p.applyEvent(ev(8, 1, "attempt.status", { from: "collecting_result", to: "done" }));
    p.applyEvent(ev(9, 2, "attempt.status", { from: "running_agent", to: "failed", reason: "agent exited 1" }));
    // The view was read before those events.
    p.applyView(view([attempt(1, "running_agent"), attempt(2, "running_agent")]));
    const [one, two] = p.rows();
    expect(one).toMatchObject({ status: "done", turns: 3, costUsd: 0.0036, endedAt: T0 + 8000, finalMessage: "made it" });
    expect(two).toMatchObject({ status: "failed", error: "agent exited 1", endedAt: T0 + 9000 });
  });

  it("counts tool calls as turns until the agent's own count arrives", () => {
    const p = new RoundProgress(view([attempt(1, "running_agent")]), 1);
    for (let i = 0; i < 4; i++) p.applyEvent(ev(i + 1, 1, "agent.tool", {}));
    expect(p.rows()[0]!.turns).toBe(4);
  });

  it("draws one line per attempt, each within the terminal's width", () => {
    const p = new RoundProgress(view([attempt(1, "running_agent"), attempt(2, "failed", { error: "x".repeat(300) })]), 1);
    const lines = liveLines(p, T0 + 65_000, 60, colors(true));
    expect(lines).toHaveLength(4);
    for (const line of lines) expect([...stripAnsi(line)].length).toBeLessThanOrEqual(60);
    const [one, two] = [stripAnsi(lines[2]!), stripAnsi(lines[3]!)];
    expect(one).toMatch(/^ {2}#1 {2}running_agent +1:05$/);
    expect(two).toMatch(/^ {2}#2 {2}failed +0:01 +x+…$/);
    // Phases are padded to the longest, so the time column stays put as phases change.
    expect(one.indexOf("1:05")).toBe(two.indexOf("0:01"));
  });

  it("writes a plain log line per phase change, with time, turns and cost when an attempt ends", () => {
    const p = new RoundProgress(view([attempt(1, "running_agent")]), 1);
    p.applyEvent(ev(7, 1, "agent.result", { summary: { turns: 5, costUsd: 0.006, finalMessage: null, isError: false } }));
    const collecting = ev(8, 1, "attempt.status", { from: "running_agent", to: "collecting_result" });
    p.applyEvent(collecting);
    expect(logLine(collecting, p, plain)).toBe("[0:08] attempt 1  collecting_result");
    const done = ev(9, 1, "attempt.status", { from: "collecting_result", to: "done" });
    p.applyEvent(done);
    expect(logLine(done, p, plain)).toBe("[0:09] attempt 1  done (0:09, 5 turns, $0.0060)");
  });

  it("sums the round up with diff stats, verify results and preview links", () => {
    const p = new RoundProgress(
      view(
        [
          attempt(1, "done", {
            summary: { turns: 5, costUsd: 0.006, finalMessage: "built it", isError: false },
            diffStats: { files: 3, additions: 18, deletions: 2 },
            verify: { command: "npm test", exitCode: 0, passed: true, outputTail: "" },
            preview: { url: "https://preview.example/1", expiresAt: T0 + 3_600_000 },
          }),
          attempt(2, "failed", { error: "agent exited 1" }),
        ],
        "finished",
      ),
      1,
    );
    expect(summaryLines(p, 200, plain)).toEqual([
      "round 1 finished in 0:09: 1 done, 1 failed",
      "  #1  done    0:01  5 turns  $0.0060  3 files +18 -2  verify passed",
      "  #2  failed  0:01",
      "  #1 says: built it",
      "  #1 preview: https://preview.example/1",
      "  #2 failed: agent exited 1",
    ]);
  });

  it("cuts a coloured line by what shows, keeping the colour codes whole", () => {
    const c = colors(true);
    const cut = fit(`${c.green("done")} ${"y".repeat(20)}`, 10);
    expect(stripAnsi(cut)).toBe("done yyyy…");
    expect(cut).toContain("\x1b[32mdone\x1b[39m");
  });
});

// Timers and their schedule, in plain Node: every kind of timer survives the trip through its stored
// key, and polls and retries come when the policy says.
import { describe, expect, it } from "vitest";
import { backoffMs, FIRST_POLL_MS, nextPollMs, retryPolicy } from "../../src/durable/retry.ts";
import { parseTimer, timerKey, type Timer } from "../../src/durable/scheduler.ts";
import type { Env } from "../../src/env.ts";

describe("a timer's key", () => {
  it("reads back as the same timer, for every kind", () => {
    const timers: Timer[] = [
      { kind: "attempt", round: 2, attempt: 3 },
      { kind: "deadline", round: 1, attempt: 8 },
      { kind: "winner", round: 4 },
      { kind: "preview", round: 1, attempt: 1 },
      { kind: "mirror" },
      { kind: "hook", key: "hook:webhook:wh_123" },
    ];
    for (const t of timers) expect(parseTimer(timerKey(t))).toEqual(t);
    expect(new Set(timers.map(timerKey)).size).toBe(timers.length);
  });

  it("of no known kind is read as nothing, so the alarm drops it", () => {
    for (const key of ["", "attempt:x:1", "winner:1:2", "deadline:1", "nope:1:1", "attempt:1:2:3"]) expect(parseTimer(key)).toBeNull();
    expect(() => timerKey({ kind: "hook", key: "webhook:1" })).toThrow(/hook:/);
  });
});

describe("the retry policy", () => {
  const policy = retryPolicy({ RETRY_BASE_MS: "100", RETRY_CAP_MS: "1000", POLL_INTERVAL_MS: "15000" } as Env);

  it("doubles the backoff up to its cap", () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffMs(policy, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("polls a job 1, 2, 4, 8 s after its start, then every poll interval", () => {
    let at = 0;
    const polls: number[] = [];
    for (let i = 0; i < 7; i++) {
      at += nextPollMs(policy, at);
      polls.push(at);
    }
    expect(polls.slice(0, 5)).toEqual([FIRST_POLL_MS, 2_000, 4_000, 8_000, 16_000]);
    expect(polls[6]! - polls[5]!).toBe(15_000);
  });

  it("ignores settings that are not numbers, and keeps a part at R2's 5 MiB minimum", () => {
    const odd = retryPolicy({ RETRY_BASE_MS: "soon", UPLOAD_PART_BYTES: "1024" } as Env);
    expect(odd.baseMs).toBe(5_000);
    expect(odd.partBytes).toBe(5 * 1024 * 1024);
  });
});

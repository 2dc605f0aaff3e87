// Text the CLI did not write (an agent's final message or error, a prompt) reaches the terminal without
// the escape sequences and control characters that would drive it: colours, cursor moves, a window
// title, a hyperlink, a bell, or bidirectional overrides that make text read other than it is.
import { describe, expect, it } from "vitest";
import { colors, oneLine, plainText } from "../../src/cli/format.ts";
import { summaryLines, RoundProgress } from "../../src/cli/progress.ts";

const hostile =
  "Done.\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ \x07\x08\x9b31m safe\u202eexe.txt\u202c";

describe("text from agents, printed by the CLI", () => {
  it("loses every escape sequence and control character, keeping its words", () => {
    const line = oneLine(hostile);
    expect(line).toBe("Done.click 31m safeexe.txt");
    expect(line).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e]/);
    // Multi-line text keeps its lines and tabs.
    expect(plainText("a\tb\n\x1b[31mc\x1b[0m\r\n")).toBe("a\tb\nc\n");
  });

  it("reaches a round's summary only as plain text: the agent's final message and another's error", () => {
    const attempt = (number: number, status: string, extra: Record<string, unknown>) => ({
      number, status, sandboxId: null, exitCode: null, error: null, retries: 0, summary: null, diffStats: null, verify: null,
      usage: null, timestamps: { queued: 1_000, [status]: 5_000 }, preview: null, ...extra,
    });
    const view = {
      id: "run_x", status: "succeeded", agent: "demo", error: null,
      rounds: [{ number: 1, prompt: `build it ${hostile}`, status: "finished", fromRound: null, createdAt: 1_000, finishedAt: 9_000, winner: null,
        attempts: [
          attempt(1, "done", { summary: { finalMessage: hostile, turns: 2, costUsd: 0, isError: false } }),
          attempt(2, "failed", { error: `agent exited 1: ${hostile}` }),
        ] }],
    };
    const lines = summaryLines(new RoundProgress(view as never, 1), 200, colors(false));
    const text = lines.join("\n");
    expect(text).toContain("#1 says: Done.click 31m safeexe.txt");
    expect(text).toContain("#2 failed: agent exited 1: Done.click 31m safeexe.txt");
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
  });
});

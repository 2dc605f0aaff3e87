// The followed log's byte format (Daytona's stdout/stderr markers) and the agent's line numbering.
import { describe, expect, it } from "vitest";
import { LineNumberer, StdDemux, type LogFd } from "../../src/sandbox/log-stream.ts";

const OUT = [1, 1, 1];
const ERR = [2, 2, 2];
const bytes = (...parts: (number[] | string)[]) => Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...new TextEncoder().encode(p)] : p)));

function demuxed(frames: Uint8Array[]): Record<LogFd, string> {
  const got: Record<LogFd, string> = { 1: "", 2: "" };
  const d = new StdDemux((fd, b) => (got[fd] += new TextDecoder().decode(b)));
  frames.forEach((f) => d.push(f));
  d.end();
  return got;
}

describe("a followed log", () => {
  it("is split into stdout and stderr by the markers, a marker split across frames included", () => {
    const whole = bytes(OUT, "hello ", ERR, "oops\n", OUT, "world\n");
    expect(demuxed([whole])).toEqual({ 1: "hello world\n", 2: "oops\n" });
    // Every way of cutting the same bytes into two frames gives the same streams.
    for (let cut = 0; cut <= whole.length; cut++) {
      expect(demuxed([whole.subarray(0, cut), whole.subarray(cut)])).toEqual({ 1: "hello world\n", 2: "oops\n" });
    }
    // One frame per byte, too.
    expect(demuxed([...whole].map((b) => Uint8Array.of(b)))).toEqual({ 1: "hello world\n", 2: "oops\n" });
  });

  it("keeps single marker bytes that are data, and drops bytes before any marker", () => {
    expect(demuxed([bytes("lost", OUT, "a", [1], "b", [2, 2], "c")])).toEqual({ 1: "a\u0001b\u0002\u0002c", 2: "" });
    expect(demuxed([bytes(OUT, "end", [1, 1])])).toEqual({ 1: "end\u0001\u0001", 2: "" });
  });

  it("numbers non-empty lines from 0 as the runner does, across chunks, with over-long lines as placeholders", () => {
    const seen: [number, string][] = [];
    const n = new LineNumberer(10, (lines, first) => lines.forEach((l, i) => seen.push([first + i, l])));
    n.push(new TextEncoder().encode('{"a":1}\n\n  \n{"b"'));
    n.push(new TextEncoder().encode(':2}\n' + "x".repeat(25)));
    n.push(new TextEncoder().encode("y".repeat(25) + "\n€"));
    n.end();
    expect(seen).toEqual([
      [0, '{"a":1}'],
      [1, '{"b":2}'],
      [2, ""],
      [3, "€"],
    ]);
  });
});

// An agent's transcript (its `agent.*` events) as plain text, for the page and the full-transcript link.
import type { RunEvent } from "./state.ts";

/** One transcript entry as a line of text. */
export function transcriptLine(e: RunEvent): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  switch (e.type) {
    case "agent.text":
      return String(d.text ?? "");
    case "agent.tool":
      return `[tool] ${String(d.name ?? "")} ${String(d.input ?? "")}`;
    case "agent.tool_result":
      return `[${d.isError ? "tool error" : "tool result"}] ${String(d.content ?? "")}`;
    case "agent.result": {
      const summary = (d.summary ?? {}) as Record<string, unknown>;
      return `[result${d.subtype ? ` ${String(d.subtype)}` : ""}] ${String(summary.finalMessage ?? "")}`;
    }
    case "agent.init":
      return `[init] model ${String(d.model ?? "unknown")}`;
    default:
      return `[${e.type}] ${JSON.stringify(d)}`;
  }
}

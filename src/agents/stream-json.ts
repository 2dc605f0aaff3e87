// Reads an agent's stream-json stdout (Claude Code's format, which the demo agent speaks too) into
// what a person follows on the run page: assistant text, tool calls, errors, and the final result.
import type { AgentSummary } from "../durable/state.ts";

export type AgentEvent =
  | { type: "agent.init"; model: string | null }
  | { type: "agent.text"; text: string }
  | { type: "agent.tool"; name: string; input: string }
  | { type: "agent.tool_result"; isError: boolean; content: string }
  | { type: "agent.result"; summary: AgentSummary; subtype: string };

const MAX_TEXT = 4000;
const clip = (s: string) => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s);

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** The events of one stdout line; a line that is not stream-json yields nothing. */
export function parseAgentLine(line: string): AgentEvent[] {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return [];
  }
  if (!isObj(msg)) return [];
  switch (msg.type) {
    case "system":
      return msg.subtype === "init" ? [{ type: "agent.init", model: typeof msg.model === "string" ? msg.model : null }] : [];
    case "assistant":
    case "user": {
      const content = isObj(msg.message) && Array.isArray(msg.message.content) ? msg.message.content : [];
      const out: AgentEvent[] = [];
      for (const block of content) {
        if (!isObj(block)) continue;
        if (block.type === "text" && typeof block.text === "string") out.push({ type: "agent.text", text: clip(block.text) });
        else if (block.type === "tool_use")
          out.push({ type: "agent.tool", name: String(block.name ?? "tool"), input: clip(JSON.stringify(block.input ?? {})) });
        else if (block.type === "tool_result") {
          const c = block.content;
          const text = typeof c === "string" ? c : Array.isArray(c) ? c.map((x) => (isObj(x) && typeof x.text === "string" ? x.text : "")).join("") : "";
          out.push({ type: "agent.tool_result", isError: block.is_error === true, content: clip(text) });
        }
      }
      return out;
    }
    case "result": {
      const errors = Array.isArray(msg.errors) ? msg.errors.map(String).join("; ") : "";
      const finalMessage = typeof msg.result === "string" ? msg.result : errors || null;
      return [
        {
          type: "agent.result",
          subtype: String(msg.subtype ?? ""),
          summary: {
            finalMessage: finalMessage === null ? null : clip(finalMessage),
            turns: typeof msg.num_turns === "number" ? msg.num_turns : null,
            costUsd: typeof msg.total_cost_usd === "number" ? msg.total_cost_usd : null,
            isError: msg.is_error === true,
          },
        },
      ];
    }
    default:
      return [];
  }
}

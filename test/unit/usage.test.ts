// What the credential gateway counts and reserves for a model call: usage read off a streamed answer
// (input at message_start, the rest from message_delta, web searches priced), and the most a request
// may cost before it is sent.
import { describe, expect, it } from "vitest";
import { addUsage, callCost, estimateRequestCost, NO_USAGE, UsageReader, usageSince, WEB_SEARCH_USD, type CallUsage } from "../../src/agents/usage.ts";

const sse = (events: Record<string, unknown>[]) => new TextEncoder().encode(events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(""));

describe("usage", () => {
  it("reads the input at message_start and the whole call at the end, web searches priced", () => {
    const reader = new UsageReader("text/event-stream");
    const starts: CallUsage[] = [];
    reader.onStart = (u) => starts.push(u);
    reader.push(sse([{ type: "message_start", message: { model: "claude-sonnet-4-5", usage: { input_tokens: 2000, cache_read_input_tokens: 1000, output_tokens: 1 } } }]));
    expect(starts).toEqual([{ model: "claude-sonnet-4-5", input_tokens: 2000, cache_read_input_tokens: 1000 }]);
    reader.push(sse([{ type: "message_delta", usage: { output_tokens: 500, server_tool_use: { web_search_requests: 3 } } }, { type: "message_stop" }]));
    const end = reader.end()!;
    expect(end).toMatchObject({ input_tokens: 2000, output_tokens: 500, server_tool_use: { web_search_requests: 3 } });
    // Sonnet: $3 input, $15 output per million; cache reads a tenth of input; $0.01 a search.
    expect(callCost(end)).toBeCloseTo((2000 * 3 + 500 * 15 + 1000 * 0.3) / 1e6 + 3 * WEB_SEARCH_USD, 9);

    // Counted in two steps (input first), the call is one call and costs the same.
    const first = addUsage(NO_USAGE, starts[0]!);
    const total = addUsage(first, usageSince(end, starts[0]!), false);
    expect(total).toMatchObject({ calls: 1, inputTokens: 2000, outputTokens: 500, cacheReadTokens: 1000, webSearches: 3 });
    expect(total.costUsd).toBeCloseTo(callCost(end), 6);
  });

  it("reserves a request's most possible cost: its size as input, all of max_tokens, every allowed search", () => {
    const text = "y".repeat(30_000);
    const body = (extra: Record<string, unknown>) => JSON.stringify({ model: "claude-opus-4-1", max_tokens: 2000, messages: [{ role: "user", content: text }], ...extra });
    const plain = estimateRequestCost(body({}));
    expect(plain.model).toBe("claude-opus-4-1");
    // Opus 4.1: $15 / $75 per million; about a token per 3 bytes.
    expect(plain.usd).toBeCloseTo((Math.ceil(body({}).length / 3) * 15 + 2000 * 75) / 1e6, 6);
    const searching = estimateRequestCost(body({ tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 4 }] }));
    expect(searching.usd - plain.usd).toBeGreaterThanOrEqual(4 * WEB_SEARCH_USD);
    // An image counts as the tokens it costs, not as its base64 length.
    const image = JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "A".repeat(3_000_000) } }] }] });
    expect(estimateRequestCost(image).usd).toBeLessThan(0.01);
  });
});

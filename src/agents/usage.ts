// Model usage as the credential gateway reads it from Messages API answers, and what it costs.
// Prices are USD per million tokens (input, output); cache reads cost a tenth of input, cache writes
// a quarter more; a web search (a server tool) costs $10 per 1,000 (Anthropic's pricing page; web fetch
// costs only its tokens). A model the table does not know is priced as Sonnet.

export interface LlmUsage {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  /** Server-side web searches the model ran (absent in usage recorded before they were priced). */
  webSearches?: number;
  costUsd: number;
}

export const NO_USAGE: LlmUsage = { calls: 0, inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, webSearches: 0, costUsd: 0 };

/** USD per server-side web search. */
export const WEB_SEARCH_USD = 0.01;

const PRICES: [RegExp, number, number][] = [
  [/opus-4-(5|6|7)/, 5, 25],
  [/opus/, 15, 75],
  [/haiku-4|haiku-(3-5)/, 1, 5],
  [/haiku/, 0.25, 1.25],
  [/sonnet/, 3, 15],
];

export function priceOf(model: string | null): { input: number; output: number } {
  const hit = PRICES.find(([re]) => model && re.test(model));
  return hit ? { input: hit[1], output: hit[2] } : { input: 3, output: 15 };
}

/** One answer's usage, as the Messages API reports it. */
export interface CallUsage {
  model: string | null;
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
  server_tool_use?: { web_search_requests?: number };
}

/** What one call's usage costs, in USD. */
export function callCost(call: CallUsage): number {
  const p = priceOf(call.model);
  const input = call.input_tokens ?? 0;
  const output = call.output_tokens ?? 0;
  const read = call.cache_read_input_tokens ?? 0;
  const write = call.cache_creation_input_tokens ?? 0;
  const searches = call.server_tool_use?.web_search_requests ?? 0;
  return (input * p.input + output * p.output + read * p.input * 0.1 + write * p.input * 1.25) / 1_000_000 + searches * WEB_SEARCH_USD;
}

/** Adds a call's usage to a total; `newCall` false adds to a call counted already (its input came first). */
export function addUsage(total: LlmUsage, call: CallUsage, newCall = true): LlmUsage {
  return {
    calls: total.calls + (newCall ? 1 : 0),
    inputTokens: total.inputTokens + (call.input_tokens ?? 0),
    outputTokens: total.outputTokens + (call.output_tokens ?? 0),
    cacheReadTokens: total.cacheReadTokens + (call.cache_read_input_tokens ?? 0),
    cacheWriteTokens: total.cacheWriteTokens + (call.cache_creation_input_tokens ?? 0),
    webSearches: (total.webSearches ?? 0) + (call.server_tool_use?.web_search_requests ?? 0),
    costUsd: Number((total.costUsd + callCost(call)).toFixed(6)),
  };
}

/** What `now` adds to `before` (the same call read later: counts only grow). */
export function usageSince(now: CallUsage, before: CallUsage | null): CallUsage {
  const d = (k: "input_tokens" | "output_tokens" | "cache_read_input_tokens" | "cache_creation_input_tokens") =>
    Math.max(0, (now[k] ?? 0) - (before?.[k] ?? 0));
  const searches = Math.max(0, (now.server_tool_use?.web_search_requests ?? 0) - (before?.server_tool_use?.web_search_requests ?? 0));
  return {
    model: now.model ?? before?.model ?? null,
    input_tokens: d("input_tokens"),
    output_tokens: d("output_tokens"),
    cache_read_input_tokens: d("cache_read_input_tokens"),
    cache_creation_input_tokens: d("cache_creation_input_tokens"),
    ...(searches ? { server_tool_use: { web_search_requests: searches } } : {}),
  };
}

/** Base64 payloads (images, PDFs) in a request: they cost far fewer tokens than their length. */
const BASE64_BLOB = /"data"\s*:\s*"[A-Za-z0-9+/=]{512,}"/g;
/** Anthropic's own rule of thumb for an image: about 1,600 tokens at most sizes it accepts unscaled. */
const TOKENS_PER_BLOB = 1_600;
/** Web searches reserved for a request whose web_search tool sets no max_uses. */
const SEARCHES_WITHOUT_LIMIT = 5;

/**
 * What a Messages API request may cost at most, before it is sent: its input estimated from its size
 * (about 3 bytes a token: more tokens than real text has, so it errs high), all of `max_tokens` as output,
 * and the web searches it allows. The gateway reserves this against the budgets and settles it after.
 */
export function estimateRequestCost(bodyText: string): { model: string | null; usd: number } {
  let body: { model?: unknown; max_tokens?: unknown; tools?: unknown } = {};
  try {
    body = JSON.parse(bodyText) as typeof body;
  } catch {
    // Not JSON: the Messages API refuses it; the size still bounds it.
  }
  const model = typeof body.model === "string" ? body.model : null;
  let blobs = 0;
  const text = bodyText.replace(BASE64_BLOB, () => {
    blobs++;
    return "";
  });
  const input = Math.ceil(text.length / 3) + blobs * TOKENS_PER_BLOB;
  const output = typeof body.max_tokens === "number" && body.max_tokens > 0 ? body.max_tokens : 4096;
  let searches = 0;
  if (Array.isArray(body.tools)) {
    for (const t of body.tools as { type?: unknown; max_uses?: unknown }[]) {
      if (typeof t?.type === "string" && t.type.startsWith("web_search")) searches += typeof t.max_uses === "number" ? t.max_uses : SEARCHES_WITHOUT_LIMIT;
    }
  }
  return { model, usd: callCost({ model, input_tokens: input, output_tokens: output, server_tool_use: { web_search_requests: searches } }) };
}

/**
 * Reads usage out of an answer as it streams past, unchanged: Server-Sent Events (message_start carries
 * the model and input usage, message_delta the final output count) or one JSON message.
 */
export class UsageReader {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  private readonly sse: boolean;
  readonly usage: CallUsage = { model: null };
  private seen = false;

  /** Called once, with the input part of the usage, when a stream's message_start arrives. */
  onStart: ((usage: CallUsage) => void) | null = null;

  constructor(contentType: string) {
    this.sse = contentType.includes("text/event-stream");
  }

  push(chunk: Uint8Array): void {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    if (!this.sse) {
      if (this.buffer.length > 4_000_000) this.buffer = "";
      return;
    }
    let cut: number;
    while ((cut = this.buffer.indexOf("\n")) >= 0) {
      this.line(this.buffer.slice(0, cut).trim());
      this.buffer = this.buffer.slice(cut + 1);
    }
  }

  /** The usage, once the answer has ended (null when it carried none: an error, a token count). */
  end(): CallUsage | null {
    if (this.sse) this.line(this.buffer.trim());
    else {
      try {
        const msg = JSON.parse(this.buffer) as { type?: string; model?: string; usage?: Record<string, unknown> };
        if (msg.type === "message" && msg.usage) this.take(msg.model ?? null, msg.usage);
      } catch {
        // Not a message.
      }
    }
    return this.seen ? this.usage : null;
  }

  private line(line: string): void {
    if (!line.startsWith("data:")) return;
    let data: { type?: string; message?: { model?: string; usage?: Record<string, unknown> }; usage?: Record<string, unknown> };
    try {
      data = JSON.parse(line.slice(5));
    } catch {
      return;
    }
    if (data.type === "message_start" && data.message) {
      this.take(data.message.model ?? null, data.message.usage ?? {});
      // Its output count is a placeholder (1); the input is what it is.
      const { output_tokens: _placeholder, ...input } = this.usage;
      this.onStart?.({ ...input });
    } else if (data.type === "message_delta" && data.usage) this.take(this.usage.model, data.usage);
  }

  private take(model: string | null, u: Record<string, unknown>): void {
    this.seen = true;
    this.usage.model = model;
    // message_delta's counts are cumulative: the latest figure of each kind wins.
    for (const k of ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] as const) {
      if (typeof u[k] === "number") this.usage[k] = u[k];
    }
    const tools = u.server_tool_use as { web_search_requests?: unknown } | undefined;
    if (typeof tools?.web_search_requests === "number") this.usage.server_tool_use = { web_search_requests: tools.web_search_requests };
  }
}

// Model usage as the credential gateway reads it from Messages API answers, and what it costs.
// Prices are USD per million tokens (input, output); cache reads cost a tenth of input, cache writes
// a quarter more. A model the table does not know is priced as Sonnet.

export interface LlmUsage {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
}

export const NO_USAGE: LlmUsage = { calls: 0, inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0 };

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
}

export function addUsage(total: LlmUsage, call: CallUsage): LlmUsage {
  const p = priceOf(call.model);
  const input = call.input_tokens ?? 0;
  const output = call.output_tokens ?? 0;
  const read = call.cache_read_input_tokens ?? 0;
  const write = call.cache_creation_input_tokens ?? 0;
  const cost = (input * p.input + output * p.output + read * p.input * 0.1 + write * p.input * 1.25) / 1_000_000;
  return {
    calls: total.calls + 1,
    inputTokens: total.inputTokens + input,
    outputTokens: total.outputTokens + output,
    cacheReadTokens: total.cacheReadTokens + read,
    cacheWriteTokens: total.cacheWriteTokens + write,
    costUsd: Number((total.costUsd + cost).toFixed(6)),
  };
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
        const msg = JSON.parse(this.buffer) as { type?: string; model?: string; usage?: Record<string, number> };
        if (msg.type === "message" && msg.usage) this.take(msg.model ?? null, msg.usage);
      } catch {
        // Not a message.
      }
    }
    return this.seen ? this.usage : null;
  }

  private line(line: string): void {
    if (!line.startsWith("data:")) return;
    let data: { type?: string; message?: { model?: string; usage?: Record<string, number> }; usage?: Record<string, number> };
    try {
      data = JSON.parse(line.slice(5));
    } catch {
      return;
    }
    if (data.type === "message_start" && data.message) this.take(data.message.model ?? null, data.message.usage ?? {});
    else if (data.type === "message_delta" && data.usage) this.take(this.usage.model, data.usage);
  }

  private take(model: string | null, u: Record<string, number>): void {
    this.seen = true;
    this.usage.model = model;
    // message_delta's counts are cumulative: the latest figure of each kind wins.
    for (const k of ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] as const) {
      if (typeof u[k] === "number") this.usage[k] = u[k];
    }
  }
}

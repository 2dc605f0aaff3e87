// The run's event log as a live Server-Sent Events stream that survives dropped connections: each
// event's `id:` is its sequence number, so a reconnect sends Last-Event-ID and the server resumes right
// after the last event we saw. Nothing is lost, and a repeat (seq not above the last) is skipped.
import type { Api, RunEvent } from "./api.ts";
import { CliError, EXIT } from "./errors.ts";

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * Messages of an SSE body as the HTML spec reads them: lines end in CRLF, LF or CR; `:` starts a
 * comment; `data:` lines of one message are joined with LF; a blank line ends the message.
 * `onActivity` hears every chunk (comments included), for an idle watchdog.
 */
export async function* parseSse(chunks: AsyncIterable<Uint8Array>, onActivity?: () => void): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  for await (const chunk of chunks) {
    onActivity?.();
    buf += decoder.decode(chunk, { stream: true });
    for (;;) {
      const m = /\r\n|\n|\r/.exec(buf);
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (!m || (m[0] === "\r" && m.index === buf.length - 1)) break;
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      if (line === "") {
        if (data.length) yield { id, event: event || "message", data: data.join("\n") };
        data = [];
        event = "";
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
      else if (field === "id" && !value.includes("\0")) id = value;
    }
  }
}

export interface FollowOptions {
  /** Start after this sequence number (0: the whole log). */
  after?: number;
  signal: AbortSignal;
  /** Reconnect when not even a keep-alive came for this long (the server sends one every ~15 s). */
  idleTimeoutMs?: number;
  /** Consecutive failed connections before giving up. */
  maxFailures?: number;
  onReconnect?: (info: { after: number; reason: string; failures: number }) => void;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The run's events, oldest first, following the live log until `signal` aborts or the caller stops. */
export async function* runEvents(api: Api, runId: string, opts: FollowOptions): AsyncGenerator<RunEvent> {
  let last = opts.after ?? 0;
  let failures = 0;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 45_000;
  const maxFailures = opts.maxFailures ?? 20;
  const sleep = opts.sleep ?? abortableSleep;
  while (!opts.signal.aborted) {
    const conn = new AbortController();
    const stop = () => conn.abort();
    opts.signal.addEventListener("abort", stop, { once: true });
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.abort(new Error(`no data for ${idleTimeoutMs / 1000} s`)), idleTimeoutMs);
    };
    let reason = "the stream ended";
    try {
      arm();
      const res = await api.stream(`/api/runs/${encodeURIComponent(runId)}/events`, {
        headers: { accept: "text/event-stream", ...(last > 0 ? { "last-event-id": String(last) } : {}) },
        signal: conn.signal,
      });
      if (!res.body) throw new CliError(EXIT.failed, "network", "the event stream had no body");
      for await (const msg of parseSse(res.body, arm)) {
        const seq = Number(msg.id);
        if (!Number.isInteger(seq) || seq <= last) continue;
        let event: RunEvent;
        try {
          event = JSON.parse(msg.data) as RunEvent;
        } catch {
          continue;
        }
        last = seq;
        failures = 0;
        yield event;
      }
    } catch (err) {
      if (opts.signal.aborted) return;
      // The API refused us (auth, unknown run, bad request): trying again cannot help.
      if (err instanceof CliError && !err.transient) throw err;
      reason = conn.signal.aborted && conn.signal.reason instanceof Error ? conn.signal.reason.message : errorText(err);
    } finally {
      clearTimeout(idle);
      opts.signal.removeEventListener("abort", stop);
      conn.abort();
    }
    if (opts.signal.aborted) return;
    failures++;
    if (failures > maxFailures) {
      throw new CliError(EXIT.failed, "network", `lost the run's event stream (${reason}) and could not reconnect`);
    }
    opts.onReconnect?.({ after: last, reason, failures });
    await sleep(Math.min(250 * 2 ** (failures - 1), 5000), opts.signal);
  }
}

function errorText(err: unknown): string {
  if (err instanceof CliError) return err.message;
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code ?? (err as Error)?.message ?? String(err);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

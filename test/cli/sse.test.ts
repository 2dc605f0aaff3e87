// The live event stream as the CLI reads it: spec-exact parsing, and a dropped or silent connection
// resumed from the last event seen, with nothing lost or repeated.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Api, type RunEvent } from "../../src/cli/api.ts";
import { CliError, EXIT } from "../../src/cli/errors.ts";
import { parseSse, runEvents } from "../../src/cli/sse.ts";

const enc = new TextEncoder();
async function* chunks(...parts: string[]) {
  for (const p of parts) yield enc.encode(p);
}

const event = (seq: number): RunEvent => ({ seq, at: 1000 + seq, round: 1, attempt: 1, type: "attempt.status", data: { to: "done" } });
const frame = (e: RunEvent) => `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  let n = 0;
  const server = createServer((req, res) => handler(req, res, n++));
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  close = () =>
    new Promise((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    });
  const api = new Api({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey: "k", userAgent: "test" });
  return api;
}

async function take(it: AsyncGenerator<RunEvent>, n: number, ac: AbortController): Promise<number[]> {
  const seqs: number[] = [];
  for await (const e of it) {
    seqs.push(e.seq);
    if (seqs.length === n) {
      ac.abort();
      break;
    }
  }
  return seqs;
}

describe("reading Server-Sent Events", () => {
  it("parses CRLF, CR and LF line ends, comments, multi-line data, and a CRLF split across chunks", async () => {
    const out = [];
    for await (const m of parseSse(chunks("id: 1\r", "\nevent: a\r\ndata: {\"x\"", ":1}\r\n\r\n: keep-alive\n\n", "id:2\rdata: one\ndata:two\n\n"))) {
      out.push(m);
    }
    expect(out).toEqual([
      { id: "1", event: "a", data: '{"x":1}' },
      { id: "2", event: "message", data: "one\ntwo" },
    ]);
  });

  it("resumes a dropped stream with Last-Event-ID and skips what it saw already", async () => {
    const asked: (string | undefined)[] = [];
    const api = await serve((req, res, n) => {
      asked.push(req.headers["last-event-id"] as string | undefined);
      expect(req.headers.accept).toBe("text/event-stream");
      expect(req.headers.authorization).toBe("Bearer k");
      res.writeHead(200, { "content-type": "text/event-stream" });
      if (n === 0) {
        res.write([1, 2, 3].map((s) => frame(event(s))).join(""));
        // The connection drops after three events.
        setTimeout(() => res.destroy(), 50);
      } else {
        // A server that resends one event too many must not make the CLI see it twice.
        res.write([3, 4, 5].map((s) => frame(event(s))).join(""));
      }
    });
    const ac = new AbortController();
    const reconnects: number[] = [];
    const seqs = await take(
      runEvents(api, "run_x", { signal: ac.signal, sleep: async () => {}, onReconnect: (i) => reconnects.push(i.after) }),
      5,
      ac,
    );
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(asked).toEqual([undefined, "3"]);
    expect(reconnects).toEqual([3]);
  });

  it("reconnects when a stream goes silent, with not even a keep-alive", async () => {
    const api = await serve((_req, res, n) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(": hello\n\n");
      if (n > 0) res.write(frame(event(1)));
    });
    const ac = new AbortController();
    const reasons: string[] = [];
    const seqs = await take(
      runEvents(api, "run_x", { signal: ac.signal, idleTimeoutMs: 200, sleep: async () => {}, onReconnect: (i) => reasons.push(i.reason) }),
      1,
      ac,
    );
    expect(seqs).toEqual([1]);
    expect(reasons).toEqual(["no data for 0.2 s"]);
  });

  it("gives up at once when the API refuses the key (exit 3), rather than retrying", async () => {
    let requests = 0;
    const api = await serve((_req, res) => {
      requests++;
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "unauthorized", message: "invalid API key" } }));
    });
    const ac = new AbortController();
    const err = await take(runEvents(api, "run_x", { signal: ac.signal, sleep: async () => {} }), 1, ac).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.auth);
    expect((err as CliError).message).toBe("invalid API key");
    expect(requests).toBe(1);
  });
});

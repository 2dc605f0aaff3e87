// The way back in for runner reports. Inside the workerd pool the Worker has no address a sandbox can
// reach, so PUBLIC_URL points here instead: this Node server holds each request a sandbox sends
// (`/ingest/...`, and any other path), a test running in the pool pulls them (`GET /__relay/next`),
// sends each to the real Worker (`exports.default.fetch`), and hands the answer back
// (`POST /__relay/respond`), which this server gives the sandbox. Nothing is interpreted on the way.
// The puller may instead answer `{drop: true}`: the sandbox's connection is then reset, as when the
// ingest URL is unreachable. With no puller (no pull in the last 2 s) every request is reset too: the
// pushes are lost, and polling must carry the attempts, which is the worker pool's default.
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";

export interface RelayedRequest {
  id: string;
  method: string;
  /** path and query */
  url: string;
  headers: Record<string, string>;
  /** base64 */
  body: string;
}

export interface RelayAnswer {
  id: string;
  drop?: boolean;
  status?: number;
  headers?: Record<string, string>;
  /** base64 */
  body?: string;
}

export interface IngestRelay {
  url: string;
  close(): Promise<void>;
}

/** How long a held request waits for its answer before the sandbox gets a 504. */
const ANSWER_TIMEOUT_MS = 20_000;
/** A puller counts as present this long after its last pull. */
const PULLER_GRACE_MS = 2_000;

export async function startIngestRelay(): Promise<IngestRelay> {
  const queue: RelayedRequest[] = [];
  const held = new Map<string, { res: ServerResponse; req: IncomingMessage; timer: NodeJS.Timeout }>();
  const waiters: Array<(items: RelayedRequest[]) => void> = [];
  let lastPull = 0;
  const counts = { relayed: 0, dropped: 0, noPuller: 0, timedOut: 0 };

  const readBody = (req: IncomingMessage) =>
    new Promise<Buffer>((ok, fail) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => ok(Buffer.concat(chunks)));
      req.on("error", fail);
    });

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const deliver = () => {
    while (queue.length && waiters.length) waiters.shift()!(queue.splice(0, queue.length));
  };

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://relay");
      // The probe a sandbox makes at setup (does it reach PUBLIC_URL?) is answered here: it asks whether
      // the way back in is open, and this relay is that way.
      if (url.pathname === "/health" && req.method === "GET") return json(res, 200, { ok: true, relay: true });
      if (url.pathname === "/__relay/next") {
        lastPull = Date.now();
        const waitMs = Math.min(Number(url.searchParams.get("waitMs") ?? 1000), 10_000);
        if (queue.length) return json(res, 200, queue.splice(0, queue.length));
        const items = await new Promise<RelayedRequest[]>((ok) => {
          const timer = setTimeout(() => {
            const i = waiters.indexOf(give);
            if (i >= 0) waiters.splice(i, 1);
            ok([]);
          }, waitMs);
          const give = (got: RelayedRequest[]) => {
            clearTimeout(timer);
            ok(got);
          };
          waiters.push(give);
        });
        lastPull = Date.now();
        return json(res, 200, items);
      }
      if (url.pathname === "/__relay/respond" && req.method === "POST") {
        const answer = JSON.parse((await readBody(req)).toString("utf8")) as RelayAnswer;
        const h = held.get(answer.id);
        if (h) {
          held.delete(answer.id);
          clearTimeout(h.timer);
          if (answer.drop) {
            counts.dropped++;
            h.req.socket.destroy();
          } else {
            counts.relayed++;
            h.res.writeHead(answer.status ?? 200, answer.headers ?? {});
            h.res.end(Buffer.from(answer.body ?? "", "base64"));
          }
        }
        return json(res, 200, { ok: !!h });
      }
      if (url.pathname === "/__relay/stats") return json(res, 200, { ...counts, queued: queue.length, held: held.size });
      // A request from a sandbox.
      const body = await readBody(req);
      if (Date.now() - lastPull > PULLER_GRACE_MS) {
        counts.noPuller++;
        req.socket.destroy();
        return;
      }
      const id = randomUUID();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      const timer = setTimeout(() => {
        if (!held.delete(id)) return;
        counts.timedOut++;
        json(res, 504, { error: "the relay's puller did not answer" });
      }, ANSWER_TIMEOUT_MS);
      held.set(id, { res, req, timer });
      queue.push({ id, method: req.method ?? "GET", url: `${url.pathname}${url.search}`, headers, body: body.toString("base64") });
      deliver();
    } catch (err) {
      if (!res.headersSent) json(res, 500, { error: String(err) });
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        for (const h of held.values()) {
          clearTimeout(h.timer);
          h.req.socket.destroy();
        }
        held.clear();
        for (const w of waiters.splice(0)) w([]);
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

// A proxy between the CLI and the service that misbehaves on purpose: it cuts event streams short and
// loses answers after the service has acted, the way a flaky network does.
import { createServer, request, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

/** What to do with one request: pass it on, lose the service's answer, or cut a stream after n events. */
export type Fault = "pass" | "lose-answer" | { cutAfterEvents: number };

export interface Proxy {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

export async function startProxy(target: string, fault: (req: Seen, index: number) => Fault): Promise<Proxy> {
  const upstream = new URL(target);
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const s = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers };
    const decision = fault(s, seen.length);
    seen.push(s);
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: s.method, path: s.path, headers: { ...req.headers, host: upstream.host } },
      (upRes) => {
        if (decision === "lose-answer") {
          // The service has done the work; the caller never hears of it.
          upRes.resume();
          upRes.on("end", () => req.socket.destroy());
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (decision === "pass") return void upRes.pipe(res);
        // Event by event, so the cut falls right after the nth event, with half of the next one sent
        // (a reader must not take a half event for a whole one).
        let events = 0;
        let text = "";
        let cut = false;
        upRes.on("data", (chunk: Buffer) => {
          if (cut) return;
          text += chunk.toString();
          for (let end = text.indexOf("\n\n"); end >= 0; end = text.indexOf("\n\n")) {
            const block = text.slice(0, end + 2);
            text = text.slice(end + 2);
            res.write(block);
            if (/^id: /m.test(block) && ++events >= decision.cutAfterEvents) {
              cut = true;
              upRes.destroy();
              res.write(text.slice(0, Math.floor(text.length / 2)), () => res.destroy());
              return;
            }
          }
        });
        upRes.on("end", () => res.end());
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

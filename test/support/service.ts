// Starts multishot the way `npm start` does (scripts/start.ts), on a free port with its own state, and
// gives tests a small API client for it.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunView } from "../../src/durable/view.ts";
import { startProcess, type Started } from "./processes.ts";

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

export interface Service extends Started {
  url: string;
  localSandboxUrl: string | null;
  /** Where the local sandbox server keeps each sandbox's folder. */
  sandboxRoot: string;
  /** wrangler's local state (D1, R2, Durable Objects). */
  stateDir: string;
  key: string;
  api(path: string, init?: { method?: string; json?: unknown; key?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

export async function startService(env: NodeJS.ProcessEnv = {}): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), "multishot-e2e-"));
  const key = "e2e-dev-key";
  const sandboxRoot = join(dir, "sandboxes");
  const stateDir = join(dir, "state");
  // A free port can be taken by another test file's server between asking and binding (files run side
  // by side): then try again on another.
  const start = async () =>
    startProcess(["scripts/start.ts"], /multishot ready at (http:\/\/127\.0\.0\.1:\d+)/, {
      env: {
        PORT: String(await freePort()),
        MULTISHOT_DEV_API_KEY: key,
        MULTISHOT_STATE_DIR: stateDir,
        LOCAL_SANDBOX_ROOT: sandboxRoot,
        ...env,
      },
      timeoutMs: 90_000,
    });
  let p: Awaited<ReturnType<typeof start>> | undefined;
  for (let attempt = 1; !p; attempt++) {
    try {
      p = await start();
    } catch (err) {
      if (attempt >= 3 || !/already in use|EADDRINUSE/i.test(String(err))) throw err;
    }
  }
  const url = p.match[1]!;
  const localSandboxUrl = /local sandbox server at (http:\/\/127\.0\.0\.1:\d+)/.exec(p.output())?.[1] ?? null;
  const api: Service["api"] = async (path, init = {}) => {
    const method = init.method ?? "GET";
    const headers: Record<string, string> = {};
    const k = init.key === undefined ? key : init.key;
    if (k) headers.authorization = `Bearer ${k}`;
    if (init.json !== undefined) headers["content-type"] = "application/json";
    // A POST may be sent twice (below): the key makes the second one a replay, never a second action.
    if (method === "POST") headers["idempotency-key"] = randomUUID();
    const send = () => fetch(`${url}${path}`, { method, headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) });
    try {
      return await send();
    } catch (err) {
      // A kept-alive connection the server closed just as it was reused ("other side closed"): on a
      // loaded machine the client's idle timer fires late. Once more, on a new connection.
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code !== "UND_ERR_SOCKET" && code !== "ECONNRESET") throw err;
      return send();
    }
  };
  return {
    ...p,
    url,
    localSandboxUrl,
    sandboxRoot,
    stateDir,
    key,
    api,
    async close() {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a run (the demo agent unless the body names another) and waits until it stops running. */
export async function runToEnd(service: Service, body: Record<string, unknown>, timeoutMs = 90_000): Promise<RunView> {
  const res = await service.api("/api/runs", { method: "POST", json: { agent: "demo", ...body } });
  if (res.status !== 202) throw new Error(`POST /api/runs answered ${res.status}: ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
    if (run.status !== "running") return run;
    if (Date.now() > until) throw new Error(`run ${id} did not finish: ${JSON.stringify(run, null, 2)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

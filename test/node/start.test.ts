// `npm start` (scripts/start.ts) on a port something else already holds: it refuses at once with a
// message naming the port and what to do, and never prints the ready line. The server holding the port
// here answers /health with 200, as an earlier Worker or the local sandbox server would.
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/processes.ts";

let holder: Server;
let port: number;
beforeAll(async () => {
  holder = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'));
  await new Promise<void>((ok) => holder.listen(0, "127.0.0.1", ok));
  port = (holder.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((ok) => holder.close(() => ok())));

describe("npm start on a taken port", () => {
  it("exits non-zero with the reason and no ready line", async () => {
    const child = spawn(process.execPath, ["scripts/start.ts"], { cwd: ROOT, env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((ok) => child.on("exit", ok));
    expect(code).not.toBe(0);
    expect(out).toContain(`port ${port} on 127.0.0.1 is already in use`);
    expect(out).toContain("set PORT");
    expect(out).not.toMatch(/multishot ready at/);
    // It stopped before starting anything: no sandbox server, no migrations.
    expect(out).not.toMatch(/local sandbox server at/);
  }, 30_000);
});

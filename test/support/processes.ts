// Starting the project's own programs as child processes for tests, the way a person would run them.
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface Started {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Spawns `node <script> ...args` (the project's Node 22 from node_modules/.bin is first on PATH under
 * npm and npx) in its own process group, and resolves once a line of its output matches `ready`.
 */
export function startProcess(
  args: string[],
  ready: RegExp,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; command?: string } = {},
): Promise<Started & { match: RegExpMatchArray }> {
  const child = spawn(opts.command ?? process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once("exit", () => done());
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        return done();
      }
      setTimeout(() => {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {}
      }, 10_000).unref();
    });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      void stop();
      fail(new Error(`${args.join(" ")} was not ready within ${(opts.timeoutMs ?? 60_000) / 1000} s:\n${out}`));
    }, opts.timeoutMs ?? 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = out.match(ready);
      if (match) {
        clearTimeout(timer);
        ok({ child, match, output: () => out, stop });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${args.join(" ")} exited with ${code} before it was ready:\n${out}`));
    });
  });
}

/** The local sandbox server as its own process: `npm run local-sandbox -- --port 0`. */
export async function startLocalSandbox(extraArgs: string[] = []) {
  const p = await startProcess(["tools/local-sandbox/main.ts", "--port", "0", ...extraArgs], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const url = p.match[1]!;
  return { ...p, url, apiUrl: `${url}/api` };
}

// Running the `multishot` command as a user would: a subprocess of bin/multishot under this Node (22),
// with its own config folder; in a pseudo-terminal through util-linux `script` when a test wants a TTY.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../support/processes.ts";

export const BIN = join(ROOT, "bin", "multishot");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. */
  input?: string;
  cwd?: string;
  /** Run under a pseudo-terminal (`script`): stdout and stderr arrive together in `stdout`. */
  tty?: boolean;
  /** Terminal width under `tty`. */
  columns?: number;
  timeoutMs?: number;
  /** Called with the child once it runs (to signal it). */
  onSpawn?: (child: ReturnType<typeof spawn>) => void;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const made: string[] = [];
/** A fresh temporary folder, removed by `removeTempDirs`. */
export function tempDir(purpose: string): string {
  const dir = mkdtempSync(join(tmpdir(), `multishot-cli-${purpose}-`));
  made.push(dir);
  return dir;
}
export const removeTempDirs = () => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
};

/** A fresh, empty config folder: the CLI never sees the tester's own login. */
export const freshConfigHome = () => tempDir("config");

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const argv = [process.execPath, BIN, ...args];
  const child = opts.tty
    ? spawn("script", ["-qefc", `stty cols ${opts.columns ?? 100} rows 40; exec ${argv.map(quote).join(" ")}`, "/dev/null"], {
        cwd: opts.cwd ?? ROOT,
        env: env as NodeJS.ProcessEnv,
        stdio: ["ignore", "pipe", "pipe"],
      })
    : spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? ROOT, env: env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"] });
  opts.onSpawn?.(child);
  if (!opts.tty) child.stdin!.end(opts.input ?? "");
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`multishot ${args.join(" ")} did not finish in time:\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 90_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

/**
 * What a terminal would finally show: ANSI handled the way the CLI uses it (erase line, cursor up,
 * erase below), carriage returns honoured. Good enough to read the last frame of a redrawn block.
 */
export function screen(raw: string): string[] {
  const lines: string[] = [""];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const line = lines[row] ?? "";
    lines[row] = line.slice(0, col).padEnd(col) + ch + line.slice(col + 1);
    col++;
  };
  for (let i = 0; i < raw.length; ) {
    const esc = /^\x1b\[([0-9;?]*)([ -/]*[@-~])/.exec(raw.slice(i));
    if (esc) {
      const n = Number(esc[1] || "1");
      const cmd = esc[2];
      if (cmd === "A") row = Math.max(0, row - n);
      else if (cmd === "K") lines[row] = "";
      else if (cmd === "J") lines.splice(row + 1), (lines[row] = (lines[row] ?? "").slice(0, col));
      i += esc[0].length;
      continue;
    }
    const ch = raw[i]!;
    i++;
    if (ch === "\r") col = 0;
    else if (ch === "\n") {
      row++;
      col = 0;
      if (lines[row] === undefined) lines[row] = "";
    } else put(ch);
  }
  return lines.map((l) => l.trimEnd()).filter((l, idx, all) => l !== "" || idx < all.length - 1);
}

export const stripAnsi = (s: string) => s.replace(ANSI, "").replace(/\r/g, "");

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

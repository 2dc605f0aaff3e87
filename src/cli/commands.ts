// The commands: each one's options, as `--help` shows them, next to what it does.
import { spawn } from "node:child_process";
import type { RunRequestBody, RunView } from "./api.ts";
import { Api } from "./api.ts";
import { configPath, normalizeUrl, removeConfigFile, writeConfigFile } from "./config.ts";
import { VERSION, type Ctx } from "./context.ts";
import { downloadTarball } from "./download.ts";
import { CliError, EXIT, usageError } from "./errors.ts";
import { ago, bytes, columns, oneLine, parseDuration, truncate } from "./format.ts";
import { RoundProgress, summaryLines, winnerLine } from "./progress.ts";
import { readLine, readSecret, readStdin } from "./prompt.ts";
import { LiveBlock, progressBar } from "./screen.ts";
import { waitForWinner, watchRound } from "./watch.ts";
import { RUN_STATUSES } from "../vocabulary.ts";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** The value's placeholder in help (string options). */
  value?: string;
  help: string;
}

export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  /** Positional arguments as help shows them. */
  args: string;
  summary: string;
  positionals: { min: number; max: number };
  options: Record<string, OptionSpec>;
  run(ctx: Ctx, o: Values, args: string[]): Promise<number>;
}

// ------------------------------------------------------------------------------------- helpers

/** A run id, also when given as an API URL (…/api/runs/run_…). */
export function runIdArg(raw: string): string {
  const m = /(?:^|\/runs\/)(run_[A-Za-z0-9]+)(?:[/?#]|$)/.exec(raw.trim());
  if (!m) throw usageError(`not a run id: ${raw} (ids look like run_…)`);
  return m[1]!;
}

export function intArg(raw: string | boolean | undefined, name: string, min: number, max: number): number | undefined {
  if (raw === undefined || typeof raw === "boolean") return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < min || n > max) throw usageError(`${name} must be a whole number from ${min} to ${max}, got ${raw}`);
  return n;
}

const str = (o: Values, name: string) => (typeof o[name] === "string" ? (o[name] as string) : undefined);

async function promptArg(ctx: Ctx, raw: string): Promise<string> {
  const prompt = raw === "-" ? await readStdin(ctx.io.stdin) : raw;
  if (!prompt.trim()) throw usageError("the prompt is empty");
  return prompt;
}

const newestRound = (view: RunView) => view.rounds[view.rounds.length - 1]!;

function roundOf(view: RunView, n: number) {
  const round = view.rounds.find((r) => r.number === n);
  if (!round) throw new CliError(EXIT.usage, "usage", `run ${view.id} has no round ${n} (it has ${view.rounds.length})`);
  return round;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

// ------------------------------------------------------------------------------------- commands

const run: Command = {
  name: "run",
  args: "<prompt>",
  summary: "start a run (prompt `-` reads it from stdin)",
  positionals: { min: 1, max: 1 },
  options: {
    attempts: { type: "string", short: "n", value: "N", help: "parallel attempts, 1 to 8 (4)" },
    agent: { type: "string", short: "a", value: "AGENT", help: "claude-code (default) or demo" },
    model: { type: "string", short: "m", value: "MODEL", help: "the agent's model" },
    verify: { type: "string", value: "CMD", help: "a check run in each attempt's workspace when it is done, e.g. 'npm test'" },
    winner: { type: "string", value: "HOW", help: "manual (default) or first-verified (needs --verify)" },
    git: { type: "string", value: "URL", help: "start from this git repository (http(s))" },
    ref: { type: "string", value: "REF", help: "the branch, tag or commit of --git" },
    "max-turns": { type: "string", value: "N", help: "the agent's turn limit" },
    minutes: { type: "string", value: "M", help: "each attempt's time limit in minutes" },
    watch: { type: "boolean", short: "w", help: "follow the round live until every attempt has ended" },
    preview: { type: "boolean", help: "with --watch: open previews of the finished attempts" },
  },
  async run(ctx, o, [rawPrompt]) {
    const prompt = await promptArg(ctx, rawPrompt!);
    const attempts = intArg(o.attempts, "--attempts", 1, 8);
    const maxTurns = intArg(o["max-turns"], "--max-turns", 1, 500);
    const minutes = str(o, "minutes");
    const attemptMinutes = minutes === undefined ? undefined : Number(minutes);
    if (attemptMinutes !== undefined && !(attemptMinutes > 0)) throw usageError(`--minutes must be a positive number, got ${minutes}`);
    const winner = str(o, "winner");
    if (winner !== undefined && winner !== "manual" && winner !== "first-verified") throw usageError("--winner must be manual or first-verified");
    if (o.ref !== undefined && o.git === undefined) throw usageError("--ref needs --git");
    if (o.preview && !o.watch) throw usageError("--preview needs --watch");
    const body: RunRequestBody = {
      prompt,
      ...(attempts !== undefined ? { attempts } : {}),
      ...(str(o, "agent") ? { agent: str(o, "agent")! } : {}),
      ...(str(o, "model") ? { model: str(o, "model")! } : {}),
      ...(str(o, "verify") ? { verify: str(o, "verify")! } : {}),
      ...(winner ? { winner } : {}),
      ...(str(o, "git") ? { base: { git: str(o, "git")!, ...(str(o, "ref") ? { ref: str(o, "ref")! } : {}) } } : {}),
      ...(maxTurns !== undefined || attemptMinutes !== undefined
        ? { limits: { ...(attemptMinutes !== undefined ? { attemptMinutes } : {}), ...(maxTurns !== undefined ? { maxTurns } : {}) } }
        : {}),
    };
    const started = await ctx.api.createRun(body);
    if (o.watch) return watchRound(ctx, started.id, { round: 1, preview: o.preview === true });
    if (ctx.json) ctx.emitJson(started);
    else if (ctx.tty) {
      ctx.out(`started ${ctx.c.bold(started.id)}`);
      ctx.out(ctx.c.dim(`follow it: multishot watch ${started.id}`));
    } else ctx.out(started.id);
    return EXIT.ok;
  },
};

const watch: Command = {
  name: "watch",
  args: "<run>",
  summary: "follow a round live until every attempt has ended",
  positionals: { min: 1, max: 1 },
  options: {
    round: { type: "string", short: "r", value: "N", help: "the round (the newest by default)" },
    preview: { type: "boolean", help: "open previews of the finished attempts at the end" },
  },
  async run(ctx, o, [id]) {
    const round = intArg(o.round, "--round", 1, 10_000);
    return watchRound(ctx, runIdArg(id!), { ...(round ? { round } : {}), preview: o.preview === true });
  },
};

const status: Command = {
  name: "status",
  args: "<run>",
  summary: "a run's rounds and attempts (exit 1 if the run failed or was cancelled)",
  positionals: { min: 1, max: 1 },
  options: {},
  async run(ctx, _o, [id]) {
    const view = await ctx.api.getRun(runIdArg(id!));
    if (ctx.json) ctx.emitJson(view);
    else {
      const c = ctx.c;
      const state =
        view.status === "succeeded" ? c.green(view.status) : view.status === "running" || view.status === "awaiting_pick" ? c.yellow(view.status) : c.red(view.status);
      ctx.out(`${c.bold(view.id)} · ${state} · ${view.agent} · ${plural(view.rounds.length, "round")} · started ${ago(ctx.now() - view.createdAt)}`);
      if (view.error) ctx.out(`  ${c.red(oneLine(view.error))}`);
      for (const round of view.rounds) {
        const [tally, ...rest] = summaryLines(new RoundProgress(view, round.number), ctx.width, c);
        ctx.out(tally!);
        const from = round.fromRound ? ` (from round ${round.fromRound}'s winner)` : "";
        ctx.out(c.dim(truncate(`  “${oneLine(round.prompt)}”${from}`, ctx.width)));
        for (const line of rest) ctx.out(line);
      }
      if (view.status === "awaiting_pick") ctx.out(c.yellow(`waiting for your pick: multishot pick ${view.id} <attempt>, then multishot next ${view.id} "<prompt>"`));
    }
    return view.status === "failed" || view.status === "cancelled" ? EXIT.failed : EXIT.ok;
  },
};

const pick: Command = {
  name: "pick",
  args: "<run> <attempt>",
  summary: "pick a round's winner and wait until its workspace is stored",
  positionals: { min: 2, max: 2 },
  options: {
    round: { type: "string", short: "r", value: "N", help: "the round (the newest by default)" },
    "no-wait": { type: "boolean", help: "return once the pick is accepted, before the workspace is stored" },
  },
  async run(ctx, o, [rawId, rawAttempt]) {
    const id = runIdArg(rawId!);
    const attempt = intArg(rawAttempt, "<attempt>", 1, 8)!;
    const roundNo = intArg(o.round, "--round", 1, 10_000) ?? newestRound(await ctx.api.getRun(id)).number;
    let view = await ctx.api.pickWinner(id, roundNo, attempt);
    if (!o["no-wait"]) view = await waitForWinner(ctx, id, roundNo, view);
    const round = roundOf(view, roundNo);
    if (ctx.json) ctx.emitJson(view);
    else {
      ctx.out(`round ${roundNo} of ${id}: picked #${attempt}`);
      ctx.out(winnerLine(round));
      if (round.winner?.status === "stored") {
        ctx.out(ctx.c.dim(`next round: multishot next ${id} "<prompt>"   ·   the files: multishot download ${id} --round ${roundNo}`));
      }
    }
    return round.winner?.status === "failed" ? EXIT.failed : EXIT.ok;
  },
};

const next: Command = {
  name: "next",
  args: "<run> <prompt>",
  summary: "start the next round from a stored winner (prompt `-` reads stdin)",
  positionals: { min: 2, max: 2 },
  options: {
    from: { type: "string", value: "N", help: "the round whose winner to start from (the newest by default)" },
    attempts: { type: "string", short: "n", value: "N", help: "parallel attempts, 1 to 8 (as the run's first round)" },
    watch: { type: "boolean", short: "w", help: "follow the round live until every attempt has ended" },
    preview: { type: "boolean", help: "with --watch: open previews of the finished attempts" },
  },
  async run(ctx, o, [rawId, rawPrompt]) {
    const id = runIdArg(rawId!);
    const prompt = await promptArg(ctx, rawPrompt!);
    const from = intArg(o.from, "--from", 1, 10_000);
    const attempts = intArg(o.attempts, "--attempts", 1, 8);
    if (o.preview && !o.watch) throw usageError("--preview needs --watch");
    const view = await ctx.api.startRound(id, { prompt, ...(from ? { from } : {}), ...(attempts ? { attempts } : {}) });
    const round = newestRound(view);
    if (o.watch) return watchRound(ctx, id, { round: round.number, view, preview: o.preview === true });
    if (ctx.json) ctx.emitJson(view);
    else {
      ctx.out(`round ${round.number} of ${id} started from round ${round.fromRound}'s winner: ${plural(round.attempts.length, "attempt")}`);
      ctx.note(ctx.ce.dim(`follow it: multishot watch ${id}`));
    }
    return EXIT.ok;
  },
};

const open: Command = {
  name: "open",
  args: "<run>",
  summary: "make a share link to the run's live page and print it",
  positionals: { min: 1, max: 1 },
  options: {
    control: { type: "boolean", help: "a control link: its holder can pick, start rounds and cancel (default: view only)" },
    expires: { type: "string", value: "TIME", help: "the link stops working after this long: 90s, 30m, 12h, 7d (default: the service's, 30 days)" },
    browser: { type: "boolean", short: "b", help: "also open it in a browser" },
  },
  async run(ctx, o, [rawId]) {
    const id = runIdArg(rawId!);
    let expiresIn: number | undefined;
    if (o.expires !== undefined) {
      const s = parseDuration(String(o.expires));
      if (s === null) throw usageError(`--expires must be a duration like 90s, 30m, 12h or 7d, got ${o.expires}`);
      expiresIn = s;
    }
    const link = await ctx.api.share(id, { scope: o.control ? "control" : "view", ...(expiresIn ? { expiresIn } : {}) });
    if (ctx.json) ctx.emitJson(link);
    else {
      ctx.out(link.url);
      const until = link.expiresAt ? `until ${new Date(link.expiresAt).toISOString()}` : "until revoked";
      ctx.note(ctx.ce.dim(`a ${link.scope} link, good ${until}; anyone holding it can ${link.scope === "control" ? "steer" : "see"} the run`));
    }
    if (o.browser) openInBrowser(link.url);
    return EXIT.ok;
  },
};

function openInBrowser(url: string): void {
  const [cmd, args] =
    process.platform === "darwin" ? ["open", [url]] : process.platform === "win32" ? ["cmd", ["/c", "start", "", url]] : ["xdg-open", [url]];
  try {
    spawn(cmd, args as string[], { detached: true, stdio: "ignore" }).on("error", () => {}).unref();
  } catch {
    // No opener: the printed link is still there.
  }
}

const download: Command = {
  name: "download",
  args: "<run>",
  summary: "download a round's winner as a tarball, checked against its SHA-256",
  positionals: { min: 1, max: 1 },
  options: {
    round: { type: "string", short: "r", value: "N", help: "the round (default: the newest with a winner)" },
    output: { type: "string", short: "o", value: "FILE", help: "where to write it (default: <run>-round-<n>.tar.gz; - for stdout)" },
  },
  async run(ctx, o, [rawId]) {
    const id = runIdArg(rawId!);
    const out = str(o, "output");
    if (out === "-" && ctx.json) throw usageError("--json and -o - both want stdout");
    let view = await ctx.api.getRun(id);
    const asked = intArg(o.round, "--round", 1, 10_000);
    const roundNo = asked ?? [...view.rounds].reverse().find((r) => r.winner)?.number;
    if (roundNo === undefined) {
      throw new CliError(EXIT.failed, "no_winner", `no round of ${id} has a winner yet: pick one with multishot pick ${id} <attempt>`);
    }
    if (roundOf(view, roundNo).winner?.status === "packing") view = await waitForWinner(ctx, id, roundNo, view);
    const winner = roundOf(view, roundNo).winner;
    if (!winner) throw new CliError(EXIT.failed, "no_winner", `round ${roundNo} of ${id} has no winner: pick one with multishot pick ${id} <attempt> --round ${roundNo}`);
    if (winner.status === "failed" || !winner.tarball) {
      throw new CliError(EXIT.failed, "winner_failed", `round ${roundNo}'s winner was not stored: ${winner.error ?? winner.status}`);
    }
    const path = out ?? `${id}-round-${roundNo}.tar.gz`;
    const bar = ctx.errTty && !ctx.json && path !== "-" ? new LiveBlock(ctx.io.stderr) : null;
    const started = Date.now();
    let drawnAt = 0;
    const result = await downloadTarball(ctx.api, `/api/runs/${id}/rounds/${roundNo}/winner.tar.gz`, path, winner.tarball, {
      onProgress: (done, total) => {
        const now = Date.now();
        if (!bar || (now - drawnAt < 100 && done < total)) return;
        drawnAt = now;
        const rate = done / Math.max(0.001, (now - started) / 1000);
        bar.draw([progressBar(done, total, ctx.io.stderr.columns ?? 80, `${bytes(done)} / ${bytes(total)}  ${bytes(rate)}/s`)]);
      },
    }).finally(() => bar?.release());
    const summary = { run: id, round: roundNo, attempt: winner.attempt, path: result.path, size: result.size, sha256: result.sha256 };
    if (ctx.json) ctx.emitJson(summary);
    else {
      const line = `saved round ${roundNo}'s winner (#${winner.attempt}) to ${path === "-" ? "stdout" : path}: ${bytes(result.size)}, sha256 ${result.sha256} verified`;
      if (path === "-") ctx.note(line);
      else ctx.out(line);
    }
    return EXIT.ok;
  },
};

const cancel: Command = {
  name: "cancel",
  args: "<run>",
  summary: "cancel a run (every attempt; its sandboxes are deleted) or one attempt",
  positionals: { min: 1, max: 1 },
  options: {
    attempt: { type: "string", value: "N", help: "cancel only this attempt of the newest round" },
  },
  async run(ctx, o, [rawId]) {
    const id = runIdArg(rawId!);
    const attempt = intArg(o.attempt, "--attempt", 1, 8);
    const view = attempt ? await ctx.api.cancelAttempt(id, attempt) : await ctx.api.cancelRun(id);
    if (ctx.json) ctx.emitJson(view);
    else if (attempt) {
      const round = newestRound(view);
      const a = round.attempts.find((x) => x.number === attempt);
      ctx.out(`round ${round.number}, attempt ${attempt} of ${id}: ${a?.status ?? "unknown"}`);
    } else if (view.status === "cancelled") ctx.out(`cancelled ${id}`);
    else ctx.out(`${id} had already ended (${view.status}); its sandboxes are being deleted`);
    return EXIT.ok;
  },
};

const list: Command = {
  name: "list",
  args: "",
  summary: "your runs, newest first",
  positionals: { min: 0, max: 0 },
  options: {
    status: { type: "string", short: "s", value: "STATUS", help: "only runs that are running, succeeded, failed or cancelled" },
    limit: { type: "string", short: "l", value: "N", help: "how many, 1 to 100 (20)" },
    cursor: { type: "string", value: "CURSOR", help: "the next page (from the previous page's last line)" },
  },
  async run(ctx, o) {
    const statusFilter = str(o, "status");
    if (statusFilter && !(RUN_STATUSES as readonly string[]).includes(statusFilter)) {
      throw usageError(`--status must be ${RUN_STATUSES.slice(0, -1).join(", ")} or ${RUN_STATUSES.at(-1)}`);
    }
    const limit = intArg(o.limit, "--limit", 1, 100);
    const page = await ctx.api.listRuns({ limit, status: statusFilter, cursor: str(o, "cursor") });
    if (ctx.json) {
      ctx.emitJson(page);
      return EXIT.ok;
    }
    if (page.runs.length === 0) ctx.out(ctx.c.dim("no runs"));
    else {
      const rows = page.runs.map((r) => [r.id, r.status, `${r.attempts}`, r.agent, ago(ctx.now() - r.createdAt), oneLine(r.prompt)]);
      const lines = columns([["RUN", "STATUS", "ATTEMPTS", "AGENT", "STARTED", "PROMPT"], ...rows]);
      ctx.out(ctx.c.dim(lines[0]!));
      for (const line of lines.slice(1)) ctx.out(truncate(line, ctx.width));
    }
    if (page.nextCursor) ctx.out(ctx.c.dim(`more: multishot list --cursor ${page.nextCursor}`));
    return EXIT.ok;
  },
};

const login: Command = {
  name: "login",
  args: "",
  summary: "check an API key against the service and save both (the key is read from stdin)",
  positionals: { min: 0, max: 0 },
  options: {},
  async run(ctx) {
    const { env, stdin } = ctx.io;
    let url = ctx.urlOverride ?? env.MULTISHOT_URL;
    if (!url && stdin.isTTY) url = await readLine(ctx.io, "service URL: ");
    if (!url) throw usageError("give the service with --url <url> (or MULTISHOT_URL)");
    url = normalizeUrl(url);
    const apiKey = (stdin.isTTY ? await readSecret(ctx.io, "API key: ") : (await readStdin(stdin)).split(/\r?\n/).find((l) => l.trim()) ?? "").trim();
    if (!apiKey) throw usageError("no API key: type it at the prompt or pipe it in (echo $KEY | multishot login --url …)");
    const probe = new Api({ url, apiKey, userAgent: `multishot-cli/${VERSION}` });
    try {
      await probe.listRuns({ limit: 1 });
    } catch (err) {
      if (err instanceof CliError && err.exitCode === EXIT.auth) {
        throw new CliError(EXIT.auth, err.code, `${url} refused this API key: ${err.message}`);
      }
      throw err;
    }
    const path = writeConfigFile(env, { url, apiKey });
    if (ctx.json) ctx.emitJson({ url, path });
    else ctx.out(`logged in to ${url}; saved to ${path}`);
    return EXIT.ok;
  },
};

const logout: Command = {
  name: "logout",
  args: "",
  summary: "forget the saved service and API key",
  positionals: { min: 0, max: 0 },
  options: {},
  async run(ctx) {
    const removed = removeConfigFile(ctx.io.env);
    const path = configPath(ctx.io.env);
    if (ctx.json) ctx.emitJson({ removed, path });
    else ctx.out(removed ? `removed ${path}` : `nothing to remove (${path} does not exist)`);
    return EXIT.ok;
  },
};

export const COMMANDS: Command[] = [run, watch, status, pick, next, open, download, cancel, list, login, logout];

// Previews: an attempt's app running in its sandbox, reachable through a signed URL for one port.
//
// For each request (of a done attempt): the sandbox is started if Daytona stopped it; the workspace is
// copied to ~/preview (so installs and build output never reach the winner's tarball); how to serve it comes
// from the run's or round's `preview` config, or is detected in the sandbox (cached per attempt until
// its sandbox or workspace changes); dependencies are installed once; the server runs in its own
// session, reused only if the sandbox says its command still runs; a health check from inside the
// sandbox waits for an HTTP answer; then a fresh signed URL is made. After the idle limit without a
// request the server is stopped, so preview traffic alone never keeps a sandbox up.
import { MS_DIR } from "../agents/index.ts";
import detectSource from "../agents/preview-detect.agent.mjs";
import staticServerSource from "../agents/static-server.agent.mjs";
import type { PreviewConfig, PreviewRequest } from "../run-request.ts";
import type { Sandboxes } from "../sandbox/client.ts";
import type { Redact } from "../redact.ts";
import { describeSandboxError, isSandboxGone } from "../sandbox/errors.ts";
import type { AttemptState, PreviewState, RoundState } from "./state.ts";

export const PREVIEW_SESSION = "multishot-preview";
/** Minutes after the last preview request before its server is stopped. */
export const DEFAULT_PREVIEW_IDLE_MINUTES = 30;
const INSTALL_TIMEOUT_SEC = 600;
const LOG = `${MS_DIR}/preview.log`;

export type PreviewResult =
  | { attempt: number; url: string; expiresAt: number; kind: string; port: number }
  | { attempt: number; error: { code: "preview_failed" | "too_many_attempts"; message: string } };

export interface PreviewHost {
  /** The object's storage: this module owns the `previews` table, one row per attempt ever previewed. */
  sql: SqlStorage;
  readonly sandboxes: Sandboxes;
  idleMinutes: number;
  /** A failed preview's reason carries the server's own log lines: redacted like every other stored text. */
  redact: Redact;
  /**
   * Holds one of the account's attempts for the preview's sandbox until `until` (it runs outside any
   * working attempt); false when the account has none free.
   */
  holdSlot(a: AttemptState, until: number): Promise<boolean>;
  /** The preview's server stopped: its slot is free. */
  releaseSlot(round: number, n: number): Promise<void>;
  /** Schedules (or moves) the attempt's idle timer. */
  scheduleIdle(round: number, n: number, at: number): void;
}

class PreviewError extends Error {}
class PreviewLimitError extends PreviewError {}

/** Room for a first start's copy, detection and install before the link is handed out. */
const SETUP_MS = 15 * 60_000;

type Row = Record<string, SqlStorageValue>;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export class Previews {
  private readonly host: PreviewHost;
  /** One preview request per attempt at a time; a second one waits for the first's answer. */
  private readonly inFlight = new Map<string, Promise<PreviewResult>>();

  constructor(host: PreviewHost) {
    this.host = host;
  }

  open(a: AttemptState, round: RoundState, runConfig: PreviewConfig | undefined, req: PreviewRequest): Promise<PreviewResult> {
    const key = `${a.round}:${a.number}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.openOnce(a, round, runConfig, req)
      .catch((err): PreviewResult => ({
        attempt: a.number,
        error: {
          code: err instanceof PreviewLimitError ? "too_many_attempts" : "preview_failed",
          message: this.host.redact(err instanceof PreviewError ? err.message : `preview failed: ${describeSandboxError(err)}`),
        },
      }))
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async openOnce(a: AttemptState, round: RoundState, runConfig: PreviewConfig | undefined, req: PreviewRequest): Promise<PreviewResult> {
    const { sandboxes } = this.host;
    if (!a.sandboxId || a.sandboxDeleted || a.cleanupPending) {
      throw new PreviewError(
        a.status === "queued" || a.status === "creating_sandbox"
          ? "the attempt has no sandbox yet"
          : `the attempt's sandbox is gone (attempt ${a.status}${a.error ? `: ${a.error}` : ""})`,
      );
    }
    if (a.status !== "done") throw new PreviewError(`the attempt is ${a.status.replace(/_/g, " ")}: preview it once it is done`);
    if (round.winnerAttempt === a.number && round.winnerStatus === "packing") {
      throw new PreviewError("the attempt's workspace is being packed as the winner: preview it once it is stored");
    }
    const sandboxId = a.sandboxId;
    const now = Date.now();
    // The sandbox runs again for the preview: it counts toward the account's attempts at once.
    if (!(await this.host.holdSlot(a, now + SETUP_MS + this.host.idleMinutes * 60_000))) {
      throw new PreviewLimitError("this account has as many sandboxes running as its limit allows (concurrentAttempts; previews count): try again when an attempt or another preview ends");
    }
    try {
      await sandboxes.ensureStarted(sandboxId);
    } catch (err) {
      if (isSandboxGone(err)) throw new PreviewError("the attempt's sandbox is gone");
      throw err;
    }
    const home = await sandboxes.homeDir(sandboxId);
    if (!home?.startsWith("/")) throw new PreviewError("the sandbox gave no usable home directory");
    // The preview runs from a copy of the workspace: installs and build output never reach the winner.
    const source = `${home}/workspace`;
    const workspace = `${home}/preview`;
    const workspaceKey = `${a.status}:${a.timestamps.done ?? a.timestamps.collecting_result ?? a.updatedAt}`;

    // What to serve: config first, then the cached detection, then a fresh one.
    let state = this.getPreview(a.round, a.number);
    if (!state || state.sandboxId !== sandboxId || state.workspaceKey !== workspaceKey) {
      state = { sandboxId, workspaceKey, detected: null, installed: false, cmdId: null, url: null, expiresAt: null, lastRequestedAt: now };
      await sandboxes.deleteSession(sandboxId, PREVIEW_SESSION).catch(() => {});
      const copy = await sandboxes.exec(
        sandboxId,
        `rm -rf ${q(workspace)} && mkdir -p ${q(workspace)} && tar -C ${q(source)} --exclude=./.git -cf - . | tar -C ${q(workspace)} -xf -`,
        300,
      );
      if (copy.exitCode !== 0) throw new PreviewError(`could not copy the workspace for the preview: ${copy.output.trim().slice(-500)}`);
    }
    const config = round.preview ?? runConfig;
    if (config) {
      state.detected = { kind: "configured", command: config.command, port: config.port, install: config.install ?? null };
    } else if (!state.detected) {
      await sandboxes.uploadFiles(sandboxId, [
        { path: `${home}/.multishot/preview-detect.mjs`, content: detectSource },
        { path: `${home}/.multishot/static-server.mjs`, content: staticServerSource },
      ]);
      const res = await sandboxes.exec(sandboxId, `node ${q(`${home}/.multishot/preview-detect.mjs`)} ${q(workspace)} ${q(`${home}/.multishot/static-server.mjs`)}`);
      let found: { kind?: string; command?: string; port?: number; install?: string | null; error?: string };
      try {
        found = JSON.parse(res.output.trim().split("\n").pop() ?? "");
      } catch {
        throw new PreviewError(`could not read the workspace to detect the project: ${res.output.trim().slice(-500)}`);
      }
      if (found.error || !found.command || !found.port) throw new PreviewError(found.error ?? "found nothing to serve");
      if (!Number.isInteger(found.port) || found.port < 1 || found.port > 65_535) throw new PreviewError(`detection gave a bad port: ${found.port}`);
      state.detected = { kind: found.kind ?? "unknown", command: found.command, port: found.port, install: found.install ?? null };
    }
    state.lastRequestedAt = now;
    this.putPreview(a.round, a.number, state);
    const { command, port, install, kind } = state.detected;

    // The server: reused only if the sandbox says it still runs.
    let running = false;
    if (state.cmdId) {
      try {
        running = (await sandboxes.commandExitCode(sandboxId, PREVIEW_SESSION, state.cmdId)) === undefined;
      } catch (err) {
        if (isSandboxGone(err)) throw new PreviewError("the attempt's sandbox is gone");
        running = false;
      }
    }
    if (!running) {
      if (install && !state.installed) {
        const res = await sandboxes.exec(sandboxId, `cd ${q(workspace)} && (${install}) > ${MS_DIR}/preview-install.log 2>&1; code=$?; tail -n 20 ${MS_DIR}/preview-install.log; exit $code`, INSTALL_TIMEOUT_SEC);
        if (res.exitCode !== 0) throw new PreviewError(`installing dependencies (${install}) failed with exit code ${res.exitCode}:\n${res.output.trim().slice(-1500)}`);
        state.installed = true;
      }
      // A fresh session: whatever an older server left behind goes with the old one.
      await sandboxes.deleteSession(sandboxId, PREVIEW_SESSION).catch(() => {});
      const viteHosts = kind === "vite" ? " __VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS=.daytona.work,.daytona.app,.daytonaproxy01.net,localhost,127.0.0.1" : "";
      state.cmdId = await sandboxes.startCommand(
        sandboxId,
        PREVIEW_SESSION,
        // No `exec`: a session command that replaces its shell never gets an exit code from the daemon.
        `cd ${q(workspace)} && env HOST=0.0.0.0 PORT=${port}${viteHosts} bash -c ${q(command)} > ${LOG} 2>&1`,
      );
      this.putPreview(a.round, a.number, state);
      // From now on a server runs: it gets stopped after the idle limit even if this request fails.
      this.host.scheduleIdle(a.round, a.number, Date.now() + this.host.idleMinutes * 60_000);
    }

    // Ready when the port gives an HTTP answer below 500, asked from inside the sandbox.
    const tries = req.healthTries;
    const pause = (req.healthIntervalMs / 1000).toFixed(2);
    const check = await sandboxes.exec(
      sandboxId,
      `for i in $(seq 1 ${tries}); do ` +
        `code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:${port}/ || true); ` +
        `case "$code" in [234]??) echo "ready $code"; exit 0;; esac; sleep ${pause}; done; ` +
        `echo "not ready: last answer \${code:-none}"; tail -n 25 ${LOG}; exit 1`,
      Math.ceil((tries * (req.healthIntervalMs + 2000)) / 1000) + 30,
    );
    if (check.exitCode !== 0) {
      const lines = check.output.trim().split("\n");
      const tail = lines.slice(1).join("\n").trim();
      throw new PreviewError(
        `the preview server (${command}) did not answer on port ${port} after ${tries} tries${tail ? `; its last log lines:\n${tail}` : " and printed nothing"}`,
      );
    }

    const url = await sandboxes.signedPreviewUrl(sandboxId, port, req.expiresIn);
    // The idle limit counts from when the link was handed out, not from the request (an install may
    // have taken minutes).
    const answeredAt = Date.now();
    state.url = url;
    state.expiresAt = answeredAt + req.expiresIn * 1000;
    state.lastRequestedAt = answeredAt;
    this.putPreview(a.round, a.number, state);
    this.host.scheduleIdle(a.round, a.number, answeredAt + this.host.idleMinutes * 60_000);
    await this.host.holdSlot(a, answeredAt + this.host.idleMinutes * 60_000);
    return { attempt: a.number, url, expiresAt: state.expiresAt, kind, port };
  }

  /** The idle timer: stops the server if nobody asked for the preview since; true when it is done. */
  async idle(round: number, n: number): Promise<number | null> {
    const { sandboxes } = this.host;
    const state = this.getPreview(round, n);
    if (!state?.cmdId) return null;
    const due = state.lastRequestedAt + this.host.idleMinutes * 60_000;
    if (Date.now() < due) return due;
    // A request being answered now restarts the clock when it ends.
    if (this.inFlight.has(`${round}:${n}`)) return Date.now() + this.host.idleMinutes * 60_000;
    try {
      await sandboxes.deleteSession(state.sandboxId, PREVIEW_SESSION);
    } catch (err) {
      if (!isSandboxGone(err)) throw err;
    }
    this.putPreview(round, n, { ...state, cmdId: null, url: null, expiresAt: null });
    await this.host.releaseSlot(round, n).catch((err) => console.error("freeing a preview's slot failed; it lapses by itself", err instanceof Error ? err.message : err));
    return null;
  }

  /** Every attempt's preview state, for the run's view. */
  all(): (PreviewState & { round: number; number: number })[] {
    return this.host.sql
      .exec<Row>("SELECT round, number, state FROM previews")
      .toArray()
      .map((r) => ({ ...(JSON.parse(String(r.state)) as PreviewState), round: Number(r.round), number: Number(r.number) }));
  }

  private getPreview(round: number, number: number): PreviewState | null {
    const row = this.host.sql.exec<Row>("SELECT state FROM previews WHERE round = ? AND number = ?", round, number).toArray()[0];
    return row ? (JSON.parse(String(row.state)) as PreviewState) : null;
  }

  private putPreview(round: number, number: number, state: PreviewState): void {
    this.host.sql.exec(
      "INSERT INTO previews (round, number, state) VALUES (?, ?, ?) ON CONFLICT (round, number) DO UPDATE SET state = excluded.state",
      round,
      number,
      JSON.stringify(state),
    );
  }
}

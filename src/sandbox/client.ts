// Every Daytona call multishot makes goes through this module (the only importer of @daytonaio/sdk).
// It speaks to real Daytona, or locally and in tests to the project's Daytona-compatible sandbox server.
import { Daytona, DaytonaConflictError, DaytonaConnectionError, DaytonaError, DaytonaNotFoundError, type Sandbox } from "@daytonaio/sdk";
import type { Env } from "../env.ts";
import { isSandboxGone, isSessionMissing } from "./errors.ts";
import { StdDemux, type LogFd } from "./log-stream.ts";

export interface SandboxSpec {
  labels: Record<string, string>;
  envVars: Record<string, string>;
  /** Minutes without activity before Daytona stops the sandbox (0 = never). */
  autoStopInterval: number;
  /** Minutes after stopping before Daytona deletes it (0 = at once, -1 = never). */
  autoDeleteInterval: number;
  snapshot?: string;
  /** Made from this image with these resources instead (Daytona takes resources only with an image). */
  image?: { name: string; resources: { cpu?: number; memory?: number; disk?: number } };
  /** Seconds to wait for the sandbox to start. */
  timeoutSec?: number;
}

export interface SandboxSummary {
  id: string;
  state: string;
  /** "destroyed" once a delete has marked it: Daytona keeps listing it until the runner destroys it. */
  desiredState: string;
  labels: Record<string, string>;
  createdAt?: string;
}

export interface CommandResult {
  exitCode: number;
  output: string;
}

/** The longest wait for one Daytona answer, unless the call carries its own timeout. */
export function requestTimeoutMs(env: Env): number {
  const ms = Number(env.DAYTONA_REQUEST_TIMEOUT_MS);
  return Number.isFinite(ms) && ms > 0 ? ms : 30_000;
}

/** The API key the SDK and the streamed toolbox calls send (the local sandbox server takes any). */
const apiKeyOf = (env: Env) => env.DAYTONA_API_KEY || "local-sandbox";

export function daytonaFromEnv(env: Env): Daytona {
  // apiUrl is always passed explicitly: the SDK refuses to start when it also finds one in a .env file.
  const auth = env.DAYTONA_JWT_TOKEN ? { jwtToken: env.DAYTONA_JWT_TOKEN, organizationId: env.DAYTONA_ORGANIZATION_ID } : { apiKey: apiKeyOf(env) };
  return new Daytona({
    ...auth,
    apiUrl: env.DAYTONA_API_URL,
    ...(env.DAYTONA_TARGET ? { target: env.DAYTONA_TARGET } : {}),
    // Workers have no long-lived process to hold an event socket; state is read by polling.
    useDeprecatedPolling: true,
    // The SDK waits up to 24 h for an answer by default. A call that is never answered would hold its
    // attempt's step (the alarm runs one step per attempt at a time): its polls, its deadline's cleanup.
    // Calls with a timeout of their own (create, start, executeCommand, delete) are bounded by that.
    requestTimeoutMs: requestTimeoutMs(env),
  });
}

/** The headers the SDK sends the toolbox, for the calls that stream and so go around it. */
function toolboxHeaders(env: Env): Record<string, string> {
  return {
    authorization: `Bearer ${env.DAYTONA_JWT_TOKEN || apiKeyOf(env)}`,
    "x-daytona-source": "multishot",
    ...(env.DAYTONA_JWT_TOKEN && env.DAYTONA_ORGANIZATION_ID ? { "x-daytona-organization-id": env.DAYTONA_ORGANIZATION_ID } : {}),
  };
}

/** A followed command's log stream, open until the daemon or `close` ends it. */
export interface LogStream {
  /** Resolves when the stream has ended: "closed" when the daemon closed it normally, else "lost". */
  readonly ended: Promise<"closed" | "lost">;
  close(): void;
}

/** How long one streamed file transfer with a sandbox may take. */
const TRANSFER_TIMEOUT_MS = 15 * 60_000;

/** A failed streamed transfer, with the toolbox's status (the SDK's errors classify the same way). */
export class TransferError extends DaytonaError {}

const isDestroyed = (state: unknown) => state === "destroyed";

/** A thin, cached view of Daytona for one Durable Object. */
export class Sandboxes {
  private readonly daytona: Daytona;
  private readonly env: Env;
  private readonly cache = new Map<string, Sandbox>();
  /** Sessions this object has created (or found), by sandbox and name. */
  private readonly sessions = new Set<string>();
  /** Sandboxes recovered from an error once already. */
  private readonly recovered = new Set<string>();

  constructor(env: Env) {
    this.env = env;
    this.daytona = daytonaFromEnv(env);
  }

  /**
   * Streams a file out of the sandbox (the toolbox's `GET /files/download`). The SDK's own download holds
   * the whole file in memory, which a Worker cannot afford; this hands over the body as it arrives.
   */
  async downloadStream(id: string, path: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.toolboxFetch(id, `/files/download?path=${encodeURIComponent(path)}`, { method: "GET" });
    if (!res.body) throw new TransferError(`GET /files/download: an answer without a body`, res.status);
    return res.body;
  }

  /**
   * Streams `size` bytes into a file in the sandbox (the toolbox's `POST /files/bulk-upload`, one file),
   * with a Content-Length. The SDK's own upload holds the file in memory and, in a Worker, ignores a
   * failed answer (its FileSystem.uploadFile): this one is checked.
   */
  async uploadStream(id: string, path: string, body: ReadableStream<Uint8Array>, size: number): Promise<void> {
    const boundary = `multishot-${crypto.randomUUID()}`;
    const enc = new TextEncoder();
    const head = enc.encode(
      `--${boundary}\r\ncontent-disposition: form-data; name="files[0].path"\r\n\r\n${path}\r\n` +
        `--${boundary}\r\ncontent-disposition: form-data; name="files[0].file"; filename="${path.split("/").pop()}"\r\n` +
        `content-type: application/octet-stream\r\n\r\n`,
    );
    const tail = enc.encode(`\r\n--${boundary}--\r\n`);
    const framed = new FixedLengthStream(head.byteLength + size + tail.byteLength);
    const writing = (async () => {
      const writer = framed.writable.getWriter();
      await writer.write(head);
      writer.releaseLock();
      await body.pipeTo(framed.writable, { preventClose: true });
      const w = framed.writable.getWriter();
      await w.write(tail);
      await w.close();
    })();
    const [res] = await Promise.all([
      this.toolboxFetch(id, "/files/bulk-upload", { method: "POST", body: framed.readable, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } }),
      writing,
    ]);
    await res.body?.cancel();
  }

  /**
   * One call to the toolbox, around the SDK. `answerWithinMs` bounds only the wait for the answer's
   * head (a WebSocket's handshake), leaving the stream that follows open; without it the whole transfer
   * is bounded by TRANSFER_TIMEOUT_MS.
   */
  private async toolboxFetch(id: string, path: string, init: RequestInit & { headers?: Record<string, string> }, answerWithinMs?: number): Promise<Response> {
    const sandbox = await this.get(id);
    const base = sandbox.toolboxProxyUrl.replace(/\/$/, "");
    let res: Response;
    // A signal that stays unfired once the answer is here (AbortSignal.timeout would cut the stream).
    const abort = new AbortController();
    const timer = answerWithinMs ? setTimeout(() => abort.abort(new Error("no answer in time")), answerWithinMs) : undefined;
    try {
      res = await fetch(`${base}/${id}${path}`, {
        ...init,
        headers: { ...toolboxHeaders(this.env), ...init.headers },
        signal: answerWithinMs ? abort.signal : AbortSignal.timeout(TRANSFER_TIMEOUT_MS),
      });
    } catch (err) {
      throw new DaytonaConnectionError(`the toolbox did not answer: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok && !(res.status === 101 && res.webSocket)) {
      const text = await res.text().catch(() => "");
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // Not JSON: the text is the message.
      }
      throw new TransferError(`${init.method} ${path.split("?")[0]}: ${message || res.statusText}`, res.status);
    }
    return res;
  }

  /**
   * Follows a session command's logs (the toolbox's `GET .../command/{cid}/logs?follow=true`, a
   * WebSocket, as the SDK's getSessionCommandLogs with callbacks opens it): everything from the start,
   * then each new chunk as it is written. The daemon sends stdout and stderr apart only when the client
   * says it can read them apart (X-Daytona-Split-Output, or an SDK version header: daytonaio/daytona
   * v0.190.0 apps/daemon/pkg/session/common.go IsCombinedOutput). Its close is no sign that the command
   * ended: the v0.190 daemon may never close it (see tools/local-sandbox/README.md).
   */
  async followLogs(id: string, sessionId: string, cmdId: string, onData: (fd: LogFd, bytes: Uint8Array) => void): Promise<LogStream> {
    const path = `/process/session/${encodeURIComponent(sessionId)}/command/${encodeURIComponent(cmdId)}/logs?follow=true`;
    const res = await this.toolboxFetch(id, path, { method: "GET", headers: { upgrade: "websocket", "x-daytona-split-output": "true" } }, 15_000);
    const ws = res.webSocket;
    if (!ws) {
      await res.body?.cancel();
      throw new TransferError(`GET ${path.split("?")[0]}: answered ${res.status} without a WebSocket`, res.status);
    }
    // Binary frames as ArrayBuffers (with the standard binary type they would be Blobs).
    (ws as { binaryType?: string }).binaryType = "arraybuffer";
    ws.accept();
    const demux = new StdDemux(onData);
    const encoder = new TextEncoder();
    // A Blob (where binaryType is not honoured) is read asynchronously: frames are handed on in order.
    let order: Promise<void> = Promise.resolve();
    const frame = (data: unknown): Promise<Uint8Array> | Uint8Array =>
      typeof data === "string" ? encoder.encode(data) : data instanceof Blob ? data.arrayBuffer().then((b) => new Uint8Array(b)) : new Uint8Array(data as ArrayBuffer);
    const ended = new Promise<"closed" | "lost">((resolve) => {
      ws.addEventListener("message", (e) => {
        const bytes = frame(e.data);
        order = order.then(async () => demux.push(await bytes)).catch(() => ws.close(1011, "unreadable frame"));
      });
      ws.addEventListener("close", (e) => {
        order = order.then(() => {
          demux.end();
          resolve(e.code === 1000 ? "closed" : "lost");
        });
      });
      ws.addEventListener("error", () => {
        order = order.then(() => resolve("lost"));
      });
    });
    return {
      ended,
      close: () => {
        try {
          ws.close(1000, "done");
        } catch {
          // Closed already.
        }
      },
    };
  }

  async create(spec: SandboxSpec): Promise<string> {
    const common = {
      language: "typescript",
      labels: spec.labels,
      envVars: spec.envVars,
      autoStopInterval: spec.autoStopInterval,
      autoDeleteInterval: spec.autoDeleteInterval,
    };
    const options = { timeout: spec.timeoutSec ?? 120 };
    const sandbox = spec.image
      ? await this.daytona.create({ ...common, image: spec.image.name, resources: spec.image.resources }, options)
      : await this.daytona.create({ ...common, ...(spec.snapshot ? { snapshot: spec.snapshot } : {}) }, options);
    this.cache.set(sandbox.id, sandbox);
    return sandbox.id;
  }

  /** A snapshot's state (and why it failed), or null when Daytona knows no snapshot of that name. */
  async snapshotState(name: string): Promise<{ state: string; errorReason: string | null } | null> {
    try {
      const s = await this.daytona.snapshot.get(name);
      return { state: String(s.state), errorReason: s.errorReason ?? null };
    } catch (err) {
      if (err instanceof DaytonaError && err.statusCode === 404) return null;
      throw err;
    }
  }

  /** Every sandbox carrying all of these labels, whatever its state. */
  async findByLabels(labels: Record<string, string>): Promise<SandboxSummary[]> {
    const found: SandboxSummary[] = [];
    for await (const sb of this.daytona.list({ labels })) {
      found.push({ id: sb.id, state: String(sb.state ?? ""), desiredState: String(sb.desiredState ?? ""), labels: sb.labels ?? {}, createdAt: sb.createdAt });
    }
    return found;
  }

  private async get(id: string): Promise<Sandbox> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const sandbox = await this.daytona.get(id);
    this.cache.set(id, sandbox);
    return sandbox;
  }

  /**
   * Deletes a sandbox: "gone" once Daytona no longer has it, "pending" while it is only marked. Daytona's
   * delete only marks (200 at once, `desiredState: destroyed`, still listed until the runner destroys
   * it), and a second delete in that window answers 409 "Sandbox state change in progress"
   * (daytonaio/daytona v0.190.0, apps/api/src/sandbox/services/sandbox.service.ts 2013-2040): a 409 is
   * "in progress", not a failure. A marked sandbox is then looked at with `deletion`, never deleted again.
   */
  async delete(id: string): Promise<"gone" | "pending"> {
    try {
      const sandbox = await this.get(id);
      await sandbox.delete(60);
      if (isDestroyed(sandbox.state)) return this.forget(id, "gone");
    } catch (err) {
      if (isSandboxGone(err)) return this.forget(id, "gone");
      if (err instanceof DaytonaConflictError) return this.forget(id, "pending");
      throw err;
    }
    // A runner that destroys at once (the local server's lenient profile, a quick runner) is seen now.
    return this.deletion(id);
  }

  /** How a delete stands, by looking (a GET): "gone" once the sandbox is, else "pending". */
  async deletion(id: string): Promise<"gone" | "pending"> {
    this.cache.delete(id);
    try {
      return isDestroyed((await this.daytona.get(id)).state) ? "gone" : "pending";
    } catch (err) {
      if (isSandboxGone(err)) return "gone";
      throw err;
    }
  }

  private forget<T>(id: string, answer: T): T {
    this.cache.delete(id);
    return answer;
  }

  /** A short command, waited for (at most timeoutSec). stdout and stderr come back combined. */
  async exec(id: string, command: string, timeoutSec = 60): Promise<CommandResult> {
    const sandbox = await this.get(id);
    const res = await sandbox.process.executeCommand(command, undefined, undefined, timeoutSec);
    return { exitCode: res.exitCode, output: res.result ?? "" };
  }

  /**
   * Starts the sandbox if Daytona stopped it (auto-stop counts only API, toolbox and preview traffic, not
   * what runs inside). A start that meets a state change in progress (409) waits for it; an errored
   * sandbox is recovered once (the SDK's `recover`), and a second error is final, with Daytona's reason.
   */
  async ensureStarted(id: string): Promise<void> {
    const sandbox = await this.get(id);
    for (let i = 0; i < 10; i++) {
      await sandbox.refreshData();
      const state = String(sandbox.state);
      if (state === "started") return;
      if (state === "error" || state === "build_failed") {
        if (this.recovered.has(id) || !sandbox.recoverable) {
          throw new DaytonaError(`the sandbox is in state ${state}: ${sandbox.errorReason ?? "no reason given"}`, 400);
        }
        this.recovered.add(id);
        await sandbox.recover(120);
        return;
      }
      if (state === "starting" || state === "stopping" || state === "creating" || state === "restoring" || state === "pending_build") {
        await new Promise((r) => setTimeout(r, 500 * (i + 1)));
        continue;
      }
      try {
        await sandbox.start(120);
        return;
      } catch (err) {
        // Another state change is in progress: look again once it has had a moment.
        if (!(err instanceof DaytonaConflictError)) throw err;
        await new Promise((r) => setTimeout(r, 500 * (i + 1)));
      }
    }
    throw new DaytonaError(`the sandbox did not reach started (state ${String(sandbox.state)})`, 409);
  }

  async homeDir(id: string): Promise<string | undefined> {
    return (await this.get(id)).getUserHomeDir();
  }

  /**
   * Small text files, in one request to the toolbox's `POST /files/bulk-upload` (large files go through
   * uploadStream). Not the SDK's `fs.uploadFiles`: in a Worker it does not look at the answer, so a
   * refused upload went unnoticed until the job found its script missing.
   */
  async uploadFiles(id: string, files: { path: string; content: string }[]): Promise<void> {
    const form = new FormData();
    files.forEach((f, i) => {
      form.append(`files[${i}].path`, f.path);
      form.append(`files[${i}].file`, new Blob([f.content]), f.path.split("/").pop() ?? "file");
    });
    const res = await this.toolboxFetch(id, "/files/bulk-upload", { method: "POST", body: form });
    await res.body?.cancel();
  }

  /**
   * Starts a long command in the named session and returns its command id at once. The session is created
   * explicitly the first time (409: it exists, fine), and again when the sandbox says it is missing: a
   * sandbox started again has lost its sessions, and the v0.190 daemon answers 500, not 404, for one.
   */
  async startCommand(id: string, sessionId: string, command: string): Promise<string> {
    const sandbox = await this.get(id);
    const key = `${id}\n${sessionId}`;
    const create = async () => {
      try {
        await sandbox.process.createSession(sessionId);
      } catch (err) {
        if (!(err instanceof DaytonaConflictError)) throw err;
      }
      this.sessions.add(key);
    };
    if (!this.sessions.has(key)) await create();
    const exec = () => sandbox.process.executeSessionCommand(sessionId, { command, runAsync: true });
    let res;
    try {
      res = await exec();
    } catch (err) {
      if (!(err instanceof DaytonaNotFoundError) && !isSessionMissing(err)) throw err;
      if (isSandboxGone(err)) throw err;
      await create();
      res = await exec();
    }
    if (!res.cmdId) throw new Error("the sandbox returned no command id");
    return res.cmdId;
  }

  /** A command of the session whose text contains `marker`, if one was started already. */
  async findCommand(id: string, sessionId: string, marker: string): Promise<{ cmdId: string; exitCode?: number } | null> {
    const sandbox = await this.get(id);
    try {
      const session = await sandbox.process.getSession(sessionId);
      const cmd = (session.commands ?? []).find((c) => c.command?.includes(marker));
      if (!cmd?.id) return null;
      return cmd.exitCode === undefined || cmd.exitCode === null ? { cmdId: cmd.id } : { cmdId: cmd.id, exitCode: cmd.exitCode };
    } catch (err) {
      if (isSandboxGone(err) || isSessionMissing(err)) return null;
      throw err;
    }
  }

  /** The command's exit code, or undefined while it runs. */
  async commandExitCode(id: string, sessionId: string, cmdId: string): Promise<number | undefined> {
    const sandbox = await this.get(id);
    const cmd = await sandbox.process.getSessionCommand(sessionId, cmdId);
    return cmd.exitCode === null ? undefined : cmd.exitCode;
  }

  /** A signed preview URL for one port: anyone holding it reaches that port until it expires. */
  async signedPreviewUrl(id: string, port: number, expiresInSeconds: number): Promise<string> {
    const sandbox = await this.get(id);
    const res = await sandbox.getSignedPreviewUrl(port, expiresInSeconds);
    return res.url;
  }

  async deleteSession(id: string, sessionId: string): Promise<void> {
    const sandbox = await this.get(id);
    this.sessions.delete(`${id}\n${sessionId}`);
    try {
      await sandbox.process.deleteSession(sessionId);
    } catch (err) {
      if (!isSandboxGone(err) && !isSessionMissing(err)) throw err;
    }
  }
}

// Following each running job's logs from the Worker (no sandbox ever connects to us): one WebSocket per
// attempt to the toolbox's `.../command/{cid}/logs?follow=true`, opened when a job starts and again when
// a step finds its job still running without one (the object was evicted, the stream was lost).
//
// - The runners end every job with a line `multishot-exit:<job>:<try>:<code>` on stderr
//   (src/agents/runner.agent.mjs, run-job.agent.sh): read here, it is the job's exit, recorded as a
//   report would be and seen within the daemon's read loop (20 ms polls of the log file, daytonaio/
//   daytona v0.190.0 apps/daemon/internal/util/log_reader.go), so the attempt goes on at once.
// - The agent's stdout lines are its live transcript, numbered as the runner numbers them, so lines
//   followed, lines reported and lines read back at the end are each recorded once.
// - The winner's pack job is followed the same way, beside its attempt's (which has ended by then).
// - A stream's end says nothing for sure (the v0.190 daemon may never close it): a look at the command
//   is due a moment later. A stream that keeps ending without the exit line is given up after a few
//   tries; the poll carries that job.
// An open outbound WebSocket keeps the object in memory (workerd #4864), so a follow lasts the job.
import { LineNumberer, type LogFd } from "../sandbox/log-stream.ts";
import type { LogStream } from "../sandbox/client.ts";
import { describeSandboxError } from "../sandbox/errors.ts";
import type { JobName } from "../vocabulary.ts";
import { SESSION, type RunCore } from "./core.ts";

/** A running job to follow: an attempt's current job, or its round's pack job. */
export interface FollowTarget {
  round: number;
  number: number;
  sandboxId: string | null;
  cmdId: string | null;
  job: JobName | null;
  jobTry: number;
}

/** The runners' last line on stderr. */
const EXIT_LINE = /^multishot-exit:([a-z]+):(\d+):(\d+)$/m;
/** Lines longer than this are passed on as placeholders, as the runner does. */
const MAX_LINE = 60 * 1024;
/** Streams of one job that may end without its exit line before it is left to the poll. */
const MAX_OPENS = 4;

export interface FollowHost {
  /** Lines of the agent's stdout (try `jobTry`), numbered from `first`. */
  agentLines(round: number, attempt: number, jobTry: number, lines: string[], first: number): void;
  /** A job's exit, read from its log. */
  exited(round: number, attempt: number, job: JobName, jobTry: number, exitCode: number): void;
  /** The stream ended without the exit line: the job is due a look. */
  lost(round: number, attempt: number, job: JobName): void;
}

interface Follow {
  cmdId: string;
  stream: LogStream | null;
  opens: number;
  stopped: boolean;
  /** The exit line was read: the stream's end that follows is no news. */
  exited: boolean;
}

export class LogFollower {
  private readonly core: RunCore;
  private readonly host: FollowHost;
  /** By attempt and lane (`round:number`, or `round:number:pack`): the command followed. */
  private readonly follows = new Map<string, Follow>();

  constructor(core: RunCore, host: FollowHost) {
    this.core = core;
    this.host = host;
  }

  /** Whether the target's command is followed now. */
  following(a: FollowTarget): boolean {
    const f = this.follows.get(key(a.round, a.number, a.job));
    return !!f && f.cmdId === a.cmdId && f.stream !== null;
  }

  /**
   * Follows the target's running command unless it is followed already (or was given up on). False when
   * no stream could be opened: the poll carries the job.
   */
  async follow(a: FollowTarget): Promise<boolean> {
    const { sandboxId, cmdId, job } = a;
    if (!sandboxId || !cmdId || !job) return false;
    const k = key(a.round, a.number, job);
    let f = this.follows.get(k);
    if (f && f.cmdId !== cmdId) {
      this.stop(a.round, a.number, job);
      f = undefined;
    }
    if (f?.stream) return true;
    if (f && f.opens >= MAX_OPENS) return false;
    f ??= { cmdId, stream: null, opens: 0, stopped: false, exited: false };
    this.follows.set(k, f);
    f.opens++;
    const follow = f;
    const stderr = new LineNumberer(MAX_LINE, (lines) => {
      for (const line of lines) {
        const m = EXIT_LINE.exec(line.trim());
        if (!m || m[1] !== job || Number(m[2]) !== a.jobTry || follow.stopped) continue;
        follow.exited = true;
        this.host.exited(a.round, a.number, job, a.jobTry, Number(m[3]));
      }
    });
    // The agent's stdout is stream-json, one object per line. A line that does not parse means the log's
    // lines no longer match the runner's (a line broken in two on the way, as a session's line reader can
    // do under a burst): the transcript is then left to the read-back from the sandbox's log at the exit,
    // which numbers the lines as the runner kept them; lines handed on before it are consistent with it.
    let linesBroken = false;
    const stdout =
      job === "agent"
        ? new LineNumberer(MAX_LINE, (lines, first) => {
            if (linesBroken) return;
            const bad = lines.findIndex((l) => l !== "" && !parsesAsJson(l));
            if (bad >= 0) linesBroken = true;
            const good = bad >= 0 ? lines.slice(0, bad) : lines;
            if (good.length) this.host.agentLines(a.round, a.number, a.jobTry, good, first);
          })
        : null;
    const onData = (fd: LogFd, bytes: Uint8Array) => {
      if (follow.stopped) return;
      if (fd === 1) stdout?.push(bytes);
      else stderr.push(bytes);
    };
    try {
      follow.stream = await this.core.sandboxes.followLogs(sandboxId, SESSION, cmdId, onData);
    } catch (err) {
      if (follow.opens === 1) this.core.events.append(a.round, a.number, "job.follow_failed", { job, reason: describeSandboxError(err) });
      return false;
    }
    if (follow.stopped) {
      follow.stream.close();
      return false;
    }
    void follow.stream.ended.then((how) => {
      if (follow.stopped) return;
      // Closed by the daemon, every byte was sent: a last line without its newline is whole. A lost
      // stream's unfinished line is not (the stream opened again replays it).
      if (how === "closed") {
        stdout?.end();
        stderr.end();
      }
      follow.stream = null;
      // The exit line may have come with the end; if not, the job is looked at.
      if (!follow.exited) this.host.lost(a.round, a.number, job);
    });
    return true;
  }

  /** Stops following an attempt's job (it ended, it was cancelled or failed), or its round's pack job. */
  stop(round: number, attempt: number, job?: JobName): void {
    const k = key(round, attempt, job ?? null);
    const f = this.follows.get(k);
    if (!f) return;
    f.stopped = true;
    f.stream?.close();
    this.follows.delete(k);
  }

  /** How many streams are open (for the run's meter). */
  get open(): number {
    let n = 0;
    for (const f of this.follows.values()) if (f.stream) n++;
    return n;
  }
}

/** The pack job has a lane of its own: it runs after its attempt has ended. */
const key = (round: number, attempt: number, job: JobName | null) => (job === "pack" ? `${round}:${attempt}:pack` : `${round}:${attempt}`);

function parsesAsJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

// Sessions: one long-lived bash per session, so `cd` and `export` persist between commands, and the
// commands of one session run one at a time, as in Daytona's daemon.
//
// Each command is written to its own file and sourced by the session's shell with its output sent to
// two files of its own (stdout, stderr). A line on fd 3 (`<cmdId> <exit code>`), written by the
// session's shell after the command, tells the server it ended. Output is never held in memory: the
// server only records which byte ranges of which file arrived in which order (the "chunks"), and reads
// the bytes back when a client asks for logs.
//
// Two modes:
// - 'lenient' (the default): the server queues commands and starts each when the one before ended;
//   output goes straight to the files, stdin is /dev/null, and a shell that dies ends its command with
//   the shell's exit status. Background processes keep writing to their command's files.
// - 'daemon': Daytona's daemon v0.190 wrapper (apps/daemon/pkg/session/execute.go 196-236), written to
//   the shell's stdin at once: per-command FIFOs, line readers that append to the logs, stdin that is at
//   EOF at once (sync) or held open for ever (async), and an exit code written by the shell itself only
//   after both readers drained. So a command that `exec`s or `exit`s away the shell never gets an exit
//   code, and neither does one that leaves a background process holding its stdout or stderr.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { exitCodeOf, killGroup, spawnShell } from './proc.ts';

/** What a session needs from its sandbox (a narrow host interface). */
export interface ProcessHost {
  readonly workDir: string;
  processEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  /** keeps a process on the sandbox's list until it exits, so stop/delete can kill it */
  adopt(child: ChildProcess): void;
  /** marks the sandbox busy (for auto-stop) until the returned function is called */
  beginWork(): () => void;
}

export type SessionMode = 'daemon' | 'lenient';

/** Thrown by `exec` in 'daemon' mode when the session's shell is gone: the daemon's write of the
 * command to the shell's stdin fails (the command stays registered, with no exit code). */
export class SessionShellGone extends Error {
  readonly cmd: SessionCommand;
  constructor(cmd: SessionCommand) {
    super('failed to write command: write |1: broken pipe');
    this.cmd = cmd;
  }
}

export type StreamFd = 1 | 2;
interface Chunk {
  fd: StreamFd;
  start: number;
  end: number;
}

const POLL_MS = 100;
/** what a hung command (fault injection) runs instead of the real one */
export const HANG_COMMAND = 'sleep 2147483647';

export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export class SessionCommand extends EventEmitter {
  readonly id: string;
  readonly command: string;
  readonly dir: string;
  exitCode: number | undefined;
  /** the session was deleted (or its sandbox stopped) before this command ended: it never will */
  cancelled = false;
  private readonly chunks: Chunk[] = [];
  private readonly sizes: Record<StreamFd, number> = { 1: 0, 2: 0 };
  private draining: Promise<void> = Promise.resolve();
  private poll: NodeJS.Timeout | undefined;

  constructor(id: string, command: string, dir: string) {
    super();
    this.id = id;
    this.command = command;
    this.dir = dir;
  }

  get done(): boolean {
    return this.exitCode !== undefined;
  }

  file(fd: StreamFd): string {
    return path.join(this.dir, fd === 1 ? 'stdout' : 'stderr');
  }

  startPolling(): void {
    this.poll ??= setInterval(() => void this.drain(), POLL_MS);
    this.poll.unref(); // the command's end clears it; it must never be what keeps a process alive
  }

  /** Records newly written bytes as chunks. Serialized, so ranges never overlap. */
  drain(): Promise<void> {
    this.draining = this.draining.then(async () => {
      for (const fd of [1, 2] as const) {
        let size: number;
        try {
          size = (await stat(this.file(fd))).size;
        } catch {
          continue;
        }
        if (size <= this.sizes[fd]) continue;
        const last = this.chunks[this.chunks.length - 1];
        if (last && last.fd === fd && last.end === this.sizes[fd]) last.end = size;
        else this.chunks.push({ fd, start: this.sizes[fd], end: size });
        this.sizes[fd] = size;
        this.emit('chunk');
      }
    });
    return this.draining;
  }

  async finish(exitCode: number): Promise<void> {
    if (this.done) return;
    if (this.poll) clearInterval(this.poll);
    this.poll = undefined;
    await this.drain();
    this.exitCode = exitCode;
    this.emit('exit', exitCode);
  }

  /** Ends the command without an exit code: what the daemon does to its commands when their session
   * is deleted (log streams close normally, a waiting sync exec fails with "session cancelled"). */
  async cancel(): Promise<void> {
    if (this.done || this.cancelled) return;
    if (this.poll) clearInterval(this.poll);
    this.poll = undefined;
    await this.drain();
    this.cancelled = true;
    this.emit('cancel');
  }

  /** Resolves once the command has an exit code, or was cancelled. */
  settled(): Promise<void> {
    if (this.done || this.cancelled) return Promise.resolve();
    return new Promise((resolve) => {
      const end = (): void => {
        this.off('exit', end);
        this.off('cancel', end);
        resolve();
      };
      this.on('exit', end);
      this.on('cancel', end);
    });
  }

  /** stdout, stderr and both interleaved in arrival order. */
  async logs(): Promise<{ output: string; stdout: string; stderr: string }> {
    await this.drain();
    const chunks = this.chunks.map((c) => ({ ...c }));
    const out = await readRange(this.file(1), 0, this.sizes[1]);
    const err = await readRange(this.file(2), 0, this.sizes[2]);
    const parts = chunks.map((c) => (c.fd === 1 ? out : err).subarray(c.start, c.end));
    return { output: Buffer.concat(parts).toString('utf8'), stdout: out.toString('utf8'), stderr: err.toString('utf8') };
  }

  /** Replays every chunk so far, then follows new ones; resolves once the command has ended and every
   * byte was handed to `send`, or when `cancelled()` turns true. */
  async follow(send: (fd: StreamFd, data: Buffer) => Promise<void> | void, cancelled: () => boolean): Promise<void> {
    let idx = 0;
    let sentTo = -1; // offset reached inside chunks[idx]; -1: not started
    let wake: (() => void) | undefined;
    const poke = (): void => wake?.();
    this.on('chunk', poke);
    this.on('exit', poke);
    this.on('cancel', poke);
    try {
      if (!this.done) await this.drain();
      for (;;) {
        if (cancelled()) return;
        while (idx < this.chunks.length) {
          const c = this.chunks[idx]!;
          const from = Math.max(c.start, sentTo);
          if (from < c.end) {
            const end = c.end;
            for (let pos = from; pos < end; pos += 64 * 1024) {
              const data = await readRange(this.file(c.fd), pos, Math.min(end, pos + 64 * 1024));
              if (cancelled()) return;
              await send(c.fd, data);
            }
            sentTo = end;
          }
          if (idx < this.chunks.length - 1) {
            idx++;
            sentTo = -1;
          } else break;
        }
        const last = this.chunks[idx];
        const caughtUp = !last || sentTo >= last.end;
        // `finish` and `cancel` drain before they end it, so once ended the chunk list is complete.
        if ((this.done || this.cancelled) && caughtUp) return;
        if (caughtUp) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.off('chunk', poke);
      this.off('exit', poke);
      this.off('cancel', poke);
    }
  }
}

async function readRange(file: string, start: number, end: number): Promise<Buffer> {
  if (end <= start) return Buffer.alloc(0);
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(end - start);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

export class Session {
  readonly id: string;
  readonly mode: SessionMode;
  private readonly dir: string;
  private readonly host: ProcessHost;
  private readonly commands = new Map<string, SessionCommand>();
  /** lenient: commands waiting for the one before to end */
  private readonly queue: SessionCommand[] = [];
  private shell: ChildProcess | undefined;
  /** lenient: the one command the shell runs now */
  private running: { cmd: SessionCommand; endWork: () => void } | undefined;
  /** daemon: every command written to the shell that has not ended yet, in order */
  private readonly written = new Map<string, { cmd: SessionCommand; endWork: () => void }>();
  private markerBuf = '';
  ended = false;

  constructor(id: string, dir: string, host: ProcessHost, mode: SessionMode = 'lenient') {
    this.id = id;
    this.mode = mode;
    this.dir = dir;
    this.host = host;
    mkdirSync(dir, { recursive: true });
    // fd 3 is the server's completion channel; the shell's own stdout/stderr carry nothing of interest.
    const shell = spawnShell([], { cwd: host.workDir, env: host.processEnv(), stdio: ['pipe', 'ignore', 'ignore', 'pipe'] });
    this.shell = shell;
    host.adopt(shell);
    shell.stdin?.on('error', () => undefined);
    const marker = shell.stdio[3] as NodeJS.ReadableStream | null;
    marker?.setEncoding('utf8');
    marker?.on('data', (text: string) => this.onMarker(text));
    marker?.on('error', () => undefined);
    shell.on('exit', (code, signal) => void this.onShellExit(exitCodeOf(code, signal)));
    shell.on('error', () => void this.onShellExit(127));
  }

  list(): SessionCommand[] {
    return [...this.commands.values()];
  }

  get(cmdId: string): SessionCommand | undefined {
    return this.commands.get(cmdId);
  }

  /** Registers a command and hands it to the shell (lenient: queues it until the previous one ended).
   * In 'daemon' mode a session whose shell is gone throws SessionShellGone, the command registered. */
  exec(command: string, opts: { hang?: boolean; async?: boolean } = {}): SessionCommand {
    const id = randomUUID();
    const dir = path.join(this.dir, id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'cmd.sh'), `${opts.hang ? HANG_COMMAND : command}\n`);
    writeFileSync(path.join(dir, 'stdout'), '');
    writeFileSync(path.join(dir, 'stderr'), '');
    const cmd = new SessionCommand(id, command, dir);
    this.commands.set(id, cmd);
    if (this.mode === 'daemon') {
      if (this.ended || !this.shell?.stdin?.writable) throw new SessionShellGone(cmd);
      this.written.set(id, { cmd, endWork: this.host.beginWork() });
      cmd.startPolling();
      this.shell.stdin.write(daemonWrapper(cmd, opts.async === true));
      return cmd;
    }
    this.queue.push(cmd);
    this.runNext();
    return cmd;
  }

  private runNext(): void {
    if (this.running || this.ended) return;
    const cmd = this.queue.shift();
    if (!cmd) return;
    this.running = { cmd, endWork: this.host.beginWork() };
    const q = (name: string): string => shQuote(path.join(cmd.dir, name));
    // Sourced inside a brace group: runs in the session's shell (state persists), its stdin is
    // /dev/null (fd 0 of the shell is this very command stream), and fd 3 is closed for it.
    const line =
      `{ . ${q('cmd.sh')}; } </dev/null >>${q('stdout')} 2>>${q('stderr')} 3>&-; ` +
      `printf '%s %s\\n' ${shQuote(cmd.id)} "$?" >&3\n`;
    cmd.startPolling();
    this.shell?.stdin?.write(line);
  }

  private onMarker(text: string): void {
    this.markerBuf += text;
    let nl: number;
    while ((nl = this.markerBuf.indexOf('\n')) >= 0) {
      const [id, code] = this.markerBuf.slice(0, nl).split(' ');
      this.markerBuf = this.markerBuf.slice(nl + 1);
      if (this.mode === 'daemon') {
        const w = this.written.get(id ?? '');
        if (w) {
          this.written.delete(w.cmd.id);
          w.endWork();
          void w.cmd.finish(Number(code));
        }
      } else if (this.running && this.running.cmd.id === id) void this.complete(Number(code));
    }
  }

  private async complete(exitCode: number): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.running = undefined;
    running.endWork();
    await running.cmd.finish(exitCode);
    this.runNext();
  }

  private async onShellExit(exitCode: number): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.shell = undefined;
    if (this.mode === 'daemon') {
      // Nobody is left to write an exit code: the commands stay without one (the daemon keeps polling
      // for a file that never comes). They stop counting as work, as nothing runs them any more.
      for (const w of this.written.values()) w.endWork();
      return;
    }
    const pending = [...this.queue];
    this.queue.length = 0;
    await this.complete(exitCode);
    for (const cmd of pending) await cmd.finish(exitCode);
  }

  /** Kills the shell's process group: every command of the session and its children. */
  kill(): void {
    if (this.shell?.pid) killGroup(this.shell.pid);
  }

  /** The session is deleted (or its sandbox stopped): in 'daemon' mode, commands that never got an
   * exit code end without one, as the daemon cancels the session's context. */
  async cancel(): Promise<void> {
    if (this.mode !== 'daemon') return;
    const open = [...this.written.values()];
    this.written.clear();
    for (const w of open) w.endWork();
    await Promise.all(this.list().map((c) => c.cancel()));
  }
}

/**
 * Daytona's command wrapper (daemon v0.190, apps/daemon/pkg/session/execute.go 196-236), with the
 * daemon's own variable names, run by the session's shell itself. Two differences: stdout and stderr go
 * to two files instead of one log with stream prefixes, and once the exit code is written the shell
 * also says so on fd 3, so the server need not poll for the file.
 */
function daemonWrapper(cmd: SessionCommand, async: boolean): string {
  const q = (name: string): string => shQuote(path.join(cmd.dir, name));
  // Sync commands see EOF at once; async ones get a stdin that stays open (the daemon keeps it for
  // SendInput): a command that reads stdin waits for ever.
  const stdin = async ? `while :; do sleep 3600; done > "$ip" 3>&- &` : `cat /dev/null > "$ip" 3>&- &`;
  return [
    '{',
    `\tlog=${q('stdout')}`,
    `\telog=${q('stderr')}`,
    `\tdir=${shQuote(cmd.dir)}`,
    `\tsp="$dir/stdout.pipe"`,
    `\tep="$dir/stderr.pipe"`,
    `\tip="$dir/stdin.pipe"`,
    `\trm -f "$sp" "$ep" "$ip" && mkfifo "$sp" "$ep" "$ip" || exit 1`,
    `\tcleanup() { rm -f "$sp" "$ep" "$ip"; }`,
    `\ttrap 'cleanup' EXIT HUP INT TERM`,
    `\t( while IFS= read -r line || [ -n "$line" ]; do printf '%s\\n' "$line"; done < "$sp" ) >> "$log" 3>&- & r1=$!`,
    `\t( while IFS= read -r line || [ -n "$line" ]; do printf '%s\\n' "$line"; done < "$ep" ) >> "$elog" 3>&- & r2=$!`,
    `\t${stdin}`,
    `\tip_pid=$!`,
    `\t{ . ${q('cmd.sh')}; } < "$ip" > "$sp" 2> "$ep" 3>&-`,
    `\t_ec=$?`,
    `\tkill "$ip_pid" 2>/dev/null; wait "$ip_pid" 2>/dev/null`,
    `\twait "$r1" "$r2"`,
    `\techo "$_ec" >> "$dir/exit_code"`,
    `\tprintf '%s %s\\n' ${shQuote(cmd.id)} "$_ec" >&3`,
    `\tcleanup`,
    '}',
    '',
  ].join('\n');
}

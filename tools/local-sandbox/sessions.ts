// Sessions: one long-lived bash per session, so `cd` and `export` persist between commands, and the
// commands of one session run one at a time, as in Daytona's daemon.
//
// Each command is written to its own file and sourced by the session's shell with its output sent to
// two files of its own (stdout, stderr). A line on fd 3 (`<cmdId> <exit code>`) tells the server it
// ended. Output is never held in memory: the server only records which byte ranges of which file
// arrived in which order (the "chunks"), and reads the bytes back when a client asks for logs. Background
// processes started by a command keep writing to that command's files, as on Daytona.
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
        // `finish` drains before it sets the exit code, so once done the chunk list is complete.
        if (this.done && caughtUp) return;
        if (caughtUp) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.off('chunk', poke);
      this.off('exit', poke);
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
  private readonly dir: string;
  private readonly host: ProcessHost;
  private readonly commands = new Map<string, SessionCommand>();
  private readonly queue: SessionCommand[] = [];
  private shell: ChildProcess | undefined;
  private running: { cmd: SessionCommand; endWork: () => void } | undefined;
  private markerBuf = '';
  ended = false;

  constructor(id: string, dir: string, host: ProcessHost) {
    this.id = id;
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

  /** Queues a command; it starts when the previous one has ended. */
  exec(command: string, opts: { hang?: boolean } = {}): SessionCommand {
    const id = randomUUID();
    const dir = path.join(this.dir, id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'cmd.sh'), `${opts.hang ? HANG_COMMAND : command}\n`);
    writeFileSync(path.join(dir, 'stdout'), '');
    writeFileSync(path.join(dir, 'stderr'), '');
    const cmd = new SessionCommand(id, command, dir);
    this.commands.set(id, cmd);
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
      if (this.running && this.running.cmd.id === id) void this.complete(Number(code));
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
    const pending = [...this.queue];
    this.queue.length = 0;
    await this.complete(exitCode);
    for (const cmd of pending) await cmd.finish(exitCode);
  }

  /** Kills the shell's process group: every command of the session and its children. */
  kill(): void {
    if (this.shell?.pid) killGroup(this.shell.pid);
  }
}

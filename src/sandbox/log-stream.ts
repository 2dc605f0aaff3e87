// The byte format of a followed session command's logs. The toolbox's
// `GET /process/session/{sid}/command/{cid}/logs?follow=true` is a WebSocket whose binary frames carry
// both streams: three 0x01 bytes switch to stdout, three 0x02 bytes to stderr, and the bytes after a
// marker belong to that stream until the next one. A frame may end inside a marker. (The SDK's
// stdDemuxStream in @daytonaio/sdk's utils/Stream reads the same format; the daemon writes it in
// apps/daemon/pkg/toolbox/process/session/log.go.) The daemon closes with 1000 once the command has
// ended and every byte was sent.

export type LogFd = 1 | 2;

/** Splits the followed stream back into stdout and stderr bytes. */
export class StdDemux {
  private fd: LogFd | 0 = 0;
  /** The end of the last frame when it may be the start of a marker. */
  private carry: Uint8Array = new Uint8Array(0);
  private readonly onData: (fd: LogFd, bytes: Uint8Array) => void;

  constructor(onData: (fd: LogFd, bytes: Uint8Array) => void) {
    this.onData = onData;
  }

  push(frame: Uint8Array): void {
    let buf = frame;
    if (this.carry.length) {
      buf = new Uint8Array(this.carry.length + frame.length);
      buf.set(this.carry);
      buf.set(frame, this.carry.length);
      this.carry = new Uint8Array(0);
    }
    let start = 0;
    let i = 0;
    while (i < buf.length) {
      const b = buf[i]!;
      if (b !== 1 && b !== 2) {
        i++;
        continue;
      }
      if (i + 3 > buf.length) {
        // One or two marker bytes at the end: held back until the next frame says what they are.
        if (buf.subarray(i).every((x) => x === b)) {
          this.emit(buf.subarray(start, i));
          this.carry = buf.slice(i);
          return;
        }
        i++;
        continue;
      }
      if (buf[i + 1] === b && buf[i + 2] === b) {
        this.emit(buf.subarray(start, i));
        this.fd = b;
        i += 3;
        start = i;
        continue;
      }
      i++;
    }
    this.emit(buf.subarray(start));
  }

  /** The stream ended: bytes held back were data after all. */
  end(): void {
    const rest = this.carry;
    this.carry = new Uint8Array(0);
    this.emit(rest);
  }

  private emit(bytes: Uint8Array): void {
    // Bytes before any marker belong to no stream (the daemon always starts with one).
    if (bytes.length && this.fd) this.onData(this.fd, bytes);
  }
}

/**
 * Numbers the non-empty lines of a text stream from 0, as the runner numbers the agent's stdout lines
 * (src/agents/runner.agent.mjs), so lines followed and lines reported are recorded once. A line longer
 * than `maxLine` is handed on empty: a placeholder that keeps the numbering (the full log stays in the
 * sandbox and is read back at the end).
 */
export class LineNumberer {
  private readonly decoder = new TextDecoder();
  private partial = "";
  private next = 0;
  private readonly maxLine: number;
  private readonly onLines: (lines: string[], first: number) => void;

  constructor(maxLine: number, onLines: (lines: string[], first: number) => void) {
    this.maxLine = maxLine;
    this.onLines = onLines;
  }

  push(bytes: Uint8Array): void {
    const parts = (this.partial + this.decoder.decode(bytes, { stream: true })).split("\n");
    this.partial = parts.pop() ?? "";
    // A partial line that is already over-long is not kept growing in memory.
    if (this.partial.length > this.maxLine) this.partial = this.partial.slice(0, this.maxLine + 1);
    this.hand(parts);
  }

  end(): void {
    const last = this.partial + this.decoder.decode();
    this.partial = "";
    this.hand([last]);
  }

  private hand(parts: string[]): void {
    const lines = parts.filter((l) => l.trim()).map((l) => (l.length > this.maxLine ? "" : l));
    if (!lines.length) return;
    const first = this.next;
    this.next += lines.length;
    this.onLines(lines, first);
  }
}

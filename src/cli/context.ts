// What every command gets: where to write, whether that is a terminal, colours, --json, and the API
// client (made on first use, so `help` and `login` work without a configured service).
import { readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { Api } from "./api.ts";
import { resolveConfig } from "./config.ts";
import { colors, type Colors } from "./format.ts";

export interface Io {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  stdin: Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  env: Record<string, string | undefined>;
}

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
})();

export class Ctx {
  readonly io: Io;
  /** --json: one JSON document on stdout, nothing else there. */
  readonly json: boolean;
  /** stdout is a terminal (and not --json): redraw in place, colours. */
  readonly tty: boolean;
  readonly c: Colors;
  /** Colours and a progress bar for stderr. */
  readonly ce: Colors;
  readonly errTty: boolean;
  private readonly urlFlag: string | undefined;
  private client: Api | undefined;

  constructor(io: Io, opts: { json: boolean; noColor: boolean; url: string | undefined }) {
    this.io = io;
    this.json = opts.json;
    this.tty = !opts.json && io.stdout.isTTY === true;
    this.errTty = io.stderr.isTTY === true;
    const colorOk = !opts.noColor && !io.env.NO_COLOR && io.env.TERM !== "dumb";
    this.c = colors(this.tty && colorOk);
    this.ce = colors(this.errTty && colorOk);
    this.urlFlag = opts.url;
  }

  get api(): Api {
    if (!this.client) {
      const config = resolveConfig(this.io.env, { url: this.urlFlag });
      this.client = new Api({ url: config.url, apiKey: config.apiKey, userAgent: `multishot-cli/${VERSION}` });
    }
    return this.client;
  }

  /** The service URL as configured (for messages), without making a client. */
  get urlOverride(): string | undefined {
    return this.urlFlag;
  }

  /** A line of human output on stdout (nothing in --json mode). */
  out(line = ""): void {
    if (!this.json) this.io.stdout.write(`${line}\n`);
  }

  /** The one JSON document of --json mode. */
  emitJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A note for a person (hints, progress, reconnects): stderr, so stdout stays clean for scripts. */
  note(line: string): void {
    if (!this.json) this.io.stderr.write(`${line}\n`);
  }

  /** The terminal's width (a generous default when not a terminal: lines are not cut in logs). */
  get width(): number {
    return this.tty ? (this.io.stdout.columns ?? 100) : Number.POSITIVE_INFINITY;
  }

  /** The current time on the service's clock. */
  now(): number {
    return Date.now() + (this.client?.clockSkewMs ?? 0);
  }
}

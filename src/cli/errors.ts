// What a script can rely on: every way the CLI ends maps to one of four exit codes, and every failure
// carries a short code and a message a person can act on.

export const EXIT = {
  /** Done what was asked; a watched run or round succeeded. */
  ok: 0,
  /** The run (or the watched round, or a winner's packing) failed or was cancelled, or the API refused
   * the request (unknown run, a conflict, a server or network error). */
  failed: 1,
  /** The command line was wrong (unknown command or option, missing argument, a value the API rejects). */
  usage: 2,
  /** No API key, or the service refused it (401/403). */
  auth: 3,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** The API's error code (`not_found`, `winner_already_picked`…) or the CLI's own (`usage`, `network`…). */
  readonly code: string;
  readonly details?: unknown;
  /** The HTTP status, when the API answered. */
  readonly status?: number;

  constructor(exitCode: ExitCode, code: string, message: string, details?: unknown, status?: number) {
    super(message);
    this.exitCode = exitCode;
    this.code = code;
    this.details = details;
    if (status !== undefined) this.status = status;
  }

  /** Worth another try: the network, a rate limit, or a server error. */
  get transient(): boolean {
    return this.code === "network" || this.status === 429 || (this.status !== undefined && this.status >= 500);
  }
}

export const usageError = (message: string) => new CliError(EXIT.usage, "usage", message);

/** The exit code an API error status means: bad requests are usage errors, refusals of the key are auth. */
export function exitCodeForStatus(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 400 || status === 413 || status === 415) return EXIT.usage;
  return EXIT.failed;
}

// What every route module shares: the server's state (one per server instance) and one request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Faults, FailureMode } from './faults.ts';
import { DaytonaHttpError, sendError } from './http-util.ts';
import type { Behaviour } from './profile.ts';
import type { SandboxStore } from './sandboxes.ts';
import type { SnapshotStore } from './snapshots.ts';

export interface Counters {
  /** control-plane calls by route pattern, e.g. `GET /sandbox/:idOrName` */
  api: Record<string, number>;
  /** toolbox calls by route pattern, e.g. `POST /process/execute` */
  toolbox: Record<string, number>;
  previewRequests: number;
  socketIoConnections: number;
}

export interface App {
  readonly store: SandboxStore;
  readonly snapshots: SnapshotStore;
  readonly faults: Faults;
  /** per-server HMAC key of signed preview tokens: tokens die with the server */
  readonly previewSecret: Buffer;
  readonly revokedSignedTokens: Set<string>;
  /** true when the port shim is preloaded into sandbox processes (ports are remapped) */
  readonly shimActive: boolean;
  readonly minuteMs: number;
  /** which of Daytona's harsh behaviours are on (profile.ts) */
  readonly behaviour: Behaviour;
  readonly counters: Counters;
  /** `http://127.0.0.1:<port>`, known once the server listens */
  baseUrl: string;
  log(line: string): void;
}

export interface Req {
  readonly app: App;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
}

export function count(table: Record<string, number>, key: string): void {
  table[key] = (table[key] ?? 0) + 1;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Answers a request the way an injected fault says. `hang` leaves it unanswered (the server's close
 * ends it); `reset`/`lost` drop the connection without an answer. */
export function failRequest(r: Req, mode: FailureMode): void {
  if (mode === 'hang') return;
  if (mode === 'reset' || mode === 'lost') {
    r.req.socket.destroy();
    return;
  }
  sendError(r.res, new DaytonaHttpError(Number(mode), `injected fault: ${mode}`));
}

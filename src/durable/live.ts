// Watching a run live: the event log as Server-Sent Events, and hibernatable WebSockets that get each
// event as it is appended and the run's view shortly after each change. A share link's streams end when
// the link expires or is revoked, an API key's when the key is revoked.
import type { EventLog } from "./event-log.ts";
import type { RunEvent } from "./state.ts";
import type { RunView } from "./view.ts";

/** How soon after a change live sockets get the run's new view (changes in between share one push). */
const VIEW_PUSH_MS = 150;
/** How often an open event stream looks for new events. */
const SSE_TICK_MS = 250;
/**
 * What one run holds open at most: event streams and live sockets together, all holders, and per
 * holder (one share link, one API key). Beyond either the answer is 429: one leaked link cannot make the
 * run's object hold thousands of connections.
 */
export const MAX_OPEN_PER_RUN = 500;
export const MAX_OPEN_PER_HOLDER = 100;
const RETRY_OPEN_SECONDS = 30;

/** Who opened a stream: a share link (with its expiry) or an API key, or neither (the local dev key). */
export interface StreamHolder {
  link: string | null;
  linkExpiresAt: number | null;
  key: string | null;
}

export interface LiveHost {
  ctx: DurableObjectState;
  events: EventLog;
  /** The run's view, or null before it starts. */
  view(): RunView | null;
}

export class Live {
  private readonly host: LiveHost;
  /** Share links and API keys revoked while this instance lives: their open SSE streams end. */
  private readonly revokedLinks = new Set<string>();
  private readonly revokedKeys = new Set<string>();
  /** Open SSE streams by holder tag ("" for none): they live in this instance's memory. */
  private readonly openStreams = new Map<string, number>();
  private viewPushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(host: LiveHost) {
    this.host = host;
  }

  /** An appended event: live sockets get it now, and the view soon (a transcript entry changes no view). */
  onEvent(event: RunEvent): void {
    if (this.host.ctx.getWebSockets().length === 0) return;
    this.broadcast(JSON.stringify({ type: "event", event }));
    if (!event.type.startsWith("agent.")) this.scheduleViewPush();
  }

  /**
   * The event log as SSE: every event after `after` (each with its `id:`, so a client resumes with
   * Last-Event-ID and loses or repeats nothing), then new ones as they are appended, until the client goes
   * away. The stream reads the log from storage on its own short tick, so it never shares an I/O object
   * with the alarm's steps.
   */
  events(after: number, holder: StreamHolder): Response {
    const { link, linkExpiresAt, key } = holder;
    const full = this.full(holder);
    if (full) return full;
    const tag = holderTag(holder);
    this.openStreams.set(tag, (this.openStreams.get(tag) ?? 0) + 1);
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const encoder = new TextEncoder();
    const send = (text: string) => writer.write(encoder.encode(text));
    const pump = async () => {
      let last = after;
      let idle = 0;
      try {
        await send(": multishot run events\n\n");
        for (;;) {
          if (linkExpiresAt !== null && Date.now() >= linkExpiresAt) return await this.end(writer, send, "link.expired");
          if (link !== null && this.revokedLinks.has(link)) return await this.end(writer, send, "link.revoked");
          if (key !== null && this.revokedKeys.has(key)) return await this.end(writer, send, "key.revoked");
          const batch = this.host.events.after(last, 200);
          for (const e of batch) {
            await send(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
            last = e.seq;
          }
          if (batch.length === 200) continue;
          idle = batch.length ? 0 : idle + 1;
          // A comment now and then keeps proxies from closing a quiet stream.
          if (idle > 0 && idle % 60 === 0) await send(": keep-alive\n\n");
          await new Promise((r) => setTimeout(r, SSE_TICK_MS));
        }
      } catch {
        // The client went away.
      } finally {
        const n = (this.openStreams.get(tag) ?? 1) - 1;
        if (n > 0) this.openStreams.set(tag, n);
        else this.openStreams.delete(tag);
      }
    };
    this.host.ctx.waitUntil(pump());
    return new Response(readable, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" } });
  }

  /**
   * A live WebSocket (hibernatable: the object may sleep while sockets stay open). It first gets every
   * event after `after` (if given), then `{type: "snapshot", seq, run}`, then each new event as
   * `{type: "event", event}` and the run's view as `{type: "run", seq, run}` shortly after it changes.
   * Nothing awaits between reading the log and accepting the socket, so no event falls in between.
   */
  accept(request: Request, after: number, holder: StreamHolder): Response {
    const { link, linkExpiresAt, key } = holder;
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return jsonError(426, "upgrade_required", "connect with a WebSocket", { upgrade: "websocket" });
    }
    // A link revoked between the route's check and this (closeLink already ran): refuse as the route would.
    if (link !== null && this.revokedLinks.has(link)) return jsonError(404, "link_expired", "this share link has expired or was revoked");
    if (key !== null && this.revokedKeys.has(key)) return jsonError(401, "unauthorized", "this API key has been revoked");
    const full = this.full(holder);
    if (full) return full;
    const view = this.host.view();
    if (!view) throw new Error("this run has not been started");
    const { 0: client, 1: server } = new WebSocketPair();
    this.host.ctx.acceptWebSocket(server, [...(link ? [`link:${link}`] : []), ...(key ? [`key:${key}`] : [])]);
    server.serializeAttachment({ linkExpiresAt });
    if (Number.isInteger(after) && after > 0) {
      for (let batch = this.host.events.after(after, 500); batch.length; batch = this.host.events.after(after, 500)) {
        for (const event of batch) server.send(JSON.stringify({ type: "event", event }));
        after = batch[batch.length - 1]!.seq;
      }
    }
    server.send(JSON.stringify({ type: "snapshot", seq: this.host.events.lastSeq(), run: view }));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A 429 when the run, or this holder, has as many streams and sockets open as it may; else null. */
  private full(holder: StreamHolder): Response | null {
    const tag = holderTag(holder);
    const streams = [...this.openStreams.values()].reduce((a, b) => a + b, 0);
    const total = streams + this.host.ctx.getWebSockets().length;
    const mine = tag ? (this.openStreams.get(tag) ?? 0) + this.host.ctx.getWebSockets(tag).length : 0;
    if (total < MAX_OPEN_PER_RUN && mine < MAX_OPEN_PER_HOLDER) return null;
    const what = total >= MAX_OPEN_PER_RUN ? `this run has ${MAX_OPEN_PER_RUN} event streams and live sockets open` : `this ${holder.link ? "share link" : "API key"} has ${MAX_OPEN_PER_HOLDER} event streams and live sockets open on this run`;
    return jsonError(429, "too_many_streams", `${what}: close one, or try again later`, { "retry-after": String(RETRY_OPEN_SECONDS) });
  }

  /** Closes the live sockets and streams a share link opened (it was revoked); answers how many sockets. */
  closeLink(linkId: string): number {
    // Its SSE streams (held in this instance's memory, as this set is) end at their next tick.
    this.revokedLinks.add(linkId);
    const sockets = this.host.ctx.getWebSockets(`link:${linkId}`);
    for (const ws of sockets) tryClose(ws, 4001, "link revoked");
    return sockets.length;
  }

  /** Closes the live sockets and streams an API key opened (it was revoked); answers how many sockets. */
  closeKey(keyId: string): number {
    this.revokedKeys.add(keyId);
    const sockets = this.host.ctx.getWebSockets(`key:${keyId}`);
    for (const ws of sockets) tryClose(ws, 4001, "key revoked");
    return sockets.length;
  }

  /** Pushes the run's view to live sockets soon after a change, at most every VIEW_PUSH_MS. */
  scheduleViewPush(): void {
    if (this.viewPushTimer !== null || this.host.ctx.getWebSockets().length === 0) return;
    this.viewPushTimer = setTimeout(() => {
      this.viewPushTimer = null;
      const view = this.host.view();
      if (view) this.broadcast(JSON.stringify({ type: "run", seq: this.host.events.lastSeq(), run: view }));
    }, VIEW_PUSH_MS);
  }

  /** Sends to every open live socket; one whose link expired is closed, one that fails is dropped. */
  private broadcast(message: string): void {
    const now = Date.now();
    for (const ws of this.host.ctx.getWebSockets()) {
      const expiresAt = (ws.deserializeAttachment() as { linkExpiresAt?: number | null } | null)?.linkExpiresAt;
      if (expiresAt && now >= expiresAt) {
        tryClose(ws, 4001, "link expired");
        continue;
      }
      try {
        ws.send(message);
      } catch {
        tryClose(ws, 1011, "send failed");
      }
    }
  }

  private async end(writer: WritableStreamDefaultWriter<Uint8Array>, send: (t: string) => Promise<void>, event: string): Promise<void> {
    await send(`event: ${event}\ndata: {}\n\n`);
    await writer.close();
  }
}

/** The tag a holder's sockets carry ("" for none). A link's wins: a page's socket is the link's. */
function holderTag(h: StreamHolder): string {
  return h.link ? `link:${h.link}` : h.key ? `key:${h.key}` : "";
}

function tryClose(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Gone.
  }
}

function jsonError(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { "content-type": "application/json", ...headers } });
}

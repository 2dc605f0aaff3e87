// The run's webhook outbox, inside its Durable Object: every event an account's endpoints hear about
// is delivered at least once, to each endpoint in the order the run recorded them.
//
// `onEvent` only writes the event into `hook_outbox` (synchronously, in the same storage transaction
// as the event itself, so no event is lost between the two) and wakes the fan-out. The fan-out reads
// the account's outbound endpoints from D1 and makes one delivery per endpoint in `hook_deliveries`.
// Each endpoint has its own timer (`hook:webhook:<endpoint>`): it sends that endpoint's oldest pending
// delivery and, only once it is accepted (or given up on), the next; a failed try backs off. Every
// delivery's state is mirrored to D1, which is the log the API reads.
import { randomId } from "../crypto.ts";
import { db } from "../db/client.ts";
import { disableEndpoint, liveEndpoint, outboundEndpoints, saveDeliveries, type DeliveryRecord } from "../db/integration-queries.ts";
import type { DeliveryStatus } from "../db/schema.ts";
import type { HookHost } from "./hook-host.ts";
import { retryPolicy } from "../durable/retry.ts";
import type { RunEvent } from "../durable/state.ts";
import { sendDelivery } from "./delivery.ts";
import { eventBody, outboundEvent, subscribes, type OutboundEvent } from "./events.ts";

/** Tries per delivery before it is marked failed (it can still be redelivered by hand). */
export const MAX_DELIVERY_TRIES = 10;
/** The longest wait between two tries. */
const MAX_BACKOFF_MS = 60 * 60_000;
/** How long one wake-up keeps sending an endpoint's queue before it yields to the rest of the alarm. */
const SEND_BUDGET_MS = 15_000;

const FANOUT_KEY = "hook:fanout";
const MIRROR_KEY = "hook:webhook-log";
const ENDPOINT_PREFIX = "hook:webhook:";

/**
 * The wait before try `triesSoFar + 1`: the run engine's retry base (RETRY_BASE_MS), doubling, at most an
 * hour, less up to a tenth at random (jitter), so receivers that failed together are not retried together.
 */
export function deliveryBackoffMs(baseMs: number, triesSoFar: number, random = Math.random()): number {
  return Math.round(Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, triesSoFar - 1)) * (1 - 0.1 * random));
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS hook_outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hook_deliveries (
  id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,
  status TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,
  last_status INTEGER, last_error TEXT, created_at INTEGER NOT NULL, delivered_at INTEGER,
  rev INTEGER NOT NULL DEFAULT 1, mirrored_rev INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS hook_deliveries_queue ON hook_deliveries (endpoint_id, status, seq);
`;

type Row = Record<string, SqlStorageValue>;

interface Delivery {
  id: string;
  endpointId: string;
  seq: number;
  type: string;
  body: string;
  status: DeliveryStatus;
  tries: number;
  nextAt: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
  rev: number;
}

const toDelivery = (r: Row): Delivery => ({
  id: String(r.id),
  endpointId: String(r.endpoint_id),
  seq: Number(r.seq),
  type: String(r.type),
  body: String(r.body),
  status: String(r.status) as DeliveryStatus,
  tries: Number(r.tries),
  nextAt: Number(r.next_at),
  lastStatus: r.last_status === null ? null : Number(r.last_status),
  lastError: r.last_error === null ? null : String(r.last_error),
  createdAt: Number(r.created_at),
  deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at),
  rev: Number(r.rev),
});

export class WebhookOutbox {
  private readonly host: HookHost;
  /** Mirrors run one after another, so an older state of a delivery never lands in D1 after a newer one. */
  private mirrorChain: Promise<void> = Promise.resolve();

  constructor(host: HookHost) {
    this.host = host;
    host.sql.exec(SCHEMA);
  }

  handles(key: string): boolean {
    return key === FANOUT_KEY || key === MIRROR_KEY || key.startsWith(ENDPOINT_PREFIX);
  }

  onEvent(e: RunEvent): void {
    const type = outboundEvent(e);
    if (!type) return;
    this.host.sql.exec("INSERT OR IGNORE INTO hook_outbox (seq, type, event) VALUES (?, ?, ?)", e.seq, type, JSON.stringify(e));
    this.host.schedule(FANOUT_KEY, Date.now());
  }

  async onTimer(key: string): Promise<void> {
    if (key === FANOUT_KEY) return this.fanOut();
    if (key === MIRROR_KEY) {
      this.host.unschedule(MIRROR_KEY);
      return this.mirror();
    }
    return this.sendQueue(key.slice(ENDPOINT_PREFIX.length));
  }

  /** Turns queued events into one delivery per subscribed endpoint. */
  private async fanOut(): Promise<void> {
    const sql = this.host.sql;
    const run = this.host.run();
    const queued = sql.exec<Row>("SELECT seq, type, event FROM hook_outbox ORDER BY seq LIMIT 100").toArray();
    if (!run || queued.length === 0) return this.host.unschedule(FANOUT_KEY);
    const endpoints = await outboundEndpoints(db(this.host.env.DB), run.accountId);
    const view = await this.host.view();

    // From here to the reschedule nothing awaits: the deliveries appear and their events leave the
    // outbox in one storage transaction.
    const now = Date.now();
    const woken = new Set<string>();
    for (const row of queued) {
      const type = String(row.type) as OutboundEvent;
      const event = JSON.parse(String(row.event)) as RunEvent;
      for (const ep of endpoints) {
        if (!subscribes(ep.events, type)) continue;
        sql.exec(
          `INSERT INTO hook_deliveries (id, endpoint_id, seq, type, body, status, tries, next_at, created_at)
           VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
          randomId("whd"),
          ep.id,
          event.seq,
          type,
          JSON.stringify(eventBody(type, event, view)),
          now,
          now,
        );
        woken.add(ep.id);
      }
    }
    sql.exec("DELETE FROM hook_outbox WHERE seq <= ?", Number(queued[queued.length - 1]!.seq));
    for (const id of woken) this.host.schedule(ENDPOINT_PREFIX + id, now);
    const left = Number(sql.exec<Row>("SELECT count(*) AS n FROM hook_outbox").one().n);
    if (left > 0) this.host.schedule(FANOUT_KEY, now);
    else this.host.unschedule(FANOUT_KEY);

    await this.mirror();
  }

  /** Sends one endpoint's pending deliveries, oldest first, each only after the one before it is settled. */
  private async sendQueue(endpointId: string): Promise<void> {
    const key = ENDPOINT_PREFIX + endpointId;
    const sql = this.host.sql;
    const endpoint = await liveEndpoint(db(this.host.env.DB), endpointId);
    if (!endpoint || endpoint.kind !== "outbound" || !endpoint.url || endpoint.disabledAt !== null) {
      // Deleted or disabled since: what it would have got is given up, and stays in its log.
      const why = endpoint?.disabledAt ? `the endpoint is disabled: ${endpoint.disabledReason ?? "by its receiver"}` : "the endpoint was deleted";
      sql.exec("UPDATE hook_deliveries SET status = 'failed', last_error = ?, rev = rev + 1 WHERE endpoint_id = ? AND status = 'pending'", why, endpointId);
      this.host.unschedule(key);
      return this.mirror();
    }
    const baseMs = retryPolicy(this.host.env).baseMs;
    const until = Date.now() + SEND_BUDGET_MS;
    for (;;) {
      const row = sql
        .exec<Row>("SELECT * FROM hook_deliveries WHERE endpoint_id = ? AND status = 'pending' ORDER BY seq LIMIT 1", endpointId)
        .toArray()[0];
      if (!row) {
        this.host.unschedule(key);
        break;
      }
      const head = toDelivery(row);
      const now = Date.now();
      if (head.nextAt > now) {
        this.host.schedule(key, head.nextAt);
        break;
      }
      if (now > until) {
        this.host.schedule(key, now);
        break;
      }
      const result = await sendDelivery(this.host.env, { ...endpoint, url: endpoint.url }, {
        id: head.id,
        eventType: head.type,
        payload: head.body,
      });
      const tries = head.tries + 1;
      const at = Date.now();
      const status: DeliveryStatus = result.ok ? "delivered" : tries >= MAX_DELIVERY_TRIES || result.gone ? "failed" : "pending";
      sql.exec(
        `UPDATE hook_deliveries SET status = ?, tries = ?, next_at = ?, last_status = ?, last_error = ?, delivered_at = ?, rev = rev + 1
         WHERE id = ?`,
        status,
        tries,
        status === "pending" ? at + deliveryBackoffMs(baseMs, tries) : at,
        result.status,
        result.error,
        result.ok ? at : null,
        head.id,
      );
      if (!result.ok) console.warn(`webhook delivery ${head.id} (${head.type}) to ${endpoint.id}: try ${tries} failed: ${result.error}`);
      if (result.gone) {
        // 410 Gone: the receiver wants no more (Standard Webhooks). The endpoint is disabled, what waits
        // for it is given up, and its view says why.
        await disableEndpoint(db(this.host.env.DB), endpoint.id, at, `the receiver answered 410 Gone to delivery ${head.id}`);
        sql.exec(
          "UPDATE hook_deliveries SET status = 'failed', last_error = 'the endpoint is disabled: its receiver answered 410 Gone', rev = rev + 1 WHERE endpoint_id = ? AND status = 'pending'",
          endpoint.id,
        );
        this.host.unschedule(key);
        break;
      }
    }
    await this.mirror();
  }

  /** Writes deliveries changed since their last mirror to D1; a failure is tried again shortly. */
  private mirror(): Promise<void> {
    this.mirrorChain = this.mirrorChain.then(() => this.mirrorOnce());
    return this.mirrorChain;
  }

  private async mirrorOnce(): Promise<void> {
    const sql = this.host.sql;
    const run = this.host.run();
    if (!run) return;
    const changed = sql.exec<Row>("SELECT * FROM hook_deliveries WHERE rev > mirrored_rev ORDER BY seq LIMIT 200").toArray().map(toDelivery);
    if (changed.length === 0) return;
    const records: DeliveryRecord[] = changed.map((d) => ({
      id: d.id,
      endpointId: d.endpointId,
      accountId: run.accountId,
      runId: run.id,
      seq: d.seq,
      eventType: d.type,
      payload: d.body,
      status: d.status,
      tries: d.tries,
      lastStatus: d.lastStatus,
      lastError: d.lastError,
      nextTryAt: d.status === "pending" ? d.nextAt : null,
      createdAt: d.createdAt,
      deliveredAt: d.deliveredAt,
    }));
    try {
      await saveDeliveries(db(this.host.env.DB), records);
      for (const d of changed) sql.exec("UPDATE hook_deliveries SET mirrored_rev = ? WHERE id = ? AND mirrored_rev < ?", d.rev, d.id, d.rev);
      if (changed.length === 200) this.host.schedule(MIRROR_KEY, Date.now());
    } catch (err) {
      console.error("mirroring webhook deliveries to D1 failed; will retry", err instanceof Error ? err.message : err);
      this.host.schedule(MIRROR_KEY, Date.now() + 5_000);
    }
  }
}

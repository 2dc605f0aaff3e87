// A local fake of the parts of Slack that multishot talks to, speaking Slack's own JSON:
//
//   POST /api/chat.postMessage   {channel, text, blocks?} -> {ok, channel, ts, message}
//   POST /api/chat.update        {channel, ts, text, blocks?} -> {ok, channel, ts, text, message}
//   POST /api/views.open         {trigger_id, view} -> {ok, view: {id, …view}}
//   POST /api/users.info         {user} -> {ok, user: {id, team_id, name, is_admin, is_owner, is_primary_owner}}
//                                (the users the fake was started with; others: user_not_found)
//   POST /response/<id>          a command's or an action's response_url -> "ok"
//
// Web API calls need `Authorization: Bearer <token>` with the token the fake was started with (else
// `{ok: false, error: "invalid_auth"}`, HTTP 200, as Slack answers), and take JSON or form bodies.
// Unknown channels can be made to answer `not_in_channel`; unknown methods answer `unknown_method`.
// Every request is recorded; the channel's messages are kept (each update replaces its message).
//
// DEVELOPMENT AND TEST TOOL: listens on 127.0.0.1 only.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedSlackRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  at: number;
}

export interface SlackMessageRecord {
  channel: string;
  ts: string;
  text: string;
  blocks: unknown[] | undefined;
  /** How many times chat.update replaced it. */
  updates: number;
}

export interface FakeSlackOptions {
  port?: number;
  /** The bot token the Web API accepts. */
  token: string;
  /** Channels whose postMessage answers `not_in_channel`. */
  closedChannels?: string[];
  /** The workspace's users, for users.info: id -> what Slack says of their role. */
  users?: Record<string, { name?: string; is_admin?: boolean; is_owner?: boolean; is_primary_owner?: boolean }>;
  log?: (line: string) => void;
}

export interface FakeSlack {
  url: string;
  /** The Web API base to give multishot as SLACK_API_URL. */
  apiUrl: string;
  requests: RecordedSlackRequest[];
  /** Web API calls of one method, in order. */
  calls(method: string): RecordedSlackRequest[];
  /** Messages by channel, oldest first, each as it reads now. */
  messages(channel?: string): SlackMessageRecord[];
  /** Bodies posted to response URLs, by URL id. */
  responses(id: string): unknown[];
  /** A fresh response_url for a command or an action. */
  responseUrl(id: string): string;
  close(): Promise<void>;
}

export async function startFakeSlack(opts: FakeSlackOptions): Promise<FakeSlack> {
  const requests: RecordedSlackRequest[] = [];
  const messages: SlackMessageRecord[] = [];
  const responses = new Map<string, unknown[]>();
  const closed = new Set(opts.closedChannels ?? []);
  let tsCounter = 0;
  let viewCounter = 0;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const type = String(req.headers["content-type"] ?? "");
      let body: unknown = raw;
      try {
        if (type.startsWith("application/json")) body = JSON.parse(raw);
        else if (type.startsWith("application/x-www-form-urlencoded")) body = Object.fromEntries(new URLSearchParams(raw));
      } catch {
        body = raw;
      }
      const path = (req.url ?? "/").split("?")[0]!;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : String(v ?? "");
      requests.push({ method: req.method ?? "GET", path, headers, body, at: Date.now() });
      opts.log?.(`${req.method} ${path}`);

      const json = (status: number, value: unknown) => {
        res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify(value));
      };

      const response = /^\/response\/([^/]+)$/.exec(path);
      if (response && req.method === "POST") {
        const list = responses.get(response[1]!) ?? [];
        list.push(body);
        responses.set(response[1]!, list);
        res.writeHead(200, { "content-type": "text/html" });
        return res.end("ok");
      }

      const api = /^\/api\/([a-zA-Z.]+)$/.exec(path);
      if (!api || req.method !== "POST") return json(404, { ok: false, error: "unknown_method" });
      if (headers.authorization !== `Bearer ${opts.token}`) return json(200, { ok: false, error: headers.authorization ? "invalid_auth" : "not_authed" });
      const args = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
      const blocks = typeof args.blocks === "string" ? (JSON.parse(args.blocks) as unknown[]) : (args.blocks as unknown[] | undefined);

      switch (api[1]) {
        case "chat.postMessage": {
          const channel = String(args.channel ?? "");
          if (!channel) return json(200, { ok: false, error: "channel_not_found" });
          if (closed.has(channel)) return json(200, { ok: false, error: "not_in_channel" });
          if (!args.text && !blocks) return json(200, { ok: false, error: "no_text" });
          const ts = `${Math.floor(Date.now() / 1000)}.${String(++tsCounter).padStart(6, "0")}`;
          const m: SlackMessageRecord = { channel, ts, text: String(args.text ?? ""), blocks, updates: 0 };
          messages.push(m);
          return json(200, { ok: true, channel, ts, message: { type: "message", text: m.text, blocks, ts, bot_id: "B0FAKE" } });
        }
        case "chat.update": {
          const m = messages.find((x) => x.channel === args.channel && x.ts === args.ts);
          if (!m) return json(200, { ok: false, error: "message_not_found" });
          m.text = String(args.text ?? m.text);
          m.blocks = blocks ?? m.blocks;
          m.updates++;
          return json(200, { ok: true, channel: m.channel, ts: m.ts, text: m.text, message: { text: m.text, blocks: m.blocks } });
        }
        case "views.open": {
          if (!args.trigger_id) return json(200, { ok: false, error: "invalid_arguments" });
          const view = (typeof args.view === "string" ? JSON.parse(args.view) : args.view) as Record<string, unknown> | undefined;
          if (!view || view.type !== "modal") return json(200, { ok: false, error: "invalid_arguments" });
          return json(200, { ok: true, view: { id: `V${String(++viewCounter).padStart(8, "0")}`, ...view } });
        }
        case "users.info": {
          const id = String(args.user ?? "");
          const u = opts.users?.[id];
          if (!u) return json(200, { ok: false, error: "user_not_found" });
          return json(200, {
            ok: true,
            user: {
              id,
              team_id: "T0FAKE",
              name: u.name ?? id.toLowerCase(),
              deleted: false,
              is_admin: u.is_admin ?? false,
              is_owner: u.is_owner ?? false,
              is_primary_owner: u.is_primary_owner ?? false,
              is_restricted: false,
              is_bot: false,
            },
          });
        }
        default:
          return json(200, { ok: false, error: "unknown_method" });
      }
    });
  });

  await new Promise<void>((ok) => server.listen(opts.port ?? 0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    apiUrl: `${url}/api`,
    requests,
    calls: (method) => requests.filter((r) => r.path === `/api/${method}`),
    messages: (channel) => messages.filter((m) => !channel || m.channel === channel),
    responses: (id) => responses.get(id) ?? [],
    responseUrl: (id) => `${url}/response/${id}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// A scripted fake of Anthropic's Messages API, good enough for the real Claude Code CLI (2.x) to run a
// headless task end to end against it (`ANTHROPIC_BASE_URL=<url>`; see docs in
// /work/shared/docs/claude-code-offline.md). A tiny deterministic "model" answers from a script.
//
// DEVELOPMENT AND TEST TOOL: any non-empty key is accepted; listens on 127.0.0.1 only.
//
//   POST /v1/messages[?beta=true]              streaming (SSE) or plain JSON message, from the script
//   POST /v1/messages/count_tokens[?beta=true]  {input_tokens} (a rough estimate of the request size)
//   GET  /v1/models[/<id>]                      a one-model list (not used by Claude Code 2.1 headless)
//   anything else (e.g. Claude Code's `HEAD /` warm-up): 404 with Anthropic's error shape
//
// Every request is recorded (method, path, query, lower-cased headers, parsed JSON body).
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type StopReason = 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence';

/** A content block the script answers with. `tool_use` ids are generated when left out. */
export type ScriptBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id?: string; name: string; input: Record<string, unknown> };

export interface ScriptReply {
  blocks: ScriptBlock[];
  /** default: `tool_use` if any block is a tool_use, else `end_turn` */
  stopReason?: StopReason;
  /** default: small numbers (input 12, output about a token per 4 characters, at least 1) */
  usage?: { input_tokens?: number; output_tokens?: number; server_tool_use?: { web_search_requests: number } };
  /** A streamed answer waits this long before each event after message_start (a slow model); default 0. */
  streamDelayMs?: number;
}

/** Context the script gets beside the request body. */
export interface ScriptContext {
  /** 0-based index of this call among the /v1/messages calls this server has answered */
  call: number;
  /** the recorded request (headers, query, ...) */
  request: RecordedRequest;
}

export type Script = (body: MessagesRequestBody, ctx: ScriptContext) => ScriptReply | Promise<ScriptReply>;

/** The parts of a Messages API request body the fake looks at (the rest is kept as sent). */
export interface MessagesRequestBody {
  model?: string;
  stream?: boolean;
  system?: string | Array<{ type: string; text?: string }>;
  messages?: Array<{ role: string; content: string | Array<{ type: string; [k: string]: unknown }> }>;
  tools?: Array<{ name: string; [k: string]: unknown }>;
  [k: string]: unknown;
}

export interface RecordedRequest {
  method: string;
  /** path without the query string, e.g. `/v1/messages` */
  path: string;
  /** the raw request target, e.g. `/v1/messages?beta=true` */
  url: string;
  query: Record<string, string>;
  /** lower-cased names; values as sent (repeated headers joined with ", ") */
  headers: Record<string, string>;
  /** parsed JSON body; the raw text if it was not JSON; undefined if empty */
  body: unknown;
  /** HTTP status the fake answered with */
  status?: number;
  /** A streamed answer: whether every event was written before the client went away */
  completed?: boolean;
}

export interface FakeAnthropicOptions {
  /** 0 (default) picks a free port */
  port?: number;
  /** answers /v1/messages; default: `defaultScript` (write hello.txt, then say done) */
  script?: Script;
  /** diagnostic lines (one per request); default: none */
  log?: (line: string) => void;
}

export interface FakeAnthropic {
  /** `http://127.0.0.1:<port>`: Claude Code's ANTHROPIC_BASE_URL */
  url: string;
  port: number;
  /** every request received so far, in order (live array) */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export const DEFAULT_HELLO_CONTENT = 'hello from the fake model\n';

/** What the real API tells the key's holder about its organization on every answer (its id, its limits). */
export const ACCOUNT_HEADERS = {
  'anthropic-organization-id': '00000000-0000-4000-8000-fakeorg00001',
  'anthropic-ratelimit-requests-limit': '4000',
  'anthropic-ratelimit-requests-remaining': '3999',
  'anthropic-ratelimit-input-tokens-limit': '2000000',
  'anthropic-ratelimit-output-tokens-limit': '400000',
};
export const DEFAULT_DONE_TEXT = 'Done: wrote hello.txt.';

type Message = NonNullable<MessagesRequestBody['messages']>[number];

function textsOf(content: Message['content'] | MessagesRequestBody['system'] | undefined): string[] {
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) return [];
  const out: string[] = [];
  for (const block of content) {
    if (block && typeof block === 'object' && typeof block.text === 'string') out.push(block.text);
  }
  return out;
}

/** The working directory Claude Code names in its system prompt ("Primary working directory: <path>"),
 * searched in `system` (string or text blocks), then in `role: "system"` messages, then in any message. */
export function workingDirectoryOf(body: MessagesRequestBody): string | undefined {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const texts = [
    ...textsOf(body.system),
    ...messages.filter((m) => m?.role === 'system').flatMap((m) => textsOf(m.content)),
    ...messages.filter((m) => m?.role !== 'system').flatMap((m) => textsOf(m?.content)),
  ];
  for (const text of texts) {
    const m = /Primary working directory:\s*(\S[^\r\n]*)/.exec(text);
    if (m?.[1]) return m[1].trim().replace(/^`(.*)`$/, '$1');
  }
  return undefined;
}

/** Whether any user message carries a `tool_result` block. */
export function hasToolResult(body: MessagesRequestBody): boolean {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  return messages.some(
    (m) => m?.role === 'user' && Array.isArray(m.content) && m.content.some((b) => b?.type === 'tool_result'),
  );
}

/** The default "model": first writes `<cwd>/hello.txt` with the Write tool, then, once a tool result came
 * back, ends the turn with "Done: wrote hello.txt.". */
export const defaultScript: Script = (body) => {
  if (hasToolResult(body)) return { blocks: [{ type: 'text', text: DEFAULT_DONE_TEXT }], stopReason: 'end_turn' };
  const cwd = workingDirectoryOf(body);
  // Without a working directory Claude Code rejects the relative path: the failure shows in the run.
  const filePath = cwd ? `${cwd.replace(/\/+$/, '')}/hello.txt` : 'hello.txt';
  return {
    blocks: [
      { type: 'text', text: "I'll write hello.txt." },
      { type: 'tool_use', name: 'Write', input: { file_path: filePath, content: DEFAULT_HELLO_CONTENT } },
    ],
    stopReason: 'tool_use',
  };
};

function errorBody(type: string, message: string): Record<string, unknown> {
  return { type: 'error', error: { type, message } };
}

/** Splits a string into up to `parts` non-empty pieces (one piece for short strings). */
function chunks(s: string, parts = 3): string[] {
  if (s.length <= parts) return [s];
  const size = Math.ceil(s.length / parts);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function estimateTokens(value: unknown): number {
  return Math.max(1, Math.ceil(JSON.stringify(value ?? '').length / 4));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export async function startFakeAnthropic(opts: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
  const script = opts.script ?? defaultScript;
  const log = opts.log;
  const requests: RecordedRequest[] = [];
  let messageCalls = 0;
  const counters = new Map<string, number>();
  const nextId = (prefix: string): string => {
    const n = (counters.get(prefix) ?? 0) + 1;
    counters.set(prefix, n);
    return `${prefix}_fake${String(n).padStart(6, '0')}`;
  };

  const send = (res: ServerResponse, rec: RecordedRequest, status: number, body: unknown): void => {
    rec.status = status;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'request-id': nextId('req'),
      ...ACCOUNT_HEADERS,
    });
    res.end(rec.method === 'HEAD' ? undefined : text);
  };

  const handleMessages = async (res: ServerResponse, rec: RecordedRequest): Promise<void> => {
    const body = rec.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      send(res, rec, 400, errorBody('invalid_request_error', 'request body must be a JSON object'));
      return;
    }
    const request = body as MessagesRequestBody;
    if (!Array.isArray(request.messages)) {
      send(res, rec, 400, errorBody('invalid_request_error', 'messages: Field required'));
      return;
    }
    const call = messageCalls++;
    let reply: ScriptReply;
    try {
      reply = await script(request, { call, request: rec });
    } catch (err) {
      send(res, rec, 500, errorBody('api_error', `fake-anthropic script failed: ${String(err)}`));
      return;
    }
    const model = typeof request.model === 'string' ? request.model : 'claude-fake';
    const content = reply.blocks.map((b) =>
      b.type === 'tool_use' ? { type: 'tool_use', id: b.id ?? nextId('toolu'), name: b.name, input: b.input } : { type: 'text', text: b.text },
    );
    const stopReason: StopReason = reply.stopReason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');
    const outputChars = reply.blocks.reduce((n, b) => n + (b.type === 'text' ? b.text.length : JSON.stringify(b.input).length), 0);
    const inputTokens = reply.usage?.input_tokens ?? 12;
    const outputTokens = reply.usage?.output_tokens ?? Math.max(1, Math.ceil(outputChars / 4));
    const usage = {
      input_tokens: inputTokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: outputTokens,
      ...(reply.usage?.server_tool_use ? { server_tool_use: reply.usage.server_tool_use } : {}),
    };
    const id = nextId('msg');
    log?.(`messages #${call} stream=${request.stream === true} -> ${content.map((b) => b.type).join(',')} (${stopReason})`);

    if (request.stream !== true) {
      send(res, rec, 200, { id, type: 'message', role: 'assistant', model, content, stop_reason: stopReason, stop_sequence: null, usage });
      return;
    }

    rec.status = 200;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'request-id': nextId('req'),
      ...ACCOUNT_HEADERS,
    });
    const events: string[] = [];
    const event = (type: string, data: Record<string, unknown>): void => {
      events.push(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    };
    event('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: 1 },
      },
    });
    event('ping', {});
    content.forEach((block, index) => {
      if (block.type === 'tool_use') {
        event('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        for (const part of chunks(JSON.stringify(block.input))) {
          event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: part } });
        }
      } else {
        event('content_block_start', { index, content_block: { type: 'text', text: '' } });
        for (const part of chunks(block.text ?? '')) event('content_block_delta', { index, delta: { type: 'text_delta', text: part } });
      }
      event('content_block_stop', { index });
    });
    event('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage });
    event('message_stop', {});
    const delay = reply.streamDelayMs ?? 0;
    let gone = false;
    res.on('close', () => (gone = true));
    for (const [i, e] of events.entries()) {
      if (gone) break;
      if (i > 0 && delay > 0) await new Promise((r) => setTimeout(r, delay));
      res.write(e);
    }
    rec.completed = !gone;
    res.end();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = new URL(req.url ?? '/', 'http://fake-anthropic.invalid');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
    }
    const raw = await readBody(req);
    let body: unknown;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: target.pathname,
      url: req.url ?? '/',
      query: Object.fromEntries(target.searchParams),
      headers,
      body,
    };
    requests.push(rec);
    const route = `${rec.method} ${rec.path.replace(/\/+$/, '') || '/'}`;

    if (!rec.path.startsWith('/v1/')) {
      log?.(`${rec.method} ${rec.url} -> 404`);
      send(res, rec, 404, errorBody('not_found_error', `Not found: ${rec.method} ${rec.path}`));
      return;
    }
    const bearer = /^Bearer\s+\S/i.test(headers.authorization ?? '');
    if (!headers['x-api-key'] && !bearer) {
      log?.(`${rec.method} ${rec.url} -> 401`);
      send(res, rec, 401, errorBody('authentication_error', 'x-api-key header is required'));
      return;
    }
    if (rec.body !== undefined && typeof rec.body === 'string') {
      send(res, rec, 400, errorBody('invalid_request_error', 'request body is not valid JSON'));
      return;
    }

    if (route === 'POST /v1/messages') return handleMessages(res, rec);
    if (route === 'POST /v1/messages/count_tokens') {
      const b = (rec.body ?? {}) as MessagesRequestBody;
      const n = estimateTokens([b.system, b.messages, b.tools]);
      log?.(`count_tokens -> ${n}`);
      send(res, rec, 200, { input_tokens: n });
      return;
    }
    const model = { type: 'model', id: 'claude-sonnet-4-5', display_name: 'Claude Sonnet 4.5 (fake)', created_at: '2025-09-29T00:00:00Z' };
    if (route === 'GET /v1/models') {
      send(res, rec, 200, { data: [model], has_more: false, first_id: model.id, last_id: model.id });
      return;
    }
    const modelMatch = /^GET \/v1\/models\/([^/]+)$/.exec(route);
    if (modelMatch?.[1]) {
      send(res, rec, 200, { ...model, id: decodeURIComponent(modelMatch[1]) });
      return;
    }
    log?.(`${rec.method} ${rec.url} -> 404`);
    send(res, rec, 404, errorBody('not_found_error', `Not found: ${rec.method} ${rec.path}`));
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log?.(`internal error: ${String(err)}`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(errorBody('api_error', String(err))));
      } else {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

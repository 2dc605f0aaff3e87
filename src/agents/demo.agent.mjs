#!/usr/bin/env node
// The demo agent: a stand-in for `claude -p <prompt> --output-format stream-json` that needs no model.
// It writes a small web app into the working directory (different per attempt), prints stream-json
// events like Claude Code's (system/init, assistant text and tool_use, user tool_result, result), and
// exits 0. Words in the prompt make it misbehave, for tests:
//   [fail]            ends with an error result and exit code 1
//   [crash]           writes one file, then dies by SIGKILL half-way
//   [hang]            prints init, then never ends
//   [network-error]   ends with a transient "Connection error" result, exit code 1
//   [slow:<ms>]       waits that long between turns
//   [chatty:<n>]      thinks out loud first: n lines of assistant text (a long transcript)
//   [llm:<n>]         makes n streaming calls to the Messages API at $ANTHROPIC_BASE_URL first (the
//                     credential gateway in API-key mode); a refused call ends the agent with its error
// and others shape what it writes:
//   [fixtures]        also writes what a workspace tarball must carry faithfully: a binary file, an
//                     executable, a symlink, an empty directory, a non-ASCII name, and node_modules
//   [add-only]        writes one new file, added-r<round>-a<attempt>.txt, and nothing else
//   [static]          writes only index.html (a static site)
//   [vite]            writes a Vite app (package.json with a dev script and vite, index.html, main.js)
//   [never-ready]     writes a package.json whose start script never listens (a preview that never answers)
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const VERSION = "1.0.0 (multishot demo agent)";
const args = process.argv.slice(2);
if (args.includes("--version")) {
  console.log(VERSION);
  process.exit(0);
}
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
// Like `claude -p`: the prompt is the argument after the options, or stdin when there is none.
const positional = args.filter((a, i) => !a.startsWith("-") && !["--output-format", "--max-turns", "--model"].includes(args[i - 1] ?? ""));
const prompt = positional[0] ?? (process.stdin.isTTY ? "" : readFileSync(0, "utf8"));
const model = arg("--model") ?? "demo-1";
const maxTurns = Number(arg("--max-turns") ?? 50);
if (!prompt) {
  console.error("demo agent: missing -p <prompt>");
  process.exit(2);
}
const attempt = Number(process.env.MULTISHOT_ATTEMPT ?? 1);
const sessionId = `demo-${process.pid}-${Date.now()}`;
const cwd = process.cwd();
const slow = Number(/\[slow:(\d+)\]/.exec(prompt)?.[1] ?? process.env.DEMO_AGENT_DELAY_MS ?? 0);
const started = Date.now();
let turns = 0;

const emit = (event) => process.stdout.write(JSON.stringify({ ...event, session_id: sessionId }) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const usage = { input_tokens: 120, output_tokens: 80, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
const cost = () => Number((turns * 0.0012).toFixed(4));

function result(subtype, text, isError) {
  emit({
    type: "result",
    subtype,
    is_error: isError,
    duration_ms: Date.now() - started,
    num_turns: turns,
    result: text,
    total_cost_usd: cost(),
    usage,
    ...(isError ? { errors: [text] } : {}),
  });
}

async function writeFileTurn(path, content) {
  turns++;
  const id = `toolu_${turns}_${attempt}`;
  emit({
    type: "assistant",
    message: {
      id: `msg_${turns}`,
      role: "assistant",
      model,
      content: [{ type: "tool_use", id, name: "Write", input: { file_path: join(cwd, path), content } }],
      usage,
    },
  });
  const full = resolve(cwd, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, content);
  emit({
    type: "user",
    message: {
      role: "user",
      content: [{ type: "tool_result", tool_use_id: id, content: `File created successfully at: ${full}` }],
    },
  });
  if (slow) await sleep(slow);
}

const palette = ["#e4572e", "#29335c", "#17bebb", "#76b041", "#ffc914", "#7d5ba6", "#f25f5c", "#247ba0"];
const color = palette[(attempt - 1) % palette.length];
const title = prompt.replace(/\[[^\]]*\]/g, "").trim().slice(0, 80) || "demo";

emit({
  type: "system",
  subtype: "init",
  cwd,
  session_id: sessionId,
  model,
  tools: ["Write", "Read", "Bash"],
  permissionMode: "bypassPermissions",
  claude_code_version: VERSION,
});

const llmCalls = Number(/\[llm:(\d+)\]/.exec(prompt)?.[1] ?? 0);
for (let i = 1; i <= llmCalls; i++) {
  const base = process.env.ANTHROPIC_BASE_URL;
  if (!base) {
    result("error_during_execution", "no ANTHROPIC_BASE_URL to call", true);
    process.exit(1);
  }
  const res = await fetch(`${base.replace(/\/$/, "")}/v1/messages`, {
    method: "POST",
    // As claude-code does: an OAuth token goes as a bearer token, an API key (the gateway's placeholder) as x-api-key.
    headers: {
      "content-type": "application/json",
      "anthropic-version": "2023-06-01",
      ...(process.env.CLAUDE_CODE_OAUTH_TOKEN ? { authorization: `Bearer ${process.env.CLAUDE_CODE_OAUTH_TOKEN}` } : { "x-api-key": process.env.ANTHROPIC_API_KEY ?? "" }),
    },
    body: JSON.stringify({ model: model === "demo-1" ? "claude-sonnet-4-5" : model, max_tokens: 256, stream: true, messages: [{ role: "user", content: prompt }] }),
  }).catch((err) => ({ ok: false, status: 0, text: async () => String(err) }));
  const text = await res.text();
  if (!res.ok) {
    turns++;
    result("error_during_execution", `API Error: ${res.status} ${text}`, true);
    process.exit(1);
  }
  turns++;
  const said = [...text.matchAll(/"text":"([^"]*)"/g)].map((m) => m[1]).join("");
  emit({ type: "assistant", message: { id: `msg_llm_${i}`, role: "assistant", model, content: [{ type: "text", text: `model call ${i}: ${said}` }], usage } });
}

if (prompt.includes("[hang]")) {
  setInterval(() => {}, 60_000);
  await new Promise(() => {});
}

const chatty = Number(/\[chatty:(\d+)\]/.exec(prompt)?.[1] ?? 0);
for (let i = 1; i <= chatty; i++) {
  emit({
    type: "assistant",
    message: { id: `msg_chatty_${i}`, role: "assistant", model, content: [{ type: "text", text: `Thinking, line ${i} of ${chatty}.` }], usage },
  });
}

if (prompt.includes("[add-only]")) {
  const round = Number(process.env.MULTISHOT_ROUND ?? 1);
  await writeFileTurn(`added-r${round}-a${attempt}.txt`, `round ${round}, attempt ${attempt}\n`);
  result("success", `Attempt ${attempt} added one file.`, false);
  process.exit(0);
}

turns++;
emit({
  type: "assistant",
  message: {
    id: `msg_${turns}`,
    role: "assistant",
    model,
    content: [{ type: "text", text: `Attempt ${attempt}: I'll build "${title}" as a small web page with a Node server.` }],
    usage,
  },
});
if (slow) await sleep(slow);

if (prompt.includes("[network-error]")) {
  result("error_during_execution", "API Error: Connection error (ECONNRESET).", true);
  process.exit(1);
}

await writeFileTurn(
  "index.html",
  `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n` +
    `<body style="background:${color}"><h1>${title}</h1><p>attempt ${attempt}</p></body></html>\n`,
);

if (prompt.includes("[crash]")) {
  process.kill(process.pid, "SIGKILL");
}

const VITE_VERSION = "8.3.8";
if (prompt.includes("[vite]")) {
  await writeFileTurn(
    "index.html",
    `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n` +
      `<body style="background:${color}"><h1>${title}</h1><p id="app">loading</p><script type="module" src="/main.js"></script></body></html>\n`,
  );
  await writeFileTurn("main.js", `document.getElementById("app").textContent = "vite app, attempt ${attempt}";\n`);
  await writeFileTurn(
    "package.json",
    JSON.stringify(
      { name: `demo-vite-${attempt}`, private: true, type: "module", scripts: { dev: "vite", build: "vite build" }, devDependencies: { vite: VITE_VERSION } },
      null,
      2,
    ) + "\n",
  );
} else if (prompt.includes("[never-ready]")) {
  await writeFileTurn(
    "package.json",
    JSON.stringify(
      { name: `demo-stuck-${attempt}`, private: true, scripts: { start: `node -e "console.log('warming up, attempt ${attempt}'); setInterval(() => {}, 1000)"` } },
      null,
      2,
    ) + "\n",
  );
} else if (!prompt.includes("[static]")) {
  await writeFileTurn(
    "server.js",
    `// attempt ${attempt}\nconst http = require("http");\nconst fs = require("fs");\n` +
      `const port = Number(process.env.PORT || 3000);\n` +
      `http.createServer((req, res) => {\n  res.setHeader("content-type", "text/html");\n` +
      `  res.end(fs.readFileSync(__dirname + "/index.html"));\n}).listen(port, "0.0.0.0");\n`,
  );
  await writeFileTurn(
    "package.json",
    JSON.stringify({ name: `demo-attempt-${attempt}`, private: true, scripts: { start: "node server.js" } }, null, 2) + "\n",
  );
}

if (prompt.includes("[fixtures]")) {
  turns++;
  writeFileSync(join(cwd, "logo.bin"), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7 + attempt) % 256)));
  writeFileSync(join(cwd, "run.sh"), `#!/bin/sh\necho attempt ${attempt}\n`);
  chmodSync(join(cwd, "run.sh"), 0o755);
  symlinkSync("index.html", join(cwd, "home.html"));
  mkdirSync(join(cwd, "empty", "nested"), { recursive: true });
  mkdirSync(join(cwd, "données"), { recursive: true });
  writeFileSync(join(cwd, "données", "café ☕ ü.txt"), `ça marche, attempt ${attempt}\n`);
  mkdirSync(join(cwd, "node_modules", "left-pad"), { recursive: true });
  writeFileSync(join(cwd, "node_modules", "left-pad", "index.js"), "module.exports = (s) => s;\n");
}

if (prompt.includes("[fail]")) {
  result("error_during_execution", "I could not finish: the task asked me to fail.", true);
  process.exit(1);
}
if (turns > maxTurns) {
  result("error_max_turns", `Reached maximum number of turns (${maxTurns})`, true);
  process.exit(1);
}

turns++;
const summary = `Attempt ${attempt} built "${title}": index.html, server.js and package.json (npm start serves it on port 3000).`;
emit({
  type: "assistant",
  message: { id: `msg_${turns}`, role: "assistant", model, content: [{ type: "text", text: summary }], usage },
});
// [long-result]: a final message longer than the runner pushes (the Worker reads it back from the log).
result("success", prompt.includes("[long-result]") ? `${summary}\n\n${"More detail. ".repeat(6000)}` : summary, false);

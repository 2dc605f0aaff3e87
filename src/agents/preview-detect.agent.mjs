#!/usr/bin/env node
// Runs in a sandbox: reads a workspace and prints, as one JSON line, how to serve it for a preview:
//   {kind, command, port, install: string | null}
// or {error} when it finds nothing to serve. The command must listen on 0.0.0.0:<port>; it is run
// from the workspace with HOST and PORT set. Usage: node preview-detect.agent.mjs <workspace> <static-server.mjs>
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [workspace, staticServer] = process.argv.slice(2);
const has = (p) => existsSync(join(workspace, p));
const read = (p) => {
  try {
    return readFileSync(join(workspace, p), "utf8");
  } catch {
    return "";
  }
};
const out = (v) => {
  process.stdout.write(JSON.stringify(v) + "\n");
  process.exit(0);
};
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

function nodeInstall() {
  if (has("node_modules")) return null;
  if (has("pnpm-lock.yaml")) return "corepack pnpm install --frozen-lockfile || npx -y pnpm install";
  if (has("yarn.lock")) return "corepack yarn install --frozen-lockfile || npx -y yarn install";
  if (has("package-lock.json") || has("npm-shrinkwrap.json")) return "npm ci --no-audit --no-fund";
  return "npm install --no-audit --no-fund";
}

if (has("package.json")) {
  let pkg = {};
  try {
    pkg = JSON.parse(read("package.json"));
  } catch {
    out({ error: "package.json is not valid JSON" });
  }
  const scripts = pkg.scripts ?? {};
  const deps = { ...(pkg.dependencies ?? {}), ...(pkg.devDependencies ?? {}) };
  const needsInstall = Object.keys(deps).length > 0 ? nodeInstall() : null;
  const script = scripts.dev ? "dev" : scripts.start ? "start" : null;
  const run = (args) => `npm run ${script}${args ? ` -- ${args}` : ""}`;
  if (script) {
    const text = scripts[script];
    if (deps.next || /\bnext\b/.test(text)) out({ kind: "next", command: run("-H 0.0.0.0 -p 3000"), port: 3000, install: needsInstall });
    if (deps.astro || /\bastro\b/.test(text)) out({ kind: "astro", command: run("--host 0.0.0.0 --port 4321"), port: 4321, install: needsInstall });
    if (deps.vite || /\bvite\b/.test(text)) {
      out({ kind: "vite", command: run("--host 0.0.0.0 --port 5173 --strictPort"), port: 5173, install: needsInstall });
    }
    // A plain Node server: told its port by PORT (and HOST), as most servers read them.
    out({ kind: "node", command: run(""), port: 3000, install: needsInstall });
  }
  if (pkg.main && has(pkg.main)) out({ kind: "node", command: `node ${q(pkg.main)}`, port: 3000, install: needsInstall });
}

const requirements = read("requirements.txt") + read("pyproject.toml");
const pyInstall = has("requirements.txt") ? "python3 -m pip install -q -r requirements.txt" : has("pyproject.toml") ? "python3 -m pip install -q ." : null;
if (has("manage.py")) out({ kind: "django", command: "python3 manage.py runserver 0.0.0.0:8000", port: 8000, install: pyInstall });
const pyFiles = readdirSync(workspace).filter((f) => f.endsWith(".py"));
for (const f of pyFiles) {
  const src = read(f);
  const mod = f.replace(/\.py$/, "");
  // Only a plain module name goes into a command line.
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(mod)) continue;
  const app = /^(\w+)\s*=\s*FastAPI\(/m.exec(src)?.[1];
  if (app || (/fastapi/i.test(requirements) && /FastAPI\(/.test(src))) {
    out({ kind: "fastapi", command: `python3 -m uvicorn ${mod}:${app ?? "app"} --host 0.0.0.0 --port 8000`, port: 8000, install: pyInstall });
  }
  const flask = /^(\w+)\s*=\s*Flask\(/m.exec(src)?.[1];
  if (flask) out({ kind: "flask", command: `python3 -m flask --app ${mod}:${flask} run --host 0.0.0.0 --port 5000`, port: 5000, install: pyInstall });
}

for (const dir of ["", "public", "dist", "build", "site"]) {
  if (has(join(dir, "index.html"))) {
    out({ kind: "static", command: `node ${q(staticServer)} ${q(join(workspace, dir))}`, port: 8080, install: null });
  }
}
out({ error: "found nothing to serve: no package.json script, Python web app or index.html; set preview: {command, port} on the run" });

// Module hooks for Node scripts that import the Worker's code: the files wrangler.toml bundles as text
// (`*.agent.mjs`, `*.agent.sh`, `*.client.js`: programs for sandboxes and the page) import as their text
// here too, never run. Registered with `module.register` (scripts/snapshot.ts).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const TEXT = /\.(agent\.mjs|agent\.sh|client\.js)$/;

export async function load(url, context, nextLoad) {
  if (!TEXT.test(new URL(url).pathname)) return nextLoad(url, context);
  const text = readFileSync(fileURLToPath(url), "utf8");
  return { format: "module", source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
}

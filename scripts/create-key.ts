// `npm run create-key -- --account <name> [--scopes "runs:read runs:write admin"] [--remote | --persist-to <dir>]`
// Bootstraps an account and an API key straight into D1 (local by default, or the deployed database with
// --remote), without the API. Prints the key once; D1 keeps only its hash.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { randomId } from "../src/crypto.ts";
import { SCOPES, makeKey, parseScopes } from "../src/keys.ts";

const { values } = parseArgs({
  options: {
    account: { type: "string" },
    "account-id": { type: "string" },
    scopes: { type: "string", default: SCOPES.join(" ") },
    name: { type: "string", default: "bootstrap" },
    remote: { type: "boolean", default: false },
    "persist-to": { type: "string" },
  },
});
if (!values.account && !values["account-id"]) {
  console.error('usage: npm run create-key -- --account <name> | --account-id <id> [--scopes "runs:read runs:write admin"] [--remote | --persist-to <dir>]');
  process.exit(2);
}
const scopes = parseScopes(values.scopes);
if (scopes.length === 0) {
  console.error(`--scopes: one or more of ${SCOPES.join(", ")}`);
  process.exit(2);
}

const sql = (s: string) => `'${s.replace(/'/g, "''")}'`;
const accountId = values["account-id"] ?? randomId("acct");
const key = await makeKey();
const statements = [
  ...(values["account-id"] ? [] : [`INSERT INTO accounts (id, name) VALUES (${sql(accountId)}, ${sql(values.account!)});`]),
  `INSERT INTO api_keys (id, account_id, name, prefix, hash, scopes) VALUES (${sql(key.id)}, ${sql(accountId)}, ${sql(values.name)}, ${sql(key.prefix)}, ${sql(key.hash)}, ${sql(scopes.join(" "))});`,
];
const target = values.remote ? ["--remote"] : ["--local", ...(values["persist-to"] ? ["--persist-to", resolve(values["persist-to"])] : [])];
const res = spawnSync("wrangler", ["d1", "execute", "DB", ...target, "--command", statements.join(" ")], {
  stdio: ["ignore", "ignore", "inherit"],
  cwd: resolve(import.meta.dirname, ".."),
});
if (res.status !== 0) {
  console.error("wrangler d1 execute failed (are the migrations applied?)");
  process.exit(1);
}
console.log(`account ${accountId}`);
console.log(`key ${key.key}`);
console.log("(shown once: multishot keeps only its hash)");

// Starts one real local sandbox server (its own process) for the worker tests and hands its URL to the
// pool's bindings; and the address runner reports go to, where nobody takes them.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";
import { startFakeSlack } from "../../tools/fake-slack/server.ts";
import { startLocalSandbox } from "../support/processes.ts";

/** The bot token the fake Slack takes, and its workspace's users (test/worker/slack.test.ts). */
const FAKE_SLACK_TOKEN = "fake-slack-bot-token-for-worker-tests";

declare module "vitest" {
  export interface ProvidedContext {
    localSandboxUrl: string;
    localSandboxApiUrl: string;
    lostReportsUrl: string;
    fakeSlackApiUrl: string;
    fakeSlackToken: string;
    fakeDohUrl: string;
  }
}

export default async function setup(project: TestProject) {
  // As harsh as Daytona on Tier 1 (restricted egress, the v0.190 daemon, marking deletes, creates that
  // answer `creating` first), its quotas aside: these files run many sandboxes, the quota has its own test.
  const server = await startLocalSandbox(["--profile", "daytona", "--quota-cpu", "1000", "--quota-memory", "1000", "--quota-disk", "10000"]);
  project.provide("localSandboxUrl", server.url);
  project.provide("localSandboxApiUrl", server.apiUrl);
  // Every runner report is lost here: refused with 410, which the runners take as final (a refused
  // connection would cost each job's exit ~1.4 s of report retries before its command ends).
  const lost = createServer((req, res) => {
    req.resume();
    res.writeHead(410, { "content-type": "application/json" }).end('{"error":{"code":"gone","message":"reports are lost in these tests"}}');
  });
  await new Promise<void>((ok) => lost.listen(0, "127.0.0.1", ok));
  project.provide("lostReportsUrl", `http://127.0.0.1:${(lost.address() as AddressInfo).port}`);
  const slack = await startFakeSlack({
    token: FAKE_SLACK_TOKEN,
    users: { U0ADMIN: { is_admin: true }, U0OWNER: { is_owner: true, is_primary_owner: true }, U0MEMBER: {} },
  });
  project.provide("fakeSlackApiUrl", slack.apiUrl);
  project.provide("fakeSlackToken", FAKE_SLACK_TOKEN);
  // A DNS-over-HTTPS resolver in the JSON format Cloudflare's and Google's speak (GET ?name=&type=,
  // application/dns-json): its records are set by the tests (POST /records {name, type, data}).
  const records = new Map<string, string[]>();
  const doh = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://doh.test");
    if (req.method === "POST" && url.pathname === "/records") {
      let raw = "";
      req.on("data", (c: Buffer) => (raw += c.toString()));
      req.on("end", () => {
        const r = JSON.parse(raw) as { name: string; type: "A" | "AAAA"; data: string[] };
        records.set(`${r.name.toLowerCase()}/${r.type}`, r.data);
        res.writeHead(204).end();
      });
      return;
    }
    const name = (url.searchParams.get("name") ?? "").toLowerCase();
    const type = url.searchParams.get("type") === "AAAA" ? "AAAA" : "A";
    const data = records.get(`${name}/${type}`);
    const known = records.has(`${name}/A`) || records.has(`${name}/AAAA`);
    const body = {
      Status: known ? 0 : 3,
      TC: false, RD: true, RA: true, AD: false, CD: false,
      Question: [{ name: `${name}.`, type: type === "A" ? 1 : 28 }],
      ...(data ? { Answer: data.map((d) => ({ name: `${name}.`, type: type === "A" ? 1 : 28, TTL: 60, data: d })) } : {}),
    };
    res.writeHead(200, { "content-type": "application/dns-json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((ok) => doh.listen(0, "127.0.0.1", ok));
  project.provide("fakeDohUrl", `http://127.0.0.1:${(doh.address() as AddressInfo).port}`);
  return async () => {
    lost.close();
    doh.close();
    await slack.close();
    await server.stop();
  };
}

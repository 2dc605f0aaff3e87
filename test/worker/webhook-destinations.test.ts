// Outbound webhooks outside local mode go to public addresses only: an endpoint whose URL is, or resolves
// to, a loopback, private, link-local or metadata address is refused when it is made, and a try to a name
// that was pointed at one since is not sent (the delivery log says why). Names are resolved through a
// local DNS-over-HTTPS resolver speaking the JSON API (test/worker/global-setup.ts).
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import worker from "../../src/index.ts";
import type { Env } from "../../src/env.ts";

const doh = inject("fakeDohUrl");
/** A deployment: not local mode, its own resolver. */
const deployed = { ...(env as Env), MULTISHOT_LOCAL: undefined, DNS_RESOLVER_URL: `${doh}/dns-query` } as Env;

async function call(path: string, init: { method?: string; json?: unknown } = {}) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`http://multishot.test${path}`, {
      method: init.method ?? "GET",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
    }),
    deployed,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
}

const setRecord = (name: string, type: "A" | "AAAA", data: string[]) =>
  fetch(`${doh}/records`, { method: "POST", body: JSON.stringify({ name, type, data }) });

let key = "";

describe("outbound webhook destinations", () => {
  it("refuses private, loopback and metadata destinations, by address and by what a name resolves to", async () => {
    // An account of its own, made by the operator (the dev key is no key outside local mode).
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request("http://multishot.test/api/accounts", {
        method: "POST",
        headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "hooks" }),
      }),
      deployed,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    key = ((await res.json()) as { key: { key: string } }).key.key;

    await setRecord("hooks.example.com", "A", ["93.184.216.34"]);
    await setRecord("sneaky.example.com", "A", ["93.184.216.35"]);
    await setRecord("sneaky.example.com", "AAAA", ["fd00::7"]);
    await setRecord("metadata.example.com", "A", ["169.254.169.254"]);
    const cases: [string, string][] = [
      ["https://127.0.0.1/hook", "127.0.0.1 is a loopback, private, link-local or reserved address"],
      ["https://10.0.0.8:8443/hook", "10.0.0.8 is a loopback"],
      ["https://169.254.169.254/latest/meta-data", "169.254.169.254 is a loopback"],
      ["https://[::1]/hook", "::1 is a loopback"],
      ["https://[::ffff:192.168.0.1]/hook", "is a loopback"],
      ["https://localhost/hook", "localhost is a local name"],
      ["https://metadata.example.com/hook", "metadata.example.com resolves to 169.254.169.254"],
      ["https://sneaky.example.com/hook", "sneaky.example.com resolves to fd00::7"],
      ["https://nowhere.example.com/hook", "nowhere.example.com does not resolve"],
    ];
    for (const [url, reason] of cases) {
      const r = await call("/api/webhooks", { method: "POST", json: { kind: "outbound", url } });
      expect(r.status, url).toBe(400);
      expect(r.body.error!.code, url).toBe("validation_failed");
      expect(r.body.error!.message, url).toContain(reason);
    }
    const ok = await call("/api/webhooks", { method: "POST", json: { kind: "outbound", url: "https://hooks.example.com/multishot" } });
    expect(ok.status).toBe(201);
    const endpointId = ok.body.id as string;

    // The name is pointed inside afterwards: the next try is not sent, and the log says why.
    await setRecord("hooks.example.com", "A", ["10.20.30.40"]);
    const accountId = ((await call("/api/accounts/me")).body as { id: string }).id;
    const deliveryId = `whd_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
    await env.DB.prepare(
      "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, run_id, seq, event_type, payload, status, tries) VALUES (?, ?, ?, 'run_x', 1, 'run.succeeded', '{}', 'failed', 1)",
    )
      .bind(deliveryId, endpointId, accountId)
      .run();
    const again = await call(`/api/webhooks/${endpointId}/deliveries/${deliveryId}/redeliver`, { method: "POST" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ delivered: false, status: null, error: "not sent: hooks.example.com resolves to 10.20.30.40, a loopback, private, link-local or reserved address" });
  });
});

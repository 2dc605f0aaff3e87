// What redaction takes out of everything stored: known secret values, and the signatures of the signed
// URLs a sandbox holds (an agent that prints its environment must not leak its gateway token).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { redactorFor, scrubConsole } from "../../src/redact.ts";
import { ingestUrl, llmGatewayUrl } from "../../src/signed-urls.ts";

describe("redaction", () => {
  it("removes secrets and signed-URL signatures, and leaves the rest", async () => {
    const redact = redactorFor({ ...env, ANTHROPIC_API_KEY: "test-secret-value-123" });
    const gateway = await llmGatewayUrl(env, "run_abcdefghijklmnopqrst", 1, 2);
    const ingest = await ingestUrl(env, "run_abcdefghijklmnopqrst", 1, 2);
    const sig = gateway.split("/").pop()!;
    const text = `ANTHROPIC_BASE_URL=${gateway}\nreport to ${ingest}\nkey test-secret-value-123\nmultishot-signing ${env.MULTISHOT_SIGNING_SECRET}`;
    const out = redact(text);
    expect(out).not.toContain(sig);
    expect(out).not.toContain(ingest.split("/").pop()!);
    expect(out).not.toContain("test-secret-value-123");
    expect(out).not.toContain(env.MULTISHOT_SIGNING_SECRET!);
    expect(out).toContain("/llm/run_abcdefghijklmnopqrst/1/2/[redacted]");
    expect(out).toContain("/ingest/run_abcdefghijklmnopqrst/1/2/[redacted]");
    expect(redact("nothing secret here /llm/ at all")).toBe("nothing secret here /llm/ at all");
  });

  it("keeps bearer tokens in URLs out of the Worker's own log lines", async () => {
    const written: unknown[][] = [];
    const record = (...args: unknown[]) => void written.push(args);
    const target = { log: record, info: record, warn: record, error: record, debug: record };
    scrubConsole(target);
    const gateway = await llmGatewayUrl(env, "run_abcdefghijklmnopqrst", 1, 2);
    const share = `http://127.0.0.1:8787/r/mss_${"A".repeat(43)}`;
    const preview = "https://3000-sb.proxy.daytona.works/?token=dtn-preview-secret&x=1";
    target.error(`the share link ${share} could not be posted`, new Error(`fetch ${gateway}/v1/messages failed`), { url: preview });
    target.info("nothing secret");
    const text = JSON.stringify(written);
    expect(text).not.toContain("A".repeat(43));
    expect(text).not.toContain(gateway.split("/").pop()!);
    expect(text).not.toContain("dtn-preview-secret");
    expect(text).toContain("/r/mss_[redacted]");
    expect(text).toContain("/llm/run_abcdefghijklmnopqrst/1/2/[redacted]/v1/messages");
    expect(text).toContain("?token=[redacted]&x=1");
    expect(written[1]).toEqual(["nothing secret"]);
  });
});

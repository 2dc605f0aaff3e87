// The OpenAPI document validates as OpenAPI 3.1 (an offline validator of the official schema), and its
// request bodies are the zod schemas the routes use, turned into JSON Schema.
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/openapi.ts";

type Doc = { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>> };

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    const doc = openApiDocument("http://127.0.0.1:8787");
    const validator = new Validator();
    const result = await validator.validate(doc as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    // The validator can say no: the same document without its info block is refused.
    const { info: _info, ...broken } = doc;
    expect((await new Validator().validate(broken as Parameters<Validator["validate"]>[0])).valid).toBe(false);
  });

  it("describes request bodies with the routes' own schemas", () => {
    const doc = openApiDocument("http://x") as unknown as Doc;
    const run = doc.paths["/api/runs"]!.post!.requestBody!.content["application/json"]!.schema as {
      properties: Record<string, { maxLength?: number; enum?: string[] }>;
      required: string[];
    };
    expect(run.required).toEqual(["prompt"]);
    expect(run.properties.prompt!.maxLength).toBe(100_000);
    expect(run.properties.agent!.enum).toEqual(["claude-code", "demo"]);
    const share = doc.paths["/api/runs/{id}/share"]!.post!.requestBody!.content["application/json"]!.schema as { properties: { scope: { enum: string[] } } };
    expect(share.properties.scope.enum).toEqual(["view", "control"]);
  });
});

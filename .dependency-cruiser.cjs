// The import graph's rules, checked by test/node/architecture.test.ts (`npm run depcruise`).
// swc parses the TypeScript (typescript 7 has no JS API yet); type-only imports count as imports.
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "No import cycle, type-only included: every module can be read and tested from its own imports down.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "routes-never-import-the-object",
      comment: "A route talks to the run's object over RPC (src/durable/contract.ts), never through its class file.",
      severity: "error",
      from: { path: "^src/routes/" },
      to: { path: "^src/durable/run-coordinator\\.ts$" },
    },
    {
      name: "only-src-sandbox-imports-the-sdk",
      comment: "Every Daytona call goes through src/sandbox/ (the design's rule).",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/sandbox/" },
      to: { path: "@daytonaio/sdk" },
    },
    {
      name: "decisions-stay-pure",
      comment: "The engine's decisions import no storage, no platform and no Daytona.",
      severity: "error",
      from: { path: "^src/durable/decisions\\.ts$" },
      to: { path: "^(src/(sandbox|db|routes)/|src/durable/(?!state\\.ts)|cloudflare:)" },
    },
  ],
  options: {
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
  },
};

// Two kinds of tests:
// - "worker": inside workerd through @cloudflare/vitest-plugin, with real D1, R2 and Durable Objects,
//   talking to a real local sandbox server that globalSetup starts in Node;
// - "node": the local sandbox server against the real @daytonaio/sdk, and end-to-end tests that start
//   the service the way `npm start` does;
// - "faults": the fault suite (test/faults), in workerd like "worker" but against a local sandbox server
//   of its own. `npm test` runs its cases side by side and its regressions; `npm run test:faults`
//   (MULTISHOT_FAULTS_LOAD=1) runs the faults project alone with the 50 x 4 load added.
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

const withLoad = process.env.MULTISHOT_FAULTS_LOAD === "1";

/** What both workerd projects bind: the schema, their local sandbox server, test credentials, fast retries. */
async function workerdBindings(inject: <K extends "localSandboxUrl" | "localSandboxApiUrl">(key: K) => unknown) {
  return {
    TEST_MIGRATIONS: await readD1Migrations("./migrations"),
    DAYTONA_API_URL: inject("localSandboxApiUrl") as string,
    LOCAL_SANDBOX_URL: inject("localSandboxUrl") as string,
    MULTISHOT_LOCAL: "1",
    MULTISHOT_DEV_API_KEY: "test-dev-key",
    ADMIN_TOKEN: "test-admin-token",
    MULTISHOT_SIGNING_SECRET: "test-signing-secret",
    RETRY_BASE_MS: "200",
    RETRY_CAP_MS: "1000",
  };
}

export default defineConfig({
  test: {
    // Most of a test's time is spent waiting on sandboxes, agents and servers, not on CPU: three files
    // at a time (vitest's default on 2 cores is one) keeps the suite well under ten minutes.
    maxWorkers: 3,
    projects: [
      {
        // The Daytona SDK ships sourcemaps that point outside its package: vite warns once per module.
        logLevel: "error",
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...(await workerdBindings(inject)),
                // A server that refuses every runner report (test/worker/global-setup.ts): in these tests
                // reports are lost and polling must carry each attempt to its end (the pushed path is
                // covered end to end under test/node and by the fault suite).
                PUBLIC_URL: inject("lostReportsUrl") as string,
                POLL_INTERVAL_MS: "250",
                PREVIEW_IDLE_MINUTES: "0.1",
              },
            },
          })),
        ],
        test: {
          name: "worker",
          // These files share one local sandbox server, whose fault injection is global: one file at a
          // time, so one file's injected faults never land on another's runs. (The node files each start
          // their own servers and run beside them.)
          fileParallelism: false,
          include: ["test/worker/**/*.test.ts"],
          globalSetup: ["./test/worker/global-setup.ts"],
          setupFiles: ["./test/worker/apply-migrations.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        logLevel: "error",
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...(await workerdBindings(inject)),
                // Runner reports reach the Worker through the relay while a test pulls from it
                // (test/faults/ingest-relay.ts): a case can lose them on the way.
                PUBLIC_URL: inject<string>("ingestRelayUrl"),
                POLL_INTERVAL_MS: process.env.MULTISHOT_FAULTS_POLL_MS ?? "2000",
                // The regressions wait out a call that is never answered: 8 s instead of 30 keeps them
                // short. Under the load calls can queue for longer: the default there.
                ...(withLoad ? {} : { DAYTONA_REQUEST_TIMEOUT_MS: "8000" }),
                FAULTS_RUNS: inject<string>("faultsRuns"),
                FAULTS_ONLY: inject<string>("faultsOnly"),
                FAULTS_CORES: inject<string>("faultsCores"),
              },
            },
          })),
        ],
        test: {
          name: "faults",
          include: ["test/faults/cases.test.ts", "test/faults/regressions.test.ts", "test/faults/daytona.test.ts", ...(withLoad ? ["test/faults/load.test.ts"] : [])],
          // Its files share its local sandbox server and measure billed time: one at a time.
          fileParallelism: false,
          globalSetup: ["./test/faults/global-setup.ts"],
          setupFiles: ["./test/worker/apply-migrations.ts"],
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          // The engine's decisions and other pure code, in plain Node: no workerd, no sandboxes.
          name: "unit",
          environment: "node",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 5_000,
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["test/local-sandbox/**/*.test.ts", "test/node/**/*.test.ts", "test/cli/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});

// Two kinds of tests:
// - "worker": inside workerd through @cloudflare/vitest-plugin, with real D1, R2 and Durable Objects,
//   talking to a real local sandbox server that globalSetup starts in Node;
// - "node": the local sandbox server against the real @daytonaio/sdk, and end-to-end tests that start
//   the service the way `npm start` does.
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

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
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                DAYTONA_API_URL: inject<string>("localSandboxApiUrl"),
                LOCAL_SANDBOX_URL: inject<string>("localSandboxUrl"),
                // Nothing listens here: in these tests every runner report is lost and polling must carry
                // each attempt to its end (the pushed path is covered end to end under test/node).
                PUBLIC_URL: "http://127.0.0.1:9",
                MULTISHOT_DEV_API_KEY: "test-dev-key",
                ADMIN_TOKEN: "test-admin-token",
                MULTISHOT_SIGNING_SECRET: "test-signing-secret",
                RETRY_BASE_MS: "200",
                RETRY_CAP_MS: "1000",
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

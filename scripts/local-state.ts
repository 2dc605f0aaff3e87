// Where `npm start` keeps its local state, shared with the scripts that work beside it.
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..");
/** MULTISHOT_STATE_DIR, or .wrangler/state in the checkout: D1, R2, the objects, kept secrets. */
export const STATE_DIR = resolve(process.env.MULTISHOT_STATE_DIR ?? join(ROOT, ".wrangler", "state"));
/** The running local sandbox server's API URL, left by `npm start` (its port changes per start). */
export const LOCAL_SANDBOX_URL_FILE = join(STATE_DIR, ".multishot-local-sandbox-url");

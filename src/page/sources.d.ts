// Browser scripts ship with the Worker as text (wrangler.toml's Text rule) and are inlined into pages.
declare module "*.client.js" {
  const source: string;
  export default source;
}

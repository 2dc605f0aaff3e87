// A manifest of a directory tree: every entry's type, mode and content hash (or link target), so two
// trees can be compared byte for byte, executable bits, symlinks and empty directories included.
import { createHash } from "node:crypto";
import { lstatSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export function manifest(root: string, skip: (relPath: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (skip(path)) continue;
      const st = lstatSync(join(root, path));
      const mode = (st.mode & 0o777).toString(8);
      if (st.isSymbolicLink()) out[path] = `link -> ${readlinkSync(join(root, path))}`;
      else if (st.isDirectory()) {
        out[path] = `dir ${mode}`;
        walk(path);
      } else out[path] = `file ${mode} ${createHash("sha256").update(readFileSync(join(root, path))).digest("hex")}`;
    }
  };
  walk("");
  return out;
}

#!/usr/bin/env node
// The `eddy` command on Node. tsx's loader is registered either way, for the pipeline modules
// users hand to `eddy run` (TypeScript).
// - In a clone of the repository the command runs from src/ through tsx, with the repository's
//   tsconfig.json, whose `paths` resolve `@eddy/eddy` (as the examples import it) to src/mod.ts,
//   whatever the working directory; set in TSX_TSCONFIG_PATH, it holds as well for the scripts the
//   command starts with `node --import tsx` (`eddy bench`).
// - Installed, it runs the compiled dist/ (the package ships no src/), which `@eddy/eddy` resolves
//   to as well. One copy of every module either way.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

const source = new URL("../src/platform/node-main.ts", import.meta.url);
if (existsSync(source)) {
  process.env.TSX_TSCONFIG_PATH = fileURLToPath(new URL("../tsconfig.json", import.meta.url));
  register();
  await import(source.href);
} else {
  register();
  await import("../dist/src/platform/node-main.js");
}

/**
 * Folders depend one way: each layer imports only layers below it, so there is no import cycle
 * between folders (src/core is the leaf, importing nothing of Eddy). The entry points
 * (src/mod.ts, src/platform/*-main.ts) sit on top of everything.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");

/** Each folder's layer: it may import folders of a lower layer only. */
const layers: Record<string, number> = {
  "src/core": 0,
  "src/platform": 1,
  "src/log": 1,
  "src/observe": 1,
  "src/state": 2,
  "src/pipeline": 3,
  "actors": 4,
  "src/oracle": 5,
  "src/runtime": 5,
  "src/cluster": 6,
  "src/serve": 7,
  "src/cli": 8,
};

const isEntry = (file: string) => file === "src/mod.ts" || /^src\/platform\/.*-main\.ts$/.test(file);

function folderOf(file: string): string {
  const parts = file.split("/");
  return parts[0] === "actors" ? "actors" : `${parts[0]}/${parts[1]}`;
}

function filesIn(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".generated.ts"))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** The imports of `files` that go to the same or a higher layer. */
function violations(files: readonly { readonly file: string; readonly text: string }[]): string[] {
  const wrong: string[] = [];
  for (const { file, text } of files) {
    if (isEntry(file)) continue;
    const from = folderOf(file);
    if (layers[from] === undefined) {
      wrong.push(`${file}: ${from} has no layer`);
      continue;
    }
    for (const [, spec] of text.matchAll(/(?:import|export)[^;"']*?from\s+"(\.[^"]+)"/g)) {
      const target = relative(root, resolve(dirname(join(root, file)), spec!));
      if (target.startsWith("..") || target.startsWith("examples/")) continue; // the examples a CLI command runs
      const to = folderOf(target);
      if (to !== from && !(layers[to]! < layers[from]!)) wrong.push(`${file} imports ${target} (${from} -> ${to})`);
    }
  }
  return wrong;
}

describe("layers", () => {
  it("every import goes to a lower layer (or within the folder)", () => {
    const files = [...filesIn("src"), ...filesIn("actors")]
      .filter((f) => !f.startsWith("src/serve/console/")) // browser code, bundled apart
      .map((file) => ({ file, text: readFileSync(join(root, file), "utf8") }));
    expect(files.length).toBeGreaterThan(50);
    expect(violations(files)).toEqual([]);
  });

  it("refuses an import that goes up or sideways", () => {
    expect(violations([
      { file: "src/state/x.ts", text: 'import { pipeline } from "../pipeline/pipeline.ts";' },
      { file: "actors/x.ts", text: 'import type { Plan } from "../src/runtime/plan.ts";' },
      { file: "src/log/x.ts", text: 'import { Foo } from "../observe/logger.ts";' },
      { file: "src/core/x.ts", text: 'import { clock } from "./clock.ts";' },
    ])).toEqual([
      "src/state/x.ts imports src/pipeline/pipeline.ts (src/state -> src/pipeline)",
      "actors/x.ts imports src/runtime/plan.ts (actors -> src/runtime)",
      "src/log/x.ts imports src/observe/logger.ts (src/log -> src/observe)",
    ]);
  });
});

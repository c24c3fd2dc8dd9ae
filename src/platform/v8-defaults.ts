/**
 * V8 settings every Eddy process on Node starts with (the `eddy` command and the benchmark's
 * worker, which stands for it), applied at start-up before any state exists:
 * `--no-allocation-site-pretenuring` (short-lived records no longer pile up in old space) and
 * `--heap-growing-percent=25` (the heap stays near the live state).
 * See docs/ARCHITECTURE.md, "V8 settings", for why, and the measurements behind both.
 *
 * @example
 * applyV8Defaults(); // first thing in a process's entry module
 */
import { setFlagsFromString } from "node:v8";

export const v8Defaults: readonly string[] = ["--no-allocation-site-pretenuring", "--heap-growing-percent=25"];

export function applyV8Defaults(): void {
  for (const flag of v8Defaults) setFlagsFromString(flag);
}

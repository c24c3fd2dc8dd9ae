/**
 * V8 settings every Eddy process on Node starts with (the `eddy` command and the benchmark's
 * worker, which stands for it), applied at start-up before any state exists.
 *
 * `--no-allocation-site-pretenuring`: V8 learns from allocation sites whose objects survive young
 * collections and then allocates everything from those sites straight into old space. A worker's
 * hot sites (decoded events, records, a chunk's Map entries) make both kinds: most objects die
 * within a batch, a few become keyed state. Pretenured, the short-lived ones pile up as old-space
 * garbage until a full collection, so the heap grows to about three times the live state. Measured
 * on `npm run bench` case state-1m-keys (1,000,000 keys, back to back on one machine): peak RSS
 * 395-417 MB with the flag against 507-532 MB without, and 47-67k against 35-38k events/s.
 *
 * `--heap-growing-percent=25`: after a full collection V8 lets the heap grow to up to four times
 * what survived before it collects again, and a worker's survivors grow with its state: at
 * 1,000,000 keys the heap reached 180-240 MB over ~100 MB live. Growing by 25% at a time keeps
 * it near the live state, at the price of more (concurrent) full collections, which the state
 * case does not show as slower. Measured on state-1m-keys, runs interleaved on a shared machine:
 * peak RSS 383, 420, 410 MB without against 334, 332, 350 MB with it (and 378, 348, 340 at 50%);
 * core-aggregate against the read ceiling in the same runs: 0.79, 0.75 without, 0.83, 0.91 with.
 *
 * @example
 * applyV8Defaults(); // first thing in a process's entry module
 */
import { setFlagsFromString } from "node:v8";

export const v8Defaults: readonly string[] = ["--no-allocation-site-pretenuring", "--heap-growing-percent=25"];

export function applyV8Defaults(): void {
  for (const flag of v8Defaults) setFlagsFromString(flag);
}

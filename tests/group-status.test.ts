/**
 * `eddy status` over a group of real `eddy run` processes: the workers (id, host, runtime,
 * heartbeat age, partitions), every partition with its owner, checkpoint, checkpoint age, lag and
 * keys, and the moves in progress. A move is held still to be seen: the only worker is SIGSTOPped
 * while a second one joins, so the partitions the balance gives the newcomer stay `releasing` by
 * the stopped one until it is SIGCONTed (both members' timeouts are long, so nobody is judged
 * gone meanwhile). Then the move completes, a worker leaves, and the last one too.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { readGroup } from "../src/cluster/group.ts";
import { eddy } from "./support/eddy-command.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { caughtUp, coffeeShopActors, startWorkerProcess, type WorkerProcess } from "./support/worker-process.ts";

interface WorkerLine {
  worker: string;
  host: string;
  runtime: string;
  pid: number;
  heartbeatAgeMs: number;
  live: boolean;
  timeoutMs: number;
  partitions: number;
  share: number;
}
interface PartitionLine {
  step: string;
  partition: number;
  checkpoint: number | null;
  checkpointAgeMs: number | null;
  lag?: number;
  keys: number;
  owner: string | null;
  target: string | null;
  move: "releasing" | "taking" | null;
}

/** `eddy status coffee-shop --json`, split into its worker and partition lines. */
async function status(url: string): Promise<{ workers: WorkerLine[]; partitions: PartitionLine[] }> {
  const run = eddy(["status", "coffee-shop", "--json", "--nats", url]);
  const code = await run.exited;
  if (code !== 0) throw new Error(`eddy status exited ${code}: ${run.err()}`);
  const lines = run.out().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    workers: lines.filter((l) => "worker" in l) as unknown as WorkerLine[],
    partitions: lines.filter((l) => "step" in l) as unknown as PartitionLine[],
  };
}

async function statusText(url: string): Promise<string> {
  const run = eddy(["status", "coffee-shop", "--nats", url]);
  expect(await run.exited, run.err()).toBe(0);
  return run.out();
}

/** How many partitions each worker holds a lease for, by id. */
async function holdings(nc: NatsConnection): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const owner of Object.values((await readGroup(nc, "coffee-shop"))?.owners ?? {})) counts[owner] = (counts[owner] ?? 0) + 1;
  return counts;
}

// Long enough that neither worker is judged gone while the other one waits on it.
const args = (id: string) => ["--worker-id", id, "--member-timeout-ms", "60000", "--checkpoint-ms", "200"];

describe("eddy status of a group", () => {
  const nats = useNatsServer();

  it(
    "shows workers, every partition's owner, lag, checkpoint age and keys, and a move in progress",
    { timeout: 180_000 },
    async () => {
      const nc = await nats.connect();
      await publishOrders(nc, { stream: "orders", seed: 3, count: 2_000 });
      const workers = new Map<string, WorkerProcess>();
      const output = () => [...workers].map(([id, w]) => `--- ${id}\n${w.output().slice(-2000)}`).join("\n");
      const start = (id: string) =>
        workers.set(id, startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args(id)));
      try {
        start("w1");
        await waitFor(async () => (await holdings(nc)).w1 === coffeeShopActors, {
          timeoutMs: 60_000,
          message: () => `w1 holds every partition\n${output()}`,
        });
        await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
          timeoutMs: 60_000,
          message: () => `w1 caught up\n${output()}`,
        });

        // One worker, settled: it holds every partition, each caught up, nothing moves.
        const one = await status(nats.url);
        expect(one.workers).toEqual([expect.objectContaining({
          worker: "w1",
          runtime: "node",
          pid: workers.get("w1")!.pid,
          live: true,
          timeoutMs: 60_000,
          partitions: coffeeShopActors,
          share: coffeeShopActors,
        })]);
        expect(one.workers[0]!.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
        expect(one.workers[0]!.heartbeatAgeMs).toBeLessThan(60_000);
        expect(one.partitions.length).toBe(coffeeShopActors);
        for (const p of one.partitions) {
          expect(p, `${p.step}.${p.partition}`).toMatchObject({ owner: "w1", target: "w1", move: null, lag: 0 });
          expect(p.checkpoint).toBeGreaterThan(0);
          expect(p.checkpointAgeMs).toBeGreaterThanOrEqual(0);
          expect(p.checkpointAgeMs).toBeLessThan(60_000);
        }
        const storeKeys = one.partitions.filter((p) => p.step === "store-revenue").reduce((n, p) => n + p.keys, 0);
        expect(storeKeys).toBe(5); // five stores
        const text = await statusText(nats.url);
        expect(text).toMatch(/^workers: 1 live\nworker\s+host\s+runtime\s+pid\s+heartbeat\s+state\s+partitions\s+share\n/);
        expect(text).toMatch(new RegExp(`^w1 .* live\\s+${coffeeShopActors}\\s+${coffeeShopActors}$`, "m"));
        expect(text).toMatch(/^step\s+part\s+ckpt\s+ckpt age\s+position\s+lag\s+keys\s+dlq\s+late\s+owner\s+move$/m);
        expect(text).toMatch(/^moves in progress: none$/m);

        // w1 stopped, w2 joins: half the partitions should move to w2, and wait on w1 to give them back.
        workers.get("w1")!.kill("SIGSTOP");
        start("w2");
        await waitFor(() => workers.get("w2")!.output().includes('"event":"running"'), {
          timeoutMs: 60_000,
          message: () => `w2 running\n${output()}`,
        });
        const moving = await status(nats.url);
        const [w1, w2] = moving.workers;
        expect(moving.workers.map((w) => [w.worker, w.live, w.partitions])).toEqual([
          ["w1", true, coffeeShopActors],
          ["w2", true, 0],
        ]);
        expect(w1!.share + w2!.share).toBe(coffeeShopActors);
        expect(Math.abs(w1!.share - w2!.share)).toBeLessThanOrEqual(1);
        const releasing = moving.partitions.filter((p) => p.move !== null);
        expect(releasing.length).toBe(w2!.share);
        for (const p of releasing) expect(p).toMatchObject({ owner: "w1", target: "w2", move: "releasing" });
        // Balanced per step: each step's partitions split between the two.
        const steps = new Set(moving.partitions.map((p) => p.step));
        for (const step of steps) {
          const of = moving.partitions.filter((p) => p.step === step);
          const toW2 = of.filter((p) => p.target === "w2").length;
          expect(Math.abs(of.length - 2 * toW2), step).toBeLessThanOrEqual(1);
        }
        const movingText = await statusText(nats.url);
        expect(movingText).toMatch(new RegExp(`^moves in progress: ${w2!.share}$`, "m"));
        expect(movingText).toMatch(/^ {2}\S+\.\d+ {2}releasing w1 -> w2$/m);

        // w1 resumes: it checkpoints and gives them back, w2 takes them; settled again.
        workers.get("w1")!.kill("SIGCONT");
        await waitFor(async () => {
          const now = await status(nats.url);
          return now.partitions.every((p) => p.move === null && p.owner === p.target) &&
            now.workers.length === 2 && now.workers.every((w) =>
              w.partitions === w.share && w.share >= Math.floor(coffeeShopActors / 2)
            );
        }, { timeoutMs: 60_000, intervalMs: 200, message: () => `the move completes\n${output()}` });
        await publishOrders(nc, { stream: "orders", seed: 4, count: 1_000 });
        await waitFor(async () => (await status(nats.url)).partitions.every((p) => p.lag === 0), {
          timeoutMs: 60_000,
          intervalMs: 200,
          message: () => `both caught up, by eddy status\n${output()}`,
        });

        // w2 leaves (SIGTERM): its entry goes, w1 takes every partition back at once.
        workers.get("w2")!.kill("SIGTERM");
        expect(await workers.get("w2")!.exited, output()).toBe(0);
        workers.delete("w2");
        await waitFor(async () => {
          const now = await status(nats.url);
          return now.workers.length === 1 && now.workers[0]!.partitions === coffeeShopActors &&
            now.partitions.every((p) => p.owner === "w1" && p.move === null);
        }, { timeoutMs: 60_000, intervalMs: 200, message: () => `w1 holds every partition again\n${output()}` });

        // The last one leaves: no workers, every lease free, and with nobody to take them nothing moves.
        workers.get("w1")!.kill("SIGTERM");
        expect(await workers.get("w1")!.exited, output()).toBe(0);
        workers.delete("w1");
        const none = await status(nats.url);
        expect(none.workers).toEqual([]);
        expect(none.partitions.length).toBe(coffeeShopActors);
        for (const p of none.partitions) expect(p).toMatchObject({ owner: null, target: null, move: null, lag: 0 });
        const noneText = await statusText(nats.url);
        expect(noneText).toMatch(/^workers: 0 live \(none\)$/m);
        expect(noneText).toMatch(/^moves in progress: none$/m);
      } finally {
        for (const w of workers.values()) {
          w.kill("SIGCONT");
          w.kill("SIGTERM");
        }
        for (const w of workers.values()) await w.exited;
      }
    },
  );
});

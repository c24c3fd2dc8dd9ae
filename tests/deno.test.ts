/**
 * Eddy on Deno: `deno check` accepts src/, actors/ and examples/ (which import `@eddy/eddy`, mapped
 * to src/mod.ts in deno.json), `deno publish --dry-run` accepts the JSR package (deno.json's name,
 * version, `exports` and `publish.include`; it runs offline), and the coffee-shop pipeline, run under Deno
 * through the `eddy` command (src/platform/deno-main.ts), computes the same result tables, row for
 * row, as the same pipeline run under Node over the same orders.
 *
 * Deno comes from the `deno` devDependency and resolves npm packages from node_modules
 * (deno.json: "nodeModulesDir": "manual"); it must never need the network: `--cached-only` makes
 * it fail rather than download, and the update check is off.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/nats-core";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { conventionViolations, type Family, parseExposition, promClientTotalGauges } from "./support/exposition.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { readGroup } from "../src/cluster/group.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { caughtUp, coffeeShopActors, startWorkerProcess } from "./support/worker-process.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
/**
 * The deno executable itself, as the npm package's own launcher finds it. Not node_modules/.bin/deno:
 * if npm left that pointing at the package's Node wrapper (bin.cjs, spawnSync), a SIGTERM would end
 * the wrapper and orphan Deno.
 */
const deno = (createRequire(import.meta.url)("deno/install_api.cjs") as { runInstall(): string }).runInstall();
const denoEnv = {
  ...process.env,
  DENO_NO_UPDATE_CHECK: "1",
  DENO_NO_PROMPT: "1",
  NO_COLOR: "1",
};

const COUNT = 5_000;
const SEED = 42;
const TABLES = ["revenue_by_store", "revenue_by_item"] as const;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Spawn deno with `args` from the repository root; stderr is kept for failure messages. */
function spawnDeno(args: string[]) {
  const child = spawn(deno, args, { cwd: root, env: denoEnv, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, exited, output: () => output };
}

/** `eddy run` of the coffee-shop pipeline under Deno, against `url`, with `args` added. */
function coffeeShopOnDeno(url: string, args: string[]) {
  return spawnDeno([
    "run",
    "-A",
    "--cached-only",
    "src/platform/deno-main.ts",
    "run",
    "examples/coffee-shop/pipeline.ts",
    "--export",
    "coffeeShop",
    "--nats",
    url,
    ...args,
  ]);
}

type Row = { key: string; orders: number } & Record<string, unknown>;

async function tables(nc: NatsConnection): Promise<Record<string, Row[]>> {
  const out: Record<string, Row[]> = {};
  for (const name of TABLES) {
    out[name] = (await readTable<Row>(nc, name)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  return out;
}

/** Every order is counted in both tables (a table that does not exist yet throws: not yet). */
async function complete(nc: NatsConnection): Promise<boolean> {
  const all = await tables(nc);
  return TABLES.every((name) => all[name]!.reduce((n, row) => n + row.orders, 0) === COUNT);
}

describe("Deno", () => {
  const denoNats = useNatsServer();
  const nodeNats = useNatsServer();
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });

  it("deno check passes on src/, actors/ and examples/", async () => {
    const check = spawnDeno(["check", "--cached-only", "src/", "actors/", "examples/"]);
    children.push(check.child);
    const { code } = await check.exited;
    expect(code, check.output()).toBe(0);
  }, 60_000);

  it("deno publish --dry-run accepts the JSR package", async () => {
    // --allow-slow-types: JSR's fast check cannot infer the classes that extend effect's
    // Data.TaggedError (src/core/errors.ts), so the package would ship without generated .d.ts.
    const publish = spawnDeno(["publish", "--dry-run", "--allow-dirty", "--allow-slow-types"]);
    children.push(publish.child);
    const { code } = await publish.exited;
    expect(code, publish.output()).toBe(0);
    expect(publish.output()).toContain("Simulating publish of @eddy/eddy@0.1.0");
    expect(publish.output()).toContain("Dry run complete");
  }, 60_000);

  it("runs the coffee-shop pipeline under Deno with the same result tables as under Node", async () => {
    const [denoNc, nodeNc] = await Promise.all([denoNats.connect(), nodeNats.connect()]);
    await Promise.all([
      publishOrders(denoNc, { stream: "orders", seed: SEED, count: COUNT }),
      publishOrders(nodeNc, { stream: "orders", seed: SEED, count: COUNT }),
    ]);

    // Under Deno: the `eddy run` command as a child process, stopped with SIGTERM.
    const run = coffeeShopOnDeno(denoNats.url, [
      "--checkpoint-ms",
      "100",
      "--port",
      "0",
    ]);
    children.push(run.child);
    let gone: Exit | undefined;
    void run.exited.then((exit) => (gone = exit), () => undefined);

    // Under Node, meanwhile: the same pipeline definition, in this process.
    const worker = await Worker.start(nodeNc, coffeeShop(), { checkpointMs: 100 });
    try {
      await waitFor(() => complete(nodeNc), { timeoutMs: 30_000, intervalMs: 100, message: "Node: every order in both tables" });
    } finally {
      await worker.stop();
    }

    await waitFor(
      () => {
        if (gone) throw new Error(`deno exited early (${JSON.stringify(gone)}):\n${run.output()}`);
        return complete(denoNc);
      },
      { timeoutMs: 40_000, intervalMs: 100, message: "Deno: every order in both tables" },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\ndeno output:\n${run.output()}`, { cause: err });
    });
    // The run command says it runs once its query API listens, which may be after the tables fill.
    await waitFor(() => run.output().includes('"event":"running"'), { timeoutMs: 20_000, message: `running\n${run.output()}` });
    // The query API beside it, under Deno too: the dashboard page and the actors it reads.
    const http = /"event":"running".*"http":"([^"]+)"/.exec(run.output())?.[1];
    expect(http, run.output()).toBeDefined();
    const page = await fetch(`${http}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(await page.text()).toContain("<title>Eddy");
    const actors = (await (await fetch(`${http}/actors`)).json()) as { pipeline: string; actors: unknown[] };
    expect(actors.pipeline).toBe("coffee-shop");
    expect(actors.actors.length).toBeGreaterThan(0);
    const top = (await (await fetch(`${http}/tables/top_items_per_store/rows/store-1/top`)).json()) as { entries: unknown[] };
    expect(top.entries.length).toBe(5);
    // /metrics under Deno: it parses strictly, and the process and runtime metrics are real (the GC
    // pauses and the event loop's delay come from Deno's probes, src/platform/runtime-probes.ts).
    let families = new Map<string, Family>();
    const total = (name: string, sample = name) =>
      families.get(name)?.samples.filter((s) => s.name === sample).reduce((n, s) => n + s.value, 0) ?? 0;
    await waitFor(
      async () => {
        families = parseExposition(await (await fetch(`${http}/metrics`)).text()).families;
        return total("nodejs_gc_duration_seconds", "nodejs_gc_duration_seconds_count") > 0; // harvested every second
      },
      { timeoutMs: 10_000, message: "Deno: a GC pause in nodejs_gc_duration_seconds" },
    );
    expect(conventionViolations(families, promClientTotalGauges)).toEqual([]);
    expect(total("eddy_checkpoint_duration_seconds", "eddy_checkpoint_duration_seconds_count")).toBeGreaterThan(0);
    expect(total("eddy_checkpoint_size_bytes", "eddy_checkpoint_size_bytes_sum")).toBeGreaterThan(0);
    const cpu = total("process_cpu_seconds_total");
    expect(cpu).toBeGreaterThan(0.1); // since Deno started: it compiled and ran the pipeline
    expect(total("process_resident_memory_bytes")).toBeGreaterThan(10_000_000);
    expect(total("process_open_fds")).toBeGreaterThan(2);
    expect(Math.abs(total("process_start_time_seconds") - Date.now() / 1000)).toBeLessThan(120);
    expect(total("nodejs_heap_size_used_bytes")).toBeGreaterThan(1_000_000);
    // GCProfiler's cost unit (nanoseconds on Deno): a mean pause between 10 µs and 1 s, all of them under the CPU time.
    const gcSeconds = total("nodejs_gc_duration_seconds", "nodejs_gc_duration_seconds_sum");
    const gcs = total("nodejs_gc_duration_seconds", "nodejs_gc_duration_seconds_count");
    expect(gcSeconds / gcs).toBeGreaterThan(1e-5);
    expect(gcSeconds / gcs).toBeLessThan(1);
    expect(gcSeconds).toBeLessThan(cpu);
    // The event loop's delay samples are whole 10 ms intervals, as Node's monitor records them.
    expect(total("nodejs_eventloop_lag_p50_seconds")).toBeGreaterThanOrEqual(0.009);
    expect(total("nodejs_eventloop_lag_max_seconds")).toBeLessThan(10);
    run.child.kill("SIGTERM");
    const exit = await run.exited;
    expect(exit, run.output()).toEqual({ code: 0, signal: null });
    expect(run.output()).toContain('"event":"stopping","signal":"SIGTERM"');

    const [fromDeno, fromNode] = await Promise.all([tables(denoNc), tables(nodeNc)]);
    expect(fromDeno.revenue_by_store).toHaveLength(5);
    expect(fromDeno.revenue_by_item).toHaveLength(12);
    expect(fromDeno).toEqual(fromNode);
  }, 60_000);
});

describe("a Deno worker and a Node worker in one group", () => {
  const nats = useNatsServer();

  it("share the coffee shop's partitions and give exact tables", async () => {
    const nc = await nats.connect();
    const seed = 5;
    const count = 20_000;
    await publishOrders(nc, { stream: "orders", seed, count: 0 });
    const group = ["--member-timeout-ms", "3000", "--checkpoint-ms", "200"];
    const onDeno = coffeeShopOnDeno(nats.url, [
      "--worker-id",
      "on-deno",
      ...group,
    ]);
    const onNode = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", [
      "--worker-id",
      "on-node",
      ...group,
    ]);
    const output = () => `--- deno\n${onDeno.output().slice(-3000)}\n--- node\n${onNode.output().slice(-3000)}`;
    try {
      await waitFor(async () => {
        const now = await readGroup(nc, "coffee-shop");
        const runtimes = new Set(now?.members.map((m) => m.runtime));
        const owners = new Set(Object.values(now?.owners ?? {}));
        return runtimes.has("deno") && runtimes.has("node") && owners.has("on-deno") && owners.has("on-node");
      }, { timeoutMs: 60_000, message: `both workers hold partitions\n${output()}` });
      await publishOrders(nc, { stream: "orders", seed, count, ratePerSec: 4_000 });
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 60_000,
        message: `caught up\n${output()}`,
      });
    } finally {
      onDeno.child.kill("SIGTERM");
      onNode.kill("SIGTERM");
    }
    expect(await onDeno.exited, output()).toEqual({ code: 0, signal: null });
    expect(await onNode.exited, output()).toBe(0);
    await expectExactCoffeeShop(nc, seed, count);
  }, 120_000);
});

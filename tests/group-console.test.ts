/**
 * The console shows a group live, in chromium: a standalone `eddy serve` (no worker in it, started
 * before any worker, so it finds the group in KV by itself) serves the overview; `eddy run`
 * workers of the coffee shop come and go. The page shows the first worker holding every partition,
 * then a second one joining while the first is SIGSTOPped, so that the partitions it should give
 * the newcomer are seen in motion (releasing, outlined in the newcomer's colour) and its heartbeat
 * ageing; then, SIGCONTed, the first gives them back and the page shows the split, the moved cells
 * flashing with where they came from; then the first leaves (SIGTERM) and the second holds every
 * partition. What the page shows is checked against the group's
 * bucket (readGroup) each time. A screenshot of each stage goes to test-results/.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { readGroup } from "../src/cluster/group.ts";
import { launchChromium } from "./support/chromium.ts";
import { startServe } from "./support/eddy-command.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { coffeeShopActors, startWorkerProcess, type WorkerProcess } from "./support/worker-process.ts";

interface Shown {
  workers: { id: string; live: boolean; partitions: number; heartbeatMs: number; text: string }[];
  cells: { key: string; owner: string; target: string; move: string; previous: string; moved: boolean; gone: boolean }[];
  summary: string;
}

/** The coffee-shop group as the page shows it, from its DOM. */
function shown(page: Page): Promise<Shown> {
  return page.locator('#groups .group[data-pipeline="coffee-shop"]').evaluateAll((groups) => {
    const group = groups[0];
    const all = (selector: string) => (group ? [...group.querySelectorAll(selector)] : []);
    return {
      workers: all(".worker").map((w) => ({
        id: w.getAttribute("data-worker")!,
        live: w.getAttribute("data-live") === "true",
        partitions: Number(w.getAttribute("data-partitions")),
        heartbeatMs: Number(w.querySelector("[data-field=heartbeat]")!.getAttribute("data-value")),
        text: w.textContent ?? "",
      })),
      cells: all(".cell").map((c) => ({
        key: `${c.getAttribute("data-step")}.${c.getAttribute("data-partition")}`,
        owner: c.getAttribute("data-owner")!,
        target: c.getAttribute("data-target")!,
        move: c.getAttribute("data-move")!,
        previous: c.getAttribute("data-previous")!,
        moved: c.classList.contains("moved"),
        gone: c.classList.contains("gone"),
      })),
      summary: group?.querySelector("h3 small")?.textContent ?? "",
    };
  });
}

/** The owners the page shows equal the leases in the group's bucket, and there are `workers` live. */
async function pageEqualsBucket(nc: NatsConnection, page: Page, workers: string[]): Promise<Shown> {
  const group = await readGroup(nc, "coffee-shop");
  const now = await shown(page);
  expect(now.workers.filter((w) => w.live).map((w) => w.id)).toEqual(workers);
  expect(Object.fromEntries(now.cells.map((c) => [c.key, c.owner]))).toEqual(group?.owners);
  expect(now.cells.every((c) => c.move === "")).toBe(true);
  return now;
}

// Long: w2 must not judge w1 gone while w1 is stopped, nor w1 find its heartbeat lapsed when it resumes.
const args = (id: string) => ["--worker-id", id, "--member-timeout-ms", "30000", "--checkpoint-ms", "200"];

describe("the console shows workers and partition ownership", () => {
  const nats = useNatsServer();

  it("live, on a standalone eddy serve, as workers join and leave", { timeout: 180_000 }, async () => {
    const nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 21, count: 1_000 });
    const serve = await startServe(nats.url, ["--refresh-ms", "500"]);
    const browser = await launchChromium();
    const workers = new Map<string, WorkerProcess>();
    const start = (id: string, extra: string[] = []) =>
      workers.set(id, startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", [...args(id), ...extra]));
    const output = () =>
      [...workers].map(([id, w]) => `--- ${id}\n${w.output().slice(-2000)}`).join("\n") +
      `\n--- serve\n${serve.err().slice(-2000)}`;
    const page = browser.page;
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    mkdirSync("test-results", { recursive: true });
    const screenshot = (name: string) => page.screenshot({ path: join(process.cwd(), "test-results", name), fullPage: true });
    try {
      expect((await page.goto(serve.url))?.status()).toBe(200);
      // No group yet: the section stays hidden.
      await waitFor(async () => (await page.locator("#status").textContent())!.startsWith("live"), {
        timeoutMs: 10_000,
        message: "the overview polls",
      });
      expect(await page.locator("#groups-section").isHidden()).toBe(true);

      // One worker: it holds every partition.
      start("w1");
      await waitFor(async () => {
        const now = await pageEqualsBucket(nc, page, ["w1"]);
        return now.cells.length === coffeeShopActors && now.cells.every((c) => c.owner === "w1");
      }, { timeoutMs: 60_000, intervalMs: 200, message: () => `the page shows w1 holding every partition\n${output()}` });
      const alone = await shown(page);
      expect(alone.workers[0]!.text).toMatch(new RegExp(`^w1.* · node · pid \\d+beat .*${coffeeShopActors} partitions$`));
      expect(alone.summary).toBe(`1 live · ${coffeeShopActors} partitions · settled`);
      await screenshot("group-console-one.png");

      // A second joins while the first is stopped (SIGSTOP): the partitions the balance gives w2
      // wait on w1 to give them back, and the page shows them in motion, w1's heartbeat ageing.
      workers.get("w1")!.kill("SIGSTOP");
      start("w2", ["--port", "0"]); // and its query API, with the coffee-shop dashboard
      await waitFor(async () => {
        const now = await shown(page);
        const w1 = now.workers.find((w) => w.id === "w1");
        const w2 = now.workers.find((w) => w.id === "w2");
        const releasing = now.cells.filter((c) => c.move === "releasing");
        return w1?.live === true && w1.heartbeatMs >= 1_000 && w2?.live === true && w2.partitions === 0 &&
          releasing.length === Math.floor(coffeeShopActors / 2) &&
          releasing.every((c) => c.owner === "w1" && c.target === "w2") &&
          now.summary.endsWith(`${releasing.length} moving`);
      }, { timeoutMs: 60_000, intervalMs: 200, message: () => `the page shows partitions releasing to w2\n${output()}` });
      expect(await page.locator("#groups .cell.moving").count()).toBe(Math.floor(coffeeShopActors / 2));
      expect(await page.locator('#groups [data-field="moves"]').textContent()).toMatch(/^moving: \S+\/\d+ releasing w1 → w2, /);
      await screenshot("group-console-moving.png");

      // w1 resumes: it gives them back and w2 takes them; the moved ones flash with where they came from.
      const moved = new Set<string>();
      workers.get("w1")!.kill("SIGCONT");
      await waitFor(async () => {
        const now = await pageEqualsBucket(nc, page, ["w1", "w2"]);
        for (const c of now.cells) if (c.moved && c.owner === "w2" && c.previous === "w1") moved.add(c.key);
        const held = (id: string) => now.cells.filter((c) => c.owner === id).length;
        return held("w1") + held("w2") === coffeeShopActors && Math.abs(held("w1") - held("w2")) <= 1;
      }, { timeoutMs: 60_000, intervalMs: 100, message: () => `the page shows the split settled\n${output()}` });
      const split = await shown(page);
      const w2Cells = split.cells.filter((c) => c.owner === "w2").map((c) => c.key).sort();
      expect(w2Cells.length).toBe(Math.floor(coffeeShopActors / 2));
      expect([...moved].sort()).toEqual(w2Cells);
      await screenshot("group-console-two.png");

      // w1 leaves (SIGTERM): it is gone from the page, w2 holds every partition, w1's former ones flashing.
      workers.get("w1")!.kill("SIGTERM");
      expect(await workers.get("w1")!.exited, output()).toBe(0);
      workers.delete("w1");
      await waitFor(async () => {
        const now = await pageEqualsBucket(nc, page, ["w2"]);
        return now.cells.every((c) => c.owner === "w2") && !now.workers.some((w) => w.id === "w1");
      }, { timeoutMs: 30_000, intervalMs: 100, message: () => `the page shows w2 holding every partition\n${output()}` });
      const after = await shown(page);
      const fromW1 = after.cells.filter((c) => c.moved && c.previous === "w1").map((c) => c.key);
      const w1Cells = split.cells.filter((c) => c.owner === "w1").map((c) => c.key);
      expect(fromW1).toEqual(expect.arrayContaining(w1Cells));
      await screenshot("group-console-left.png");

      // Beside a worker (eddy run --port), the pipeline's own dashboard shows the group too, itself marked.
      const http = /"event":"running".*"http":"([^"]+)"/.exec(workers.get("w2")!.output())?.[1];
      expect(http, output()).toBeDefined();
      expect((await page.goto(http!))?.status()).toBe(200);
      await waitFor(async () => {
        const now = await shown(page);
        return now.cells.length === coffeeShopActors && now.cells.every((c) => c.owner === "w2") &&
          now.workers.length === 1 && now.workers[0]!.text.includes("this process");
      }, { timeoutMs: 20_000, intervalMs: 200, message: () => `w2's dashboard shows its group\n${output()}` });
      expect(await page.title()).toContain("coffee shop");
      await screenshot("group-console-dashboard.png");
      expect(errors).toEqual([]);
    } finally {
      for (const w of workers.values()) w.kill("SIGTERM");
      for (const w of workers.values()) await w.exited;
      await browser.close();
      expect(await serve.stop()).toBe(0);
    }
  });
});

/**
 * The eddy command: `eddy dev` runs the demo on an embedded nats-server and stops cleanly on
 * SIGINT; `eddy query` reads its tables; wrong configuration ends with one clear message and a
 * fix, never a stack trace.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { findFreePort, isPortFree } from "../src/platform/nats-server.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readRow } from "../src/state/table.ts";
import { eddy } from "./support/eddy-command.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { actorCount } from "./support/worker-process.ts";

describe("eddy dev", () => {
  const cwd = mkdtempSync(join(tmpdir(), "eddy-dev-"));
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it("starts nats-server, runs the coffee shop, answers queries, and stops on SIGINT", { timeout: 90_000 }, async () => {
    const dev = eddy(["dev", "--rate", "500", "--count", "1500", "--summary-ms", "0", "--checkpoint-ms", "100", "--port", "0"], {
      cwd,
    });
    // Not a terminal: JSON log lines on stderr.
    const logs = () => dev.err().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, string>);
    await waitFor(() => logs().some((l) => l.event === "ready"), {
      timeoutMs: 30_000,
      message: `dev started\n${dev.out()}${dev.err()}`,
    });
    expect(logs()[0]).toMatchObject({ level: "info", cmd: "dev", event: "nats-started" });
    const url = readFileSync(join(cwd, ".eddy/nats-url"), "utf8").trim();
    expect(url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toMatch(/:4222$/);

    let total = 0;
    await waitFor(
      async () => {
        const q = eddy(["query", "revenue_by_store"], { cwd });
        if ((await q.exited) !== 0) return false;
        const rows = q.out().trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { orders: number });
        total = rows.reduce((n, r) => n + r.orders, 0);
        return total === 1500;
      },
      { timeoutMs: 45_000, intervalMs: 300, message: "1500 orders in revenue_by_store" },
    );
    expect(total).toBe(1500);
    const one = eddy(["query", "revenue_by_store", "store-1"], { cwd });
    expect(await one.exited).toBe(0);
    expect(JSON.parse(one.out())).toMatchObject({ key: "store-1" });
    // The same process serves the query API.
    const api = logs().find((l) => l.event === "query-api")!.tables!.replace(/\/tables$/, "");
    const answer = (await (await fetch(`${api}/tables/revenue_by_store/rows/store-1`)).json()) as {
      row: { key: string; orders: number };
    };
    expect(answer.row).toEqual(JSON.parse(one.out()));

    // What the actors committed: every partition of every step, none of the orders' steps behind
    // the stream. The order lifecycle's steps read status events
    // that keep falling due for minutes, so they are only required to hold open orders.
    const lifecycleSteps = new Set(["order", "serve-time", "open-orders"]);
    await waitFor(
      async () => {
        const st = eddy(["status", "coffee-shop", "--json"], { cwd });
        if ((await st.exited) !== 0) return false;
        const actors = st.out().trim().split("\n").map((l) => JSON.parse(l) as { step: string; lag: number; keys: number });
        return actors.length === actorCount(coffeeShop({ orderStatus: "order_status" })) &&
          actors.every((a) => lifecycleSteps.has(a.step) || a.lag === 0) &&
          actors.some((a) => a.step === "store-revenue" && a.keys > 0) && actors.some((a) => a.step === "order" && a.keys > 0);
      },
      { timeoutMs: 30_000, intervalMs: 300, message: "eddy status shows every actor caught up" },
    );
    const table = eddy(["status", "coffee-shop"], { cwd });
    expect(await table.exited).toBe(0);
    expect(table.out()).toMatch(/^step\s+part\s+ckpt/);
    const unknown = eddy(["status", "no-such-pipeline"], { cwd });
    expect(await unknown.exited).toBe(2);
    expect(unknown.err()).toMatch(/pipeline "no-such-pipeline" has committed no checkpoint/);

    dev.child.kill("SIGINT");
    expect(await dev.exited).toBe(0);
    expect(logs().at(-1)).toMatchObject({ event: "stopped" });
    const port = Number(url.split(":").at(-1));
    await waitFor(() => isPortFree(port), { timeoutMs: 10_000, message: "embedded nats-server gone" });
  });
});

describe("clear errors", () => {
  const nats = useNatsServer();

  const expectClear = async (run: ReturnType<typeof eddy>, code: number, pattern: RegExp) => {
    expect(await run.exited).toBe(code);
    expect(run.err()).toMatch(pattern);
    expect(run.err()).toMatch(/fix: /);
    expect(run.err()).not.toMatch(/\n\s+at /);
  };

  it("unreachable NATS", { timeout: 30_000 }, async () => {
    const port = await findFreePort();
    await expectClear(
      eddy(["query", "revenue_by_store", "--nats", `nats://127.0.0.1:${port}`]),
      1,
      /cannot connect to NATS at nats:\/\/127\.0\.0\.1/,
    );
  });

  it("missing source stream", { timeout: 30_000 }, async () => {
    await expectClear(
      eddy(["run", "examples/coffee-shop/pipeline.ts", "--export", "coffeeShop", "--nats", nats.url]),
      1,
      /the source stream "orders" does not exist/,
    );
  });

  it("bad flags, values and modules", { timeout: 180_000 }, async () => {
    await expectClear(eddy(["dev", "--rate", "fast"]), 2, /--rate expects a non-negative number, got "fast"/);
    await expectClear(eddy(["dev", "--speed", "3"]), 2, /unknown flag --speed for `eddy dev`/);
    await expectClear(eddy(["run"]), 2, /`eddy run` needs <module>/);
    await expectClear(
      eddy(["run", "examples/coffee-shop/pipeline.ts", "--export", "nope", "--nats", nats.url]),
      2,
      /has no pipeline export "nope"/,
    );
    await expectClear(eddy(["query", "no_such_table", "--nats", nats.url]), 2, /there is no result table "no_such_table"/);
    await expectClear(eddy(["dev", "--log-format", "xml"]), 2, /--log-format must be one of json, human, got "xml"/);
    await expectClear(
      eddy(["serve", "--nats", nats.url], { env: { EDDY_LOG_LEVEL: "loud" } }),
      2,
      /EDDY_LOG_LEVEL must be one of debug, info, warn, error, got "loud"/,
    );
    await expectClear(eddy(["bench", "--cases", "ceiling,nope"]), 2, /--cases has unknown case "nope"/);
    await expectClear(eddy(["bench", "--events", "0"]), 2, /--events must be a positive number, got 0/);
    await expectClear(eddy(["tail"]), 2, /`eddy tail` needs <table>/);
    await expectClear(
      eddy(["tail", "revenue_by_store", "--format", "yaml", "--nats", nats.url]),
      2,
      /--format must be json or human/,
    );
    const unknown = eddy(["frobnicate"]);
    expect(await unknown.exited).toBe(2);
    expect(unknown.err()).toMatch(/unknown command "frobnicate"/);
  });

  it("--help on every command shows an example", { timeout: 120_000 }, async () => {
    await Promise.all(
      ["dev", "run", "query", "status", "serve", "tail", "gen", "bench"].map(async (command) => {
        const help = eddy([command, "--help"]);
        expect(await help.exited).toBe(0);
        expect(help.out()).toContain(`eddy ${command}`);
        expect(help.out()).toContain("Examples:");
      }),
    );
  });
});

describe("eddy gen and eddy tail", () => {
  const nats = useNatsServer();

  it("gen prints plain progress lines when not on a terminal, and stops cleanly on SIGINT", { timeout: 120_000 }, async () => {
    const done = eddy(["gen", "--count", "3000", "--nats", nats.url]);
    expect(await done.exited).toBe(0);
    expect(done.out()).toContain("published 3000 orders to orders");
    expect(done.err()).toMatch(/^publishing  100%  3,000\/3,000 orders  [\d,]+\/s  in \d+ s  acknowledged$/m);
    expect(done.err()).not.toContain("\r");

    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    const before = (await jsm.streams.info("orders")).state.last_seq;
    const endless = eddy(["gen", "--count", "1000000", "--rate", "200", "--nats", nats.url]);
    await waitFor(async () => (await jsm.streams.info("orders")).state.last_seq > before, {
      timeoutMs: 60_000,
      message: "gen publishing",
    });
    endless.child.kill("SIGINT");
    expect(await endless.exited).toBe(0);
    expect(endless.err()).toMatch(/stopped by SIGINT/);
    expect(endless.out()).toMatch(/published \d+ orders to orders/);
  });

  it("tail follows one row as orders arrive, as JSON lines, until SIGINT", { timeout: 120_000 }, async () => {
    const nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 5, count: 100 });
    const worker = await Worker.start(nc, coffeeShop(), { checkpointMs: 200 });
    try {
      await waitFor(async () => (await readRow(nc, "revenue_by_store", "store-1")) !== undefined, {
        timeoutMs: 20_000,
        message: "store-1 has a row",
      });
      const tail = eddy(["tail", "revenue_by_store", "store-1", "--current", "--nats", nats.url]);
      const lines = () =>
        tail.out().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { op: string; key: string; row: { orders: number } });
      await waitFor(() => lines().length > 0, { timeoutMs: 60_000, message: `tail prints the current row\n${tail.err()}` });
      const first = lines()[0]!;
      expect(first).toMatchObject({ op: "current", key: "store-1" });
      await publishOrders(nc, { stream: "orders", seed: 6, count: 200 });
      await waitFor(() => lines().some((l) => l.op === "upsert" && l.row.orders > first.row.orders), {
        timeoutMs: 20_000,
        message: "tail prints store-1's update",
      });
      expect(lines().every((l) => l.key === "store-1")).toBe(true);
      tail.child.kill("SIGINT");
      expect(await tail.exited).toBe(0);
    } finally {
      await worker.stop();
    }
  });
});

describe("credentials in NATS_URL", () => {
  // Users with passwords; connections without credentials (the test kit's readiness check) map
  // to "anon".
  const dir = mkdtempSync(join(tmpdir(), "eddy-auth-"));
  const config = join(dir, "auth.conf");
  writeFileSync(
    config,
    `accounts { APP { jetstream: enabled, users: [ { user: eddy, password: s3cret }, { user: anon, password: anon } ] } }
no_auth_user: anon
`,
  );
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const nats = useNatsServer({ extraArgs: ["-c", config] });

  it("connects with user:pass from NATS_URL and explains a refused password", { timeout: 60_000 }, async () => {
    const withPass = nats.url.replace("nats://", "nats://eddy:s3cret@");
    const ok = eddy(["gen", "--count", "10"], { env: { NATS_URL: withPass } });
    expect(await ok.exited).toBe(0);
    expect(ok.out()).toContain("published 10 orders");
    const wrong = eddy(["gen", "--count", "10"], { env: { NATS_URL: nats.url.replace("nats://", "nats://eddy:nope@") } });
    expect(await wrong.exited).toBe(1);
    expect(wrong.err()).toMatch(/refused the credentials/);
    expect(wrong.err()).toMatch(/fix: check the user\/password/);
  });
});

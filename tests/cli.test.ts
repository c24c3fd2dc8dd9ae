/**
 * The eddy command: `eddy dev` runs the demo on an embedded nats-server and stops cleanly on
 * SIGINT; `eddy query` reads its tables; wrong configuration ends with one clear message and a
 * fix, never a stack trace.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findFreePort, isPortFree } from "../src/platform/nats-server.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const bin = resolve("bin/eddy.js");

function eddy(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: { ...process.env, NATS_URL: "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? -1)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

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

    // What the actors committed: every partition of every step, none behind the stream.
    await waitFor(
      async () => {
        const st = eddy(["status", "coffee-shop", "--json"], { cwd });
        if ((await st.exited) !== 0) return false;
        const actors = st.out().trim().split("\n").map((l) => JSON.parse(l) as { step: string; lag: number; keys: number });
        return actors.length === 21 && actors.every((a) => a.lag === 0) &&
          actors.some((a) => a.step === "store-revenue" && a.keys > 0);
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

  it("bad flags, values and modules", { timeout: 30_000 }, async () => {
    await expectClear(eddy(["dev", "--rate", "fast"]), 2, /--rate expects a non-negative number, got "fast"/);
    await expectClear(eddy(["dev", "--speed", "3"]), 2, /unknown flag --speed for `eddy dev`/);
    await expectClear(eddy(["run"]), 2, /`eddy run` needs <module>/);
    await expectClear(
      eddy(["run", "examples/coffee-shop/pipeline.ts", "--export", "nope", "--nats", nats.url]),
      2,
      /has no pipeline export "nope"/,
    );
    await expectClear(eddy(["query", "no_such_table", "--nats", nats.url]), 2, /there is no result table "no_such_table"/);
    const unknown = eddy(["frobnicate"]);
    expect(await unknown.exited).toBe(2);
    expect(unknown.err()).toMatch(/unknown command "frobnicate"/);
  });

  it("--help on every command shows an example", { timeout: 30_000 }, async () => {
    for (const command of ["dev", "run", "query", "status", "serve", "gen"]) {
      const help = eddy([command, "--help"]);
      expect(await help.exited).toBe(0);
      expect(help.out()).toContain(`eddy ${command}`);
      expect(help.out()).toContain("Examples:");
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

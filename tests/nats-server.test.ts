/**
 * The nats-server process that `eddy dev` and every integration test run on: it starts with
 * JetStream, carries messages, stops cleanly (process gone, port free), keeps a given store across
 * a SIGKILL, and explains what to do when the binary is missing or the server cannot start.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPortFree, NatsServerError, startNatsServer } from "../src/platform/nats-server.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("nats-server started by the test kit", () => {
  const nats = useNatsServer();

  it("serves JetStream, then stops: process gone, port free", async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
    const js = jetstream(nc);
    const ack = await js.publish("orders.store1", JSON.stringify({ item: "latte", qty: 2 }));
    expect(ack.seq).toBe(1);
    const msg = await jsm.streams.getMessage("ORDERS", { seq: 1 });
    expect(msg?.json()).toEqual({ item: "latte", qty: 2 });
    await nc.close();

    const { pid, port } = nats.server;
    expect(isRunning(pid)).toBe(true);
    expect(await isPortFree(port)).toBe(false);
    await nats.server.stop();
    await nats.server.exited;
    expect(isRunning(pid)).toBe(false);
    expect(await isPortFree(port)).toBe(true);
  });
});

describe("startNatsServer", () => {
  it("explains how to install nats-server when the binary is missing", async () => {
    const start = startNatsServer({ binary: "/nonexistent/nats-server" });
    await expect(start).rejects.toBeInstanceOf(NatsServerError);
    await expect(start).rejects.toThrow(/sudo apt-get install -y nats-server/);
    await expect(start).rejects.toThrow(/npm run setup/);
  });

  it("reports the server's own output when it exits before it is ready", async () => {
    const first = await startNatsServer();
    try {
      const second = startNatsServer({ port: first.port });
      await expect(second).rejects.toThrow(/address already in use/);
    } finally {
      await first.stop();
    }
  }, 30_000);

  it("keeps a given store dir across a SIGKILL and restart on the same port", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "eddy-test-store-"));
    try {
      const first = await startNatsServer({ storeDir });
      const nc = await connect({ servers: first.url, noAsyncTraces: true });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "MENU", subjects: ["menu"] });
      await jetstream(nc).publish("menu", "espresso");
      await nc.close();
      first.kill("SIGKILL");
      expect(await first.exited).toBeNull();
      await waitFor(() => isPortFree(first.port), { message: "port released after SIGKILL" });

      const second = await startNatsServer({ storeDir, port: first.port });
      try {
        const nc2 = await connect({ servers: second.url, noAsyncTraces: true });
        const info = await (await jetstreamManager(nc2)).streams.info("MENU");
        expect(info.state.messages).toBe(1);
        await nc2.close();
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 30_000);

  it("waitFor names what it waited for when time runs out", async () => {
    await expect(waitFor(() => false, { timeoutMs: 50, message: "the answer" })).rejects.toThrow(
      /waitFor: the answer not met within 50 ms/,
    );
  });
});

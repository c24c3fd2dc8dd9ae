/**
 * A nats-server cluster on loopback for tests: three servers (by default), each with JetStream,
 * a store of its own, a name (`n1`, `n2`, ...) and routes to the others, on free ports (never
 * 4222). Started together (JetStream answers only once a meta leader is elected, which takes a
 * quorum), ready once a stream with a copy on every server can be created, and stopped, stores
 * deleted, afterwards. A server can be killed and started again on the same port and store, and
 * `leaderOf` names the server leading a stream.
 *
 * @example
 * describe("on a cluster", () => {
 *   const cluster = useNatsCluster();
 *   it("survives a leader stop", async () => {
 *     const nc = await cluster.connect(); // to every server, closed in afterAll
 *     const leader = await cluster.leaderOf("orders");
 *     await cluster.kill(leader, "SIGKILL");
 *     await cluster.restart(leader);
 *   });
 * });
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type JetStreamManager, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect as natsConnect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { findFreePort, type NatsServer, startNatsServer } from "../../src/platform/nats-server.ts";
import { waitFor } from "./nats.ts";

export interface ClusterNode {
  /** The server's name (`-n`), as JetStream reports leaders: "n1", "n2", ... */
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly storeDir: string;
  /** The running process; undefined while killed. */
  readonly server: NatsServer | undefined;
}

export interface NatsCluster {
  readonly nodes: readonly ClusterNode[];
  /** Every server's URL, comma-separated (what `eddy run --nats` takes). */
  readonly url: string;
  node(name: string): ClusterNode;
  /** A connection to the servers (all of them unless `names` given), closed by `stop()`. */
  connect(opts?: Partial<ConnectionOptions>, names?: readonly string[]): Promise<NatsConnection>;
  /**
   * The name of the server leading `stream` (retried until one leads, and it is not `not`: after
   * a leader stopped, the one elected in its place), within `timeoutMs` (default 30 000).
   */
  leaderOf(stream: string, options?: { readonly not?: string; readonly timeoutMs?: number }): Promise<string>;
  /** Send `signal` and wait for the server to exit; its store stays. */
  kill(name: string, signal: NodeJS.Signals): Promise<void>;
  /** Start a killed server again on its port and store; resolves once JetStream answers there. */
  restart(name: string): Promise<void>;
  /** Resolves once every copy of `stream` is current (no copy offline or behind). */
  waitForReplicas(stream: string, timeoutMs?: number): Promise<void>;
  /** Stop every server and delete the stores. */
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  readonly size?: number;
  /** How long to wait for the cluster to form (default 60 000 ms). */
  readonly readyTimeoutMs?: number;
}

/** Distinct free ports. */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < n && attempt < 10 * n; attempt++) {
    const port = await findFreePort();
    if (port !== 4222) ports.add(port);
  }
  if (ports.size < n) throw new Error(`could not find ${n} free ports`);
  return [...ports];
}

export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const ports = await freePorts(2 * size);
  const nodes = Array.from({ length: size }, (_, i) => ({
    name: `n${i + 1}`,
    port: ports[i]!,
    clusterPort: ports[size + i]!,
    url: `nats://127.0.0.1:${ports[i]}`,
    storeDir: mkdtempSync(join(tmpdir(), `eddy-nats-n${i + 1}-`)),
    server: undefined as NatsServer | undefined,
  }));
  // Removed by stop(); and if this process ends without it (a killed test run), on exit: the
  // servers themselves are killed then by src/platform/nats-server.ts.
  const removeStores = () => {
    for (const n of nodes) rmSync(n.storeDir, { recursive: true, force: true });
  };
  process.once("exit", removeStores);
  const connections: NatsConnection[] = [];
  const start = async (node: (typeof nodes)[number]) => {
    const routes = nodes.filter((n) => n !== node).map((n) => `nats://127.0.0.1:${n.clusterPort}`).join(",");
    node.server = await startNatsServer({
      port: node.port,
      storeDir: node.storeDir,
      readyTimeoutMs,
      extraArgs: [
        "-n",
        node.name,
        "--cluster_name",
        "eddy-test",
        "-cluster",
        `nats://127.0.0.1:${node.clusterPort}`,
        "-routes",
        routes,
      ],
    });
  };
  const node = (name: string) => {
    const found = nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no server ${name} in the cluster (${nodes.map((n) => n.name).join(", ")})`);
    return found;
  };
  const url = nodes.map((n) => n.url).join(",");
  const connect = async (opts: Partial<ConnectionOptions> = {}, names?: readonly string[]) => {
    const servers = (names ?? nodes.map((n) => n.name)).map((name) => node(name).url);
    const nc = await natsConnect({ servers, noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...opts });
    connections.push(nc);
    return nc;
  };
  const stop = async () => {
    await Promise.allSettled(connections.splice(0).map((nc) => nc.close()));
    await Promise.allSettled(nodes.map((n) => n.server?.stop()));
    removeStores();
    process.off("exit", removeStores);
  };

  let jsm: JetStreamManager | undefined;
  try {
    // Together: none of them answers for JetStream before a quorum elected a meta leader.
    await Promise.all(nodes.map(start));
    // Ready when a stream with a copy on every server can be created (every peer known to the meta leader).
    const ready = (jsm = await jetstreamManager(await connect(), { timeout: 5_000 }));
    await waitFor(async () => {
      await ready.streams.add({
        name: "cluster-ready",
        subjects: ["cluster-ready"],
        storage: StorageType.Memory,
        num_replicas: size,
      });
      return true;
    }, { timeoutMs: readyTimeoutMs, intervalMs: 250, message: `a stream with ${size} replicas on the cluster` });
    await ready.streams.delete("cluster-ready");
  } catch (error) {
    await stop();
    throw error;
  }

  // Made once, while the cluster is whole: making one asks JetStream, which fails during an election.
  const jsmOf = () => Promise.resolve(jsm!);
  return {
    nodes,
    url,
    node,
    connect,
    async leaderOf(stream, { not, timeoutMs = 30_000 } = {}) {
      const jsm = await jsmOf();
      let leader = "";
      await waitFor(async () => {
        leader = (await jsm.streams.info(stream)).cluster?.leader ?? "";
        return leader !== "" && leader !== not;
      }, { timeoutMs, intervalMs: 100, message: `a leader of ${stream}${not ? ` other than ${not}` : ""}` });
      return leader;
    },
    async kill(name, signal) {
      const n = node(name);
      const server = n.server;
      if (!server) return;
      server.kill(signal);
      await server.exited;
      n.server = undefined;
    },
    async restart(name) {
      const n = node(name);
      if (n.server) throw new Error(`${name} is running`);
      await start(n);
    },
    async waitForReplicas(stream, timeoutMs = 60_000) {
      const jsm = await jsmOf();
      await waitFor(async () => {
        const cluster = (await jsm.streams.info(stream)).cluster;
        const replicas = cluster?.replicas ?? [];
        return !!cluster?.leader && replicas.length === size - 1 && replicas.every((r) => r.current && !r.offline);
      }, { timeoutMs, intervalMs: 250, message: `every copy of ${stream} current` });
    },
    stop,
  };
}

/** A cluster for the enclosing `describe`: started before its tests, stopped (stores deleted) after them. */
export function useNatsCluster(options: NatsClusterOptions = {}): NatsCluster {
  let cluster: NatsCluster | undefined;
  const running = (): NatsCluster => {
    if (!cluster) throw new Error("useNatsCluster: the cluster is available only inside tests and hooks");
    return cluster;
  };
  beforeAll(async () => {
    cluster = await startNatsCluster(options);
  }, (options.readyTimeoutMs ?? 60_000) + 30_000);
  afterAll(() => cluster?.stop(), 60_000);
  return {
    get nodes() {
      return running().nodes;
    },
    get url() {
      return running().url;
    },
    node: (name) => running().node(name),
    connect: (opts, names) => running().connect(opts, names),
    leaderOf: (stream, options) => running().leaderOf(stream, options),
    kill: (name, signal) => running().kill(name, signal),
    restart: (name) => running().restart(name),
    waitForReplicas: (stream, timeoutMs) => running().waitForReplicas(stream, timeoutMs),
    stop: () => running().stop(),
  };
}

/**
 * The Publisher over two wires, side by side (bench case `publisher-internal-vs-public`): the
 * connection's public `nc.publish` (`connectionWire`, what src/log/publisher.ts uses) and the
 * protocol-frame writer it used before, which wrote `HPUB <subject> <reply> <hlen> <len>` frames into
 * 64 KiB buffers handed to nats-core's internal outbound queue (`protocol.sendCommand`). The frame
 * writer lives on here only to be measured against. Both run over the same ack-counting Publisher
 * (one wildcard ack inbox, the same ring and flush), on one connection, interleaved, order alternated
 * per round, into fresh file-backed streams and buckets:
 *
 *   small-msg-id   ~110-byte events with a Nats-Msg-Id (edges, stream sinks)
 *   kv-100kb       ~100 KB KV puts without headers (checkpoint chunks, table pages)
 *   small-no-hdr   ~110-byte events without headers
 *
 * Each figure is acked messages/s: from the first publish until flush() resolves, every message
 * stored (checked), with this process's CPU per message beside it (less at the mercy of a
 * shared machine's scheduling than wall time), after a warm-up run of each at a tenth of the size. ratio = internal / public, per round.
 *
 * @example
 *   npx tsx scripts/bench-publisher.ts [--rounds 3] [--small 100000] [--large 1500]
 *   npx tsx scripts/bench.ts --cases publisher-internal-vs-public   (the same, into bench/results.json)
 */
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { connectionWire, createPublisherOver, type PublisherWire } from "../src/log/publisher.ts";
import { PublishError } from "../src/core/errors.ts";
import { kvSubject } from "../src/core/names.ts";
import { startNatsServer } from "../src/platform/nats-server.ts";

export interface PublisherBenchOptions {
  readonly rounds: number;
  /** Messages per run of the small cases. */
  readonly small: number;
  /** Messages per run of the 100 KB case. */
  readonly large: number;
  readonly log: (line: string) => void;
}

type Kind = "small-msg-id" | "kv-100kb" | "small-no-hdr";
const KINDS: readonly Kind[] = ["small-msg-id", "kv-100kb", "small-no-hdr"];
const WIRES = ["internal", "public"] as const;
type WireName = (typeof WIRES)[number];
interface Measured {
  readonly rate: number;
  readonly cpuUsPerMsg: number;
}

const encoder = new TextEncoder();
const event = (i: number) =>
  encoder.encode(
    `{"orderId":"o-1-${i}","store":"store-${i % 5}","item":"latte","qty":2,"unitPrice":3.5,"ts":${1_700_000_000_000 + i}}`,
  );
const chunk = new Uint8Array(100 * 1024).map((_, i) => 32 + (i % 90));

/** Measure every kind over both wires, `rounds` times; the case's figures and ratios. */
export async function benchPublisherWires(nc: NatsConnection, opts: PublisherBenchOptions): Promise<Record<string, unknown>> {
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const rates: Record<Kind, Record<WireName, Measured[]>> = {
    "small-msg-id": { internal: [], public: [] },
    "kv-100kb": { internal: [], public: [] },
    "small-no-hdr": { internal: [], public: [] },
  };
  let n = 0;
  const run = async (kind: Kind, wireName: WireName, share = 1): Promise<Measured> => {
    const id = ++n;
    const wire = wireName === "internal" ? frameWire(nc) : connectionWire(nc);
    const publisher = createPublisherOver(nc, wire);
    const count = Math.ceil((kind === "kv-100kb" ? opts.large : opts.small) * share);
    let subjectOf: (i: number) => string;
    let stored: () => Promise<number>;
    let remove: () => Promise<unknown>;
    if (kind === "kv-100kb") {
      const bucket = `pubbench_${id}`;
      const kv = await kvm.create(bucket, { history: 1 });
      subjectOf = (i) => kvSubject(bucket, `c.${i}`);
      stored = async () => (await kv.status()).values;
      remove = () => kv.destroy();
    } else {
      const stream = `PUBBENCH${id}`;
      await jsm.streams.add({ name: stream, subjects: [`pubbench${id}.>`], duplicate_window: 120_000_000_000 });
      subjectOf = (i) => `pubbench${id}.${i % 5}`;
      stored = async () => (await jsm.streams.info(stream)).state.messages;
      remove = () => jsm.streams.delete(stream);
    }
    const data = kind === "kv-100kb" ? () => chunk : event;
    const batch = kind === "kv-100kb" ? 50 : 1000;
    const before = nc.stats();
    const start = performance.now();
    const cpu = process.cpuUsage();
    for (let i = 0; i < count; i++) {
      publisher.publish(subjectOf(i), data(i), kind === "small-msg-id" ? { msgId: `m-${i}` } : undefined);
      if (i % batch === batch - 1) await publisher.whenPendingBelow(kind === "kv-100kb" ? 200 : undefined);
    }
    await publisher.flush();
    const rate = count / ((performance.now() - start) / 1000);
    const used = process.cpuUsage(cpu);
    const cpuUsPerMsg = (used.user + used.system) / count;
    const after = nc.stats();
    await publisher.close();
    const got = await stored();
    if (got !== count) throw new Error(`${kind} over ${wireName}: ${got} stored, expected ${count}`);
    if (after.outMsgs - before.outMsgs < count) {
      throw new Error(
        `${kind} over ${wireName}: nc.stats().outMsgs grew by ${after.outMsgs - before.outMsgs}, expected ${count}`,
      );
    }
    await remove();
    return { rate, cpuUsPerMsg };
  };

  // Warm-up, not counted: a tenth of each run, so neither wire is measured while still being compiled.
  for (const kind of KINDS) for (const wire of WIRES) await run(kind, wire, 0.1);
  for (let round = 0; round < opts.rounds; round++) {
    for (const kind of KINDS) {
      const order = round % 2 === 0 ? WIRES : [...WIRES].reverse();
      for (const wire of order) rates[kind][wire].push(await run(kind, wire));
      const [i, p] = [rates[kind].internal.at(-1)!, rates[kind].public.at(-1)!];
      opts.log(
        `  round ${round + 1} ${kind.padEnd(12)} internal ${fmt(i.rate)}/s ${i.cpuUsPerMsg.toFixed(2)} µs  ` +
          `public ${fmt(p.rate)}/s ${p.cpuUsPerMsg.toFixed(2)} µs  internal/public ${(i.rate / p.rate).toFixed(2)} ` +
          `(client CPU per message ${(i.cpuUsPerMsg / p.cpuUsPerMsg).toFixed(2)})`,
      );
    }
  }
  const result: Record<string, unknown> = {};
  for (const kind of KINDS) {
    const { internal, public: pub } = rates[kind];
    result[kind] = {
      medianRatio: median(internal.map((m, i) => m.rate / pub[i]!.rate)),
      internalPerSec: internal.map((m) => Math.round(m.rate)),
      publicPerSec: pub.map((m) => Math.round(m.rate)),
      ratios: internal.map((m, i) => Number((m.rate / pub[i]!.rate).toFixed(3))),
      internalCpuUsPerMsg: internal.map((m) => Number(m.cpuUsPerMsg.toFixed(2))),
      publicCpuUsPerMsg: pub.map((m) => Number(m.cpuUsPerMsg.toFixed(2))),
    };
  }
  result.note =
    `acked messages/s, ${opts.small} small (~110 B) or ${opts.large} 100 KB messages a run, ${opts.rounds} rounds interleaved; ` +
    "ratio = internal frames via protocol.sendCommand / public nc.publish, over the same Publisher and ack inbox; " +
    "cpuUsPerMsg: this process's CPU (user + system) per message, from the first publish to flush()";
  return result;
}

const median = (xs: number[]) => Number(([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0).toFixed(3));
const fmt = (n: number) => Math.round(n).toLocaleString("en").padStart(9);

// ---------------------------------------------------------------------------------------------
// The internal path, as src/log/publisher.ts had it, plus the stats and headers checks it lacked.

/** Frames are handed to the connection once this many bytes are buffered (or at the end of the task). */
const FRAME_BUFFER_BYTES = 64 * 1024;

/** The internals of nats-core's ProtocolHandler the frame writer reaches into. */
interface Protocol {
  sendCommand(frame: Uint8Array): void;
  outMsgs: number;
  outBytes: number;
}

/** Protocol frames written into one buffer, handed to `nc.protocol.sendCommand` at 64 KiB or at the end of the task. */
export function frameWire(nc: NatsConnection): PublisherWire {
  const protocol = (nc as unknown as { protocol?: Protocol }).protocol;
  if (typeof protocol?.sendCommand !== "function") {
    throw new PublishError({ subject: "", message: "the frame wire needs a nats-core connection (its protocol.sendCommand)" });
  }
  let frames = new Uint8Array(2 * FRAME_BUFFER_BYTES);
  let framesLength = 0;
  let headerBytes = new Uint8Array(1024);
  let checkedSubject = "";
  const handOver = () => {
    if (framesLength === 0) return;
    const out = frames.subarray(0, framesLength);
    frames = new Uint8Array(2 * FRAME_BUFFER_BYTES);
    framesLength = 0;
    protocol.sendCommand(out);
  };
  return {
    publish(subject, reply, data, msgId, headers) {
      if (nc.isClosed() || nc.isDraining()) {
        throw new PublishError({
          subject,
          message: `publish to ${subject}: the connection is ${nc.isClosed() ? "closed" : "draining"}`,
        });
      }
      if (subject !== checkedSubject) {
        if (subject.length === 0 || /\s/.test(subject)) {
          throw new PublishError({ subject, message: `publish to "${subject}": invalid subject` });
        }
        checkedSubject = subject;
      }
      let hlen = 0;
      if (msgId !== undefined || headers !== undefined) {
        if (nc.info && !nc.info.headers) {
          throw new PublishError({ subject, message: `publish to ${subject}: the server does not support headers` });
        }
        let block = "NATS/1.0\r\n";
        if (headers) { for (const k in headers) block += `${k}: ${checkHeader(subject, headers[k] as string)}\r\n`; }
        if (msgId !== undefined) block += `Nats-Msg-Id: ${checkHeader(subject, msgId)}\r\n`;
        block += "\r\n";
        if (block.length * 3 > headerBytes.length) headerBytes = new Uint8Array(block.length * 3);
        hlen = encoder.encodeInto(block, headerBytes).written;
      }
      const len = hlen + data.length;
      const maxPayload = nc.info?.max_payload;
      if (maxPayload !== undefined && len > maxPayload) {
        throw new PublishError({
          subject,
          message: `publish to ${subject}: ${len} bytes exceed the server's max_payload ${maxPayload}`,
        });
      }
      const line = hlen > 0 ? `HPUB ${subject} ${reply} ${hlen} ${len}\r\n` : `PUB ${subject} ${reply} ${len}\r\n`;
      const need = line.length * 3 + len + 2; // UTF-8: at most 3 bytes per UTF-16 unit
      if (framesLength + need > frames.length) {
        handOver();
        if (need > frames.length) frames = new Uint8Array(need + FRAME_BUFFER_BYTES);
      }
      if (framesLength === 0) queueMicrotask(handOver);
      let at = framesLength;
      at += encoder.encodeInto(line, frames.subarray(at)).written;
      if (hlen > 0) {
        frames.set(headerBytes.subarray(0, hlen), at);
        at += hlen;
      }
      frames.set(data, at);
      at += data.length;
      frames[at++] = 13;
      frames[at++] = 10;
      framesLength = at;
      protocol.outMsgs++; // what nc.publish counts: one message, its headers and payload
      protocol.outBytes += len;
      if (at >= FRAME_BUFFER_BYTES) handOver();
    },
  };
}

function checkHeader(subject: string, value: string): string {
  if (value.includes("\r") || value.includes("\n")) {
    throw new PublishError({ subject, message: `publish to ${subject}: a header value contains CR or LF` });
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Standalone: its own nats-server (free port, temporary file store).

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const flag = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const server = await startNatsServer();
  try {
    const nc = await connect({ servers: server.url, noAsyncTraces: true });
    const result = await benchPublisherWires(nc, {
      rounds: flag("rounds", 3),
      small: flag("small", 100_000),
      large: flag("large", 1_500),
      log: console.log,
    });
    console.log(JSON.stringify(result, null, 2));
    await nc.close();
  } finally {
    await server.stop();
  }
}

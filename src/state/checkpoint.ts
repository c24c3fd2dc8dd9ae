/**
 * Checkpoints: an operator actor's keyed state and its input positions become durable together,
 * in one KV bucket per pipeline: copy-on-write chunks (a base plus deltas, under keys that name
 * the owner's generation) and a manifest per partition (`<step>.<partition>.manifest`: positions,
 * watermarks, chunk list, generation). Updating the manifest by compare-and-set is the atomic
 * commit; every recovery bumps the generation, which fences an older owner out.
 * See docs/ARCHITECTURE.md, "Keys, generations and fencing", for the key scheme.
 *
 * @example
 * const store = await CheckpointStore.open(nc, "coffee-shop", publisher);
 * const { manifest, revision, chunks } = await store.recover("revenue", 0, Date.now());
 */
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { type KV, Kvm } from "@nats-io/kv";
import { FencedError, StateStoreError } from "../core/errors.ts";
import { type Fence, unfenced } from "../core/fence.ts";
import { type Publisher } from "../log/publisher.ts";
import { waitForLeader } from "../log/streams.ts";
import { keysOf } from "./bucket.ts";
import { type ChunkRecords, decodeChunk } from "./keyed-state.ts";
import { WarmUp } from "./warm-up.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import { kvSubject } from "../core/names.ts";
import { stateBucket } from "../core/names.ts";

export interface Manifest {
  readonly version: 1;
  /** Bumped by every recovery; names the chunk keys written since. */
  readonly generation: number;
  /** The oldest generation that may still have chunk keys in the bucket. */
  readonly oldestGeneration: number;
  /** Commits so far. */
  readonly checkpoint: number;
  /** Per source: the last sequence whose effect is in this state. */
  readonly positions: Readonly<Record<string, number>>;
  /** Per source: its event-time watermark as of `positions` (JSON has no -Infinity: absent). */
  readonly watermarks: Readonly<Record<string, number>>;
  readonly chunkBits: number;
  /** Chunk index to the KV key holding its committed base. */
  readonly chunks: Readonly<Record<string, string>>;
  /** Chunk index to how many deltas follow its base (absent: none). */
  readonly deltas?: Readonly<Record<string, number>>;
  readonly keys: number;
  /** Clock time when the checkpoint this commit ends began. */
  readonly committedAt: number;
  /** Operator counters that must survive restarts (dead letters, ...). */
  readonly counters: Readonly<Record<string, number>>;
  /**
   * Per batched stream sink (actors/batched-sink.ts): the stream sequence from which its batches
   * may hold outputs of inputs after `positions`; a recovery reads them back from there.
   */
  readonly outputs?: Readonly<Record<string, number>>;
}

export interface RecoveredChunk {
  readonly index: number;
  readonly base: ChunkRecords;
  /** In the order they were written. */
  readonly deltas: readonly ChunkRecords[];
}

export interface Recovered {
  readonly manifest: Manifest;
  readonly revision: number;
  readonly chunks: readonly RecoveredChunk[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** nats-server's default max_payload is 1 MiB. */
export const maxChunkBytes = 1024 * 1024 - 4096;

/** How long a recovery waits for a warm-up to reach the manifest before it reads the chunks itself. */
const warmUpReachMs = 2000;

export class CheckpointStore {
  /** Partitions being warmed before they move here (`<step>.<partition>`). */
  readonly #warm = new Map<string, Promise<WarmUp>>();

  private constructor(
    readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly publisher: Publisher,
    readonly bucket: string,
    private readonly fence: Fence,
    private readonly clock: Clock,
    private readonly log: ((event: string, fields: Record<string, unknown>) => void) | undefined,
  ) {}

  /** The state bucket of a pipeline; with a `fence`, recoveries and commits happen only while it allows. */
  static async open(
    nc: NatsConnection,
    pipelineId: string,
    publisher: Publisher,
    options: {
      fence?: Fence;
      replicas?: number;
      clock?: Clock;
      log?: ((event: string, fields: Record<string, unknown>) => void) | undefined;
    } = {},
  ): Promise<CheckpointStore> {
    const bucket = stateBucket(pipelineId);
    try {
      const kv = await new Kvm(nc).create(bucket, { history: 1, storage: "file", replicas: options.replicas ?? 1 });
      if ((options.replicas ?? 1) > 1) await waitForLeader(await jetstreamManager(nc), `KV_${bucket}`);
      const jsm = await jetstreamManager(nc);
      const fence = options.fence ?? unfenced;
      return new CheckpointStore(nc, kv, jsm, publisher, bucket, fence, options.clock ?? systemClock, options.log);
    } catch (cause) {
      throw new StateStoreError({ key: bucket, message: `cannot open the state bucket ${bucket}: ${String(cause)}`, cause });
    }
  }

  /**
   * Follow a partition's state before it moves here (src/state/warm-up.ts); resolves once what is
   * written of it is decoded. Its next recovery takes the chunks from there.
   */
  async warm(step: string, partition: number): Promise<void> {
    const key = `${step}.${partition}`;
    let warm = this.#warm.get(key);
    if (!warm) {
      warm = WarmUp.start(this.nc, this.bucket, step, partition, { clock: this.clock, log: this.log });
      this.#warm.set(key, warm);
      warm.catch(() => this.#warm.get(key) === warm && this.#warm.delete(key));
    }
    await warm;
  }

  /** Stop warming a partition (it will not move here after all), or every one. */
  cool(step?: string, partition?: number): void {
    for (const [key, warm] of this.#warm) {
      if (step !== undefined && key !== `${step}.${partition}`) continue;
      this.#warm.delete(key);
      void warm.then((w) => w.stop(), () => undefined);
    }
  }

  /**
   * Take ownership of a partition's state: bump its generation (compare-and-set) and load its
   * chunks (from its warm-up, if it was warmed). A partition never seen before starts empty.
   */
  async recover(step: string, partition: number, now: number): Promise<Recovered> {
    const warming = this.#warm.get(`${step}.${partition}`);
    this.#warm.delete(`${step}.${partition}`);
    const warm = await warming?.catch(() => undefined);
    try {
      return await this.#recover(step, partition, now, warm);
    } finally {
      warm?.stop();
    }
  }

  async #recover(step: string, partition: number, now: number, warm: WarmUp | undefined): Promise<Recovered> {
    const key = manifestKey(step, partition);
    await this.fence.holds(step, partition);
    const entry = await this.#get(key);
    if (!entry) {
      const manifest: Manifest = {
        version: 1,
        generation: 1,
        oldestGeneration: 1,
        checkpoint: 0,
        positions: {},
        watermarks: {},
        chunkBits: 0,
        chunks: {},
        keys: 0,
        committedAt: now,
        counters: {},
      };
      const revision = await this.#cas(key, manifest, 0);
      return { manifest, revision, chunks: [] };
    }
    const parsed = JSON.parse(decoder.decode(entry.value)) as Manifest;
    const previous: Manifest = { ...parsed, watermarks: parsed.watermarks ?? {} };
    const manifest: Manifest = { ...previous, generation: previous.generation + 1 };
    const revision = await this.#cas(key, manifest, entry.revision);
    // Every chunk the manifest names was written before it: a warm-up that reached it holds them.
    const warmed = warm && (await warm.reached(entry.revision, warmUpReachMs)) ? warm : undefined;
    if (warm) {
      this.log?.("warm-up-used", { step, partition, reached: warmed !== undefined, ...warm.size });
    }
    const read = async (chunkKey: string): Promise<ChunkRecords> => {
      const held = warmed?.take(chunkKey);
      if (held) return held;
      const chunk = await this.#get(chunkKey);
      if (!chunk) {
        throw new StateStoreError({
          key: chunkKey,
          message: `checkpoint ${manifest.checkpoint} of ${key} names a missing chunk`,
        });
      }
      return decodeChunk(chunk.value);
    };
    const chunks = await Promise.all(
      Object.entries(manifest.chunks).map(async ([index, baseKey]) => {
        const n = manifest.deltas?.[index] ?? 0;
        const [base, ...deltas] = await Promise.all(
          [baseKey, ...Array.from({ length: n }, (_, i) => deltaKey(baseKey, i + 1))].map(read),
        );
        return { index: Number(index), base: base!, deltas };
      }),
    );
    return { manifest, revision, chunks };
  }

  /**
   * The key the next version of a chunk is written under: the slot its committed version is not
   * in, under the current generation and chunk count.
   */
  nextChunkKey(step: string, partition: number, committed: Manifest, chunkBits: number, index: number): string {
    const prefix = `${step}.${partition}.g${committed.generation}.b${chunkBits}.c${index}`;
    const before = committed.chunkBits === chunkBits ? committed.chunks[index] : undefined;
    return `${prefix}.s${before === `${prefix}.s0` ? 1 : 0}`;
  }

  /**
   * The key of a chunk's next delta: after the `committed` count of deltas of the committed base
   * `baseKey`, which must be of the current generation and chunk count (a delta never extends a
   * base another owner may still overwrite).
   */
  nextDeltaKey(step: string, partition: number, committed: Manifest, chunkBits: number, index: number): string {
    const baseKey = committed.chunkBits === chunkBits ? committed.chunks[index] : undefined;
    const prefix = `${step}.${partition}.g${committed.generation}.b${chunkBits}.c${index}.s`;
    if (!baseKey?.startsWith(prefix)) {
      throw new StateStoreError({ key: prefix, message: `a delta of chunk ${index} has no committed base of this generation` });
    }
    return deltaKey(baseKey, (committed.deltas?.[index] ?? 0) + 1);
  }

  /** Publish a chunk's base or delta (acknowledged with the publisher's next flush). */
  writeChunk(key: string, bytes: Uint8Array): void {
    if (bytes.length > maxChunkBytes) {
      throw new StateStoreError({
        key,
        message:
          `state chunk ${key} is ${bytes.length} bytes, over the ${maxChunkBytes}-byte message limit: are the per-key state values very large?`,
      });
    }
    this.publisher.publish(kvSubject(this.bucket, key), bytes);
  }

  /** Record the pipeline's sources, for `eddy status` (every worker writes the same at start). */
  async describeSources(sources: Readonly<Record<string, SourceDescription>>): Promise<void> {
    await this.kv.put(sourcesKey, encoder.encode(JSON.stringify(sources)));
  }

  /** The atomic commit: compare-and-set the manifest. Returns the new revision. */
  async commit(step: string, partition: number, manifest: Manifest, revision: number): Promise<number> {
    return this.#cas(manifestKey(step, partition), manifest, revision);
  }

  /**
   * Remove chunk keys no manifest can name any more: those of generations before the current one
   * (call only after a commit that rewrote every chunk), and those of other chunk counts.
   */
  async collectGarbage(step: string, partition: number, manifest: Manifest, previousBits: number): Promise<void> {
    const filters: string[] = [];
    for (let g = manifest.oldestGeneration; g < manifest.generation; g++) filters.push(`${step}.${partition}.g${g}.>`);
    if (previousBits !== manifest.chunkBits) filters.push(`${step}.${partition}.g${manifest.generation}.b${previousBits}.>`);
    for (const filter of filters) {
      await this.jsm.streams.purge(`KV_${this.bucket}`, { filter: `$KV.${this.bucket}.${filter}` });
    }
  }

  async #get(key: string): Promise<{ value: Uint8Array; revision: number } | null> {
    try {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== "PUT") return null;
      return { value: entry.value, revision: entry.revision };
    } catch (cause) {
      throw new StateStoreError({ key, message: `cannot read ${key} from ${this.bucket}: ${String(cause)}`, cause });
    }
  }

  async #cas(key: string, manifest: Manifest, revision: number): Promise<number> {
    const bytes = encoder.encode(JSON.stringify(manifest));
    this.fence.check(key);
    try {
      return revision === 0 ? await this.kv.create(key, bytes) : await this.kv.update(key, bytes, revision);
    } catch (cause) {
      const message = String(cause);
      if (message.includes("wrong last sequence") || message.includes("key exists")) {
        throw new FencedError({ key, message: `${key} was committed by another owner (expected revision ${revision})` });
      }
      throw new StateStoreError({ key, message: `cannot commit ${key}: ${message}`, cause });
    }
  }
}

function manifestKey(step: string, partition: number): string {
  return `${step}.${partition}.manifest`;
}

/** The key of delta `n` (from 1) of the base under `baseKey`. */
function deltaKey(baseKey: string, n: number): string {
  return `${baseKey.slice(0, baseKey.lastIndexOf(".s"))}.d${n}`;
}

/** A source as `eddy status` needs it for the lag: the stream, and the subject of each partition's share. */
export interface SourceDescription {
  readonly stream: string;
  readonly subject?: string | undefined;
  /** Partitioned by subject: which token of `subject` is the partition. */
  readonly partitionToken?: number | undefined;
}

/** The key of a pipeline's sources in its state bucket (no step's key: those have three tokens or more). */
const sourcesKey = "pipeline.sources";

/** A pipeline's sources, as its workers recorded them (undefined: none recorded). */
export async function readSources(
  nc: NatsConnection,
  pipelineId: string,
): Promise<Record<string, SourceDescription> | undefined> {
  try {
    const kv = await new Kvm(nc).open(stateBucket(pipelineId), { bindOnly: true });
    const entry = await kv.get(sourcesKey);
    return entry?.operation === "PUT"
      ? (JSON.parse(decoder.decode(entry.value)) as Record<string, SourceDescription>)
      : undefined;
  } catch {
    return undefined;
  }
}

export interface CommittedPartition {
  readonly step: string;
  readonly partition: number;
  readonly manifest: Manifest;
}

/** Every committed manifest of a pipeline, read from its state bucket (for status and tests). */
export async function readCommitted(nc: NatsConnection, pipelineId: string): Promise<CommittedPartition[]> {
  let kv: KV;
  try {
    kv = await new Kvm(nc).open(stateBucket(pipelineId), { bindOnly: true });
    await kv.status(); // binding does not check that the bucket exists
  } catch {
    return [];
  }
  const out: CommittedPartition[] = [];
  const keys = await keysOf(nc, stateBucket(pipelineId), "*.*.manifest");
  await Promise.all(
    keys.map(async (key) => {
      const entry = await kv.get(key);
      if (!entry || entry.operation !== "PUT") return;
      const [step, partition] = key.split(".");
      out.push({ step: step!, partition: Number(partition), manifest: JSON.parse(decoder.decode(entry.value)) as Manifest });
    }),
  );
  return out.sort((a, b) => a.step.localeCompare(b.step) || a.partition - b.partition);
}

/**
 * How many operator actors of a worker may be writing a checkpoint at once. A checkpoint's
 * snapshot and encoded chunks live until they are acknowledged; letting every partition do that
 * at the same moment multiplies the peak memory by the partition count for nothing, since they
 * share one connection anyway. An actor takes a slot before it snapshots its state.
 */
export class CheckpointSlots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(slots: number) {
    this.#free = slots;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/**
 * Partitions: the key space of a keyed step is split into a fixed number of partitions by a
 * stable hash, the same on Node and Deno and across versions (FNV-1a over the key's UTF-8 bytes,
 * the hash nats-server's `partition(n, ...)` subject mapping uses). The partition count is fixed
 * per pipeline version; moving work moves partitions, it never re-hashes keys.
 *
 * @example
 * partitionOf(keyHash("store-1"), 8); // always the same number in 0..7
 */
export type Key = string | number;

const encoder = new TextEncoder();

/** FNV-1a, 32 bits, over the UTF-8 bytes of the key's string form. */
export function keyHash(key: Key): number {
  const s = typeof key === "string" ? key : String(key);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return hashBytes(encoder.encode(s));
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h >>> 0;
}

function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

export function partitionOf(hash: number, partitions: number): number {
  return hash % partitions;
}

/**
 * The partition of `key` among `partitions`: what a producer puts in the subject of a source
 * partitioned by subject (`partitionSubject`), as nats-server's `partition()` mapping would.
 */
export function partitionOfKey(key: Key, partitions: number): number {
  return partitionOf(keyHash(key), partitions);
}

/**
 * Which state chunk of its partition a key lives in: a second, independent mix of the same hash
 * (murmur3's finalizer), so chunks stay balanced whatever the partition count.
 */
export function chunkOf(hash: number, chunkBits: number): number {
  if (chunkBits === 0) return 0;
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) >>> (32 - chunkBits);
}

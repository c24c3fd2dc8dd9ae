/**
 * The distribution of an operator actor's checkpoints: how long each took (seconds) and how many
 * bytes it wrote, in fixed buckets, the shape of a Prometheus histogram (a count per bucket, the
 * sum, the count). The operator actor observes every commit; /metrics renders it per actor
 * (`eddy_checkpoint_duration_seconds`, `eddy_checkpoint_size_bytes`, src/serve/metrics.ts).
 *
 * @example
 * const h = new CheckpointHistogram();
 * h.observe(0.012, 48_000); // 12 ms, 48 kB
 * h.seconds.cumulative(); // [0, 0, 1, 1, ...]: observations at or below each bound
 */

/** Upper bounds (seconds) of the checkpoint duration buckets: Prometheus' default buckets. */
export const checkpointSecondsBuckets: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Upper bounds (bytes) of the checkpoint size buckets: 1 KiB to 256 MiB, by powers of 4. */
export const checkpointBytesBuckets: readonly number[] = Array.from({ length: 10 }, (_, i) => 1024 * 4 ** i);

/** Observations in fixed buckets: `counts[i]` of them fell in (bounds[i-1], bounds[i]]; the rest above the last. */
export class FixedBuckets {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    const i = this.bounds.findIndex((le) => value <= le);
    if (i >= 0) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /** Observations at or below each bound, as a Prometheus `_bucket{le}` series counts them. */
  cumulative(): number[] {
    let n = 0;
    return this.counts.map((c) => (n += c));
  }
}

/** Every checkpoint of one operator actor since this process started: its duration and its size. */
export class CheckpointHistogram {
  readonly seconds = new FixedBuckets(checkpointSecondsBuckets);
  readonly bytes = new FixedBuckets(checkpointBytesBuckets);

  observe(seconds: number, bytes: number): void {
    this.seconds.observe(seconds);
    this.bytes.observe(bytes);
  }

  /** Left out of JSON views of an actor's status (GET /actors): it is /metrics' part. */
  toJSON(): undefined {
    return undefined;
  }
}

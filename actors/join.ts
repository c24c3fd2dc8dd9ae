/**
 * Joins of two keyed streams, both keyed alike into the same partitions, so one actor per
 * partition holds both sides of its keys. Four kinds, as in Flink's DataStream and SQL joins:
 * regular (every pair; a TTL bounds it), interval (times within `lowerMs`..`upperMs` of each
 * other), window (the same tumbling window; or a semi join) and as-of (the right side's latest
 * version at the left event's time). Left outer joins emit an unmatched left event once the
 * watermark shows no partner can come. An output is named by the pair of events it joins, so a
 * replay that meets the two in another order names it the same.
 * See docs/ARCHITECTURE.md, "Stream joins", for each kind's rules, output times and late events.
 *
 * @example
 * auctions.keyBy("by-seller", "seller")
 *   .intervalJoin("new-sellers", persons.keyBy("by-person", "id"), { lowerMs: -10_000, upperMs: 0 }, (a, p) => ({ ...a, name: p.name }));
 */
import { type Key, keyHash } from "../src/core/partition.ts";
import type { JoinKind } from "../src/pipeline/pipeline.ts";
import type { Operator, OperatorContext, Rec } from "./operator.ts";

export interface JoinOptions {
  readonly kind: JoinKind;
  /** The keyed step of the left input (records through it are left events). */
  readonly left: string;
  readonly combine: (left: unknown, right: unknown) => unknown;
  /** Left outer: unmatched left events are emitted with `undefined`. */
  readonly outer: boolean;
}

/** One side's event in state: its input sequence, event time, value, and whether it matched. */
type Held = readonly [seq: number, time: number, value: unknown, matched: 0 | 1];
/** A key's state: left and right events (for window joins, per window start). */
type Sides = { readonly l: readonly Held[]; readonly r: readonly Held[] };
type Windowed = Readonly<Record<string, Sides>>;

/** A join's state per key: both sides' events (for window joins, per window start). */
export type JoinState = Sides | Windowed;

const none: Sides = { l: [], r: [] };

type Ctx = OperatorContext<JoinState, unknown>;

export function joinOperator(options: JoinOptions): Operator<JoinState, unknown> {
  const { kind, left, combine, outer } = options;
  /** An output of a pair (or of an unmatched left event): named by the two events, whoever came first. */
  const out = (ctx: Ctx, l: Held, r: Held | undefined, time: number) =>
    ctx.emit(combine(l[2], r?.[2]), { time, from: r ? [l[0], r[0]] : [l[0]] });
  const later = (a: number, b: number) => (a > b ? a : b);
  const late = (ctx: Ctx, rec: Rec, why: string) =>
    ctx.late(rec, `event time ${rec.time} is behind watermark ${ctx.watermark}: ${why}`);
  const needTime = (rec: Rec) => {
    if (!Number.isFinite(rec.time)) throw new Error(`event time ${rec.time} is not a number of milliseconds`);
  };

  switch (kind.type) {
    case "regular": {
      const ttl = kind.ttlMs;
      const expire = (held: readonly Held[], wm: number) => (ttl === undefined ? held : held.filter((h) => h[1] + ttl > wm));
      return {
        apply(ctx, rec) {
          if (ttl !== undefined) needTime(rec);
          const sides = (ctx.state.get(rec.key, rec.hash) as Sides | undefined) ?? none;
          const held: Held = [rec.seq, rec.time, rec.value, 0];
          if (rec.via === left) {
            for (const r of sides.r) out(ctx, held, r, later(rec.time, r[1]));
            ctx.state.set(rec.key, rec.hash, { l: [...sides.l, held], r: sides.r });
          } else {
            for (const l of sides.l) out(ctx, l, held, later(l[1], rec.time));
            ctx.state.set(rec.key, rec.hash, { l: sides.l, r: [...sides.r, held] });
          }
          if (ttl !== undefined) ctx.timers.at(rec.key, rec.time + ttl);
        },
        onTimer(ctx, key) {
          if (ttl === undefined) return;
          const wm = ctx.watermark;
          const hash = keyHash(key);
          const sides = ctx.state.get(key, hash) as Sides | undefined;
          if (!sides) return;
          const next = { l: expire(sides.l, wm), r: expire(sides.r, wm) };
          if (next.l.length + next.r.length === 0) ctx.state.delete(key, hash);
          else ctx.state.set(key, hash, next);
        },
        rearm(timers, key, sides) {
          if (ttl === undefined) return;
          for (const h of [...(sides as Sides).l, ...(sides as Sides).r]) timers.at(key, h[1] + ttl);
        },
      };
    }

    case "interval": {
      const { lowerMs, upperMs } = kind;
      // A left event can meet rights up to its time + upper; a right event, lefts down to its time
      // - lower (events at the watermark are not late yet): dropped once the watermark is past that.
      const leftUntil = (h: Held) => h[1] + upperMs;
      const rightUntil = (h: Held) => h[1] - lowerMs;
      return {
        apply(ctx, rec) {
          needTime(rec);
          if (rec.time < ctx.watermark) return late(ctx, rec, "its partners may have been joined and dropped");
          const sides = (ctx.state.get(rec.key, rec.hash) as Sides | undefined) ?? none;
          const t = rec.time;
          if (rec.via === left) {
            let matched: 0 | 1 = 0;
            const held = (): Held => [rec.seq, t, rec.value, matched];
            for (const r of sides.r) {
              if (t + lowerMs <= r[1] && r[1] <= t + upperMs) {
                out(ctx, [rec.seq, t, rec.value, 1], r, later(t, r[1]));
                matched = 1;
              }
            }
            ctx.state.set(rec.key, rec.hash, { l: [...sides.l, held()], r: sides.r });
            ctx.timers.at(rec.key, t + upperMs + 1);
          } else {
            const held: Held = [rec.seq, t, rec.value, 0];
            const l = sides.l.map((h) => {
              if (!(h[1] + lowerMs <= t && t <= h[1] + upperMs)) return h;
              out(ctx, h, held, later(h[1], t));
              return h[3] ? h : ([h[0], h[1], h[2], 1] as Held);
            });
            ctx.state.set(rec.key, rec.hash, { l, r: [...sides.r, held] });
            ctx.timers.at(rec.key, t - lowerMs + 1);
          }
        },
        onTimer(ctx, key) {
          const wm = ctx.watermark;
          const hash = keyHash(key);
          const sides = ctx.state.get(key, hash) as Sides | undefined;
          if (!sides) return;
          const l = sides.l.filter((h) => {
            if (leftUntil(h) >= wm) return true;
            if (outer && !h[3]) out(ctx, h, undefined, h[1]);
            return false;
          });
          const r = sides.r.filter((h) => rightUntil(h) >= wm);
          if (l.length + r.length === 0) ctx.state.delete(key, hash);
          else if (l.length !== sides.l.length || r.length !== sides.r.length) ctx.state.set(key, hash, { l, r });
        },
        rearm(timers, key, sides) {
          for (const h of (sides as Sides).l) timers.at(key, leftUntil(h) + 1);
          for (const h of (sides as Sides).r) timers.at(key, rightUntil(h) + 1);
        },
        // An unmatched left event goes out once the watermark is past its time + upper.
        ...(outer ? { watermarkDelayMs: Math.max(0, upperMs + 1) } : {}),
      };
    }

    case "window": {
      const { size, semi } = kind;
      return {
        apply(ctx, rec) {
          needTime(rec);
          const start = Math.floor(rec.time / size) * size;
          if (start + size <= ctx.watermark) return late(ctx, rec, "its window was joined and closed");
          const windows = (ctx.state.get(rec.key, rec.hash) as Windowed | undefined) ?? {};
          const sides = windows[start] ?? none;
          // A semi join knows all it needs of the right side from its first event in the window.
          if (semi && rec.via !== left && sides.r.length > 0) return;
          const held: Held = [rec.seq, rec.time, semi && rec.via !== left ? null : rec.value, 0];
          const next = rec.via === left ? { l: [...sides.l, held], r: sides.r } : { l: sides.l, r: [...sides.r, held] };
          ctx.state.set(rec.key, rec.hash, { ...windows, [start]: next });
          ctx.timers.at(rec.key, start + size);
        },
        onTimer(ctx, key) {
          const wm = ctx.watermark;
          const hash = keyHash(key);
          const windows = ctx.state.get(key, hash) as Windowed | undefined;
          if (!windows) return;
          const next: Record<string, Sides> = { ...windows };
          for (const [s, sides] of Object.entries(windows)) {
            const end = Number(s) + size;
            if (end > wm) continue;
            for (const l of sides.l) {
              if (semi) {
                if (sides.r.length > 0) out(ctx, l, undefined, end - 1);
                continue;
              }
              for (const r of sides.r) out(ctx, l, r, end - 1);
              if (outer && sides.r.length === 0) out(ctx, l, undefined, end - 1);
            }
            delete next[s];
          }
          if (Object.keys(next).length === 0) ctx.state.delete(key, hash);
          else ctx.state.set(key, hash, next);
        },
        rearm(timers, key, windows) {
          for (const s of Object.keys(windows as Windowed)) timers.at(key, Number(s) + size);
        },
      };
    }

    case "asOf": {
      /**
       * Emit the left events the watermark passed (a right version at the watermark may still
       * come: it is not late), and keep the right versions still needed.
       */
      const settle = (ctx: Ctx, key: Key, hash: number, sides: Sides) => {
        const wm = ctx.watermark;
        const due = sides.l.filter((h) => h[1] < wm);
        for (const l of due) {
          let match: Held | undefined;
          for (const r of sides.r) if (r[1] <= l[1] && (!match || r[1] >= match[1])) match = r;
          if (match) out(ctx, l, match, later(l[1], match[1]));
          else if (outer) out(ctx, l, undefined, l[1]);
        }
        // Versions: the latest before the watermark (later left events may need it), and the rest.
        let current: Held | undefined;
        for (const r of sides.r) if (r[1] < wm && (!current || r[1] >= current[1])) current = r;
        const r = sides.r.filter((h) => h[1] >= wm || h === current);
        const l = due.length === 0 ? sides.l : sides.l.filter((h) => h[1] >= wm);
        if (l.length === 0 && r.length === 0) ctx.state.delete(key, hash);
        else if (l !== sides.l || r.length !== sides.r.length) ctx.state.set(key, hash, { l, r });
      };
      return {
        apply(ctx, rec) {
          needTime(rec);
          if (rec.time < ctx.watermark) {
            return late(ctx, rec, rec.via === left ? "the versions before it were dropped" : "left events after it were joined");
          }
          const sides = (ctx.state.get(rec.key, rec.hash) as Sides | undefined) ?? none;
          const held: Held = [rec.seq, rec.time, rec.value, 0];
          if (rec.via === left) ctx.state.set(rec.key, rec.hash, { l: [...sides.l, held], r: sides.r });
          else ctx.state.set(rec.key, rec.hash, { l: sides.l, r: [...sides.r, held] });
          ctx.timers.at(rec.key, rec.time + 1);
        },
        onTimer(ctx, key) {
          const hash = keyHash(key);
          const sides = ctx.state.get(key, hash) as Sides | undefined;
          if (sides) settle(ctx, key, hash, sides);
        },
        rearm(timers, key, sides) {
          for (const h of [...(sides as Sides).l, ...(sides as Sides).r]) timers.at(key, h[1] + 1);
        },
      };
    }
  }
}

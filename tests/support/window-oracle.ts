/**
 * Event-time windows computed as a batch, by their definition: each order, in log order, is late
 * when every window it belongs to ended at or before the watermark at its arrival (the highest
 * event time before it minus the allowed out-of-orderness); a window is emitted when the final
 * watermark has passed its end.
 */
import type { Order } from "../../examples/coffee-shop/orders.ts";

export interface WindowRow {
  key: string;
  windowStart: number;
  windowEnd: number;
  orders: number;
  qty: number;
  revenue: number;
}

/** The batch definition: per store and window, over the events that were not late on arrival. */
export function windowOracle(orders: readonly Order[], size: number, slide: number, outOfOrder: number, lateness = 0) {
  let maxTs = Number.NEGATIVE_INFINITY;
  const windows = new Map<string, WindowRow>();
  const late: number[] = [];
  /** Emissions per window: one when the watermark passes its end, one per event after that. */
  const emissions = new Map<string, number>();
  const onTime = new Set<string>();
  orders.forEach((o, i) => {
    const wm = maxTs - outOfOrder;
    maxTs = Math.max(maxTs, o.ts);
    const last = Math.floor(o.ts / slide) * slide;
    let accepted = false;
    for (let start = last - size + slide; start <= last; start += slide) {
      if (start + size + lateness <= wm) continue;
      accepted = true;
      const id = `${o.store}/${start}`;
      if (start + size <= wm) emissions.set(id, (emissions.get(id) ?? 0) + 1);
      else onTime.add(id);
      const row = windows.get(id) ?? { key: o.store, windowStart: start, windowEnd: start + size, orders: 0, qty: 0, revenue: 0 };
      row.orders++;
      row.qty += o.qty;
      row.revenue += Math.round(o.qty * o.unitPrice * 100) / 100;
      windows.set(id, row);
    }
    if (!accepted) late.push(i + 1);
  });
  const finalWm = maxTs - outOfOrder;
  const fired = [...windows.values()].filter((w) => w.windowEnd <= finalWm);
  for (const w of fired) {
    const id = `${w.key}/${w.windowStart}`;
    if (onTime.has(id)) emissions.set(id, (emissions.get(id) ?? 0) + 1);
  }
  return { fired, open: [...windows.values()].filter((w) => w.windowEnd > finalWm), late, emissions };
}

/**
 * How console pages write numbers and times: US dollars, counts with separators, UTC clock times,
 * ages and durations. Browser code (runs anywhere `Intl` does).
 *
 * @example
 * money.format(12.5); // "$12.50"
 * hhmm(Date.UTC(2024, 0, 1, 9, 30)); // "09:30"
 */

export const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
export const count = new Intl.NumberFormat("en-US");

/** The UTC hour and minute of a time. */
export function hhmm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** How long ago, for people: "just now", "2.5 s ago", "3 min ago". */
export function ago(ms: number): string {
  if (ms < 1000) return "just now";
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60000)} min ago`;
}

/** A duration as minutes:seconds; "–" when unknown. */
export function minutes(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** JSON text of a value ("" for undefined). */
export function json(value: unknown): string {
  return JSON.stringify(value) ?? "";
}

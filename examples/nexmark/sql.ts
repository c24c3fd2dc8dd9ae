/**
 * The Nexmark queries in SQL (DuckDB's dialect), over three tables loaded with the same events the
 * pipelines read: `person`, `auction`, `bid`, one column per field of events.ts (times as BIGINT
 * epoch ms) plus `n`, the event's position in the generated sequence (and the stream).
 *
 * They are the second, independent oracle for the pipelines of queries.ts (docs/ARCHITECTURE.md: the batch
 * oracle, and DuckDB for Nexmark). They follow Nexmark's Flink SQL, made explicit where the
 * streaming definition decides:
 * - windows are bucketed by arithmetic on epoch ms: a tumbling window starts at
 *   `dateTime // size * size`; a hopping window of `size` every `slide` is one of the `size / slide`
 *   windows starting at `dateTime // slide * slide - k * slide`; windows are [start, end);
 * - only windows the final watermark has closed (`windowEnd <= watermark`) are results, as only
 *   those are emitted by a streaming run;
 * - q1 multiplies as doubles (`0.908::DOUBLE * price`), the arithmetic JavaScript does; DuckDB's
 *   default would be an exact DECIMAL;
 * - q7 takes bids in [start, end) of their window (Flink's SQL has `BETWEEN end - 10 s AND end`,
 *   both ends inclusive, which counts a bid at exactly `end` in two windows).
 *
 * q3, q4 and q8 join two kinds of events; Eddy's pipelines for them wait for two-input joins.
 *
 * @example
 * const rows = await db.rows(q5Sql({ windowMs: 10_000, slideMs: 2_000, watermark }));
 */

/** Window parameters and the final watermark of a run (only closed windows are results). */
export interface WindowedSql {
  readonly windowMs: number;
  readonly slideMs?: number;
  readonly watermark: number;
}

export const q0Sql = `SELECT auction, bidder, price, dateTime, extra FROM bid ORDER BY n`;

export const q1Sql = `SELECT auction, bidder, 0.908::DOUBLE * price AS price, dateTime, extra FROM bid ORDER BY n`;

export const q2Sql = `SELECT auction, price FROM bid WHERE auction % 123 = 0 ORDER BY n`;

/** q3, local item suggestion: sellers in OR, ID or CA of auctions in category 10. */
export const q3Sql = `
SELECT P.name, P.city, P.state, A.id
FROM auction AS A JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')
ORDER BY A.id`;

/**
 * q4, average closing price per category: the highest bid of each auction placed while it was open
 * (between its dateTime and expires), averaged per category.
 */
export const q4Sql = `
SELECT Q.category, avg(Q.final) AS avgPrice
FROM (
  SELECT A.id, A.category, max(B.price) AS final
  FROM auction AS A JOIN bid AS B ON A.id = B.auction
  WHERE B.dateTime BETWEEN A.dateTime AND A.expires
  GROUP BY A.id, A.category
) AS Q
GROUP BY Q.category
ORDER BY Q.category`;

/** q5, hot items: per hopping window, every auction with the most bids, and that count. */
export function q5Sql({ windowMs, slideMs = windowMs, watermark }: WindowedSql): string {
  return `
WITH hop AS (
  SELECT auction, (dateTime // ${slideMs}) * ${slideMs} - k * ${slideMs} AS windowStart
  FROM bid, range(0, ${windowMs / slideMs}) AS r(k)
),
counts AS (SELECT windowStart, auction, count(*) AS num FROM hop GROUP BY windowStart, auction),
highest AS (SELECT windowStart, max(num) AS maxn FROM counts GROUP BY windowStart)
SELECT c.windowStart, c.windowStart + ${windowMs} AS windowEnd, c.auction, c.num
FROM counts AS c JOIN highest AS h ON c.windowStart = h.windowStart AND c.num = h.maxn
WHERE c.windowStart + ${windowMs} <= ${watermark}
ORDER BY c.windowStart, c.auction`;
}

/** q7, highest bid: per tumbling window, every bid with the highest price. */
export function q7Sql({ windowMs, watermark }: WindowedSql): string {
  return `
WITH w AS (SELECT *, (dateTime // ${windowMs}) * ${windowMs} AS windowStart FROM bid),
highest AS (SELECT windowStart, max(price) AS maxprice FROM w GROUP BY windowStart)
SELECT w.windowStart, w.windowStart + ${windowMs} AS windowEnd, w.auction, w.bidder, w.price, w.dateTime
FROM w JOIN highest AS h ON w.windowStart = h.windowStart AND w.price = h.maxprice
WHERE w.windowStart + ${windowMs} <= ${watermark}
ORDER BY w.windowStart, w.auction, w.bidder, w.dateTime`;
}

/**
 * q8, monitor new users: people who opened an auction in the tumbling window they registered in.
 * The watermark is the lower of the two sources' (persons, auctions).
 */
export function q8Sql({ windowMs, watermark }: WindowedSql): string {
  return `
WITH P AS (
  SELECT DISTINCT id, name, (dateTime // ${windowMs}) * ${windowMs} AS windowStart FROM person
),
A AS (
  SELECT DISTINCT seller, (dateTime // ${windowMs}) * ${windowMs} AS windowStart FROM auction
)
SELECT P.id, P.name, P.windowStart
FROM P JOIN A ON P.id = A.seller AND P.windowStart = A.windowStart
WHERE P.windowStart + ${windowMs} <= ${watermark}
ORDER BY P.windowStart, P.id`;
}

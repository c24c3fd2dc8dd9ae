/**
 * The figures along the top that come from the worker (`GET /actors`): orders per second (the
 * rate at which the `orders` source's applied position advances, over the last five seconds of
 * polls), lag, late orders and dead letters. Browser code.
 *
 * @example
 * const rate: RateSamples = [];
 * renderRate(rate, await getJson<ActorsAnswer>("/actors"));
 */
import { byId, setFigure } from "../../../src/serve/console/dom.ts";
import { count } from "../../../src/serve/console/format.ts";
import type { ActorsAnswer } from "../../../src/serve/console/query-client.ts";

/** The `orders` source's applied position at each poll, the last five seconds of them. */
export type RateSamples = { at: number; applied: number }[];

export function renderRate(samples: RateSamples, actors: ActorsAnswer): void {
  const source = actors.sources.find((s) => s.id === "orders") ?? actors.sources[0];
  if (!source) return;
  samples.push({ at: actors.at, applied: source.applied });
  while (samples.length > 2 && samples[samples.length - 1]!.at - samples[0]!.at > 5000) samples.shift();
  const first = samples[0]!, last = samples[samples.length - 1]!;
  const rate = last.at > first.at ? ((last.applied - first.applied) * 1000) / (last.at - first.at) : null;
  setFigure("kpi-rate", rate === null ? null : Math.round(rate), rate === null ? "–" : count.format(Math.round(rate)));
  byId("kpi-processed").textContent = `${count.format(source.applied)} read from ${source.stream}`;
  setFigure("kpi-lag", source.lag, source.lag === null ? "–" : count.format(source.lag));
}

export function renderCounters(actors: ActorsAnswer): void {
  const late = actors.totals.lateEvents;
  const steps = Object.keys(late);
  const most = steps.reduce((m, s) => Math.max(m, late[s]!), 0);
  setFigure("kpi-late", most, count.format(most));
  byId("kpi-late-sub").textContent = steps.map((s) => `${s} ${count.format(late[s]!)}`).join(" · ");
  const dead = actors.totals.deadLetters;
  setFigure("kpi-dead", dead, count.format(dead));
  byId("kpi-dead-card").classList.toggle("alert", dead > 0);
  byId("kpi-dead-sub").textContent = `${count.format(actors.totals.sourceDeadLetters)} while decoding, ` +
    `${count.format(dead - actors.totals.sourceDeadLetters)} in operators`;
}

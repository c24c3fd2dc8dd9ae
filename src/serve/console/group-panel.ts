/**
 * Workers and partitions, live: for each pipeline group the service follows (`GET /groups`), its
 * workers (a colour each, host, runtime, pid, heartbeat age, partitions held) and a grid of every
 * step's partitions, each cell in the colour of the worker holding its lease. A partition on the
 * move is outlined in the colour of the worker taking it and pulses (`releasing`: its holder is
 * giving it back; `taking`: free, or its holder is gone, and the new one takes it); one that
 * changed hands in the last few seconds flashes, so a handoff quicker than a poll is still seen.
 * Free cells are dashed, those of a gone worker striped. Shared by the overview and the
 * coffee-shop dashboard; every cell carries its raw state in data attributes (the browser tests
 * read them). Browser code; its styles are group-panel.css.
 *
 * @example
 * const panel = new GroupPanel(byId("groups-section"), byId("groups"), byId("groups-summary"));
 * panel.render(await getJson<GroupsAnswer>("/groups"));
 */
import { el } from "./dom.ts";
import { ago } from "./format.ts";
import type { GroupAnswer, GroupPartitionAnswer, GroupsAnswer } from "./query-client.ts";

/** Distinct colours, handed to workers in the order the page first sees them. */
const palette = ["#2f6fde", "#e8833a", "#1f9d55", "#9b59b6", "#d64545", "#17a2b8", "#c7a302", "#e84393", "#6c7a89", "#8d6e63"];

/** A partition changed hands this recently: it flashes. */
export const recentMoveMs = 5000;

export class GroupPanel {
  readonly #colours = new Map<string, string>();

  constructor(
    private readonly section: HTMLElement,
    private readonly body: HTMLElement,
    private readonly summary: HTMLElement,
  ) {}

  /** The colour of a worker, the same for as long as the page is open. */
  colourOf(id: string): string {
    let colour = this.#colours.get(id);
    if (colour === undefined) {
      colour = palette[this.#colours.size % palette.length]!;
      this.#colours.set(id, colour);
    }
    return colour;
  }

  /** Show the groups (hidden when there are none). */
  render(answer: GroupsAnswer): void {
    this.section.hidden = answer.groups.length === 0;
    const live = answer.groups.reduce((n, g) => n + g.members.filter((m) => m.live).length, 0);
    const moving = answer.groups.reduce((n, g) => n + g.moves, 0);
    this.summary.textContent = `${live} worker${live === 1 ? "" : "s"} live · ${
      moving === 0 ? "settled" : `${moving} partition${moving === 1 ? "" : "s"} moving`
    }`;
    this.body.replaceChildren(...answer.groups.map((g) => this.#group(g)));
  }

  #group(group: GroupAnswer): HTMLElement {
    // Colours by id order for the workers seen at once, so a first view is in a stable order.
    for (const m of group.members) this.colourOf(m.id);
    const live = new Set(group.members.filter((m) => m.live).map((m) => m.id));
    const workers = group.members.map((m) =>
      el("div", {
        class: `worker${m.live ? "" : " gone"}`,
        style: `--c:${this.colourOf(m.id)}`,
        "data-worker": m.id,
        "data-live": String(m.live),
        "data-partitions": m.partitions,
        "data-share": m.share,
      }, [
        el("span", { class: "swatch" }),
        el("b", { text: m.id }),
        el("span", {
          class: "where",
          text: `${m.host} · ${m.runtime} · pid ${m.pid}${m.id === group.self ? " · this process" : ""}`,
        }),
        el("span", {
          class: "beat",
          "data-field": "heartbeat",
          "data-value": m.ageMs,
          title: `membership timeout ${m.timeoutMs / 1000} s`,
          text: m.live ? `beat ${ago(m.ageMs)}` : `gone · silent ${ago(m.ageMs).replace(/ ago$/, "")}`,
        }),
        el("span", {
          class: "held",
          text: `${m.partitions} partition${m.partitions === 1 ? "" : "s"}${m.share === m.partitions ? "" : ` → ${m.share}`}`,
        }),
      ])
    );
    const steps = new Map<string, GroupPartitionAnswer[]>();
    for (const p of group.partitions) steps.set(p.step, [...(steps.get(p.step) ?? []), p]);
    const grid = el(
      "table",
      { class: "partition-grid" },
      [...steps].map(([step, partitions]) =>
        el("tr", { "data-step": step }, [
          el("th", { text: step }),
          el("td", {}, [el("div", { class: "cells" }, partitions.map((p) => this.#cell(p, live)))]),
        ])
      ),
    );
    const moving = group.partitions.filter((p) => p.move !== null);
    return el("div", { class: "group", "data-pipeline": group.pipeline, "data-moves": group.moves }, [
      el("h3", {}, [
        el("span", { text: group.pipeline }),
        el("small", {
          text: `${live.size} live · ${group.partitions.length} partitions · ${
            moving.length === 0 ? "settled" : `${moving.length} moving`
          }`,
        }),
      ]),
      el("div", { class: "workers" }, workers.length ? workers : [el("div", { class: "empty", text: "no workers" })]),
      grid,
      el("div", {
        class: "moves",
        "data-field": "moves",
        text: moving.length === 0
          ? "no partition is moving"
          : `moving: ${moving.map((p) => `${p.step}/${p.partition} ${describeMove(p)}`).join(", ")}`,
      }),
    ]);
  }

  #cell(p: GroupPartitionAnswer, live: ReadonlySet<string>): HTMLElement {
    const classes = ["cell"];
    if (p.owner === null) classes.push("free");
    else if (!live.has(p.owner)) classes.push("gone");
    if (p.move !== null) classes.push("moving");
    if (p.changedAgoMs !== null && p.changedAgoMs < recentMoveMs) classes.push("moved");
    const style = [
      p.owner === null ? "" : `--c:${this.colourOf(p.owner)}`,
      p.target === null ? "" : `--t:${this.colourOf(p.target)}`,
    ].filter(Boolean).join(";");
    const changed = p.changedAgoMs === null
      ? ""
      : ` · changed hands ${ago(p.changedAgoMs)}${p.previousOwner ? ` (from ${p.previousOwner})` : ""}`;
    return el("span", {
      class: classes.join(" "),
      style,
      "data-step": p.step,
      "data-partition": p.partition,
      "data-owner": p.owner ?? "",
      "data-target": p.target ?? "",
      "data-move": p.move ?? "",
      "data-previous": p.previousOwner ?? "",
      title: `${p.step}/${p.partition} · ${p.owner ?? "free"}${p.move ? ` · ${describeMove(p)}` : ""}${changed}`,
      text: String(p.partition),
    });
  }
}

/** "releasing w1 → w2", "taking (free) → w2", "taking w1 (gone) → w2". */
function describeMove(p: GroupPartitionAnswer): string {
  const from = p.owner === null ? "(free)" : p.move === "taking" ? `${p.owner} (gone)` : p.owner;
  return `${p.move} ${from} → ${p.target}`;
}

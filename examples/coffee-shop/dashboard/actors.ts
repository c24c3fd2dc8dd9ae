/**
 * The operator actors (step, partition, lifecycle state, last checkpoint, keys held, lag) and,
 * for the one selected, a sample of its keyed state and its most recent inputs
 * (`GET /actors/:step/:partition`). Browser code.
 *
 * @example
 * const actors = new ActorsPanel();
 * actors.render(await getJson<ActorsAnswer>("/actors"));
 * await actors.refreshDetail();
 */
import { byId, el } from "../../../src/serve/console/dom.ts";
import { ago, count, json } from "../../../src/serve/console/format.ts";
import { type ActorDetailAnswer, type ActorsAnswer, getJson } from "../../../src/serve/console/query-client.ts";

/** An input record's value as "field value" pairs (the whole JSON in its title). */
function fields(value: unknown): HTMLTableCellElement {
  const box = el("div");
  if (value === null || typeof value !== "object") box.textContent = json(value);
  else {
    Object.entries(value).forEach(([name, v], i) => {
      box.appendChild(el("b", { text: `${i ? " " : ""}${name} ` }));
      box.appendChild(document.createTextNode(typeof v === "string" ? v : json(v)));
    });
  }
  return el("td", { class: "fields", title: json(value) }, [box]);
}

function renderDetail(detail: ActorDetailAnswer): void {
  byId("detail-title").textContent = `${detail.step} / partition ${detail.partition}`;
  const state = el("table", { id: "actor-state" }, [
    el("thead", {}, [el("tr", {}, [el("th", { text: "Key" }), el("th", { text: "State" })])]),
    el(
      "tbody",
      {},
      detail.sample.map((s) =>
        el("tr", { "data-key": String(s.key) }, [
          el("td", { text: String(s.key) }),
          el("td", { class: "json", text: json(s.value) }),
        ])
      ),
    ),
  ]);
  const recent = el("table", { id: "actor-recent" }, [
    el("colgroup", {}, [
      el("col", { style: "width:64px" }),
      el("col", { style: "width:74px" }),
      el("col", { style: "width:96px" }),
      el("col", {}),
    ]),
    el("thead", {}, [
      el("tr", {}, [
        el("th", { class: "num", text: "Seq" }),
        el("th", { text: "Key" }),
        el("th", { text: "Event time" }),
        el("th", { text: "Value" }),
      ]),
    ]),
    el(
      "tbody",
      {},
      [...detail.recent].reverse().map((r) =>
        el("tr", { "data-seq": r.seq, "data-key": String(r.key) }, [
          el("td", { class: "num", text: String(r.seq) }),
          el("td", { text: String(r.key) }),
          el("td", { text: r.time === null || isNaN(r.time) ? "–" : new Date(r.time).toISOString().slice(11, 23) }),
          fields(r.value),
        ])
      ),
    ),
  ]);
  const meta = `${detail.state} · checkpoint ${detail.checkpoint}` +
    (detail.committedAt === null ? "" : ` (${new Date(detail.committedAt).toLocaleTimeString()})`) +
    ` · ${count.format(detail.eventsIn)} events in${detail.error ? ` · ${detail.error}` : ""}`;
  byId("detail").replaceChildren(
    el("div", { class: "meta", text: meta }),
    el("h3", { text: `Keyed state: ${detail.sample.length} of ${count.format(detail.keys)} keys` }),
    el("div", { class: "scroll" }, [detail.sample.length ? state : el("div", { class: "empty", text: "no keys" })]),
    el("h3", { text: "Most recent inputs (newest first)" }),
    el("div", { class: "scroll inputs" }, [
      detail.recent.length ? recent : el("div", { class: "empty", text: "no inputs since this process started" }),
    ]),
  );
}

/** The actors card and the detail card beside it; remembers which actor is selected. */
export class ActorsPanel {
  #selected: string | null = null;

  render(actors: ActorsAnswer): void {
    const body = byId("actors");
    body.replaceChildren();
    let running = 0;
    for (const a of actors.actors) {
      if (a.state === "running" || a.state === "checkpointing") running++;
      const id = `${a.step}/${a.partition}`;
      const row = el("tr", { "data-actor": id, class: this.#selected === id ? "selected" : "" }, [
        el("td", { text: a.step }),
        el("td", { class: "num", text: String(a.partition) }),
        el("td", {}, [el("span", { class: `pill ${a.state}`, text: a.state, title: a.error ?? "" })]),
        el("td", { class: "num", "data-field": "checkpoint", text: String(a.checkpoint) }),
        el("td", { class: "num", text: a.committedAt === null ? "–" : ago(actors.at - a.committedAt) }),
        el("td", { class: "num", "data-field": "keys", "data-value": a.keys, text: count.format(a.keys) }),
        el("td", { class: "num", text: count.format(a.eventsIn) }),
        el("td", { class: "num", text: a.lag === null ? "–" : count.format(a.lag) }),
      ]);
      row.addEventListener("click", () => void this.select(id));
      body.appendChild(row);
    }
    byId("actors-summary").textContent = `${running} of ${actors.actors.length} running`;
  }

  /** A worker-less service: say so where the actors would be. */
  renderNone(): void {
    byId("actors-summary").textContent = "no worker runs in this service";
  }

  async select(id: string): Promise<void> {
    this.#selected = id;
    document.querySelectorAll<HTMLElement>("#actors tr").forEach((tr) =>
      tr.classList.toggle("selected", tr.dataset.actor === id)
    );
    byId("detail").replaceChildren(el("div", { class: "empty", text: `loading ${id}` }));
    await this.refreshDetail();
  }

  /** Read the selected actor again (nothing when none is selected). */
  async refreshDetail(): Promise<void> {
    const id = this.#selected;
    if (!id) return;
    const slash = id.lastIndexOf("/");
    const detail = await getJson<ActorDetailAnswer>(
      `/actors/${encodeURIComponent(id.slice(0, slash))}/${id.slice(slash + 1)}`,
    );
    if (this.#selected === id) renderDetail(detail);
  }
}

/**
 * The overview: the small generic page the query API serves at `/` when the pipeline brings no
 * page of its own (or `eddy serve` runs no pipeline). It lists the result tables (step,
 * partitions, row count, checkpoint), each linking to its rows as JSON; the workers of each
 * pipeline's group and who holds each partition, moves as they happen (group-panel.ts, from
 * `/groups`, which any query service answers from KV); and, when a worker runs in the service, its
 * operator actors (step, partition, lifecycle state, checkpoint, keys, events in, lag). Like the
 * coffee-shop dashboard it polls the JSON endpoints once a second, a round
 * after the previous one answered, and passes `?access_token=` on. Browser code, bundled by
 * scripts/build-pages.ts into src/serve/overview.generated.ts.
 *
 * @example
 * // in index.html, which the build inlines:
 * // <script type="module" src="./main.ts"></script>
 */
import { byId, el } from "../dom.ts";
import { count } from "../format.ts";
import { GroupPanel } from "../group-panel.ts";
import { type ActorsAnswer, getJson, type GroupsAnswer, orNull, type TablesAnswer, withToken } from "../query-client.ts";

const groups = new GroupPanel(byId("groups-section"), byId("groups"), byId("groups-summary"));

function renderTables({ tables }: TablesAnswer): void {
  const body = byId("tables");
  body.replaceChildren(
    ...tables.map((t) => {
      const rows = `/tables/${encodeURIComponent(t.name)}/rows`;
      return el("tr", { "data-table": t.name }, [
        el("td", {}, [el("a", { href: withToken(rows), text: t.name })]),
        el("td", { text: t.step ?? "–" }),
        el("td", { class: "num", text: t.partitions === null ? "–" : String(t.partitions) }),
        el("td", { class: "num", "data-field": "rows", "data-value": t.rows, text: count.format(t.rows) }),
        el("td", { class: "num", text: t.reflects.checkpoint === null ? "–" : String(t.reflects.checkpoint) }),
      ]);
    }),
  );
  if (tables.length === 0) {
    body.appendChild(el("tr", {}, [el("td", { colspan: 5, class: "empty", text: "no result tables yet" })]));
  }
  byId("tables-summary").textContent = `${tables.length} table${tables.length === 1 ? "" : "s"}`;
}

function renderActors(actors: ActorsAnswer | null): void {
  byId("actors-section").hidden = actors === null;
  byId("pipeline").textContent = actors?.pipeline ?? "no worker runs in this service";
  if (!actors) return;
  byId("actors").replaceChildren(
    ...actors.actors.map((a) =>
      el("tr", { "data-actor": `${a.step}/${a.partition}` }, [
        el("td", { text: a.step }),
        el("td", { class: "num", text: String(a.partition) }),
        el("td", { "data-field": "state", text: a.state, title: a.error ?? "" }),
        el("td", { class: "num", text: String(a.checkpoint) }),
        el("td", { class: "num", "data-field": "keys", "data-value": a.keys, text: count.format(a.keys) }),
        el("td", { class: "num", text: count.format(a.eventsIn) }),
        el("td", { class: "num", text: a.lag === null ? "–" : count.format(a.lag) }),
      ])
    ),
  );
  const running = actors.actors.filter((a) => a.state === "running" || a.state === "checkpointing").length;
  byId("actors-summary").textContent = `${running} of ${actors.actors.length} running`;
}

async function poll(): Promise<void> {
  try {
    const [tables, actors, grouped] = await Promise.all([
      getJson<TablesAnswer>("/tables"),
      orNull(getJson<ActorsAnswer>("/actors")),
      getJson<GroupsAnswer>("/groups"),
    ]);
    renderTables(tables);
    renderActors(actors);
    groups.render(grouped);
    byId("status").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    byId("status").textContent = `cannot reach the query API (${
      error instanceof Error ? error.message : String(error)
    }), retrying`;
  } finally {
    setTimeout(poll, 1000);
  }
}

void poll();

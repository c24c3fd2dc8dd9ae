/**
 * The coffee-shop dashboard: one HTML page (inline CSS and JavaScript, no build step, nothing
 * fetched from elsewhere: the machines it runs on may be offline), served at `GET /` by the
 * query API (src/serve/api.ts). It is a string in this module, so serving it needs no file
 * access and runs the same on Node and Deno.
 *
 * What it shows: revenue per store per minute as a line chart (table `revenue_per_store_minute`,
 * rows `<store>|<windowStart>`, the last 30 windows), revenue per store and per category
 * (`revenue_by_store`, `revenue_by_category`), the
 * top items per store in rank order (`GET /tables/top_items_per_store/rows/<store>/top`: the
 * store's latest 5-minute window), orders in progress per store when the pipeline follows the
 * order lifecycle (`open_orders_by_store`, `serve_time_by_store`: open, served, time to serve,
 * abandoned; the card stays hidden without them), orders per second, lag, late orders and dead
 * letters, and the operator actors (step, partition, lifecycle state, last checkpoint, keys held, lag). Selecting
 * an actor shows a sample of its keyed state and its most recent inputs
 * (`GET /actors/:step/:partition`).
 *
 * Live update: short polling of the JSON endpoints, once a second (a new round starts when the
 * previous one has answered, so a slow server is never asked twice at once). Why not the SSE
 * change streams: the page needs more than table changes (actor states, positions, lag: these
 * are not tables and change continuously), every answer comes from memory on the server
 * (microseconds), a round is one request per table plus one for the actors, and polling needs
 * no reconnect or resume logic and passes any proxy. Orders per second is the rate at which the
 * `orders` source's applied position advances, over the last five seconds of polls. Each chart
 * point and figure carries its raw value in a `data-value` attribute (the browser test reads
 * them). With `?access_token=` in the page's address, the page passes it on to every request.
 *
 * @example
 * app.get("/", (c) => c.html(dashboardPage));
 */

const style = `
:root {
  --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --muted: #6b7385; --line: #e3e6ec; --accent: #2f6fde;
  --ok: #1f9d55; --warn: #c77c02; --bad: #d64545;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 16px; padding: 14px 24px; background: #1d2330; color: #fff; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; letter-spacing: .2px; }
header .pipeline { color: #aab3c5; font-size: 14px; }
header .status { margin-left: auto; font-size: 13px; display: flex; align-items: center; gap: 8px; color: #d5dae4; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--muted); display: inline-block; }
.dot.live { background: #38c172; box-shadow: 0 0 0 3px rgba(56,193,114,.25); }
.dot.down { background: var(--bad); }
main { padding: 18px 24px 32px; display: grid; gap: 16px; grid-template-columns: repeat(12, 1fr); max-width: 1480px; margin: 0 auto; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; min-width: 0; }
.card h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); margin: 0 0 10px; font-weight: 600; }
.card h2 small { text-transform: none; letter-spacing: 0; font-weight: 400; margin-left: 6px; }
.kpis { grid-column: span 12; display: grid; grid-template-columns: repeat(5, 1fr); gap: 16px; }
.kpi .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .sub { font-size: 12px; color: var(--muted); margin-top: 4px; min-height: 15px; }
.kpi.alert .value { color: var(--bad); }
.chart { grid-column: span 8; }
.stores { grid-column: span 4; }
.tops { grid-column: span 12; }
.lifecycle { grid-column: span 12; }
.lifecycle[hidden] { display: none; }
.actors { grid-column: span 7; }
.detail { grid-column: span 5; }
svg { display: block; width: 100%; height: auto; }
svg text { font-size: 11px; fill: var(--muted); }
svg .grid { stroke: var(--line); }
svg .axis { stroke: #c7ccd6; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; background: var(--c); vertical-align: -1px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 500; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 5px 8px; border-bottom: 1px solid #f0f1f4; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.json { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; white-space: normal; word-break: break-all; color: #3a4152; }
.actors tbody tr { cursor: pointer; }
.actors tbody tr:hover { background: #f4f7fd; }
.actors tbody tr.selected { background: #e6eefc; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eef0f4; color: var(--muted); }
.pill.running { background: #e3f5ea; color: var(--ok); }
.pill.checkpointing { background: #e6eefc; color: var(--accent); }
.pill.recovering, .pill.starting, .pill.draining { background: #fdf3e1; color: var(--warn); }
.pill.failed { background: #fbe7e7; color: var(--bad); }
.top-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 16px; }
.top-store h3 { font-size: 14px; margin: 0 0 2px; }
.top-store .window { font-size: 12px; color: var(--muted); margin-bottom: 6px; }
.top-store ol { list-style: none; margin: 0; padding: 0; }
.top-store li { display: grid; grid-template-columns: 18px 1fr 34px; gap: 6px; align-items: center; font-size: 13px; padding: 2px 0; }
.top-store .rank { color: var(--muted); }
.top-store .bar { position: relative; height: 18px; line-height: 18px; padding-left: 6px; border-radius: 3px; overflow: hidden; white-space: nowrap; }
.top-store .bar::before { content: ""; position: absolute; inset: 0; width: var(--w); background: #dfe8fb; z-index: 0; border-radius: 3px; }
.top-store .bar span { position: relative; }
.top-store .weight { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); font-size: 13px; padding: 8px 0; }
.detail .meta { font-size: 12px; color: var(--muted); margin-bottom: 10px; }
.detail h3 { font-size: 13px; margin: 14px 0 4px; }
.scroll { max-height: 300px; overflow: auto; }
.detail .scroll.inputs { max-height: 440px; }
.stores h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); margin: 18px 0 6px; font-weight: 600; }
.share { display: inline-block; height: 8px; background: #dfe8fb; border-radius: 2px; vertical-align: 0; }
#actor-recent { table-layout: fixed; }
#actor-recent td.fields { white-space: normal; font-size: 12px; color: #3a4152; }
#actor-recent td.fields div { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; line-height: 16px; max-height: 32px; }
#actor-recent td.fields b { font-weight: 500; color: var(--muted); }
@media (max-width: 1100px) { .chart, .stores, .actors, .detail { grid-column: span 12; } .kpis { grid-template-columns: repeat(2, 1fr); } }
`;

const body = `
<header>
  <h1>Eddy</h1><span class="pipeline" id="pipeline">coffee shop</span>
  <span class="status"><span class="dot" id="status-dot"></span><span id="status-text">connecting</span></span>
</header>
<main>
  <section class="kpis">
    <div class="card kpi"><h2>Orders / s</h2><div class="value" id="kpi-rate" data-value="">–</div><div class="sub" id="kpi-processed"></div></div>
    <div class="card kpi"><h2>Lag</h2><div class="value" id="kpi-lag" data-value="">–</div><div class="sub">events not yet checkpointed</div></div>
    <div class="card kpi"><h2>Revenue</h2><div class="value" id="kpi-revenue" data-value="">–</div><div class="sub" id="kpi-orders"></div></div>
    <div class="card kpi" id="kpi-late-card"><h2>Late orders</h2><div class="value" id="kpi-late" data-value="">–</div><div class="sub" id="kpi-late-sub"></div></div>
    <div class="card kpi" id="kpi-dead-card"><h2>Dead letters</h2><div class="value" id="kpi-dead" data-value="">–</div><div class="sub" id="kpi-dead-sub"></div></div>
  </section>
  <section class="card chart"><h2>Revenue per store per minute<small id="chart-range"></small></h2><div id="chart"></div><div class="legend" id="legend"></div></section>
  <section class="card stores"><h2>Revenue by store<small id="stores-reflects"></small></h2>
    <table><thead><tr><th>Store</th><th class="num">Orders</th><th class="num">Revenue</th><th class="num">Avg ticket</th></tr></thead><tbody id="stores"></tbody></table>
    <h3>Revenue by category</h3>
    <table><thead><tr><th>Category</th><th class="num">Orders</th><th class="num">Revenue</th><th>Share</th></tr></thead><tbody id="categories"></tbody></table></section>
  <section class="card tops"><h2>Top items per store<small>latest 5-minute window, by quantity</small></h2><div class="top-grid" id="tops"></div></section>
  <section class="card lifecycle" id="lifecycle" hidden><h2>Orders in progress<small>placed, brewing and served, by the order lifecycle machine</small></h2>
    <table><thead><tr><th>Store</th><th class="num">Open now</th><th class="num">Served</th><th class="num">Avg time to serve</th><th class="num">Longest</th><th class="num">Abandoned</th></tr></thead><tbody id="lifecycle-stores"></tbody></table></section>
  <section class="card actors"><h2>Operator actors<small id="actors-summary"></small></h2><div>
    <table><thead><tr><th>Step</th><th class="num">Partition</th><th>State</th><th class="num">Checkpoint</th><th class="num">Committed</th><th class="num">Keys</th><th class="num">Events in</th><th class="num">Lag</th></tr></thead><tbody id="actors"></tbody></table></div></section>
  <section class="card detail"><h2>Actor<small id="detail-title">select one in the list</small></h2><div id="detail"><div class="empty">Click an operator actor to see a sample of its keyed state and its most recent inputs.</div></div></section>
</main>
`;

// The page's script. Plain JavaScript for any current browser; no template literals inside (this
// is a template literal itself).
const script = String.raw`
"use strict";
(function () {
  var token = new URLSearchParams(location.search).get("access_token");
  var colors = ["#2f6fde", "#e0742b", "#1f9d55", "#a64fc9", "#d64545", "#0f9fb0", "#8c6d1f", "#5b6275"];
  var windowsShown = 30;
  var view = { stores: [], windows: new Map(), cutoff: 0, rate: [], selected: null };

  function withToken(path) {
    if (!token) return path;
    return path + (path.indexOf("?") < 0 ? "?" : "&") + "access_token=" + encodeURIComponent(token);
  }
  async function getJson(path) {
    var response = await fetch(withToken(path), { cache: "no-store" });
    var body = await response.json();
    if (!response.ok) {
      var error = new Error(body && body.error ? body.error.message : "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return body;
  }
  function orNull(promise) {
    return promise.catch(function (error) { if (error.status === 404) return null; throw error; });
  }
  /** Every row of a key range, following the pages. */
  async function readRange(table, from, to) {
    var rows = [];
    var cursor = null;
    var reflects = null;
    do {
      var query = "limit=1000" + (from !== undefined ? "&from=" + encodeURIComponent(from) : "") +
        (to !== undefined ? "&to=" + encodeURIComponent(to) : "") + (cursor ? "&cursor=" + cursor : "");
      var page = await getJson("/tables/" + table + "/rows?" + query);
      rows.push.apply(rows, page.rows);
      reflects = page.reflects;
      cursor = page.next;
    } while (cursor);
    return { rows: rows, reflects: reflects };
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "class") node.className = attrs[name];
      else node.setAttribute(name, attrs[name]);
    }
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  var money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  var count = new Intl.NumberFormat("en-US");
  function hhmm(ms) { return new Date(ms).toISOString().slice(11, 16); }
  function ago(ms) {
    if (ms < 1000) return "just now";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s ago";
    return Math.round(ms / 60000) + " min ago";
  }
  function json(value) {
    var text = JSON.stringify(value);
    return text === undefined ? "" : text;
  }
  /** An input record's value as "field value" pairs (the whole JSON in its title). */
  function fields(value) {
    var box = el("div");
    if (value === null || typeof value !== "object") box.textContent = json(value);
    else {
      Object.keys(value).forEach(function (name, i) {
        var v = value[name];
        box.appendChild(el("b", { text: (i ? " " : "") + name + " " }));
        box.appendChild(document.createTextNode(typeof v === "string" ? v : json(v)));
      });
    }
    return el("td", { class: "fields", title: json(value) }, [box]);
  }
  function setFigure(id, value, text) {
    var node = document.getElementById(id);
    node.dataset.value = value === null ? "" : String(value);
    node.textContent = text;
  }

  function renderStores(rows, reflects) {
    var body = document.getElementById("stores");
    body.replaceChildren();
    var revenue = 0;
    var orders = 0;
    rows.forEach(function (r, i) {
      revenue += r.row.revenue;
      orders += r.row.orders;
      body.appendChild(el("tr", { "data-store": r.key }, [
        el("td", {}, [el("span", { class: "pill", style: "background:" + colors[i % colors.length] + ";color:#fff", text: r.key })]),
        el("td", { class: "num", "data-field": "orders", "data-value": r.row.orders, text: count.format(r.row.orders) }),
        el("td", { class: "num", "data-field": "revenue", "data-value": r.row.revenue, text: money.format(r.row.revenue) }),
        el("td", { class: "num", "data-field": "avgTicket", "data-value": r.row.avgTicket, text: money.format(r.row.avgTicket) }),
      ]));
    });
    if (rows.length === 0) body.appendChild(el("tr", {}, [el("td", { colspan: 4, class: "empty", text: "no orders yet" })]));
    setFigure("kpi-revenue", revenue, money.format(revenue));
    document.getElementById("kpi-orders").textContent = count.format(orders) + " orders";
    document.getElementById("stores-reflects").textContent = reflects && reflects.checkpoint !== null ? "checkpoint " + reflects.checkpoint : "";
  }

  function renderCategories(rows) {
    var body = document.getElementById("categories");
    body.replaceChildren();
    var total = rows.reduce(function (n, r) { return n + r.row.revenue; }, 0);
    rows.slice().sort(function (a, b) { return b.row.revenue - a.row.revenue; }).forEach(function (r) {
      var share = total > 0 ? r.row.revenue / total : 0;
      body.appendChild(el("tr", { "data-category": r.key }, [
        el("td", { text: r.key }),
        el("td", { class: "num", "data-field": "orders", "data-value": r.row.orders, text: count.format(r.row.orders) }),
        el("td", { class: "num", "data-field": "revenue", "data-value": r.row.revenue, text: money.format(r.row.revenue) }),
        el("td", { title: (share * 100).toFixed(1) + "%" }, [el("span", { class: "share", style: "width:" + Math.max(2, Math.round(share * 90)) + "px" })]),
      ]));
    });
  }

  function renderChart() {
    var rows = Array.from(view.windows.values());
    var starts = Array.from(new Set(rows.map(function (r) { return r.windowStart; }))).sort(function (a, b) { return a - b; }).slice(-windowsShown);
    var chart = document.getElementById("chart");
    var legend = document.getElementById("legend");
    chart.replaceChildren();
    legend.replaceChildren();
    if (starts.length === 0) {
      chart.appendChild(el("div", { class: "empty", text: "no closed one-minute windows yet (a window appears when the watermark passes its end)" }));
      document.getElementById("chart-range").textContent = "";
      return;
    }
    document.getElementById("chart-range").textContent = hhmm(starts[0]) + " to " + hhmm(starts[starts.length - 1] + 60000) + " UTC";
    var W = 760, H = 280, left = 62, right = 14, top = 12, bottom = 28;
    var max = 0;
    rows.forEach(function (r) { if (starts.indexOf(r.windowStart) >= 0) max = Math.max(max, r.revenue); });
    var step = Math.pow(10, Math.floor(Math.log10(Math.max(max, 1))));
    var niceMax = Math.max(step, Math.ceil((max * 1.1) / step) * step);
    var x = function (start) { return starts.length === 1 ? (left + W - right) / 2 : left + ((W - left - right) * starts.indexOf(start)) / (starts.length - 1); };
    var y = function (v) { return top + (H - top - bottom) * (1 - v / niceMax); };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "revenue per store per minute" });
    for (var i = 0; i <= 4; i++) {
      var v = (niceMax * i) / 4;
      root.appendChild(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      root.appendChild(svg("text", { x: left - 8, y: y(v) + 4, "text-anchor": "end" }, money.format(v).replace(".00", "")));
    }
    root.appendChild(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0) }));
    var every = Math.max(1, Math.ceil(starts.length / 10));
    starts.forEach(function (start, i) {
      if (i % every === 0 || i === starts.length - 1) root.appendChild(svg("text", { x: x(start), y: H - 8, "text-anchor": "middle" }, hhmm(start)));
    });
    view.stores.forEach(function (store, si) {
      var color = colors[si % colors.length];
      var points = starts.map(function (start) { return view.windows.get(store + "|" + start); }).filter(Boolean);
      if (points.length > 1) {
        var d = points.map(function (r, i) { return (i ? "L" : "M") + x(r.windowStart).toFixed(1) + "," + y(r.revenue).toFixed(1); }).join(" ");
        root.appendChild(svg("path", { d: d, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round" }));
      }
      points.forEach(function (r) {
        var dot = svg("circle", {
          cx: x(r.windowStart), cy: y(r.revenue), r: 3.2, fill: color,
          "data-store": store, "data-window": r.windowStart, "data-value": r.revenue, "data-orders": r.orders,
        });
        dot.appendChild(svg("title", {}, store + " " + hhmm(r.windowStart) + ": " + money.format(r.revenue) + " (" + r.orders + " orders)"));
        root.appendChild(dot);
      });
      var last = points[points.length - 1];
      legend.appendChild(el("span", { style: "--c:" + color, text: store + (last ? " " + money.format(last.revenue) : "") }));
    });
    chart.appendChild(root);
  }

  function renderTops(tops) {
    var grid = document.getElementById("tops");
    grid.replaceChildren();
    tops.forEach(function (top, i) {
      var store = view.stores[i];
      if (!top) return;
      var max = top.entries.length ? top.entries[0].weight : 1;
      var list = el("ol", {}, top.entries.map(function (e) {
        return el("li", { "data-item": e.key, "data-rank": e.rank, "data-value": e.weight }, [
          el("span", { class: "rank", text: String(e.rank) }),
          el("span", { class: "bar", style: "--w:" + ((100 * e.weight) / max).toFixed(1) + "%" }, [el("span", { text: e.key })]),
          el("span", { class: "weight", text: count.format(e.weight) }),
        ]);
      }));
      var when = top.window ? hhmm(top.window.start) + " to " + hhmm(top.window.end) + " UTC" : "";
      grid.appendChild(el("div", { class: "top-store", "data-store": store, "data-row": top.rowKey }, [
        el("h3", { text: store }), el("div", { class: "window", text: when }), list,
      ]));
    });
    if (!grid.children.length) grid.appendChild(el("div", { class: "empty", text: "no closed 5-minute windows yet" }));
  }

  function minutes(ms) {
    if (ms === null || ms === undefined) return "–";
    var s = Math.round(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function renderLifecycle(open, served) {
    var card = document.getElementById("lifecycle");
    card.hidden = !open && !served;
    if (card.hidden) return;
    var byStore = new Map();
    function at(key) { if (!byStore.has(key)) byStore.set(key, {}); return byStore.get(key); }
    (open ? open.rows : []).forEach(function (r) { Object.assign(at(String(r.key)), { open: r.row.open, abandoned: r.row.abandoned }); });
    (served ? served.rows : []).forEach(function (r) { Object.assign(at(String(r.key)), r.row); });
    var body = document.getElementById("lifecycle-stores");
    body.replaceChildren();
    Array.from(byStore.keys()).sort().forEach(function (store) {
      var r = byStore.get(store);
      var cell = function (field, value, text) { return el("td", { class: "num", "data-field": field, "data-value": value === undefined ? "" : value, text: text }); };
      body.appendChild(el("tr", { "data-store": store }, [
        el("td", { text: store }),
        cell("open", r.open, count.format(r.open || 0)),
        cell("served", r.served, count.format(r.served || 0)),
        cell("avgWaitMs", r.avgWaitMs, minutes(r.avgWaitMs)),
        cell("longestWaitMs", r.longestWaitMs, minutes(r.longestWaitMs)),
        cell("abandoned", r.abandoned, count.format(r.abandoned || 0)),
      ]));
    });
    if (byStore.size === 0) body.appendChild(el("tr", {}, [el("td", { colspan: 6, class: "empty", text: "no orders placed yet" })]));
  }

  function renderRate(actors) {
    var source = actors.sources.find(function (s) { return s.id === "orders"; }) || actors.sources[0];
    if (!source) return;
    view.rate.push({ at: actors.at, applied: source.applied });
    while (view.rate.length > 2 && view.rate[view.rate.length - 1].at - view.rate[0].at > 5000) view.rate.shift();
    var first = view.rate[0], last = view.rate[view.rate.length - 1];
    var rate = last.at > first.at ? ((last.applied - first.applied) * 1000) / (last.at - first.at) : null;
    setFigure("kpi-rate", rate === null ? null : Math.round(rate), rate === null ? "–" : count.format(Math.round(rate)));
    document.getElementById("kpi-processed").textContent = count.format(source.applied) + " read from " + source.stream;
    var lag = source.lag;
    setFigure("kpi-lag", lag, lag === null ? "–" : count.format(lag));
  }

  function renderCounters(actors) {
    var late = actors.totals.lateEvents;
    var steps = Object.keys(late);
    var most = steps.reduce(function (m, s) { return Math.max(m, late[s]); }, 0);
    setFigure("kpi-late", most, count.format(most));
    document.getElementById("kpi-late-sub").textContent = steps.map(function (s) { return s + " " + count.format(late[s]); }).join(" · ");
    var dead = actors.totals.deadLetters;
    setFigure("kpi-dead", dead, count.format(dead));
    document.getElementById("kpi-dead-card").classList.toggle("alert", dead > 0);
    document.getElementById("kpi-dead-sub").textContent = count.format(actors.totals.sourceDeadLetters) + " while decoding, " +
      count.format(dead - actors.totals.sourceDeadLetters) + " in operators";
  }

  function renderActors(actors) {
    var body = document.getElementById("actors");
    body.replaceChildren();
    var running = 0;
    actors.actors.forEach(function (a) {
      if (a.state === "running" || a.state === "checkpointing") running++;
      var id = a.step + "/" + a.partition;
      var row = el("tr", { "data-actor": id, class: view.selected === id ? "selected" : "" }, [
        el("td", { text: a.step }),
        el("td", { class: "num", text: String(a.partition) }),
        el("td", {}, [el("span", { class: "pill " + a.state, text: a.state, title: a.error || "" })]),
        el("td", { class: "num", "data-field": "checkpoint", text: String(a.checkpoint) }),
        el("td", { class: "num", text: a.committedAt === null ? "–" : ago(actors.at - a.committedAt) }),
        el("td", { class: "num", "data-field": "keys", "data-value": a.keys, text: count.format(a.keys) }),
        el("td", { class: "num", text: count.format(a.eventsIn) }),
        el("td", { class: "num", text: a.lag === null ? "–" : count.format(a.lag) }),
      ]);
      row.addEventListener("click", function () { select(id); });
      body.appendChild(row);
    });
    document.getElementById("actors-summary").textContent = running + " of " + actors.actors.length + " running";
  }

  function renderDetail(detail) {
    var box = document.getElementById("detail");
    if (!detail) return;
    document.getElementById("detail-title").textContent = detail.step + " / partition " + detail.partition;
    var state = el("table", { id: "actor-state" }, [
      el("thead", {}, [el("tr", {}, [el("th", { text: "Key" }), el("th", { text: "State" })])]),
      el("tbody", {}, detail.sample.map(function (s) {
        return el("tr", { "data-key": String(s.key) }, [el("td", { text: String(s.key) }), el("td", { class: "json", text: json(s.value) })]);
      })),
    ]);
    var recent = el("table", { id: "actor-recent" }, [
      el("colgroup", {}, [el("col", { style: "width:64px" }), el("col", { style: "width:74px" }), el("col", { style: "width:96px" }), el("col", {})]),
      el("thead", {}, [el("tr", {}, [el("th", { class: "num", text: "Seq" }), el("th", { text: "Key" }), el("th", { text: "Event time" }), el("th", { text: "Value" })])]),
      el("tbody", {}, detail.recent.slice().reverse().map(function (r) {
        return el("tr", { "data-seq": r.seq, "data-key": String(r.key) }, [
          el("td", { class: "num", text: String(r.seq) }),
          el("td", { text: String(r.key) }),
          el("td", { text: r.time === null || isNaN(r.time) ? "–" : new Date(r.time).toISOString().slice(11, 23) }),
          fields(r.value),
        ]);
      })),
    ]);
    var meta = detail.state + " · checkpoint " + detail.checkpoint +
      (detail.committedAt === null ? "" : " (" + new Date(detail.committedAt).toLocaleTimeString() + ")") +
      " · " + count.format(detail.eventsIn) + " events in" + (detail.error ? " · " + detail.error : "");
    box.replaceChildren(
      el("div", { class: "meta", text: meta }),
      el("h3", { text: "Keyed state: " + detail.sample.length + " of " + count.format(detail.keys) + " keys" }),
      el("div", { class: "scroll" }, [detail.sample.length ? state : el("div", { class: "empty", text: "no keys" })]),
      el("h3", { text: "Most recent inputs (newest first)" }),
      el("div", { class: "scroll inputs" }, [detail.recent.length ? recent : el("div", { class: "empty", text: "no inputs since this process started" })]),
    );
  }

  function select(id) {
    view.selected = id;
    document.querySelectorAll("#actors tr").forEach(function (tr) { tr.classList.toggle("selected", tr.dataset.actor === id); });
    document.getElementById("detail").replaceChildren(el("div", { class: "empty", text: "loading " + id }));
    refreshDetail();
  }
  async function refreshDetail() {
    var id = view.selected;
    if (!id) return;
    var slash = id.lastIndexOf("/");
    var detail = await getJson("/actors/" + encodeURIComponent(id.slice(0, slash)) + "/" + id.slice(slash + 1));
    if (view.selected === id) renderDetail(detail);
  }

  function setStatus(ok, text) {
    document.getElementById("status-dot").className = "dot " + (ok ? "live" : "down");
    document.getElementById("status-text").textContent = text;
  }

  async function poll() {
    try {
      var results = await Promise.all([readRange("revenue_by_store"), orNull(getJson("/actors")), readRange("revenue_by_category")]);
      var stores = results[0];
      var actors = results[1];
      view.stores = stores.rows.map(function (r) { return String(r.key); });
      var cutoff = view.cutoff;
      var windows = await Promise.all(view.stores.map(function (s) { return readRange("revenue_per_store_minute", s + "|" + cutoff, s + "}"); }));
      var latest = 0;
      windows.forEach(function (w) { w.rows.forEach(function (r) { view.windows.set(String(r.key), r.row); latest = Math.max(latest, r.row.windowStart); }); });
      view.cutoff = Math.max(0, latest - windowsShown * 60000);
      view.windows.forEach(function (row, key) { if (row.windowStart < view.cutoff) view.windows.delete(key); });
      var tops = await Promise.all(view.stores.map(function (s) { return orNull(getJson("/tables/top_items_per_store/rows/" + encodeURIComponent(s) + "/top")); }));
      var lifecycle = await Promise.all([orNull(readRange("open_orders_by_store")), orNull(readRange("serve_time_by_store"))]);
      renderStores(stores.rows, stores.reflects);
      renderCategories(results[2].rows);
      renderChart();
      renderTops(tops);
      renderLifecycle(lifecycle[0], lifecycle[1]);
      if (actors) {
        document.getElementById("pipeline").textContent = actors.pipeline;
        renderRate(actors);
        renderCounters(actors);
        renderActors(actors);
        await refreshDetail();
      } else {
        document.getElementById("actors-summary").textContent = "no worker runs in this service";
      }
      setStatus(true, "live · updated " + new Date().toLocaleTimeString());
    } catch (error) {
      setStatus(false, "cannot reach the query API (" + error.message + "), retrying");
    } finally {
      setTimeout(poll, 1000);
    }
  }
  poll();
})();
`;

/** The whole page. */
export const dashboardPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Eddy · coffee shop</title>
<style>${style}</style>
</head>
<body>${body}<script>${script}</script>
</body>
</html>
`;

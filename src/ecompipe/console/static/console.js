// The ecompipe console: renders the JSON documents of ecompipe.console.documents.
// Served by `ecompipe serve` (it fetches /api/...), or inlined by `ecompipe report --html`
// with the documents embedded (<script id="ecompipe-report">): one renderer for both.
// Data is only ever put in the page as text (textContent), never as markup.
"use strict";

(() => {
  const embeddedNode = document.getElementById("ecompipe-report");
  const REPORT = embeddedNode ? JSON.parse(embeddedNode.textContent) : null;
  const TABLE_ROW_LIMIT = 500;
  const TOP_CATEGORIES = 5;
  const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#9ca3af"];
  const OUTCOME_COLORS = {
    succeeded: "#16a34a", failed: "#dc2626", running: "#2563eb", interrupted: "#d97706",
  };
  const charts = {};
  const state = { from: "", to: "", category: "", table: "order_metrics", sort: null, doc: null };
  let meta = null;

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(id) {
    const node = document.getElementById(id);
    node.replaceChildren();
    return node;
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(`${path}: ${response.status} ${await response.text()}`);
    }
    return response.json();
  }

  function showError(error) {
    const box = document.getElementById("error");
    box.textContent = String(error && error.message ? error.message : error);
    box.hidden = false;
    console.error(error);
  }

  function utc(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "-";
    return new Date(epochSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
  }

  function formatValue(kind, value) {
    if (value === null || value === undefined) return "";
    if (kind === "money") return Number(value).toFixed(2);
    if (kind === "rate") return Number(value).toFixed(4);
    return String(value);
  }

  function dash(value) {
    return value === null || value === undefined ? "-" : String(value);
  }

  function table(columns, rows, options = {}) {
    // columns: [{key, label, kind, render(row) -> node|text}]
    const head = el("tr", {}, columns.map((c) => {
      const sorted = options.sort && options.sort.key === c.key;
      const label = options.onSort
        ? el("button", { type: "button", class: "sort", "data-sort": c.key }, c.label || c.key)
        : c.label || c.key;
      return el("th", {
        "data-col": c.key,
        class: c.kind && c.kind !== "text" && c.kind !== "date" ? "num" : null,
        "aria-sort": sorted ? (options.sort.dir === "asc" ? "ascending" : "descending") : null,
      }, label);
    }));
    const body = rows.map((row) => el("tr", { "data-key": options.rowKey ? options.rowKey(row) : null },
      columns.map((c) => el("td", {
        "data-col": c.key,
        class: c.kind && c.kind !== "text" && c.kind !== "date" ? "num" : null,
      }, c.render ? c.render(row) : formatValue(c.kind, row[c.key])))));
    const node = el("table", { class: options.class || null }, el("thead", {}, head), el("tbody", {}, body));
    if (options.onSort) {
      node.querySelectorAll("button.sort").forEach((button) => {
        button.addEventListener("click", () => options.onSort(button.dataset.sort));
      });
    }
    return node;
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    const canvas = document.getElementById(id);
    config.options = Object.assign({
      animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: config.data.datasets.length > 1 } },
    }, config.options || {});
    charts[id] = new Chart(canvas, config);
  }

  // ------------------------------------------------------------------ KPIs

  function cents(value) {
    return Math.round(Number(value) * 100);
  }

  function kpiTiles(doc) {
    const orders = doc.order_metrics;
    const revenueCents = orders.reduce((sum, o) => sum + cents(o.total_revenue), 0);
    const tiles = [
      ["Revenue", (revenueCents / 100).toFixed(2), "tile-revenue"],
      ["Orders", String(orders.reduce((s, o) => s + o.total_orders, 0)), "tile-orders"],
      ["Items sold", String(orders.reduce((s, o) => s + o.total_items_sold, 0)), "tile-items"],
      ["Days", String(orders.length), "tile-days"],
    ];
    clear("tiles").append(...tiles.map(([label, value, id]) =>
      el("div", { class: "tile", id }, el("span", { class: "tile-label" }, label),
        el("span", { class: "tile-value" }, value))));
  }

  function categorySeries(rows) {
    // Top categories by revenue in the rows shown, the rest summed as "Other".
    const totals = new Map();
    for (const r of rows) totals.set(r.category, (totals.get(r.category) || 0) + cents(r.daily_revenue));
    const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const top = ranked.slice(0, TOP_CATEGORIES).map(([name]) => name);
    const grouped = ranked.length > top.length;
    const dates = [...new Set(rows.map((r) => r.order_date))].sort();
    const index = new Map(dates.map((d, i) => [d, i]));
    const names = grouped ? [...top, "Other"] : top;
    const series = new Map(names.map((n) => [n, new Array(dates.length).fill(0)]));
    for (const r of rows) {
      const name = top.includes(r.category) ? r.category : "Other";
      series.get(name)[index.get(r.order_date)] += cents(r.daily_revenue);
    }
    return {
      labels: dates,
      datasets: names.map((name, i) => ({
        label: name,
        data: series.get(name).map((c) => c / 100),
        backgroundColor: PALETTE[name === "Other" ? PALETTE.length - 1 : i % (PALETTE.length - 1)],
        stack: "revenue",
      })),
    };
  }

  function kpiCharts(doc) {
    const orders = doc.order_metrics;
    const labels = orders.map((o) => o.order_date);
    const line = (label, key, color) => ({
      labels, datasets: [{ label, data: orders.map((o) => o[key]), borderColor: color,
        backgroundColor: color, pointRadius: orders.length > 60 ? 0 : 2, borderWidth: 1.5 }],
    });
    draw("chart-revenue", { type: "line", data: line("total_revenue", "total_revenue", PALETTE[0]) });
    draw("chart-orders", {
      type: "bar",
      data: { labels, datasets: [{ label: "total_orders", data: orders.map((o) => o.total_orders), backgroundColor: PALETTE[1] }] },
    });
    draw("chart-return-rate", {
      type: "line",
      data: line("return_rate", "return_rate", PALETTE[3]),
      options: { scales: { y: { min: 0, max: 1 } } },
    });
    draw("chart-categories", {
      type: "bar",
      data: categorySeries(doc.category_metrics),
      options: { scales: { x: { stacked: true }, y: { stacked: true } } },
    });
  }

  function sortRows(rows, sort, columns) {
    if (!sort) return rows;
    const kind = (columns.find((c) => c.name === sort.key) || {}).kind;
    const numeric = kind && kind !== "text" && kind !== "date";
    const sign = sort.dir === "asc" ? 1 : -1;
    return [...rows].sort((a, b) => {
      const x = a[sort.key];
      const y = b[sort.key];
      const order = numeric ? x - y : String(x).localeCompare(String(y));
      return sign * order;
    });
  }

  function metricsTable() {
    const doc = state.doc;
    const columns = meta.columns[state.table];
    const rows = sortRows(doc[state.table], state.sort, columns);
    const shown = rows.slice(0, TABLE_ROW_LIMIT);
    document.getElementById("metrics-note").textContent = rows.length > shown.length
      ? `${shown.length} of ${rows.length} rows shown: narrow the dates or pick a category`
      : `${rows.length} rows`;
    clear("metrics-table").append(table(
      columns.map((c) => ({ key: c.name, kind: c.kind })),
      shown,
      {
        class: "metrics",
        sort: state.sort,
        rowKey: (r) => (r.category !== undefined ? `${r.category}|${r.order_date}` : r.order_date),
        onSort: (key) => {
          const dir = state.sort && state.sort.key === key && state.sort.dir === "asc" ? "desc" : "asc";
          state.sort = { key, dir };
          metricsTable();
        },
      },
    ));
  }

  function fillCategories(doc) {
    const select = document.getElementById("filter-category");
    if (select.options.length > 1) return;
    const names = [...new Set(doc.category_metrics.map((c) => c.category))].sort();
    select.append(...names.map((n) => el("option", { value: n }, n)));
  }

  function periodText() {
    const parts = [];
    if (state.from || state.to) parts.push(`order dates ${state.from || "…"} to ${state.to || "…"}`);
    else parts.push("every order date");
    if (state.category) {
      parts.push(`category ${state.category} (daily totals: every category, on the dates it has)`);
    }
    return parts.join("; ");
  }

  async function showKpis() {
    let doc;
    if (REPORT) {
      doc = REPORT.metrics;
    } else {
      const query = new URLSearchParams();
      if (state.from) query.set("from", state.from);
      if (state.to) query.set("to", state.to);
      if (state.category) query.set("category", state.category);
      doc = await api(`api/metrics?${query}`);
      if (!state.from && !state.to && !state.category) fillCategories(doc);
    }
    state.doc = doc;
    document.getElementById("period").textContent = REPORT ? REPORT.period_text : periodText();
    kpiTiles(doc);
    kpiCharts(doc);
    metricsTable();
  }

  function bindFilters() {
    const inputs = { from: "filter-from", to: "filter-to", category: "filter-category" };
    for (const [key, id] of Object.entries(inputs)) {
      document.getElementById(id).addEventListener("change", (event) => {
        state[key] = event.target.value;
        render("kpis");
      });
    }
    document.getElementById("filter-reset").addEventListener("click", () => {
      for (const [key, id] of Object.entries(inputs)) {
        state[key] = "";
        document.getElementById(id).value = "";
      }
      render("kpis");
    });
  }

  function bindTableChoice() {
    document.getElementById("table-choice").addEventListener("change", (event) => {
      state.table = event.target.value;
      state.sort = null;
      metricsTable();
    });
  }

  // ------------------------------------------------------------------ executions

  function statusBadge(status) {
    return el("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
  }

  function executionsTable(rows, linked) {
    return table([
      { key: "execution_id", label: "execution", kind: "text",
        render: (r) => (linked ? el("a", { href: `#/executions/${encodeURIComponent(r.execution_id)}` }, r.execution_id) : r.execution_id) },
      { key: "status", kind: "text", render: (r) => statusBadge(r.status) },
      { key: "state", kind: "text" },
      { key: "started_at", label: "started (UTC)", kind: "text", render: (r) => utc(r.started_at) },
      { key: "duration_seconds", label: "duration", kind: "count", render: (r) => duration(r.duration_seconds) },
      { key: "files_accepted", label: "files accepted", kind: "count", render: (r) => dash(r.files_accepted) },
      { key: "files_rejected", label: "files rejected", kind: "count", render: (r) => dash(r.files_rejected) },
      { key: "rows_rejected", label: "rows rejected", kind: "count", render: (r) => dash(r.rows_rejected) },
      { key: "dates_recomputed", label: "dates recomputed", kind: "count", render: (r) => dash(r.dates_recomputed) },
    ], rows, { class: "executions", rowKey: (r) => r.execution_id });
  }

  function quality(doc) {
    const box = clear("quality");
    const counts = (title, id, byReason, noun) => {
      const entries = Object.entries(byReason);
      return el("div", { class: "card", id },
        el("h4", {}, title),
        entries.length
          ? table([{ key: "reason", kind: "text" }, { key: "count", kind: "count", label: noun }],
            entries.map(([reason, count]) => ({ reason, count })), { rowKey: (r) => r.reason })
          : el("p", { class: "muted" }, "none"));
    };
    const waiting = doc.waiting_for_parent;
    box.append(
      el("p", { class: "muted" }, `Over the latest ${doc.executions} execution(s).`),
      counts("Files rejected by reason", "quality-files", doc.files_rejected_by_reason, "files"),
      counts("Rejected rows by reason", "quality-rows", doc.rows_rejected_by_reason, "problems"),
      el("div", { class: "card", id: "quality-waiting" },
        el("h4", {}, "Items waiting for a parent"),
        waiting
          ? el("p", {},
            el("span", { class: "waiting-order" }, String(waiting.waiting_for_order)), " for their order, ",
            el("span", { class: "waiting-product" }, String(waiting.waiting_for_product)), " for their product ",
            el("span", { class: "muted" }, `(as of ${waiting.execution_id})`))
          : el("p", { class: "muted" }, "no transform yet")),
    );
  }

  async function showExecutions() {
    const [rows, qualityDoc] = REPORT
      ? [REPORT.executions, REPORT.quality]
      : await Promise.all([api("api/executions"), api("api/quality")]);
    quality(qualityDoc);
    const box = clear("executions-table");
    box.append(rows.length ? executionsTable(rows, !REPORT) : el("p", { class: "muted" }, "no executions yet"));
  }

  function stateGraph(doc) {
    const last = new Map();
    for (const span of doc.timeline) last.set(span.state, span.outcome);
    clear("execution-graph").append(...doc.workflow.map((name) => {
      const outcome = last.get(name) || "not-run";
      return el("li", { class: `state outcome-${outcome}`, "data-state": name, "data-outcome": outcome },
        el("span", { class: "state-name" }, name), el("span", { class: "state-outcome" }, outcome.replace("-", " ")));
    }));
  }

  function timelineChart(doc) {
    const t0 = doc.started_at;
    const attempts = new Map();
    const labels = doc.timeline.map((s) => {
      const n = (attempts.get(s.state) || 0) + 1;
      attempts.set(s.state, n);
      return n > 1 ? `${s.state} (attempt ${n})` : s.state;
    });
    const container = document.getElementById("chart-timeline").parentElement;
    container.style.height = `${Math.max(120, 32 * labels.length + 60)}px`;
    draw("chart-timeline", {
      type: "bar",
      data: {
        labels,
        datasets: [{
          label: "seconds since the execution started",
          data: doc.timeline.map((s) => [s.start - t0, s.end - t0]),
          backgroundColor: doc.timeline.map((s) => OUTCOME_COLORS[s.outcome] || "#6b7280"),
          borderSkipped: false,
        }],
      },
      options: {
        indexAxis: "y",
        scales: { x: { min: 0, title: { display: true, text: "seconds since the execution started" } } },
      },
    });
  }

  function validationTable(validation) {
    if (!validation) return el("p", { class: "muted" }, "no validation report (the execution did not get there)");
    return table([
      { key: "key", label: "file", kind: "text" },
      { key: "dataset", kind: "text" },
      { key: "verdict", kind: "text", render: (f) => (f.accepted ? "accepted" : `rejected: ${f.reason}`) },
      { key: "detail", kind: "text", render: (f) => f.detail || "" },
      { key: "rows", kind: "count" },
      { key: "bad_rows", label: "bad rows", kind: "count" },
      { key: "rejected_rows", label: "rejected rows", kind: "count" },
      { key: "duplicates_dropped", label: "duplicates dropped", kind: "count" },
    ], validation.files, { class: "validation", rowKey: (f) => f.key });
  }

  async function showExecution(id) {
    const doc = await api(`api/executions/${encodeURIComponent(id)}`);
    document.getElementById("execution-title").replaceChildren(
      document.createTextNode(`${doc.execution_id} `), statusBadge(doc.status));
    const facts = [
      ["batch", `#${doc.seq}`], ["state", doc.state], ["started (UTC)", utc(doc.started_at)],
      ["finished (UTC)", utc(doc.finished_at)], ["duration", duration(doc.duration_seconds)],
      ["holder", dash(doc.holder)], ["message", dash(doc.message)],
    ];
    clear("execution-facts").append(el("dl", {}, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
    stateGraph(doc);
    timelineChart(doc);
    clear("execution-events").append(table([
      { key: "at", label: "at (UTC)", kind: "text", render: (e) => utc(e.at) },
      { key: "offset", label: "+s", kind: "count", render: (e) => (e.at - doc.started_at).toFixed(3) },
      { key: "state", kind: "text" },
      { key: "event", kind: "text" },
      { key: "detail", kind: "text", render: (e) => (e.detail ? JSON.stringify(e.detail) : "") },
    ], doc.events, { class: "events" }));
    clear("execution-validation").append(validationTable(doc.validation));
    const rejects = doc.rejects;
    document.getElementById("execution-rejects-note").textContent = rejects.total > rejects.rows.length
      ? `${rejects.rows.length} of ${rejects.total} shown`
      : `${rejects.total} rejected value(s)`;
    clear("execution-rejects").append(table(
      ["file", "line", "column", "reason", "text"].map((key) => ({ key, kind: key === "line" ? "count" : "text" })),
      rejects.rows, { class: "rejects", rowKey: (r) => `${r.file}:${r.line}:${r.column}` },
    ));
    clear("execution-quarantined").append(doc.quarantined.length
      ? table([{ key: "key", label: "file", kind: "text" }, { key: "dataset", kind: "text" },
        { key: "size", kind: "count" }, { key: "location", kind: "text" }],
      doc.quarantined, { class: "quarantined", rowKey: (e) => e.key })
      : el("p", { class: "muted" }, "none"));
    clear("execution-manifest").append(table(
      ["key", "dataset", "size", "status", "location"].map((key) => ({ key, kind: key === "size" ? "count" : "text" })),
      doc.manifest, { class: "manifest" },
    ));
  }

  // ------------------------------------------------------------------ lock and settings

  async function showLock() {
    const doc = await api("api/lock");
    const held = doc.holders.filter((h) => h.section === "lock").length;
    document.getElementById("lock-summary").textContent =
      `lock '${doc.lock_id}': ${held} of ${doc.limit} slot(s) held`;
    const condition = (h) => {
      if (h.dead) return el("span", { class: "badge status-failed" }, "dead: its process is gone, the next run reaps it");
      if (h.expired) return el("span", { class: "badge status-running" }, "expired: the next run reaps it");
      return el("span", { class: "badge status-succeeded" }, `held, ${Math.round(h.expires_at - doc.now)} s left`);
    };
    clear("lock-table").append(doc.holders.length
      ? table([
        { key: "section", kind: "text", render: (h) => (h.section === "critical" ? "critical section" : "lock") },
        { key: "holder", kind: "text" },
        { key: "execution_id", label: "execution", kind: "text",
          render: (h) => (h.execution_id ? el("a", { href: `#/executions/${encodeURIComponent(h.execution_id)}` }, h.execution_id) : "-") },
        { key: "host", kind: "text" },
        { key: "pid", kind: "count" },
        { key: "acquired_at", label: "since (UTC)", kind: "text", render: (h) => utc(h.acquired_at) },
        { key: "expires_at", label: "until (UTC)", kind: "text", render: (h) => utc(h.expires_at) },
        { key: "condition", kind: "text", render: condition },
      ], doc.holders, { class: "lock", rowKey: (h) => h.holder })
      : el("p", { class: "muted" }, "nobody holds the lock"));
  }

  function showSettings() {
    clear("settings-table").append(table(
      [{ key: "name", kind: "text" }, { key: "env", kind: "text" }, { key: "value", kind: "text" }],
      meta.settings, { class: "settings", rowKey: (s) => s.name },
    ));
  }

  // ------------------------------------------------------------------ routing

  function route() {
    const hash = window.location.hash.replace(/^#\/?/, "");
    if (hash.startsWith("executions/")) return ["execution", decodeURIComponent(hash.slice(11))];
    if (["executions", "lock", "settings"].includes(hash)) return [hash, null];
    return ["kpis", null];
  }

  async function render(view, arg) {
    document.body.dataset.ready = "";
    document.getElementById("error").hidden = true;
    for (const section of document.querySelectorAll("section.view")) {
      section.hidden = section.id !== `view-${view}`;
    }
    document.querySelectorAll("#nav a").forEach((a) => {
      a.classList.toggle("active", a.dataset.view === view || (view === "execution" && a.dataset.view === "executions"));
    });
    try {
      if (view === "kpis") await showKpis();
      else if (view === "executions") await showExecutions();
      else if (view === "execution") await showExecution(arg);
      else if (view === "lock") await showLock();
      else showSettings();
      document.body.dataset.ready = view;
      // How many views were drawn: a test (or a script) waits for the next one.
      document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
    } catch (error) {
      showError(error);
    }
  }

  async function startReport() {
    document.body.classList.add("report");
    meta = { columns: REPORT.columns };
    document.getElementById("subtitle").textContent =
      `report of ${REPORT.generated_at_text}, backend ${REPORT.backend}`;
    bindTableChoice();
    for (const id of ["view-kpis", "view-executions"]) document.getElementById(id).hidden = false;
    try {
      await showKpis();
      await showExecutions();
      document.body.dataset.ready = "report";
    } catch (error) {
      showError(error);
    }
  }

  async function start() {
    if (REPORT) return startReport();
    try {
      meta = await api("api/meta");
    } catch (error) {
      return showError(error);
    }
    document.getElementById("subtitle").textContent = `backend ${meta.backend} · read-only · ecompipe ${meta.version}`;
    bindFilters();
    bindTableChoice();
    window.addEventListener("hashchange", () => render(...route()));
    return render(...route());
  }

  start();
})();

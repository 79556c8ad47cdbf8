// Ticketflow manager dashboard: vanilla JS over GET /reports/overview, /reports/workload and /reports/csat.
//
// Every piece of text that comes from the API reaches the DOM through textContent (el() below),
// never through innerHTML, so a name such as "<img onerror=…>" is shown as it is.
"use strict";

(() => {
  const KEY_STORE = "ticketflow.dashboard.apiKey";
  const FILTER_STORE = "ticketflow.dashboard.filters";
  const REFRESH_MS = 60_000;
  const FILTERS = ["region", "since", "until", "role"];

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("controls"), key: $("api-key"), region: $("region"), since: $("since"), until: $("until"),
    role: $("role"), refresh: $("refresh"), auto: $("auto"), forget: $("forget"), status: $("status"),
    error: $("error"), errorTitle: $("error-title"), errorDetails: $("error-details"), content: $("content"),
    period: $("period"),
  };

  const knownRegions = new Map(); // code → name, from the overviews seen with the current key
  let lastKey = null;
  let seq = 0; // answers to an older refresh than the latest are dropped

  // --- DOM helpers (text only) ---

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // --- formatting ---

  const fmtCount = (n) => (n === null || n === undefined ? "—" : String(n));
  const fmtPercent = (share) => (share === null || share === undefined ? "—" : `${(share * 100).toFixed(1)} %`);
  const fmtHours = (seconds) => (seconds === null || seconds === undefined ? "—" : `${(seconds / 3600).toFixed(1)} h`);
  const fmtUtc = (iso) => `${new Date(iso).toISOString().slice(0, 16).replace("T", " ")} UTC`;
  const label = (key) => String(key).replace(/_/g, " ");

  // A date input's day, as the browser's local midnight, in ISO 8601 UTC (what the API wants).
  function localMidnight(day, plusDays = 0) {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(y, m - 1, d + plusDays).toISOString();
  }

  // --- the API ---

  class ApiError extends Error {
    constructor(status, statusText, body, path) {
      super(`${path}: ${status} ${statusText}`);
      Object.assign(this, { status, statusText, body, path });
    }
  }

  async function getJson(path, params, key) {
    const url = new URL(path, document.baseURI); // relative: works behind a path prefix too
    for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
    const response = await fetch(url, { headers: { "X-API-Key": key, Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, response.statusText, body, path);
    return body;
  }

  const REASONS = {
    401: "Unauthorized: the API key is missing, unknown or revoked",
    403: "Forbidden: this key may not read these reports",
    422: "Invalid request",
  };

  function showError(err) {
    ui.content.hidden = true;
    clear(ui.errorDetails);
    if (err instanceof ApiError) {
      const reason = REASONS[err.status] || err.statusText || "Error";
      ui.errorTitle.textContent = `${err.status} ${reason}`;
      const detail = err.body && err.body.detail;
      const lines = [];
      if (Array.isArray(detail)) {
        for (const problem of detail) {
          const where = Array.isArray(problem.loc) ? problem.loc.join(".") : "";
          lines.push(where ? `${where}: ${problem.msg}` : String(problem.msg ?? JSON.stringify(problem)));
        }
      } else if (detail !== undefined && detail !== null) {
        lines.push(typeof detail === "string" ? detail : JSON.stringify(detail));
      } else if (err.body !== null) {
        lines.push(JSON.stringify(err.body));
      }
      lines.push(`(GET /${err.path})`);
      for (const line of lines) ui.errorDetails.append(el("li", line));
    } else {
      ui.errorTitle.textContent = "Could not reach the API";
      ui.errorDetails.append(el("li", err && err.message ? err.message : String(err)));
    }
    ui.error.hidden = false;
  }

  // --- rendering ---

  function setKpi(name, text) {
    document.querySelector(`[data-kpi="${name}"] .value`).textContent = text;
  }

  // Survey answers in the period: the share of 4-5 ratings, with the mean and the count beside it.
  function renderCsat(csat) {
    const t = csat.total;
    setKpi("csat", fmtPercent(t.csat));
    const note = document.querySelector('[data-kpi="csat"] .note');
    note.textContent = t.answered ? `avg ${t.average.toFixed(2)} · ${t.answered} answers` : "no answers";
  }

  function renderKpis(total) {
    setKpi("open_total", fmtCount(total.open.total));
    setKpi("open_breached", fmtCount(total.sla.open_breached));
    setKpi("breach_rate", fmtPercent(total.sla.breach_rate));
    setKpi("resolution_p50", fmtHours(total.resolution_time.p50_seconds));
    setKpi("resolution_p90", fmtHours(total.resolution_time.p90_seconds));
    setKpi("created", fmtCount(total.period.created));
    setKpi("resolved", fmtCount(total.period.resolved));
  }

  // One table: a row per region (and the total when there are several), a column per key.
  function renderDimension(table, overview, pick) {
    clear(table);
    const rows = overview.regions.map((r) => ({ head: r.name, code: r.region, counts: pick(r) }));
    if (overview.regions.length > 1) rows.push({ head: "Total", code: null, counts: pick(overview.total), total: true });
    const columns = [];
    for (const row of rows) for (const k of Object.keys(row.counts)) if (!columns.includes(k)) columns.push(k);

    const head = el("thead");
    const hr = el("tr");
    hr.append(el("th", "Region"));
    for (const c of columns) hr.append(el("th", label(c), "num"));
    hr.append(el("th", "all", "num"));
    head.append(hr);
    const body = el("tbody");
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", "no region in this report");
      td.colSpan = columns.length + 2;
      tr.append(td);
      body.append(tr);
    }
    for (const row of rows) {
      const tr = el("tr", null, row.total ? "total" : "");
      tr.dataset.region = row.code ?? "total";
      const th = el("th", row.head);
      th.scope = "row";
      if (row.code) th.append(el("span", row.code, "id"));
      tr.append(th);
      let all = 0;
      for (const c of columns) {
        const n = row.counts[c] ?? 0;
        all += n;
        tr.append(el("td", n, n ? "num" : "num zero"));
      }
      tr.append(el("td", all, "num"));
      body.append(tr);
    }
    table.append(head, body);
  }

  function utilisationCell(utilisation, load) {
    const td = el("td");
    const wrap = el("div", null, "util");
    const bar = el("div", null, "bar");
    const fill = el("div", null, "fill");
    let text;
    if (utilisation === null || utilisation === undefined) {
      // capacity 0: anyone holding tickets is beyond full
      fill.style.width = load ? "100%" : "0%";
      if (load) fill.classList.add("over");
      text = load ? "no capacity" : "—";
    } else {
      fill.style.width = `${Math.min(utilisation, 1) * 100}%`;
      if (utilisation > 1) fill.classList.add("over");
      else if (utilisation >= 0.8) fill.classList.add("high");
      text = `${Math.round(utilisation * 100)} %`;
    }
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", `utilisation ${text}`);
    bar.append(fill);
    wrap.append(bar, el("span", text, "pct"));
    td.append(wrap);
    return td;
  }

  function loadText(p) {
    const here = p.load_in_regions !== undefined && p.load_in_regions !== p.load ? ` (${p.load_in_regions} here)` : "";
    return `${p.load} / ${p.capacity}${here}`;
  }

  function renderWorkload(workload) {
    const people = $("workload").tBodies[0];
    clear(people);
    for (const p of workload.people) {
      const tr = el("tr");
      tr.dataset.person = p.id;
      const who = el("td", null, "person");
      who.append(el("span", p.name, "name"), el("span", p.id, "id"));
      tr.append(who, el("td", p.team ?? "—", "team"), el("td", loadText(p), "num load"));
      tr.append(utilisationCell(p.utilisation, p.load));
      tr.append(el("td", p.breached, p.breached ? "num breached" : "num breached zero"));
      people.append(tr);
    }
    if (!workload.people.length) {
      const tr = el("tr");
      const td = el("td", "nobody in these regions");
      td.colSpan = 5;
      tr.append(td);
      people.append(tr);
    }
    const teams = $("teams").tBodies[0];
    clear(teams);
    for (const t of workload.teams) {
      const tr = el("tr");
      tr.dataset.team = t.team ?? "";
      tr.append(el("td", t.team ?? "(no team)"), el("td", t.members, "num"), el("td", `${t.load} / ${t.capacity}`, "num"));
      tr.append(utilisationCell(t.utilisation, t.load));
      tr.append(el("td", t.breached, t.breached ? "num" : "num zero"));
      teams.append(tr);
    }
  }

  function rememberRegions(overview) {
    for (const r of overview.regions) knownRegions.set(r.region, r.name);
    const selected = ui.region.value;
    while (ui.region.options.length > 1) ui.region.remove(1);
    for (const [code, name] of [...knownRegions].sort((a, b) => a[0].localeCompare(b[0]))) {
      const option = el("option", `${name} (${code})`);
      option.value = code;
      ui.region.append(option);
    }
    ui.region.value = knownRegions.has(selected) ? selected : "";
  }

  function render(overview, workload, csat) {
    ui.error.hidden = true;
    rememberRegions(overview);
    ui.period.textContent =
      `Period ${fmtUtc(overview.since)} → ${fmtUtc(overview.until)} (end exclusive) · ` +
      `regions: ${overview.regions.map((r) => r.region).join(", ") || "none"}`;
    renderKpis(overview.total);
    renderCsat(csat);
    renderDimension($("open-by-status"), overview, (f) => f.open.by_status);
    renderDimension($("open-by-priority"), overview, (f) => f.open.by_priority);
    renderDimension($("open-by-type"), overview, (f) => f.open.by_type);
    renderDimension($("open-by-escalation"), overview, (f) => f.sla.open_by_escalation);
    renderWorkload(workload);
    ui.content.hidden = false;
  }

  // --- refreshing ---

  function saveFilters() {
    const values = Object.fromEntries(FILTERS.map((f) => [f, ui[f].value]));
    sessionStorage.setItem(FILTER_STORE, JSON.stringify(values));
  }

  function restoreFilters() {
    let values = {};
    try {
      values = JSON.parse(sessionStorage.getItem(FILTER_STORE) || "{}");
    } catch {
      values = {};
    }
    for (const f of FILTERS) {
      if (typeof values[f] !== "string" || !values[f]) continue;
      if (f === "region" && ![...ui.region.options].some((o) => o.value === values[f])) {
        const option = el("option", values[f]); // named again properly once the overview is in
        option.value = values[f];
        ui.region.append(option);
      }
      ui[f].value = values[f];
    }
  }

  async function refresh() {
    const key = ui.key.value.trim();
    if (!key) {
      ui.status.textContent = "Enter an API key to load the reports.";
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    if (lastKey !== null && key !== lastKey) knownRegions.clear(); // someone else: other regions
    lastKey = key;
    saveFilters();
    const mine = ++seq;
    ui.status.textContent = "Loading…";
    const region = ui.region.value;
    const overviewParams = {
      region,
      since: ui.since.value ? localMidnight(ui.since.value) : "",
      until: ui.until.value ? localMidnight(ui.until.value, 1) : "", // the until day is included
    };
    const workloadParams = { region, role: ui.role.value.trim() };
    try {
      const [overview, workload, csat] = await Promise.all([
        getJson("reports/overview", overviewParams, key),
        getJson("reports/workload", workloadParams, key),
        getJson("reports/csat", overviewParams, key),
      ]);
      if (mine !== seq) return;
      render(overview, workload, csat);
      ui.status.textContent = `Updated at ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      if (mine !== seq) return;
      showError(err);
      ui.status.textContent = `Failed at ${new Date().toLocaleTimeString()}.`;
    }
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  for (const f of ["region", "since", "until"]) ui[f].addEventListener("change", () => ui.key.value.trim() && refresh());
  ui.forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    ui.key.value = "";
    lastKey = null;
    knownRegions.clear();
    ui.content.hidden = true;
    ui.error.hidden = true;
    ui.status.textContent = "Key forgotten. Enter an API key to load the reports.";
  });
  // Auto-refresh skips a tab nobody is looking at, and catches up when it is shown again.
  let missed = false;
  setInterval(() => {
    if (!ui.auto.checked || !ui.key.value.trim()) return;
    if (document.hidden) {
      missed = true;
      return;
    }
    refresh();
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && missed && ui.auto.checked && ui.key.value.trim()) {
      missed = false;
      refresh();
    }
  });

  restoreFilters();
  const stored = sessionStorage.getItem(KEY_STORE);
  if (stored) {
    ui.key.value = stored;
    refresh();
  }
})();

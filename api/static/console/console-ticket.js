// Ticketflow console: a ticket's page — facts, SLA clocks, process path, form values, dispatch
// explanation, customer 360, parts and statement, attachments and the timeline in plain words —
// kept live by polling GET /tickets/{id}. Its buttons are console-actions.js's.
"use strict";

(() => {
  const C = window.TicketflowConsole;
  const {
    state, t, statusText, priorityText, $, el, clear, show, duration, isoDuration, when, ApiError, api,
    problemText, setStatus, showError, poll, template, visibleTo, display,
  } = C;

  async function showTicket(id) {
    show($("view-ticket"), true);
    if (!state.current || state.current.ticket_id !== id) {
      state.current = null;
      state.openForm = null;
      clear($("action-form"));
      $("ticket-title").textContent = id;
      setStatus(t("loading"));
    }
    try {
      await loadTicket(id, true);
      setStatus(t("live"));
    } catch (error) {
      showError(problemText(error));
      return;
    }
    poll(() => loadTicket(id, false));
  }

  async function loadTicket(id, first) {
    const ticket = await api("GET", `tickets/${encodeURIComponent(id)}`);
    if (!first && state.current && version(state.current) === version(ticket)) return;
    await renderTicket(ticket);
  }

  const version = (ticket) => `${ticket.ticket_id}:${ticket.seq}:${(ticket.events || []).map((e) => e.seq).pop() ?? 0}`;

  async function renderTicket(ticket) {
    const before = state.current;
    state.current = ticket;
    const tpl = await template(ticket.template_key || ticket.ticket_type, ticket.template_version || null);
    const spec = tpl.spec;
    const fieldSpec = (name) => spec.fields.find((f) => f.name === name);
    const nodeName = (nodeId) => {
      const node = ticket.nodes[nodeId] || spec.nodes.find((n) => n.id === nodeId);
      return (node && node.name) || nodeId;
    };
    $("ticket-title").textContent = `${ticket.title} · ${ticket.ticket_id}`;
    document.title = `${ticket.ticket_id} · Ticketflow`;
    $("ticket-live").textContent = t("updated", { time: new Date().toLocaleTimeString() });

    const facts = $("ticket-facts");
    clear(facts);
    const fact = (k, v, id) => facts.append(el("dt", k), el("dd", v, null, id ? { id } : null));
    fact(t("status"), statusText(ticket.status), "ticket-status");
    fact(t("priority"), priorityText(ticket.priority));
    fact(t("type"), `${spec.name || ticket.ticket_type} (${ticket.ticket_type})`);
    fact(t("region"), ticket.region);
    fact(t("assignee"), ticket.assignee || t("nobody"), "ticket-assignee");
    fact(t("created_at"), `${when(ticket.created_at)} · ${ticket.created_by}`);

    // Actions: re-rendered when what the caller may do changed (an open form is kept otherwise).
    const allowed = ticket.allowed_actions.join(",");
    if (!before || before.ticket_id !== ticket.ticket_id || before.allowed_actions.join(",") !== allowed) {
      C.renderActions(ticket, spec);
    }

    // SLA clocks
    const sla = $("ticket-sla");
    clear(sla);
    const clocks = Object.entries(ticket.sla.clocks || {});
    if (!clocks.length) sla.append(el("p", t("noClocks")));
    const list = el("ul");
    for (const [kind, c] of clocks) {
      const phase = c.breached_at ? "breached" : c.done_at ? "done" : c.running_since ? "running" : "paused";
      const target = isoDuration(c.target);
      const parts = [`${t(`due_${kind}`)}: ${t(`clock_${phase}`)}`, t("target", { t: target !== null ? duration(target) : c.target })];
      const used = isoDuration(c.used);
      if (used) parts.push(t("used", { t: duration(used) }));
      if (c.due && !c.done_at) parts.push(t("nextMilestone", { at: when(c.due) }));
      if (c.breached_at) parts.push(t("breachedAt", { at: when(c.breached_at) }));
      list.append(el("li", parts.join(" · "), phase === "breached" ? "bad" : phase === "done" ? "ok" : null, { "data-clock": kind }));
    }
    if (clocks.length) sla.append(list);

    // Process path
    const path = $("ticket-path");
    clear(path);
    const seen = [...ticket.path];
    for (const a of ticket.active) if (!seen.includes(a)) seen.push(a);
    for (const nodeId of seen) {
      const node = ticket.nodes[nodeId];
      const active = ticket.active.includes(nodeId);
      const status = node ? t(`node_${node.status}`) : "";
      path.append(el("li", `${nodeName(nodeId)}${status ? ` — ${status}` : ""}${active ? ` (${t("now")})` : ""}`, active ? "now" : null));
    }

    // Fields (as the API showed them: hidden ones are not in the ticket)
    const fieldList = $("ticket-fields");
    clear(fieldList);
    let hidden = false;
    for (const f of spec.fields) {
      if (!(f.name in ticket.fields)) {
        if (!visibleTo(f, state.me.roles)) hidden = true;
        continue;
      }
      fieldList.append(el("dt", f.label || f.name), el("dd", display(f, ticket.fields[f.name]), null, { "data-field": f.name }));
    }
    if (ticket.description) fieldList.prepend(el("dt", t("description")), el("dd", ticket.description));
    if (hidden) fieldList.append(el("dt", "…"), el("dd", t("hiddenFields")));

    renderDispatch(ticket);
    renderCustomer(ticket);
    renderTimeline(ticket, nodeName);
    await Promise.all([renderStatement(ticket), renderFiles(ticket, fieldSpec)]);
  }

  function renderDispatch(ticket) {
    const box = $("ticket-dispatch");
    clear(box);
    const event = [...(ticket.events || [])].reverse().find((e) => ["dispatched", "offered", "redispatched"].includes(e.action) && e.data && e.data.strategy);
    show($("dispatch-panel"), Boolean(event));
    if (!event) return;
    const d = event.data;
    box.append(el("p", d.explanation || ""), el("p", t("strategy", { s: d.strategy, o: d.outcome }), "hint"));
    if (d.candidates && d.candidates.length) {
      const table = el("table");
      const head = el("tr");
      for (const h of [t("candidates"), t("score"), t("distance"), t("load")]) head.append(el("th", h, null, { scope: "col" }));
      table.append(el("thead").appendChild(head).parentNode);
      const body = el("tbody");
      for (const c of d.candidates) {
        const row = el("tr");
        row.append(el("td", c.id), el("td", c.score, "num"), el("td", c.distance_km ?? "—", "num"), el("td", `${c.load}/${c.capacity}`, "num"));
        body.append(row);
      }
      table.append(body);
      const scroll = el("div", null, "scroll");
      scroll.append(table);
      box.append(scroll);
    }
  }

  function renderCustomer(ticket) {
    const box = $("ticket-customer");
    clear(box);
    const c = ticket.customer_360;
    show($("customer-panel"), Boolean(c));
    if (!c) return;
    box.append(el("p", t("customerLine", { name: c.customer.name, kind: c.customer.kind, level: c.customer.member_level || "—" }), null, { id: "customer-name" }));
    box.append(el("p", t("pastTickets", { n: c.tickets.length })));
    const assets = el("ul");
    for (const a of c.assets) {
      const bits = [t("assetLine", { model: a.model, serial: a.serial, site: a.site_address })];
      if (a.warranty && a.warranty.in_warranty) bits.push(t("inWarranty", { until: a.warranty.until }));
      if (a.contract) bits.push(`${t("contract")} ${a.contract.number}`);
      assets.append(el("li", bits.join(" · "), a.id === ticket.asset_id ? "now" : null));
    }
    if (c.assets.length) box.append(assets);
    if (c.satisfaction && c.satisfaction.count) box.append(el("p", t("satisfaction", { avg: c.satisfaction.average, n: c.satisfaction.count })));
  }

  const EVENT_TEXT = new Set(["created", "claim", "assign", "start", "complete", "resolve", "approve", "reject", "comment", "delegate",
    "return", "reopen", "close", "cancel", "change_priority", "check_in", "check_out", "request_info", "dispatched", "offered",
    "task_opened", "approval_requested", "approval_granted", "approval_rejected", "settle", "resolved", "sla_reminder", "sla_breach", "sla_escalate"]);

  function eventText(e, nodeName) {
    const d = e.data || {};
    const vars = {
      actor: e.actor_id, node: d.node ? nodeName(d.node) : "", assignee: d.assignee || "", reason: d.reason || "", text: d.text || "",
      to: d.to || "", question: d.question || "", minutes: d.minutes_on_site ?? "", explanation: d.explanation || "",
      offers: (d.offers || []).join(", "), approvers: (d.approvers || []).join(", "), sla: d.sla || "", action: e.action,
      name: e.action.replace(/^event:/, ""),
    };
    if (e.action.startsWith("event:")) return t("ev_event", vars) + (d.text ? `: ${d.text}` : "");
    return EVENT_TEXT.has(e.action) ? t(`ev_${e.action}`, vars) : t("ev_other", vars);
  }

  function renderTimeline(ticket, nodeName) {
    const list = $("ticket-timeline");
    clear(list);
    for (const e of [...(ticket.events || [])].reverse()) {
      const li = el("li", null, null, { "data-action": e.action });
      li.append(el("time", when(e.at), null, { datetime: e.at }), el("span", eventText(e, nodeName)));
      list.append(li);
    }
  }

  async function renderStatement(ticket) {
    const parts = $("ticket-parts");
    clear(parts);
    parts.append(el("p", ticket.reservations && ticket.reservations.length ? t("reservations", { r: ticket.reservations.join(", ") }) : t("noParts")));
    const box = $("ticket-statement");
    let statement;
    try {
      statement = await api("GET", `tickets/${encodeURIComponent(ticket.ticket_id)}/statement`);
    } catch (error) {
      clear(box);
      box.append(el("p", error instanceof ApiError && error.status === 403 ? t("statementHidden") : t("noStatement"), null, { id: "statement-none" }));
      return;
    }
    clear(box);
    const s = statement.statement;
    const table = el("table", null, null, { id: "statement" });
    const head = el("tr");
    for (const [h, cls] of [[t("line"), null], [t("qty"), "num"], [t("amount"), "num"]]) head.append(el("th", h, cls, { scope: "col" }));
    const thead = el("thead");
    thead.append(head);
    const body = el("tbody");
    for (const line of s.lines) {
      const row = el("tr");
      row.append(el("td", line.description || line.code), el("td", `${line.quantity} ${line.unit || ""}`, "num"), el("td", line.amount, "num"));
      body.append(row);
    }
    const foot = el("tfoot");
    for (const [k, v] of [[t("net"), s.totals.net], [t("tax"), s.totals.tax], [t("total"), `${s.totals.total} ${s.currency}`]]) {
      const row = el("tr");
      row.append(el("th", k, null, { scope: "row", colspan: 2 }), el("td", v, "num", k === t("total") ? { id: "statement-total" } : null));
      foot.append(row);
    }
    table.append(thead, body, foot);
    const scroll = el("div", null, "scroll");
    scroll.append(table);
    box.append(scroll);
    if (statement.finance_view && s.split) {
      const split = el("ul", null, null, { id: "statement-split", "aria-label": t("split") });
      for (const [party, amount] of Object.entries(s.split)) split.append(el("li", `${party}: ${amount}`));
      box.append(el("h4", t("split")), split);
    }
  }

  // Attachments: file fields, check-in/out photos and signatures, customers' photos (events).
  async function renderFiles(ticket, fieldSpec) {
    const urls = [];
    for (const [name, value] of Object.entries(ticket.fields)) {
      const f = fieldSpec(name);
      if (f && f.type === "file" && typeof value === "string") urls.push([f.label || name, value]);
    }
    for (const node of Object.values(ticket.nodes)) {
      for (const v of node.visits || []) {
        for (const u of v.photos_before || []) urls.push([`${t("act_check_in")} · ${v.by}`, u]);
        for (const u of v.photos_after || []) urls.push([`${t("act_check_out")} · ${v.by}`, u]);
        if (v.signature) urls.push([t("signature"), v.signature]);
      }
    }
    for (const e of ticket.events || []) {
      if (/^event:customer_(photo|signature)$/.test(e.action) && e.data && e.data.text) urls.push([e.action.replace("event:", ""), e.data.text]);
    }
    const list = $("ticket-files");
    const signature = urls.map((u) => u[1]).join("|");
    if (list.dataset.urls === signature && list.childElementCount) return;
    list.dataset.urls = signature;
    clear(list);
    if (!urls.length) list.append(el("li", t("noFiles")));
    for (const [caption, url] of urls) {
      const li = el("li");
      const figure = el("figure");
      const ours = sameOriginAttachment(url);
      if (ours) {
        const img = el("img", null, null, { alt: caption });
        figure.append(img);
        fetchBlob(ours).then((blobUrl) => { if (blobUrl) img.src = blobUrl; });
      }
      const href = safeUrl(url);
      const captionBox = el("figcaption");
      captionBox.append(href ? el("a", caption, null, { href, target: "_blank", rel: "noopener noreferrer" }) : el("span", `${caption}: ${url}`));
      figure.append(captionBox);
      li.append(figure);
      list.append(li);
    }
  }

  // Only web addresses become links (never javascript: or data: from a form value).
  function safeUrl(url) {
    try {
      const u = new URL(url, document.baseURI);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch {
      return null;
    }
  }

  function sameOriginAttachment(url) {
    try {
      const u = new URL(url, document.baseURI);
      return /^\/tickets\/[A-Za-z0-9_-]+\/attachments\/[A-Za-z0-9_.-]+$/.test(u.pathname) ? u.pathname.slice(1) : null;
    } catch {
      return null;
    }
  }
  async function fetchBlob(path) {
    try {
      const response = await fetch(new URL(path, document.baseURI), { headers: { "X-API-Key": state.apiKey } });
      return response.ok ? URL.createObjectURL(await response.blob()) : null;
    } catch {
      return null;
    }
  }

  Object.assign(C, { showTicket, loadTicket, renderTicket });
})();

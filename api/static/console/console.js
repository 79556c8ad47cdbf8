// Ticketflow console: vanilla JS over the JSON API (GET /me, /me/work, /tickets, /templates,
// POST /tickets/{id}/actions/*, /tickets/{id}/statement, /tickets/{id}/attachments): signing in,
// the views' routes (#work, #field, #new, #ticket/<id>), my work, today's jobs and a new ticket.
//
// The buttons come from the ticket's allowed_actions; the API decides anyway.
"use strict";

(() => {
  const C = window.TicketflowConsole;
  const {
    KEY_STORE, LANG_STORE, LIST_POLL_MS, PRIORITIES, state, t, priorityText, $, el, clear, show, applyTexts,
    when, leftText, api, newKey, problemText, setStatus, showError, poll, template, visibleTo, editableBy,
    fieldInput, collectFields, placeErrors,
  } = C;

  // --- views ---

  function route() {
    clearTimeout(state.pollTimer);
    const hash = location.hash.replace(/^#/, "");
    for (const view of document.querySelectorAll(".view")) view.hidden = true;
    showError("");
    if (!state.apiKey) {
      setStatus(t("enterKey"));
      return;
    }
    const [name, arg] = hash.split("/");
    for (const link of document.querySelectorAll("nav a")) link.removeAttribute("aria-current");
    const nav = $(`nav-${name}`);
    if (nav) nav.setAttribute("aria-current", "page");
    if (name === "ticket" && arg) return C.showTicket(decodeURIComponent(arg));
    if (name === "new") return showNew();
    if (name === "field") return showField();
    return showWork();
  }

  async function signIn(key) {
    state.apiKey = key;
    try {
      state.me = await api("GET", "me");
    } catch (error) {
      state.apiKey = "";
      sessionStorage.removeItem(KEY_STORE);
      show($("session"), false);
      show($("signin"), true);
      showError(problemText(error));
      return false;
    }
    sessionStorage.setItem(KEY_STORE, key);
    $("whoami").textContent = t("signedInAs", { name: state.me.name || state.me.id, id: state.me.id, roles: state.me.roles.join(", "), regions: state.me.regions.join(", ") });
    show($("signin"), false);
    show($("session"), true);
    return true;
  }

  // My work
  function workCard(item, field) {
    const li = el("li", null, "card", { "data-ticket": item.ticket_id, "data-node": item.node, "data-kind": item.kind });
    const h = el("h3");
    h.append(el("a", item.title, null, { href: `#ticket/${encodeURIComponent(item.ticket_id)}` }));
    li.append(h);
    const meta = el("p", null, "meta");
    meta.append(el("span", priorityText(item.priority), `badge ${item.priority}`), `${item.ticket_id} · ${item.node_name} · ${t(`kind_${item.kind}`)}`);
    li.append(meta);
    const left = el("p", null, `left${item.seconds_left !== null && item.seconds_left < 0 ? " overdue" : ""}`);
    left.append(leftText(item.seconds_left));
    if (item.due) left.append(` (${t(`due_${item.due}`)}, ${when(item.due_at)})`);
    li.append(left);
    if (item.sla_paused) li.append(el("p", t("paused"), "meta"));
    if (item.awaiting_info) li.append(el("p", t("awaiting", { q: item.awaiting_info }), "meta"));
    if (item.delegated_by) li.append(el("p", t("delegatedBy", { who: item.delegated_by }), "meta"));
    if (field || item.lat !== null) {
      const where = el("p", null, "meta");
      where.append(item.address || (item.lat !== null ? `${item.lat}, ${item.lon}` : t("noAddress")));
      if (item.lat !== null) {
        where.append(" · ");
        where.append(el("a", t("mapLink"), null, {
          href: `https://uri.amap.com/marker?position=${item.lon},${item.lat}&name=${encodeURIComponent(item.address || item.title)}`,
          target: "_blank", rel: "noopener noreferrer",
        }));
        where.append(" · ", el("a", t("geoLink"), null, { href: `geo:${item.lat},${item.lon}` }));
      }
      li.append(where);
    }
    const row = el("div", null, "row");
    row.append(el("a", t("openTicket"), null, { href: `#ticket/${encodeURIComponent(item.ticket_id)}` }));
    if (item.allowed_actions.includes("claim") && (item.kind === "claimable" || item.kind === "offered")) {
      const claim = el("button", t("act_claim"), null, { type: "button" });
      claim.addEventListener("click", async () => {
        claim.disabled = true;
        try {
          await api("POST", `tickets/${encodeURIComponent(item.ticket_id)}/actions/claim`, { node: item.node }, { idempotencyKey: newKey() });
          location.hash = `#ticket/${encodeURIComponent(item.ticket_id)}`;
        } catch (error) {
          claim.disabled = false;
          showError(problemText(error));
        }
      });
      row.append(claim);
    }
    li.append(row);
    return li;
  }

  async function loadWork(field) {
    const page = await api("GET", "me/work", undefined);
    const items = field ? page.items.filter((i) => i.node_type === "task" && i.kind === "assigned") : page.items;
    const list = $(field ? "field-list" : "work-list");
    // The same work as shown: only the time left moves (the focus stays where the keyboard left it).
    const shape = JSON.stringify(items.map((i) => [i.ticket_id, i.node, i.kind, i.due_at, i.allowed_actions, i.sla_paused, i.awaiting_info]));
    if (list.dataset.shape === shape && list.dataset.lang === state.lang) {
      for (const item of items) {
        const left = list.querySelector(`li[data-ticket="${CSS.escape(item.ticket_id)}"][data-node="${CSS.escape(item.node)}"] .left`);
        if (!left) continue;
        left.firstChild.textContent = leftText(item.seconds_left);
        left.classList.toggle("overdue", item.seconds_left !== null && item.seconds_left < 0);
      }
    } else {
      clear(list);
      for (const item of items) list.append(workCard(item, field));
      list.dataset.shape = shape;
      list.dataset.lang = state.lang;
    }
    show($(field ? "field-empty" : "work-empty"), !items.length);
    setStatus(t("updated", { time: new Date().toLocaleTimeString() }));
  }

  async function showWork() {
    show($("view-work"), true);
    setStatus(t("loading"));
    try { await loadWork(false); } catch (error) { showError(problemText(error)); }
    poll(() => loadWork(false), LIST_POLL_MS);
  }

  async function showField() {
    show($("view-field"), true);
    setStatus(t("loading"));
    try { await loadWork(true); } catch (error) { showError(problemText(error)); }
    poll(() => loadWork(true), LIST_POLL_MS);
  }

  // New ticket
  let newIdempotency = newKey();
  async function showNew() {
    show($("view-new"), true);
    setStatus("");
    const type = $("new-type");
    if (!type.options.length) {
      type.append(el("option", t("autoType"), null, { value: "" }));
      try {
        for (const tpl of await api("GET", "templates")) type.append(el("option", tpl.name || tpl.key, null, { value: tpl.key }));
      } catch (error) { showError(problemText(error)); }
      const region = $("new-region");
      const regions = state.me.regions.includes("*") ? [] : state.me.regions;
      for (const r of regions) region.append(el("option", r, null, { value: r }));
      if (!regions.length) {
        const input = el("input", null, null, { id: "new-region", name: "region", type: "text", "aria-describedby": "err-new-region" });
        region.replaceWith(input);
      }
      const priority = $("new-priority");
      priority.append(el("option", t("defaultPriority"), null, { value: "" }));
      for (const p of PRIORITIES) priority.append(el("option", priorityText(p), null, { value: p }));
    }
  }

  async function renderIntakeFields() {
    const key = $("new-type").value;
    const body = $("new-fields-body");
    clear(body);
    show($("new-fields"), false);
    if (!key) return;
    const tpl = await template(key);
    for (const f of tpl.spec.fields) {
      if (!visibleTo(f, state.me.roles) || !editableBy(f, state.me.roles)) continue;
      body.append(fieldInput("new-f", f, f.default ?? undefined, { required: f.required && f.default === null }));
    }
    show($("new-fields"), body.childElementCount > 0);
  }

  async function submitNew(event) {
    event.preventDefault();
    const form = $("new-form");
    const button = $("new-submit");
    const payload = {
      title: $("new-title").value.trim(),
      description: $("new-description").value,
      fields: collectFields($("new-fields-body")),
    };
    const type = $("new-type").value;
    const region = $("new-region").value.trim();
    const priority = $("new-priority").value;
    if (type) payload.ticket_type = type;
    if (region) payload.region = region;
    if (priority) payload.priority = priority;
    button.disabled = true;
    show($("new-result"), false);
    try {
      const ticket = await api("POST", "tickets", payload, { idempotencyKey: newIdempotency });
      placeErrors(form, null, "new");
      newIdempotency = newKey();
      const result = $("new-result");
      clear(result);
      const tplName = ticket.ticket_type;
      result.append(el("p", t("created", { id: ticket.ticket_id, type: tplName, priority: priorityText(ticket.priority) })));
      if (!type) result.append(el("p", t("classified", { type: tplName, priority: priorityText(ticket.priority) }), null, { id: "new-classified" }));
      const link = el("a", t("openTicket"), null, { href: `#ticket/${encodeURIComponent(ticket.ticket_id)}`, id: "new-open" });
      result.append(link);
      show(result, true);
      form.reset();
      await renderIntakeFields();
      link.focus();
    } catch (error) {
      placeErrors(form, error, "new");
    } finally {
      button.disabled = false;
    }
  }

  // A ticket
  // --- wiring ---

  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) { setStatus(t("enterKey")); return; }
    if (await signIn(key)) {
      $("api-key").value = "";
      showError("");
      if (!location.hash) location.hash = "#work";
      else route();
      $("main").focus();
    }
  });
  $("signout").addEventListener("click", () => {
    state.apiKey = "";
    state.me = null;
    state.current = null;
    sessionStorage.removeItem(KEY_STORE);
    show($("session"), false);
    show($("signin"), true);
    route();
    $("api-key").focus();
  });
  $("switch-lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_STORE, state.lang);
    applyTexts();
    if (state.me) $("whoami").textContent = t("signedInAs", { name: state.me.name || state.me.id, id: state.me.id, roles: state.me.roles.join(", "), regions: state.me.regions.join(", ") });
    const previous = state.current;
    state.current = null;
    if (previous && location.hash.startsWith("#ticket/")) C.renderTicket(previous).catch(() => {});
    else route();
  });
  $("new-type").addEventListener("change", () => renderIntakeFields().catch((error) => showError(problemText(error))));
  $("new-form").addEventListener("submit", submitNew);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => { if (!document.hidden && state.apiKey) route(); });

  applyTexts();
  (async () => {
    if (state.apiKey && (await signIn(state.apiKey))) route();
    else {
      setStatus(t("enterKey"));
      show($("signin"), true);
    }
  })();
})();

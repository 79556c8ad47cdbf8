// Ticketflow console: the shared pieces (state, texts, DOM helpers, the API, template forms and
// their errors). console-ticket.js, console-actions.js and console.js build the views on them.
//
// Every piece of text from the API reaches the DOM through textContent (el() below), never innerHTML.
"use strict";

window.TicketflowConsole = (() => {
  const KEY_STORE = "ticketflow.console.apiKey";
  const LANG_STORE = "ticketflow.console.lang";
  const POLL_MS = 4000; // a ticket's page
  const LIST_POLL_MS = 15000; // the work lists (each read scans the caller's open tickets)
  const PHOTO_MAX = 700 * 1024; // base64 of it fits the API's 1 MB body limit
  const PHOTO_EDGE = 1600;
  const FULL_ACCESS = ["admin"];
  const PRIORITIES = ["low", "normal", "high", "urgent"];

  const { TEXTS, STATUS, PRIORITY } = window.TicketflowConsoleTexts;


  function pickLanguage() {
    const stored = localStorage.getItem(LANG_STORE);
    if (stored === "en" || stored === "zh") return stored;
    return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  // What the views share: the language, the key and who it is, the ticket shown, the open form.
  const state = {
    lang: pickLanguage(),
    apiKey: sessionStorage.getItem(KEY_STORE) || "",
    me: null,
    current: null,
    openForm: null,
    pollTimer: null,
  };

  function t(key, vars) {
    let text = TEXTS[state.lang][key] ?? TEXTS.en[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split(`{${name}}`).join(String(value ?? ""));
    return text;
  }
  const statusText = (s) => STATUS[state.lang][s] || s;
  const priorityText = (p) => PRIORITY[state.lang][p] || p;

  // --- DOM helpers (text only) ---

  const $ = (id) => document.getElementById(id);
  function el(tag, text, className, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    return node;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }
  function show(node, visible) {
    node.hidden = !visible;
  }
  function applyTexts() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    const other = state.lang === "zh" ? "en" : "zh";
    $("switch-lang").textContent = other === "zh" ? "中文" : "English";
    $("switch-lang").setAttribute("lang", other === "zh" ? "zh-CN" : "en");
  }

  // --- time ---

  function duration(seconds) {
    let s = Math.abs(Math.round(seconds / 60)) * 60;
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60);
    const parts = state.lang === "zh"
      ? [d && `${d} 天`, h && `${h} 小时`, (m || (!d && !h)) && `${m} 分钟`]
      : [d && `${d} d`, h && `${h} h`, (m || (!d && !h)) && `${m} min`];
    return parts.filter(Boolean).join(" ");
  }
  function isoDuration(text) { // "PT8H", "1 day, 2:00:00" or seconds → seconds
    if (typeof text === "number") return text;
    const iso = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(String(text));
    if (iso) return (+iso[1] || 0) * 86400 + (+iso[2] || 0) * 3600 + (+iso[3] || 0) * 60 + (+iso[4] || 0);
    return null;
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium", timeStyle: "short" }) : "");
  function leftText(seconds) {
    if (seconds === null || seconds === undefined) return t("noDeadline");
    return seconds < 0 ? t("overdue", { t: duration(seconds) }) : t("left", { t: duration(seconds) });
  }

  // --- the API ---

  class ApiError extends Error {
    constructor(status, body) {
      super(`${status}`);
      Object.assign(this, { status, body });
    }
  }

  async function api(method, path, body, options = {}) {
    const headers = { "X-API-Key": state.apiKey, Accept: "application/json" };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    const response = await fetch(new URL(path, document.baseURI), { method, headers, body: payload, cache: "no-store" });
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);

  function detailOf(error) {
    const d = error.body && error.body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((p) => `${(p.loc || []).slice(1).join(".")}: ${p.msg}`).join("; ");
    return String(error.message || error);
  }
  function problemText(error) {
    if (!(error instanceof ApiError)) return t("failed", { detail: String(error.message || error) });
    if (error.status === 401) return t("badKey");
    if (error.status === 403) return t("forbidden", { detail: detailOf(error) });
    if (error.status === 404) return t("notFound");
    return t("failed", { detail: `${error.status} ${detailOf(error)}` });
  }
  function setStatus(text) { $("status").textContent = text || ""; }
  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    show(box, Boolean(text));
  }

  // --- templates (pinned versions cached) ---

  const templateCache = new Map();
  async function template(key, version) {
    const id = `${key}@${version || "latest"}`;
    if (!templateCache.has(id)) {
      const path = version ? `templates/${encodeURIComponent(key)}/versions/${version}` : `templates/${encodeURIComponent(key)}`;
      templateCache.set(id, api("GET", path).catch((e) => { templateCache.delete(id); throw e; }));
    }
    return templateCache.get(id);
  }
  const hasAny = (roles, wanted) => roles.some((r) => wanted.includes(r));
  const visibleTo = (f, roles) => !f.visible_to || !f.visible_to.length || hasAny(roles, [...f.visible_to, ...FULL_ACCESS]);
  const editableBy = (f, roles) => !f.editable_by || !f.editable_by.length || hasAny(roles, [...f.editable_by, ...FULL_ACCESS]);

  // --- form fields from a template ---

  // One input for a template field; `prefix` keeps ids unique per form. Returns the wrapper.
  function fieldInput(prefix, f, value, { required = false, editable = true } = {}) {
    const id = `${prefix}-${f.name}`;
    const errId = `err-${id}`;
    const wrap = el("div", null, "field", { "data-field": f.name });
    const labelText = f.label || f.name;
    const label = el("label", labelText, null, { for: id });
    if (required) label.append(" ", el("span", `(${t("required")})`, "req"));
    let input;
    const common = { id, name: f.name, "aria-describedby": errId, "aria-required": required ? "true" : null };
    if (!editable) {
      wrap.append(el("span", labelText, "label"), el("span", display(f, value), "readonly"));
      return wrap;
    }
    switch (f.type) {
      case "long_text":
        input = el("textarea", null, null, { ...common, rows: 3 });
        input.value = value ?? "";
        break;
      case "enum":
      case "boolean": {
        input = el("select", null, null, common);
        input.append(el("option", t("choose"), null, { value: "" }));
        const options = f.type === "boolean" ? [["true", t("yes")], ["false", t("no")]] : (f.options || []).map((o) => [o, o]);
        for (const [v, text] of options) input.append(el("option", text, null, { value: v }));
        input.value = value === undefined || value === null ? "" : String(value);
        break;
      }
      case "multi_enum": {
        input = el("select", null, null, { ...common, multiple: true });
        for (const o of f.options || []) input.append(el("option", o, null, { value: o, selected: (value || []).includes(o) }));
        break;
      }
      case "money":
        input = el("input", null, null, { ...common, type: "text", inputmode: "decimal" });
        input.value = value && typeof value === "object" ? value.amount : "";
        label.append(` (${f.currency || "CNY"})`);
        break;
      case "number":
        input = el("input", null, null, { ...common, type: "text", inputmode: "decimal" });
        input.value = value ?? "";
        break;
      case "date":
        input = el("input", null, null, { ...common, type: "date" });
        input.value = value ?? "";
        break;
      case "datetime":
        input = el("input", null, null, { ...common, type: "datetime-local" });
        break;
      case "location": {
        const box = el("fieldset", null, null, { id, "aria-describedby": errId });
        box.append(el("legend", labelText + (required ? ` (${t("required")})` : "")));
        for (const part of ["lat", "lon", "address"]) {
          const pid = `${id}-${part}`;
          box.append(el("label", part === "address" ? t("address") : part, null, { for: pid }));
          const sub = el("input", null, null, { id: pid, name: `${f.name}.${part}`, type: "text", inputmode: part === "address" ? null : "decimal" });
          sub.value = value && value[part] !== undefined ? value[part] : "";
          box.append(sub);
        }
        wrap.append(box, el("p", null, "field-error", { id: errId, hidden: true }));
        wrap.dataset.type = f.type;
        return wrap;
      }
      default:
        input = el("input", null, null, { ...common, type: f.type === "email" ? "email" : f.type === "phone" ? "tel" : "text" });
        input.value = value ?? "";
    }
    wrap.dataset.type = f.type;
    wrap.dataset.currency = f.currency || "CNY";
    wrap.append(label, input, el("p", null, "field-error", { id: errId, hidden: true }));
    return wrap;
  }

  function display(f, value) {
    if (value === undefined || value === null || value === "") return "—";
    if (f && f.type === "money" && typeof value === "object") return `${value.amount} ${value.currency}`;
    if (f && f.type === "location" && typeof value === "object") return value.address || `${value.lat}, ${value.lon}`;
    if (f && f.type === "boolean") return value ? t("yes") : t("no");
    if (Array.isArray(value)) return value.join(", ");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  // The values of a form's editable template fields (empty ones left out: the API names missing ones).
  function collectFields(container) {
    const out = {};
    for (const wrap of container.querySelectorAll(".field[data-field][data-type]")) {
      const name = wrap.dataset.field;
      const type = wrap.dataset.type;
      if (type === "location") {
        const [lat, lon, address] = ["lat", "lon", "address"].map((p) => wrap.querySelector(`[name="${name}.${p}"]`).value.trim());
        if (lat || lon) out[name] = { lat: Number(lat), lon: Number(lon), ...(address ? { address } : {}) };
        continue;
      }
      const input = wrap.querySelector("input, select, textarea");
      if (!input) continue;
      if (type === "multi_enum") {
        const picked = [...input.selectedOptions].map((o) => o.value);
        if (picked.length) out[name] = picked;
        continue;
      }
      const raw = input.value.trim();
      if (raw === "") continue;
      if (type === "number") out[name] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
      else if (type === "money") out[name] = { amount: raw, currency: wrap.dataset.currency };
      else if (type === "boolean") out[name] = raw === "true";
      else if (type === "datetime") out[name] = new Date(raw).toISOString();
      else out[name] = raw;
    }
    return out;
  }

  // A 422's problems beside their fields (aria-invalid, the message in the field's described-by
  // element); the rest in the form's own error box. Returns true when any was placed.
  function placeErrors(form, error, prefix, fieldPrefix = `${prefix}-f`) {
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    for (const node of form.querySelectorAll(".field-error")) { node.textContent = ""; node.hidden = true; }
    const box = form.querySelector(".form-error");
    box.hidden = true;
    if (!error) return false;
    const rest = [];
    let first = null;
    if (error instanceof ApiError && error.status === 422 && Array.isArray(error.body && error.body.detail)) {
      for (const p of error.body.detail) {
        const loc = (p.loc || []).filter((x) => x !== "body");
        const id = loc[0] === "fields" ? `${fieldPrefix}-${loc[1]}` : `${prefix}-${loc[0]}`;
        const target = $(id);
        const slot = $(`err-${id}`);
        if (target && slot) {
          slot.textContent = p.msg;
          slot.hidden = false;
          target.setAttribute("aria-invalid", "true");
          first = first || target;
        } else rest.push(`${loc.join(".") || "request"}: ${p.msg}`);
      }
      box.textContent = rest.length ? `${t("fixErrors")} ${rest.join("; ")}` : t("fixErrors");
    } else box.textContent = problemText(error);
    box.hidden = false;
    const focusable = first && (first.matches("input, select, textarea") ? first : first.querySelector("input, select, textarea"));
    (focusable || box).focus();
    return true;
  }

  // Poll while the page is visible (a hidden tab asks nothing; showing it again refreshes).
  function poll(fn, ms = POLL_MS) {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(async function tick() {
      if (!document.hidden) await fn().catch(() => {});
      state.pollTimer = setTimeout(tick, ms);
    }, ms);
  }

  return {
    KEY_STORE, LANG_STORE, POLL_MS, LIST_POLL_MS, PHOTO_MAX, PHOTO_EDGE, PRIORITIES, state,
    t, statusText, priorityText, $, el, clear, show, applyTexts, duration, isoDuration, when, leftText,
    ApiError, api, newKey, problemText, setStatus, showError, poll, template, visibleTo, editableBy,
    fieldInput, display, collectFields, placeErrors,
  };
})();

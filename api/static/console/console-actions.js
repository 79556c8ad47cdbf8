// Ticketflow console: a ticket's actions — the buttons its allowed_actions give the caller, and
// the form of each (the task's template form, reasons, hand-overs, check-in/out with position,
// photos and the customer's signature). The API decides: a refusal is shown beside its field.
"use strict";

(() => {
  const C = window.TicketflowConsole;
  const {
    PHOTO_MAX, PHOTO_EDGE, PRIORITIES, state, t, priorityText, $, el, clear, when, ApiError, api, newKey,
    problemText, setStatus, showError, template, visibleTo, editableBy, fieldInput, collectFields,
    placeErrors,
  } = C;

  // --- actions ---

  // What each action's form asks for (template forms and site visits are built separately).
  const ACTION_INPUTS = {
    approve: [["reason", "textarea", false, "reasonOptional"]],
    reject: [["reason", "textarea", true, "reason"]],
    delegate: [["to", "text", true, "to"], ["reason", "text", false, "reasonOptional"]],
    return: [["reason", "text", false, "reasonOptional"]],
    request_info: [["question", "textarea", true, "question"]],
    comment: [["text", "textarea", true, "text"]],
    cancel: [["reason", "text", true, "reason"]],
    reopen: [["reason", "text", true, "reason"]],
    change_priority: [["priority", "priority", true, "priority"], ["reason", "text", true, "reason"]],
    assign: [["assignee", "text", true, "assigneeId"]],
    resolve: [["resolution", "textarea", true, "resolution"]],
  };
  const DIRECT = new Set(["claim", "start", "close"]); // one click, no form
  const ORDER = ["claim", "start", "check_in", "check_out", "complete", "resolve", "approve", "reject", "request_info",
    "delegate", "return", "assign", "comment", "change_priority", "reopen", "close", "cancel"];

  // The node an action is for: the caller's own task or vote when there is one (else the API picks).
  function nodeFor(ticket, action) {
    const nodes = ticket.active.map((id) => ticket.nodes[id]).filter(Boolean);
    if (["approve", "reject"].includes(action)) return nodes.find((n) => n.type === "approval" && n.approvers.includes(state.me.id));
    if (action === "claim") return nodes.find((n) => n.type === "task" && n.status === "open");
    if (["delegate", "return"].includes(action)) return nodes.find((n) => n.assignee === state.me.id || (n.approvers || []).includes(state.me.id));
    if (["start", "complete", "resolve", "check_in", "check_out", "request_info"].includes(action)) {
      return nodes.find((n) => n.type === "task" && n.assignee === state.me.id) || nodes.find((n) => n.type === "task");
    }
    return undefined;
  }

  function renderActions(ticket, spec) {
    const bar = $("ticket-actions");
    clear(bar);
    clear($("action-form"));
    state.openForm = null;
    const actions = ORDER.filter((a) => ticket.allowed_actions.includes(a));
    for (const action of actions) {
      const button = el("button", t(`act_${action}`), ["reject", "cancel"].includes(action) ? "danger" : DIRECT.has(action) ? null : "secondary", {
        type: "button", id: `action-${action}`, "data-action": action, "aria-expanded": DIRECT.has(action) ? null : "false",
        "aria-controls": DIRECT.has(action) ? null : "action-form",
      });
      button.addEventListener("click", () => (DIRECT.has(action) ? runDirect(ticket, action, button) : openAction(ticket, spec, action, button)));
      bar.append(button);
    }
  }

  async function send(ticket, action, body, key) {
    return api("POST", `tickets/${encodeURIComponent(ticket.ticket_id)}/actions/${action}`, body, { idempotencyKey: key });
  }

  async function runDirect(ticket, action, button) {
    button.disabled = true;
    showError("");
    const node = nodeFor(ticket, action);
    try {
      await send(ticket, action, node ? { node: node.id } : undefined, newKey());
      setStatus(t("saved", { action: t(`act_${action}`) }));
      state.current = null;
      await C.loadTicket(ticket.ticket_id, true);
      $("ticket-actions").querySelector("button")?.focus();
    } catch (error) {
      button.disabled = false;
      showError(problemText(error));
    }
  }

  function openAction(ticket, spec, action, button) {
    const holder = $("action-form");
    clear(holder);
    for (const b of $("ticket-actions").querySelectorAll("[aria-expanded]")) b.setAttribute("aria-expanded", "false");
    if (state.openForm === action) {
      state.openForm = null;
      return;
    }
    state.openForm = action;
    button.setAttribute("aria-expanded", "true");
    const prefix = `a-${action}`;
    const form = el("form", null, null, { novalidate: true, id: `form-${action}`, "aria-label": t(`act_${action}`) });
    form.append(el("h4", t(`act_${action}`)));
    const node = nodeFor(ticket, action);

    if (action === "complete" || action === "resolve") {
      const nodeSpec = node && spec.nodes.find((n) => n.id === node.id);
      const body = el("div", null, null, { id: `${prefix}-fields` });
      for (const name of (nodeSpec && nodeSpec.form) || []) {
        const f = spec.fields.find((x) => x.name === name);
        if (!f || (!visibleTo(f, state.me.roles) && !editableBy(f, state.me.roles))) continue; // e.g. a cost the engineer sets, finance reads
        body.append(fieldInput(`${prefix}-f`, f, ticket.fields[name], { required: (nodeSpec.required || []).includes(name), editable: editableBy(f, state.me.roles) }));
      }
      form.append(body);
    }
    for (const [name, kind, required, labelKey] of ACTION_INPUTS[action] || []) {
      form.append(simpleInput(prefix, name, kind, required, t(labelKey)));
    }
    let visit = null;
    if (action === "check_in" || action === "check_out") visit = visitInputs(form, prefix, action === "check_out");

    form.append(el("p", null, "form-error", { role: "alert", hidden: true, tabindex: "-1" }));
    const buttons = el("div", null, "buttons");
    const submit = el("button", t(`act_${action}`), null, { type: "submit", id: `${prefix}-submit` });
    const close = el("button", t("cancelForm"), "secondary", { type: "button" });
    close.addEventListener("click", () => { clear(holder); state.openForm = null; button.setAttribute("aria-expanded", "false"); button.focus(); });
    buttons.append(submit, close);
    form.append(buttons);
    const key = newKey(); // one request per opened form: a double click acts once
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      try {
        const body = node ? { node: node.id } : {};
        if (action === "complete" || action === "resolve") body.fields = collectFields(form);
        for (const [name, kind] of ACTION_INPUTS[action] || []) {
          const value = form.querySelector(`[name="${name}"]`).value.trim();
          if (value !== "" || kind === "priority") body[name] = value;
        }
        if (visit) Object.assign(body, await visit.collect(ticket));
        await send(ticket, action, body, key);
        placeErrors(form, null, prefix);
        setStatus(t("saved", { action: t(`act_${action}`) }));
        state.openForm = null;
        state.current = null; // re-render everything, the actions too
        await C.loadTicket(ticket.ticket_id, true);
        $("ticket-actions").querySelector("button")?.focus();
      } catch (error) {
        placeErrors(form, error, prefix);
      } finally {
        submit.disabled = false;
      }
    });
    holder.append(form);
    const firstInput = form.querySelector("input, select, textarea, button");
    if (firstInput) firstInput.focus();
  }

  function simpleInput(prefix, name, kind, required, labelText) {
    const id = `${prefix}-${name}`;
    const wrap = el("div", null, "field");
    const label = el("label", labelText, null, { for: id });
    if (required) label.append(" ", el("span", `(${t("required")})`, "req"));
    let input;
    const attrs = { id, name, "aria-describedby": `err-${id}`, "aria-required": required ? "true" : null };
    if (kind === "textarea") input = el("textarea", null, null, { ...attrs, rows: 3 });
    else if (kind === "priority") {
      input = el("select", null, null, attrs);
      for (const p of PRIORITIES) input.append(el("option", priorityText(p), null, { value: p }));
    } else input = el("input", null, null, { ...attrs, type: "text" });
    wrap.append(label, input, el("p", null, "field-error", { id: `err-${id}`, hidden: true }));
    return wrap;
  }

  // Check-in / check-out: the device's position, photos (uploaded first), and at check-out the
  // customer's signature drawn on a canvas.
  function visitInputs(form, prefix, withSignature) {
    const where = el("p", t("locating"), "hint", { id: `${prefix}-lat`, tabindex: "-1", "aria-describedby": `err-${prefix}-lat` });
    const whereBox = el("div", null, "field");
    whereBox.append(el("span", t("position"), "label"), where, el("p", null, "field-error", { id: `err-${prefix}-lat`, hidden: true }));
    form.append(whereBox);
    let position = null;
    const located = new Promise((resolve) => {
      if (!navigator.geolocation) { where.textContent = t("noGeo", { detail: "—" }); resolve(null); return; }
      navigator.geolocation.getCurrentPosition(
        (p) => {
          position = { lat: Number(p.coords.latitude.toFixed(6)), lon: Number(p.coords.longitude.toFixed(6)) };
          where.textContent = t("located", position);
          resolve(position);
        },
        (e) => { where.textContent = t("noGeo", { detail: e.message }); resolve(null); },
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
      );
    });
    const photoId = `${prefix}-photos`;
    const photoBox = el("div", null, "field");
    photoBox.append(el("label", t("photos"), null, { for: photoId }),
      el("input", null, null, { id: photoId, name: "photos", type: "file", accept: "image/jpeg,image/png,image/webp", multiple: true, capture: "environment", "aria-describedby": `err-${photoId}` }),
      el("p", null, "field-error", { id: `err-${photoId}`, hidden: true }));
    form.append(photoBox);
    let pad = null;
    if (withSignature) {
      const box = el("div", null, "field");
      box.append(el("span", t("signature"), "label", { id: "sign-label" }));
      const canvas = el("canvas", null, null, {
        id: `${prefix}-signature`, class: "sign-pad", width: 600, height: 160, role: "img", "aria-labelledby": "sign-label",
        "aria-describedby": `err-${prefix}-signature`,
      });
      box.append(canvas);
      const clearButton = el("button", t("clearSignature"), "link", { type: "button" });
      box.append(clearButton, el("p", null, "field-error", { id: `err-${prefix}-signature`, hidden: true }));
      form.append(box);
      pad = signaturePad(canvas);
      clearButton.addEventListener("click", pad.clear);
    }
    form.append(simpleInput(prefix, "note", "text", false, t("note")));
    return {
      async collect(ticket) {
        const coords = position || (await located);
        const body = coords ? { ...coords } : {};
        const input = form.querySelector(`#${photoId}`);
        const photos = [];
        for (const file of input.files) photos.push(await upload(ticket, await scaled(file)));
        if (photos.length) body.photos = photos;
        if (pad && pad.drawn()) body.signature = await upload(ticket, await pad.blob());
        const note = form.querySelector(`[name="note"]`).value.trim();
        if (note) body.note = note;
        return body;
      },
    };
  }

  // A photo scaled down (at most 1600 px, JPEG) so it fits the API's body limit on a phone's data
  // link; a file the browser cannot read as an image goes as it is (the API says what is wrong).
  async function scaled(file) {
    try {
      const bitmap = await createImageBitmap(file);
      const ratio = Math.min(1, PHOTO_EDGE / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bitmap.width * ratio));
      canvas.height = Math.max(1, Math.round(bitmap.height * ratio));
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    } catch {
      return file;
    }
  }
  const base64Of = (blob) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });

  async function upload(ticket, blob) {
    if (blob.size > PHOTO_MAX) throw new ApiError(422, { detail: [{ loc: ["body", "photos"], msg: t("photoTooBig") }] });
    const body = { content_type: blob.type || "application/octet-stream", data: await base64Of(blob) };
    const stored = await api("POST", `tickets/${encodeURIComponent(ticket.ticket_id)}/attachments`, body);
    return stored.url;
  }

  function signaturePad(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.strokeStyle = "#111";
    let drawing = false;
    let strokes = 0;
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
    };
    canvas.addEventListener("pointerdown", (e) => { drawing = true; canvas.setPointerCapture(e.pointerId); ctx.beginPath(); ctx.moveTo(...at(e)); });
    canvas.addEventListener("pointermove", (e) => { if (!drawing) return; ctx.lineTo(...at(e)); ctx.stroke(); strokes += 1; });
    const end = () => { drawing = false; };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    return {
      drawn: () => strokes > 2,
      clear: () => { ctx.clearRect(0, 0, canvas.width, canvas.height); strokes = 0; },
      blob: () => new Promise((resolve) => canvas.toBlob(resolve, "image/png")),
    };
  }

  Object.assign(C, { renderActions });
})();

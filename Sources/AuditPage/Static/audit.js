// The sent-mail audit page: asks for a token once per tab (sessionStorage, never a cookie or
// the URL), lists /api/audit with filters and keyset paging, shows /api/audit/{id}.
// Every value from an email or the API is put in the page with textContent or as an
// attribute value — never parsed as HTML. The email's HTML goes only into the srcdoc of an
// iframe whose sandbox has no allow-scripts (and no allow-same-origin).
"use strict";

const TOKEN_KEY = "tickiti-audit-token";
const $ = (id) => document.getElementById(id);

const state = {
  filters: {},        // to, status, since, until (API values)
  cursors: [null],    // cursors[i] = the cursor that opens page i; null = newest
  page: 0,
  next: null,
};

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function show(section) {
  for (const id of ["prompt", "list", "detail"]) $(id).hidden = id !== section;
  $("sign-out").hidden = section === "prompt";
}

function askForToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("prompt-error").textContent = message || "";
  $("prompt-error").hidden = !message;
  show("prompt");
  $("token-input").value = "";
  $("token-input").focus();
}

class AuthError extends Error {}

async function api(path) {
  const t = token();
  if (!t) throw new AuthError("");
  let res;
  try {
    res = await fetch(path, { headers: { "Authorization": "Bearer " + t, "Accept": "application/json" }, cache: "no-store" });
  } catch (e) {
    throw new Error("The server cannot be reached (" + e.message + ").");
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (res.status === 401) throw new AuthError("This token is not valid (unknown, revoked or mistyped). Enter a token again.");
  if (res.status === 403) throw new AuthError("This token lacks the audit-read ability. Enter a token that has it.");
  if (!res.ok || !body || body.ok !== true) {
    const err = body && body.error;
    let text = err ? err.message : "The server answered " + res.status + ".";
    if (err && err.fields) text += " " + Object.entries(err.fields).map(([k, v]) => k + ": " + v.join(", ")).join("; ");
    throw new Error(text);
  }
  return body;
}

function failed(e, stateElement) {
  if (e instanceof AuthError) { askForToken(e.message); return; }
  stateElement.textContent = e.message;
  stateElement.classList.add("error");
}

function formatSize(n) {
  return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
}

// A download with the bearer token (never a cookie or the URL): fetched, then saved from a
// blob URL by a link with `download` — the file is never rendered by the page.
async function download(path, filename) {
  const el = $("d-download-state");
  setState(el, "");
  try {
    const res = await fetch(path, { headers: { "Authorization": "Bearer " + token() }, cache: "no-store" });
    if (res.status === 401 || res.status === 403) { askForToken("Enter a token with the audit-read ability."); return; }
    if (!res.ok) throw new Error("The server answered " + res.status + ".");
    const url = URL.createObjectURL(await res.blob());
    const a = Object.assign(document.createElement("a"), { href: url, download: filename });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    failed(e, el);
  }
}

function setState(el, text) {
  el.textContent = text;
  el.classList.remove("error");
}

function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function badge(status) {
  const span = document.createElement("span");
  span.className = "badge " + status;
  span.textContent = status;
  return span;
}

function cell(row, content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  row.appendChild(td);
  return td;
}

// MARK: list

async function loadPage() {
  show("list");
  const list = $("list-state");
  setState(list, "Loading…");
  $("messages").hidden = true;
  const params = new URLSearchParams({ limit: "50" });
  for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
  const cursor = state.cursors[state.page];
  if (cursor) params.set("cursor", cursor);
  let body;
  try {
    body = await api("/api/audit?" + params.toString());
  } catch (e) {
    failed(e, list);
    return;
  }
  state.next = body.next;
  const rows = $("rows");
  rows.replaceChildren();
  for (const m of body.data) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.id = String(m.id);
    cell(tr, m.to);
    cell(tr, m.subject, "subject").title = m.subject;
    cell(tr, m.mailbox);
    cell(tr, badge(m.status));
    cell(tr, formatTime(m.accepted_at));
    cell(tr, formatTime(m.sent_at));
    cell(tr, String(m.attempt_count), "num");
    const open = () => openDetail(m.id);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
    rows.appendChild(tr);
  }
  const filtered = Object.values(state.filters).some(Boolean);
  if (body.data.length === 0) {
    setState(list, state.page > 0 ? "No older messages." : filtered ? "No messages match these filters." : "No messages have been sent yet.");
  } else {
    setState(list, "");
    $("messages").hidden = false;
  }
  $("newer").disabled = state.page === 0;
  $("older").disabled = !state.next;
  $("page-label").textContent = body.data.length ? "Page " + (state.page + 1) : "";
}

function readFilters() {
  const toISO = (v) => (v ? new Date(v).toISOString() : "");
  state.filters = {
    to: $("f-to").value.trim(),
    status: $("f-status").value,
    since: toISO($("f-since").value),
    until: toISO($("f-until").value),
  };
  state.cursors = [null];
  state.page = 0;
}

// MARK: detail

async function openDetail(id) {
  show("detail");
  const st = $("detail-state");
  setState(st, "Loading message " + id + "…");
  $("detail-body").hidden = true;
  let body;
  try {
    body = await api("/api/audit/" + encodeURIComponent(String(id)));
  } catch (e) {
    failed(e, st);
    return;
  }
  const m = body.data;
  setState(st, "");
  $("d-subject").textContent = m.subject;
  const facts = $("d-facts");
  facts.replaceChildren();
  const fact = (name, value) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value == null || value === "" ? "—" : String(value);
    facts.append(dt, dd);
  };
  fact("Status", badge(m.status));
  fact("To", m.to);
  if (m.recipients) {
    // Cc and Bcc (Bcc marked: it is in no header), each with where it stands.
    const ul = document.createElement("ul");
    ul.className = "recipients";
    for (const r of m.recipients) {
      const li = document.createElement("li");
      const b = badge(r.status === "accepted" ? "sent" : r.status === "pending" ? "deferred" : "failed");
      b.textContent = r.status;
      li.append(r.kind === "bcc" ? "Bcc (not in any header): " : r.kind === "cc" ? "Cc: " : "To: ", r.address, " — ", b);
      if (r.last_reply) li.append(" " + r.last_reply);
      ul.appendChild(li);
    }
    fact("Recipients", ul);
  }
  fact("From", m.mailbox + " <" + m.mailbox_address + ">");
  fact("Accepted", formatTime(m.accepted_at));
  fact("Sent", formatTime(m.sent_at));
  fact("Attempts", m.attempt_count);
  fact("Last SMTP reply", m.last_reply);
  fact("Message-ID", m.message_id);
  fact("Template", m.template);
  fact("Token", m.token_name);
  fact("Idempotency-Key", m.idempotency_key);
  for (const [k, v] of Object.entries(m.metadata || {})) fact("Metadata: " + k, v);
  fact("Audit ID", m.id);

  // The email's HTML: only ever as srcdoc of the sandboxed frame (no scripts, opaque origin).
  const frame = $("d-html");
  frame.setAttribute("sandbox", "");
  frame.srcdoc = m.message.html == null ? "" : m.message.html;
  $("d-text").textContent = m.message.text == null ? "(no text part)" : m.message.text;

  const attempts = $("d-attempts").tBodies[0];
  attempts.replaceChildren();
  for (const a of m.attempts) {
    const tr = document.createElement("tr");
    cell(tr, formatTime(a.at));
    cell(tr, badge(a.outcome));
    cell(tr, a.reply);
    attempts.appendChild(tr);
  }
  $("d-attempts").hidden = m.attempts.length === 0;
  $("d-no-attempts").hidden = m.attempts.length !== 0;

  const files = $("d-files");
  files.replaceChildren();
  for (const a of m.message.attachments || []) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Download";
    b.addEventListener("click", () => download(a.href, a.filename));
    li.append(b, " " + a.filename + " — " + a.content_type + ", " + formatSize(a.size) + (a.inline ? " (inline, cid:" + a.content_id + ")" : ""));
    files.appendChild(li);
  }
  if (!files.children.length) files.append(Object.assign(document.createElement("li"), { textContent: "No attachments." }));
  $("d-eml").onclick = () => download("/api/audit/" + m.id + "/raw", m.id + ".eml");

  const headers = $("d-headers").tBodies[0];
  headers.replaceChildren();
  for (const h of m.message.headers) {
    const tr = document.createElement("tr");
    cell(tr, h.name);
    cell(tr, h.value);
    headers.appendChild(tr);
  }
  $("detail-body").hidden = false;
}

// MARK: wiring

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token-input").value = "";
    state.cursors = [null];
    state.page = 0;
    loadPage();
  });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); readFilters(); loadPage(); });
  $("f-clear").addEventListener("click", () => { $("filters").reset(); readFilters(); loadPage(); });
  $("older").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    loadPage();
  });
  $("newer").addEventListener("click", () => { if (state.page > 0) { state.page -= 1; loadPage(); } });
  $("back").addEventListener("click", () => loadPage());
  $("sign-out").addEventListener("click", () => askForToken(""));
  if (token()) loadPage(); else askForToken("");
});

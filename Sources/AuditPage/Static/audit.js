// The sent-mail audit page: asks for a token once per tab (sessionStorage, never a cookie or
// the URL), lists /api/audit with filters and keyset paging, shows /api/audit/{id}.
// Every value from an email or the API is put in the page with textContent or as an
// attribute value — never parsed as HTML into the page. The email's HTML goes only into the
// srcdoc of an iframe whose sandbox has no allow-scripts (and no allow-same-origin).
//
// URLs: the list is #/ (its filters after ?, e.g. #/?q=invoice&status=failed), a message is
// #/messages/ID; each change of view is a history entry, so back and forward work and a
// message's URL can be shared (the one who opens it signs in first). Times are shown in UTC
// or in the browser's zone, always with the zone written; the choice is kept in
// localStorage (it is not a secret).
"use strict";

const TOKEN_KEY = "tickiti-audit-token";
const ZONE_KEY = "tickiti-audit-times";
const PAGE_SIZE = 50;
const FILTER_KEYS = ["q", "to", "status", "since", "until"];
const $ = (id) => document.getElementById(id);

const state = {
  filters: {},        // q, to, status, since, until (API values)
  listKey: null,      // the filters the cursors below belong to
  cursors: [null],    // cursors[i] = the cursor that opens page i; null = newest
  page: 0,
  next: null,
  total: null,        // {count, exact, partial} for these filters, from their first page
  search: null,       // this page's search block (q only)
  rows: [],           // this page's entries, kept to redraw when the zone changes
  detail: null,       // the open message, likewise
  seq: 0,             // answers to an older request are dropped
  routed: null,       // the location.hash last shown
};

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function show(section) {
  for (const id of ["prompt", "list", "detail"]) $(id).hidden = id !== section;
  $("sign-out").hidden = section === "prompt";
  $("tz-switch").hidden = section === "prompt";
}

function askForToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.routed = null;
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

function formatCount(n) { return new Intl.NumberFormat().format(n); }

function plural(n, one, many) { return formatCount(n) + " " + (n === 1 ? one : many); }

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
    setState(el, "Saved as " + filename + ".");
  } catch (e) {
    failed(e, el);
  }
}

function setState(el, text) {
  el.textContent = text;
  el.classList.remove("error");
}

// MARK: times

function zone() { return localStorage.getItem(ZONE_KEY) === "local" ? "local" : "utc"; }

function localZoneName() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"; } catch (e) { return "local time"; }
}

function pad(n) { return String(n).padStart(2, "0"); }

// "UTC+05:30" for the browser's offset at that instant (it changes with summer time).
function offsetText(d) {
  const minutes = -d.getTimezoneOffset();
  const a = Math.abs(minutes);
  return "UTC" + (minutes < 0 ? "-" : "+") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
}

// Always with its zone: "2026-11-27 09:30:00 UTC" or "2026-11-27 15:00:00 UTC+05:30".
function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  if (zone() === "utc") {
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " "
      + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " "
    + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + " " + offsetText(d);
}

function timeElement(iso) {
  const t = document.createElement("time");
  t.textContent = formatTime(iso);
  if (iso) { t.dateTime = iso; t.title = iso; }
  return t;
}

// A datetime-local value read in the chosen zone → RFC 3339 (UTC), and back.
function inputToISO(v) {
  if (!v) return "";
  const d = new Date(zone() === "utc" ? v + "Z" : v);
  return isNaN(d) ? "" : d.toISOString();
}

function isoToInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  if (zone() === "utc") return d.toISOString().slice(0, 19);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

function showZone() {
  const local = zone() === "local";
  $("tz-utc").checked = !local;
  $("tz-local").checked = local;
  const now = new Date();
  $("tz-local-name").textContent = "Local (" + localZoneName() + ", " + offsetText(now) + ")";
  for (const el of document.querySelectorAll(".zone-label")) el.textContent = local ? "(" + localZoneName() + ")" : "(UTC)";
}

function setZone(z) {
  // Dates typed but not searched yet keep their instant: read in the old zone, shown in the new.
  const since = inputToISO($("f-since").value), until = inputToISO($("f-until").value);
  localStorage.setItem(ZONE_KEY, z);
  $("f-since").value = isoToInput(since);
  $("f-until").value = isoToInput(until);
  showZone();
  if (!$("list").hidden) renderList();
  if (!$("detail").hidden && state.detail) renderDetail(state.detail);
}

// MARK: small builders

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

function line(className, text) {
  const div = document.createElement("div");
  div.className = className;
  div.textContent = text;
  return div;
}

// Deferred rows (and queued ones waiting out a pause) say when they are tried again.
function nextRetry(m) {
  if (!m.next_attempt_at) return null;
  if (m.status === "deferred" || (m.status === "queued" && new Date(m.next_attempt_at) > new Date())) return m.next_attempt_at;
  return null;
}

const REPLY_SHOWN = ["deferred", "failed", "uncertain"];

// MARK: routing

function listHash(filters) {
  const parts = FILTER_KEYS.filter((k) => filters[k]).map((k) => k + "=" + encodeURIComponent(filters[k]));
  return "#/" + (parts.length ? "?" + parts.join("&") : "");
}

function parseHash(hash) {
  const m = /^#\/messages\/([1-9][0-9]{0,17})$/.exec(hash);
  if (m) return { view: "message", id: m[1] };
  const filters = {};
  const query = hash.startsWith("#/?") ? hash.slice(3) : "";
  for (const pair of query.split("&")) {
    const i = pair.indexOf("=");
    if (i <= 0) continue;
    const k = pair.slice(0, i);
    let v;
    try { v = decodeURIComponent(pair.slice(i + 1)); } catch (e) { continue; }
    if (FILTER_KEYS.includes(k) && v) filters[k] = v;
  }
  return { view: "list", filters };
}

function navigate(hash, entryState) {
  if (hash === location.hash) { state.routed = null; route(); return; }
  history.pushState(entryState || {}, "", hash);
  route();
}

// Shows what the URL names. Called on load, after sign-in, on back/forward (popstate) and
// when the hash is edited (hashchange; the two may both fire: the second is a no-op).
function route() {
  if (!token()) { askForToken(""); return; }
  if (state.routed === location.hash) return;
  state.routed = location.hash;
  const r = parseHash(location.hash);
  if (r.view === "message") { openDetail(r.id); return; }
  const key = JSON.stringify(r.filters);
  if (key !== state.listKey) {
    state.filters = r.filters;
    state.listKey = key;
    state.cursors = [null];
    state.page = 0;
    state.total = null;
  }
  fillFilters();
  loadPage();
}

// MARK: list

function query(params) {
  return params.map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");   // percent-encoded: a form encoder writes a space as '+', which the API reads as a plus
}

async function loadPage() {
  show("list");
  const seq = ++state.seq;
  const list = $("list-state");
  setState(list, "Loading…");
  const params = [["limit", String(PAGE_SIZE)]];
  for (const k of FILTER_KEYS) if (state.filters[k]) params.push([k, state.filters[k]]);
  const cursor = state.cursors[state.page];
  if (cursor) params.push(["cursor", cursor]);
  const counting = state.total === null && !cursor;
  if (counting) params.push(["count", "true"]);
  let body;
  try {
    body = await api("/api/audit?" + query(params));
  } catch (e) {
    if (seq === state.seq) failed(e, list);
    return;
  }
  if (seq !== state.seq) return;
  state.next = body.next;
  state.rows = body.data;
  state.search = body.search || null;
  if (counting && body.total) {
    const partial = !!(body.search && body.search.partial);
    state.total = { count: body.total.count, exact: body.total.exact, partial, examined: partial ? body.search.examined : 0 };
  }
  renderList();
}

function renderList() {
  const rows = $("rows");
  rows.replaceChildren();
  for (const m of state.rows) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.id = String(m.id);
    tr.dataset.status = m.status;
    const to = cell(tr, m.to, "recipient");
    if (m.recipients && m.recipients.length > 1) {
      to.append(line("more", "+" + (m.recipients.length - 1) + " more"));
      to.title = m.recipients.map((r) => r.kind + ": " + r.address).join("\n");
    }
    const link = Object.assign(document.createElement("a"), { href: "#/messages/" + m.id, className: "open", textContent: m.subject });
    const subject = cell(tr, link, "subject");
    subject.title = m.subject;
    if (REPLY_SHOWN.includes(m.status) && m.last_reply) {
      const reply = line("last-reply", m.last_reply);
      reply.title = m.last_reply;
      subject.append(reply);
    }
    cell(tr, m.mailbox);
    const status = cell(tr, badge(m.status), "status");
    const retry = nextRetry(m);
    if (retry) {
      const div = line("next-retry", "next retry ");
      div.append(timeElement(retry));
      status.append(div);
    }
    cell(tr, timeElement(m.accepted_at), "time");
    cell(tr, timeElement(m.sent_at), "time");
    cell(tr, String(m.attempt_count), "num");
    const open = (ev) => {
      // Ctrl/⌘/middle click on the link: the browser opens the message's URL elsewhere.
      if (ev && (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button === 1)) return;
      if (ev) ev.preventDefault();
      navigate("#/messages/" + m.id, { fromList: true });
    };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(ev); });
    rows.appendChild(tr);
  }
  const list = $("list-state");
  const filtered = FILTER_KEYS.some((k) => state.filters[k]);
  const s = state.search;
  const partial = s && s.partial && state.rows.length < PAGE_SIZE && state.next;
  if (partial) {
    setState(list, (state.rows.length ? "These are all the matches" : "No match") + " among the " + plural(s.examined, "message", "messages")
      + " searched on this page. Older messages are not searched yet: “Search older →” goes on.");
  } else if (state.rows.length === 0) {
    setState(list, state.page > 0 ? "No older messages." : filtered ? "No messages match these filters." : "No messages have been sent yet.");
  } else {
    setState(list, "");
  }
  $("messages").hidden = state.rows.length === 0;
  $("list-count").textContent = countText(filtered);
  $("newer").disabled = state.page === 0;
  $("older").disabled = !state.next;
  $("older").textContent = partial ? "Search older →" : "Older →";
  $("page-label").textContent = state.rows.length || state.page > 0 ? "Page " + (state.page + 1) : "";
}

// "6 messages", "More than 1,000 messages match", "At least 3 messages match “inv” (the newest
// 10,000 searched)" — the count is capped by the server, never a count of the whole table.
function countText(filtered) {
  const t = state.total;
  if (!t) return "";
  const q = state.filters.q;
  const what = (n) => (q || filtered ? (n === 1 ? " matches" : " match") : "") + (q ? " “" + q + "”" : filtered ? " these filters" : "");
  if (t.exact) return plural(t.count, "message", "messages") + what(t.count);
  if (t.partial) return "At least " + plural(t.count, "message", "messages") + what(t.count) + " (the newest " + formatCount(t.examined) + " searched)";
  return "More than " + plural(t.count, "message", "messages") + what(t.count);
}

function readFilters() {
  return {
    q: $("f-q").value.trim(),
    to: $("f-to").value.trim(),
    status: $("f-status").value,
    since: inputToISO($("f-since").value),
    until: inputToISO($("f-until").value),
  };
}

function fillFilters() {
  $("f-q").value = state.filters.q || "";
  $("f-to").value = state.filters.to || "";
  $("f-status").value = state.filters.status || "";
  $("f-since").value = isoToInput(state.filters.since);
  $("f-until").value = isoToInput(state.filters.until);
}

// MARK: detail

async function openDetail(id) {
  show("detail");
  const seq = ++state.seq;
  const st = $("detail-state");
  setState(st, "Loading message " + id + "…");
  $("detail-body").hidden = true;
  state.detail = null;
  let body;
  try {
    body = await api("/api/audit/" + encodeURIComponent(String(id)));
  } catch (e) {
    if (seq === state.seq) failed(e, st);
    return;
  }
  if (seq !== state.seq) return;
  setState(st, "");
  state.detail = body.data;
  renderDetail(body.data);
  document.title = "#" + body.data.id + " · Sent mail audit · tickiti-mail";
}

function renderDetail(m) {
  $("d-subject").textContent = m.subject;
  const facts = $("d-facts");
  facts.replaceChildren();
  const fact = (name, value) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value == null || value === "" ? "—" : String(value);
    facts.append(dt, dd);
    return dd;
  };
  fact("Status", badge(m.status)).id = "d-status";
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
  // The From as the recipient saw it (the header's display name), and the mailbox it went through.
  const from = m.from && m.from.address ? (m.from.name ? m.from.name + " <" + m.from.address + ">" : m.from.address) : m.mailbox_address;
  const fromDD = fact("From", from);
  fromDD.id = "d-from";
  fromDD.append(line("hint", "through the mailbox “" + m.mailbox + "”"));
  fact("Accepted", timeElement(m.accepted_at));
  fact("Sent", timeElement(m.sent_at));
  const retry = nextRetry(m);
  if (retry) fact("Next retry", timeElement(retry)).id = "d-next-retry";
  fact("Attempts", m.attempt_count);
  fact("Last SMTP reply", m.last_reply).id = "d-last-reply";
  fact("Message-ID", m.message_id);
  fact("Template", m.template);
  fact("Token", m.token_name);
  fact("Idempotency-Key", m.idempotency_key);
  for (const [k, v] of Object.entries(m.metadata || {})) fact("Metadata: " + k, v);
  fact("Audit ID", m.id);

  // The email's HTML: only ever as srcdoc of the sandboxed frame (no scripts, opaque origin).
  const frame = $("d-html");
  frame.setAttribute("sandbox", "");
  const shown = m.message.html == null ? { html: "", blocked: 0 } : withBlockedImages(m.message.html);
  if (frame.srcdoc !== shown.html) frame.srcdoc = shown.html;
  $("d-images").textContent = shown.blocked ? plural(shown.blocked, "image is", "images are") + " blocked and shown as a placeholder." : "";
  $("d-text").textContent = m.message.text == null ? "(no text part)" : m.message.text;

  const attempts = $("d-attempts").tBodies[0];
  attempts.replaceChildren();
  for (const a of m.attempts) {
    const tr = document.createElement("tr");
    cell(tr, timeElement(a.at), "time");
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
  const eml = $("d-eml");
  eml.href = "/api/audit/" + m.id + "/raw";
  eml.download = m.id + ".eml";
  eml.onclick = (ev) => { ev.preventDefault(); download("/api/audit/" + m.id + "/raw", m.id + ".eml"); };
  setState($("d-download-state"), "");

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

// The email's HTML with every image that cannot load replaced by a box that says it is
// blocked: remote and relative addresses are refused by the frame's policy (img-src 'self'
// data:, inherited by srcdoc) and cid: parts have no URL there, so the browser would draw its
// broken-image icon, which tells support staff nothing. data: images stay. The HTML is parsed
// by DOMParser — an inert document: none of it runs or loads — changed there, and written
// back with getHTML(); the frame then parses it as it would have parsed the original. Tiny
// images (≤ 3 px both ways: tracking pixels) are dropped, not boxed.
const BOX_STYLE = "display:inline-flex;flex-direction:column;align-items:center;justify-content:center;box-sizing:border-box;"
  + "max-width:100%;overflow:hidden;vertical-align:middle;border:1px dashed #8a94a6;border-radius:3px;background:#f3f5f8;"
  + "color:#4a5467;font:12px/1.3 system-ui,sans-serif;text-align:center;padding:2px 6px;";

function withBlockedImages(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  if (typeof doc.documentElement.getHTML !== "function") return { html, blocked: 0 };   // an older browser: the icons stay
  const loads = (url) => /^data:image\//i.test(url.trim());
  let blocked = 0;
  for (const source of Array.from(doc.querySelectorAll("picture source"))) {
    if (!loads(source.getAttribute("srcset") || "")) source.remove();
  }
  for (const img of Array.from(doc.querySelectorAll("img, input[type=image]"))) {
    const src = img.getAttribute("src") || "";
    if (loads(src)) { img.removeAttribute("srcset"); continue; }
    blocked += 1;
    const size = (name) => { const v = (img.getAttribute(name) || "").trim(); return /^[0-9]{1,4}$/.test(v) ? Number(v) : null; };
    const w = size("width"), h = size("height");
    if (w !== null && h !== null && w <= 3 && h <= 3) { img.remove(); continue; }
    const alt = (img.getAttribute("alt") || "").trim();
    const box = doc.createElement("span");
    box.setAttribute("data-blocked-image", "");
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", "Image blocked" + (alt ? ": " + alt : ""));
    box.setAttribute("title", src.trim().toLowerCase().startsWith("cid:")
      ? "An inline image of the message (" + src.trim() + "): see Files." : "Remote image not loaded: " + (src.trim() || "(no address)"));
    box.setAttribute("style", BOX_STYLE + (w !== null ? "width:" + w + "px;" : "min-width:8em;") + (h !== null ? "height:" + h + "px;" : "min-height:2.6em;"));
    const label = doc.createElement("span");
    label.textContent = "Image blocked";
    box.append(label);
    if (alt) {
      const a = doc.createElement("span");
      a.textContent = alt;
      a.setAttribute("style", "font-style:italic");
      box.append(a);
    }
    img.replaceWith(box);
  }
  let out = "";
  const dt = doc.doctype;
  if (dt) out += "<!DOCTYPE " + dt.name + (dt.publicId ? " PUBLIC \"" + dt.publicId + "\"" : "") + (dt.systemId ? (dt.publicId ? "" : " SYSTEM") + " \"" + dt.systemId + "\"" : "") + ">";
  out += "<html";
  for (const a of Array.from(doc.documentElement.attributes)) out += " " + a.name + "=\"" + a.value.replace(/&/g, "&amp;").replace(/"/g, "&quot;") + "\"";
  return { html: out + ">" + doc.documentElement.getHTML() + "</html>", blocked };
}

// MARK: wiring

document.addEventListener("DOMContentLoaded", () => {
  showZone();
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token-input").value = "";
    state.routed = null;
    state.listKey = null;
    route();
  });
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.listKey = null;   // a search starts from its first page, counted anew
    navigate(listHash(readFilters()));
  });
  $("f-clear").addEventListener("click", () => { $("filters").reset(); state.listKey = null; navigate(listHash({})); });
  $("older").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    loadPage();
  });
  $("newer").addEventListener("click", () => { if (state.page > 0) { state.page -= 1; loadPage(); } });
  $("back").addEventListener("click", () => {
    if (history.state && history.state.fromList) history.back(); else navigate(listHash(state.filters));
  });
  $("sign-out").addEventListener("click", () => askForToken(""));
  for (const id of ["tz-utc", "tz-local"]) $(id).addEventListener("change", (ev) => { if (ev.target.checked) setZone(ev.target.value); });
  window.addEventListener("popstate", route);
  window.addEventListener("hashchange", route);
  route();
});

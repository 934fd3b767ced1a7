// The audit trail (GET /v1/revocations), the revoke form
// (POST /v1/revocations) and a revocation's receipt
// (GET /v1/revocations/{id}/receipt). All need the admin token.

import { call, h, setRows, token, utc, ago, inputSecs } from "/ui/api.js";

const $ = (id) => document.getElementById(id);
const KEYS = ["iss", "jti", "token_sha256", "sid", "sub", "client_id", "kid"];

let filter = new URLSearchParams({ limit: "50" });
let selected = null;
let receiptsServed = false;

/** Whether this node serves receipts (its OpenAPI document lists the route). */
export function setReceiptsServed(yes) {
  receiptsServed = yes;
}

/** Shows the receipt of record `id` (and marks its row). */
export function select(id) {
  selected = id;
  for (const tr of $("audit").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === id);
  refreshReceipt();
}

function recordKeys(r) {
  const parts = KEYS.filter((k) => r[k] !== undefined).map((k) => `${k}=${r[k]}`);
  if (r.before !== undefined) parts.push(`before ${utc(r.before)}`);
  return parts.join(" ");
}

function auditRow(r) {
  return h("tr", { dataset: { id: r.id, scope: r.scope }, class: r.id === selected ? "selected" : undefined,
    onclick: () => select(r.id), title: `expires ${utc(r.expires_at)} · origin ${r.origin} seq ${r.seq}` },
  h("td", {}, utc(r.revoked_at)),
  h("td", {}, r.scope),
  h("td", { class: "mono" }, recordKeys(r)),
  h("td", {}, r.reason),
  h("td", {}, r.on_behalf_of ? `${r.actor} for ${r.on_behalf_of}` : r.actor),
  h("td", { class: "mono" }, r.id));
}

/** Reads the audit filters from the form (throws on a bad time). */
function readFilter() {
  const q = new URLSearchParams();
  const key = $("audit-key").value.trim();
  const origin = $("audit-origin").value.trim();
  if (key) q.set("key", key);
  if ($("audit-scope").value) q.set("scope", $("audit-scope").value);
  if (origin) q.set("origin", origin);
  const since = inputSecs($("audit-since").value);
  const until = inputSecs($("audit-until").value);
  if (since !== undefined) q.set("since", since);
  if (until !== undefined) q.set("until", until);
  q.set("limit", $("audit-limit").value || "50");
  return q;
}

/** Loads the audit trail with the filters last searched for. */
export async function refreshAudit() {
  const note = $("audit-note");
  const tbody = $("audit").tBodies[0];
  if (!token.get()) {
    note.textContent = "Enter the admin token above to see the audit trail.";
    note.className = "muted";
    setRows(tbody, []);
    return;
  }
  const query = String(filter);
  try {
    const { records } = await call(`/v1/revocations?${query}`, { auth: true });
    if (query !== String(filter)) return; // a newer search is on its way
    setRows(tbody, records.map(auditRow));
    $("audit").dataset.query = query;
    const n = records.length;
    note.textContent = n === 0 ? "No record matches." : `${n} record${n === 1 ? "" : "s"}`;
    note.className = "muted";
  } catch (e) {
    note.textContent = e.status === 401 ? "The node refused this token." : e.message;
    note.className = "error";
    setRows(tbody, []);
  }
}

/** Shows only the fields the chosen scope takes. */
function showScopeFields() {
  const scope = $("revoke-scope").value;
  for (const label of $("revoke-form").querySelectorAll("label[data-for]")) {
    label.hidden = !label.dataset.for.split(" ").includes(scope);
  }
}

/** The body of POST /v1/revocations from the form's visible, filled fields. */
function revokeBody(form) {
  const body = { scope: form.elements.scope.value };
  for (const input of form.querySelectorAll("input[name]")) {
    if (input.closest("label").hidden || input.value.trim() === "") continue;
    const v = input.type === "datetime-local" ? inputSecs(input.value) : input.value.trim();
    body[input.name] = v;
  }
  return body;
}

async function revoke(event) {
  event.preventDefault();
  const form = event.target;
  const out = $("revoke-result");
  const button = $("revoke-submit");
  if (!token.get()) {
    out.textContent = "Enter the admin token first.";
    out.className = "error";
    return;
  }
  button.disabled = true;
  try {
    const record = await call("/v1/revocations", { method: "POST", auth: true, body: revokeBody(form) });
    out.replaceChildren("Revoked: ", h("span", { class: "mono", id: "revoked-id" }, record.id));
    out.className = "";
    for (const input of form.querySelectorAll("input[name]")) input.value = "";
    select(record.id);
    await refreshAudit();
  } catch (e) {
    out.textContent = e.code ? `${e.code}: ${e.message}` : e.message;
    out.className = "error";
  } finally {
    button.disabled = false;
  }
}

function receiptRow(n) {
  return h("tr", { dataset: { node: n.name, region: n.region || "", state: n.state } },
    h("td", {}, n.name),
    h("td", {}, n.region || "—"),
    h("td", { class: `state ${n.state}` }, n.state),
    h("td", {}, utc(n.enforced_at)),
    h("td", { title: utc(n.last_heard) }, ago(n.last_heard)));
}

/** Polls the selected record's receipt; hidden when there is none to show. */
export async function refreshReceipt() {
  const section = $("receipt-section");
  const id = selected;
  if (!id || !receiptsServed || !token.get()) {
    section.hidden = true;
    return;
  }
  try {
    const receipt = await call(`/v1/revocations/${encodeURIComponent(id)}/receipt`, { auth: true });
    if (id !== selected) return;
    $("receipt-id").textContent = receipt.id;
    const badge = $("receipt-complete");
    badge.textContent = receipt.complete ? "enforced everywhere" : "pending";
    badge.className = receipt.complete ? "badge ok" : "badge warn";
    badge.dataset.complete = String(receipt.complete);
    setRows($("receipt").tBodies[0], receipt.nodes.map(receiptRow));
    section.hidden = false;
  } catch (e) {
    // 404: no receipt for this id here (yet); anything else shows no table either.
    section.hidden = true;
  }
}

/** Wires the audit and revoke forms. */
export function initAudit() {
  $("revoke-scope").addEventListener("change", showScopeFields);
  showScopeFields();
  $("revoke-form").addEventListener("submit", revoke);
  $("audit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      filter = readFilter();
    } catch (e) {
      $("audit-note").textContent = e.message;
      $("audit-note").className = "error";
      return;
    }
    refreshAudit();
  });
  $("audit-form").addEventListener("reset", () => {
    filter = new URLSearchParams({ limit: "50" });
    setTimeout(refreshAudit, 0);
  });
}

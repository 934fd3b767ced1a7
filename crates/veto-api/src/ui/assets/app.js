// The veto dashboard: wires the panels and refreshes them every 2 s.

import { call, token } from "/ui/api.js";
import { renderStatus } from "/ui/cluster.js";
import { renderLatency } from "/ui/latency.js";
import { initAudit, refreshAudit, refreshReceipt, setReceiptsServed } from "/ui/audit.js";

const REFRESH_MS = 2000;
const RECEIPT_ROUTE = "/v1/revocations/{id}/receipt";
const $ = (id) => document.getElementById(id);

function showTokenState() {
  const has = token.get() !== "";
  $("token-state").textContent = has ? "token set" : "no token: read-only";
  $("token-forget").disabled = !has;
  $("token").value = "";
}

function initToken() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (value) token.set(value);
    showTokenState();
    refreshAudit();
    refreshReceipt();
  });
  $("token-forget").addEventListener("click", () => {
    token.clear();
    showTokenState();
    refreshAudit();
    refreshReceipt();
  });
  showTokenState();
}

/** Whether the node serves receipts: asked once of its OpenAPI document, so
 * that a node without them is never sent a request that can only fail. */
async function detectReceipts() {
  try {
    const doc = await call("/openapi.json");
    setReceiptsServed(Boolean(doc.paths && doc.paths[RECEIPT_ROUTE]));
  } catch (_) {
    setReceiptsServed(false);
  }
}

async function refresh() {
  const stamp = $("refreshed");
  try {
    const [status, metrics] = await Promise.all([
      call("/v1/status"),
      call("/metrics", { text: true }),
    ]);
    renderStatus(status);
    renderLatency(metrics);
    await Promise.all([refreshAudit(), refreshReceipt()]);
    stamp.textContent = `updated ${new Date().toISOString().slice(11, 19)}Z`;
    stamp.className = "muted";
  } catch (e) {
    stamp.textContent = `cannot reach the node: ${e.message}`;
    stamp.className = "error";
  }
}

async function loop() {
  await refresh();
  setTimeout(loop, REFRESH_MS);
}

initToken();
initAudit();
detectReceipts().then(loop);

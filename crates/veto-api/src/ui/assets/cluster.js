// The cluster panel: this node, its region, its peers and the links to them
// (state, RTT, lag), and each origin's staleness, from GET /v1/status.

import { h, s, setRows, utc, ago, duration } from "/ui/api.js";

const $ = (id) => document.getElementById(id);

/** The region of each node name, from `origins` (newest entry wins). */
function regionsByName(status) {
  const regions = new Map();
  const heard = new Map();
  for (const o of status.origins || []) {
    if (!o.name || !o.region) continue;
    const t = o.last_heard ?? 0;
    if (!regions.has(o.name) || t >= heard.get(o.name)) {
      regions.set(o.name, o.region);
      heard.set(o.name, t);
    }
  }
  return regions;
}

/** This node and its peers, each with the region it is known to serve (or null). */
function nodesOf(status) {
  const regions = regionsByName(status);
  const self = { name: status.node.name, region: status.node.region, self: true };
  const peers = status.peers.map((p) => {
    const name = p.name || p.addr;
    return { ...p, name, region: p.region || regions.get(name) || null };
  });
  return { self, peers };
}

/** The header: who this node is and its health at a glance. */
function renderHeader(status) {
  $("node-name").textContent = status.node.name;
  $("node-region").textContent = `${status.node.region} · ${status.node.id}`;
  document.title = `veto · ${status.node.name}`;
  const fact = (label, value, cls) =>
    h("div", {}, h("dt", {}, label), h("dd", { class: cls ? `state ${cls}` : undefined }, value));
  const clock = status.clock || {};
  const storage = status.storage || {};
  $("health").replaceChildren(
    fact("records", status.revocations),
    fact("digest", String(status.digest).slice(0, 12)),
    fact("clock", clock.state || "—", clock.state === "ok" ? "ok" : clock.state === "skewed" ? "bad" : "warn"),
    fact("writes", storage.writes || "—", storage.writes === "ok" ? "ok" : "bad"),
  );
  $("health").title = storage.halted_because ? `writes halted: ${storage.halted_because}` : "";
}

/** Groups nodes into regions, this node's region first; a peer of unknown region stands alone. */
function groups(self, peers) {
  const order = [];
  const byKey = new Map();
  const add = (key, label, node) => {
    if (!byKey.has(key)) {
      byKey.set(key, { key, label, known: !key.startsWith("?"), nodes: [] });
      order.push(key);
    }
    byKey.get(key).nodes.push(node);
  };
  add(self.region, self.region, self);
  for (const p of peers) {
    if (p.region) add(p.region, p.region, p);
    else add(`?${p.name}`, "region unknown", p);
  }
  return order.map((k) => byKey.get(k));
}

const BOX_W = 132, ROW_H = 34, HEAD_H = 22;

/** Draws regions as boxes round an ellipse, nodes inside them, and a line per link. */
function renderMap(self, peers) {
  const svg = $("map");
  const gs = groups(self, peers);
  const height = Math.max(...gs.map((g) => HEAD_H + g.nodes.length * ROW_H + 8));
  const W = 440, H = gs.length === 1 ? height + 20 : Math.max(240, 2 * height + 60);
  const cx = W / 2, cy = H / 2;
  let top = H, bottom = 0;
  const rx = (W - BOX_W) / 2 - 8, ry = (H - height) / 2 - 8;
  const at = new Map();
  const regionEls = [], nodeEls = [], lineEls = [], labelEls = [];
  gs.forEach((g, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / gs.length;
    const bh = HEAD_H + g.nodes.length * ROW_H;
    const x = gs.length === 1 ? cx - BOX_W / 2 : cx + rx * Math.cos(angle) - BOX_W / 2;
    const y = gs.length === 1 ? 10 : cy + ry * Math.sin(angle) - bh / 2;
    top = Math.min(top, y);
    bottom = Math.max(bottom, y + bh);
    regionEls.push(s("g", { class: i === 0 ? "region self" : "region", dataset: g.known ? { region: g.label } : {} },
      s("rect", { x, y, width: BOX_W, height: bh, rx: 6 }),
      s("text", { x: x + 8, y: y + 15 }, g.label)));
    g.nodes.forEach((n, j) => {
      const nx = x + 18, ny = y + HEAD_H + j * ROW_H + ROW_H / 2;
      at.set(n.self ? "\0self" : n.name, [nx, ny]);
      nodeEls.push(s("g", {
        class: n.self ? "node self" : "node",
        dataset: { node: n.name, region: n.region || "", state: n.self ? "self" : n.state },
      },
      s("circle", { cx: nx, cy: ny, r: 8 }),
      s("text", { x: nx + 14, y: ny + 4 }, n.name.length > 14 ? `${n.name.slice(0, 13)}…` : n.name),
      s("title", {}, n.self ? `${n.name} (this node)` : `${n.name} ${n.addr}: ${n.state}`)));
    });
  });
  const [sx, sy] = at.get("\0self");
  for (const p of peers) {
    const [px, py] = at.get(p.name);
    const label = p.state === "connected"
      ? `${p.rtt_ms == null ? "—" : `${p.rtt_ms.toFixed(1)} ms`} · lag ${p.lag}`
      : p.state;
    const link = { class: `link ${p.state}`, dataset: { peer: p.name, state: p.state } };
    lineEls.push(s("g", link, s("line", { x1: sx, y1: sy, x2: px, y2: py })));
    labelEls.push(s("g", { class: "link-label" },
      s("text", { x: (sx + px) / 2 + 4, y: (sy + py) / 2 - 4 }, label)));
  }
  svg.setAttribute("viewBox", `0 ${top - 6} ${W} ${bottom - top + 12}`);
  // Lines under the region boxes (so they join boxes), their labels and the nodes on top.
  svg.replaceChildren(...lineEls, ...regionEls, ...labelEls, ...nodeEls);
}

/** The links table: one row per peer. */
function renderLinks(peers) {
  $("no-peers").hidden = peers.length > 0;
  setRows($("links").tBodies[0], peers.map((p) =>
    h("tr", { dataset: { peer: p.name, state: p.state } },
      h("td", {}, p.name),
      h("td", {}, p.region || h("span", { class: "muted" }, "?")),
      h("td", { class: "mono" }, p.addr),
      h("td", { class: `state ${p.state}` }, p.state),
      h("td", { class: "num" }, p.rtt_ms == null ? "—" : `${p.rtt_ms.toFixed(1)} ms`),
      h("td", { class: "num" }, p.lag),
      h("td", { title: utc(p.last_contact) }, ago(p.last_contact)))));
}

/** A `complete_through` (Unix seconds), or "—" while nothing is known. */
function through(v) {
  return typeof v === "number" && v > 0 ? utc(v) : "—";
}

/** The origins table, shown only when the node reports `origins`. */
function renderOrigins(status) {
  const origins = status.origins;
  $("origins-box").hidden = !Array.isArray(origins);
  if (!Array.isArray(origins)) return;
  const rows = [...origins].sort((a, b) => (b.staleness_s ?? 0) - (a.staleness_s ?? 0));
  setRows($("origins").tBodies[0], rows.map((o) => {
    const st = o.staleness_s;
    const cls = st == null ? "" : st < 5 ? "ok" : st < 60 ? "warn" : "bad";
    return h("tr", { dataset: { origin: o.origin, region: o.region || "" } },
      h("td", {}, o.name || "—"),
      h("td", {}, o.region || "—"),
      h("td", { class: "mono" }, o.origin),
      h("td", {}, through(o.complete_through)),
      h("td", { title: utc(o.last_heard) }, ago(o.last_heard)),
      h("td", { class: `num state ${cls}` }, st == null ? "—" : duration(st)));
  }));
}

/** Renders everything GET /v1/status says. */
export function renderStatus(status) {
  const { self, peers } = nodesOf(status);
  renderHeader(status);
  renderMap(self, peers);
  renderLinks(peers);
  renderOrigins(status);
}

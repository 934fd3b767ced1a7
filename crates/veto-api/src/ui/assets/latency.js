// Propagation latency per origin region, as bars, from this node's
// `veto_propagation_seconds{origin_region}` in GET /metrics: receipt time
// here minus the record's clock stamp at its origin. A node exports it as a
// summary (quantiles) unless buckets are configured; both are drawn.

import { h, parseMetrics, promNumber, duration } from "/ui/api.js";

const METRIC = "veto_propagation_seconds";
const QUANTILES = [["0.5", "p50"], ["0.9", "p90"], ["0.99", "p99"], ["1", "max"]];

/** Per origin region: {quantiles: Map, buckets: [[le, cumulative]], count, sum}. */
function byRegion(samples) {
  const regions = new Map();
  const get = (r) => {
    if (!regions.has(r)) regions.set(r, { quantiles: new Map(), buckets: [], count: 0, sum: 0 });
    return regions.get(r);
  };
  for (const { name, labels, value } of samples) {
    if (!name.startsWith(METRIC) || labels.origin_region === undefined) continue;
    const r = get(labels.origin_region);
    if (name === METRIC && labels.quantile !== undefined) r.quantiles.set(labels.quantile, value);
    else if (name === `${METRIC}_bucket`) r.buckets.push([promNumber(labels.le), value]);
    else if (name === `${METRIC}_count`) r.count = value;
    else if (name === `${METRIC}_sum`) r.sum = value;
  }
  return regions;
}

/** One bar: label, a track filled to `frac`, and the value. */
function bar(label, frac, value, cls = "") {
  const fill = h("div", { class: `fill ${cls}` });
  fill.style.width = `${Math.max(0, Math.min(1, frac)) * 100}%`;
  return [h("span", { class: "label" }, label), h("div", { class: "track" }, fill), h("span", { class: "value" }, value)];
}

/** Bars of the quantiles, on a scale shared by every region. */
function quantileBars(r, scale) {
  return QUANTILES.filter(([q]) => r.quantiles.has(q)).flatMap(([q, label]) => {
    const v = r.quantiles.get(q);
    return bar(label, scale > 0 ? v / scale : 0, duration(v), label);
  });
}

/** A histogram: how many records fell in each bucket (not cumulative). */
function bucketBars(r) {
  const sorted = [...r.buckets].sort((a, b) => a[0] - b[0]);
  let prev = 0;
  const counts = sorted.map(([le, cum]) => {
    const n = cum - prev;
    prev = cum;
    return [le, n];
  });
  const most = Math.max(1, ...counts.map(([, n]) => n));
  return counts.flatMap(([le, n]) =>
    bar(le === Infinity ? "> last" : `≤ ${duration(le)}`, n / most, String(n)));
}

/** Renders the latency panel from the Prometheus text of GET /metrics. */
export function renderLatency(metricsText) {
  const regions = byRegion(parseMetrics(metricsText));
  const box = document.getElementById("latency");
  const seen = [...regions].filter(([, r]) => r.count > 0).sort(([a], [b]) => a.localeCompare(b));
  document.getElementById("no-latency").hidden = seen.length > 0;
  const scale = Math.max(0, ...seen.flatMap(([, r]) => [...r.quantiles.values()]));
  box.replaceChildren(...seen.map(([region, r]) => {
    const mean = r.count > 0 ? duration(r.sum / r.count) : "—";
    const bars = r.buckets.length > 0 ? bucketBars(r) : quantileBars(r, scale);
    return h("div", { class: "latency-region", dataset: { region } },
      h("h3", {}, `from ${region} `, h("span", { class: "muted" }, `${r.count} record${r.count === 1 ? "" : "s"} · mean ${mean}`)),
      h("div", { class: "bars" }, ...bars));
  }));
}

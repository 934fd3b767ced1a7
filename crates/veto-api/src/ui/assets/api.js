// Talking to the node, and the small helpers every panel shares.

const TOKEN_KEY = "veto.admin-token";

/** The admin token the operator typed in, kept in this tab's sessionStorage only. */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer that was not 2xx: its status, and veto's error code and message. */
export class HttpError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/**
 * Fetches `path` on this node. `auth` adds the bearer token; `body` is sent as
 * JSON. Answers the parsed JSON (or text), or throws an HttpError.
 */
export async function call(path, { method = "GET", auth = false, body, text = false } = {}) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${token.get()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (!resp.ok) {
    let code = "", message = `${resp.status} ${resp.statusText}`;
    try {
      const err = await resp.json();
      code = err.error || "";
      message = err.message || message;
    } catch (_) { /* not veto's JSON error */ }
    throw new HttpError(resp.status, code, message);
  }
  return text ? resp.text() : resp.json();
}

/** Builds an element: h("td", {class: "num"}, "12", child, ...). Text is never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

/** Builds an SVG element with these attributes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces the rows of a table body. */
export function setRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

/** Unix seconds as "2024-06-07 12:34:56Z" (UTC), or "—". */
export function utc(secs) {
  if (secs === undefined || secs === null) return "—";
  return new Date(secs * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

/** How long ago Unix second `secs` was, as "3 s ago", or "—". */
export function ago(secs) {
  if (secs === undefined || secs === null) return "—";
  return `${duration(Math.max(0, Date.now() / 1000 - secs))} ago`;
}

/** Seconds as "2.6 ms", "850 ms", "12 s", "4 min" or "2.5 h". */
export function duration(secs) {
  if (secs < 0.01) return `${(secs * 1000).toFixed(1)} ms`;
  if (secs < 1) return `${Math.round(secs * 1000)} ms`;
  if (secs < 120) return `${Math.round(secs)} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}

/** A datetime-local input's value, read as UTC, in Unix seconds; undefined when empty. */
export function inputSecs(value) {
  if (!value) return undefined;
  const ms = Date.parse(`${value}Z`);
  if (Number.isNaN(ms)) throw new Error(`not a time: ${value}`);
  return Math.floor(ms / 1000);
}

/** A Prometheus number: a float, or +Inf / -Inf / NaN. */
export function promNumber(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

/**
 * Parses Prometheus text into samples: [{name, labels: {..}, value}].
 * Enough of the format for what a node exports: no timestamps needed.
 */
export function parseMetrics(text) {
  const out = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || "").matchAll(label)) {
      labels[k] = v.replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    out.push({ name: m[1], labels, value: promNumber(m[3]) });
  }
  return out;
}

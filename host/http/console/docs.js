"use strict";
// taskhost's offline API reference: renders /openapi.json with no library and nothing from another
// origin. Every text from the document or from an answer enters the DOM as text, never as HTML.

const KEY_STORAGE = "taskhost.apiKey";
const STREAM_WAIT_MS = 5000;    // $stream try-it: how long to wait for the first event
const REQUEST_WAIT_MS = 75000;  // above the host's 60 s cap on ?wait, so a long-poll can finish

let spec = {};
let settings = { api_key_header: null };

// --- DOM helpers

// el("td", {className: "x", "data-tag": t}, child, "text"): data-*/aria-* become attributes, the rest
// properties; strings become text nodes (Node.append never parses HTML).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) node.append(c);
  }
  return node;
}

// Puts `sep` between groups of nodes: join([[a], [b, c]], " | ").
function join(groups, sep) {
  return groups.flatMap((g, i) => (i ? [sep, ...g] : g));
}

// The document's descriptions use `code` spans and blank-line paragraphs; nothing else is interpreted.
function richText(text) {
  const box = el("div", { className: "rich" });
  if (!text) return box;
  for (const para of String(text).split(/\n\s*\n/)) {
    const p = el("p");
    String(para).split("`").forEach((part, i) => p.append(i % 2 ? el("code", {}, part) : part));
    box.append(p);
  }
  return box;
}

// Ids from names that may hold spaces or symbols.
function slug(s) {
  return String(s).replace(/[^A-Za-z0-9_-]+/g, "-");
}

// --- JSON

// Integers beyond 2^53 (such as a maximum of 2^63-1) keep their digits where the browser can
// (JSON.parse source access + JSON.rawJSON); elsewhere they are rounded as usual.
function parseJSON(text) {
  if (typeof JSON.rawJSON !== "function") return JSON.parse(text);
  return JSON.parse(text, (key, value, ctx) =>
    typeof value === "number" && !Number.isSafeInteger(value) && ctx && /^-?\d+$/.test(ctx.source)
      ? JSON.rawJSON(ctx.source) : value);
}

// --- $ref

function lookup(ref) {
  if (typeof ref !== "string" || !ref.startsWith("#/")) return undefined;
  return ref.slice(2).split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((o, p) => (o == null ? undefined : o[p]), spec);
}

// Follows $ref chains (parameters, responses, schemas) to the object they name.
function deref(obj) {
  for (let i = 0; obj && typeof obj === "object" && obj.$ref && i < 10; i++) {
    const target = lookup(obj.$ref);
    if (!target) break;
    obj = target;
  }
  return obj;
}

function schemaName(ref) {
  const m = /^#\/components\/schemas\/([^/]+)$/.exec(ref || "");
  return m ? m[1].replace(/~1/g, "/").replace(/~0/g, "~") : null;
}

function refLink(name) {
  return el("a", { className: "ref", href: "#schema-" + slug(name) }, name);
}

// --- schemas

function jsonType(v) {
  return v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;
}

// A schema's type as nodes: "string (date-time)", "array of JobRecord", "map of HealthCheck",
// "JobRecord | null", plus a "nullable" mark and enum values. Component refs become links.
function typeNodes(s, depth = 0) {
  if (s === false) return ["nothing"];
  if (!s || typeof s !== "object") return ["any"];
  if (s.$ref) {
    const name = schemaName(s.$ref);
    return name ? [refLink(name)] : typeNodes(deref(s), depth + 1);
  }
  if (depth > 8) return ["…"];
  const alts = s.oneOf || s.anyOf;
  if (alts) return join(alts.map((a) => typeNodes(a, depth + 1)), " | ");
  if (s.allOf) return join(s.allOf.map((a) => typeNodes(a, depth + 1)), " & ");

  let types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (!types.length && s.properties) types = ["object"];
  if (!types.length && s.items) types = ["array"];
  if (!types.length && Array.isArray(s.enum)) types = [...new Set(s.enum.map(jsonType))];
  if (!types.length && "const" in s) types = [jsonType(s.const)];

  const nullable = types.includes("null");
  const parts = types.filter((t) => t !== "null").map((t) => {
    if (t === "array") return s.items ? ["array of ", ...typeNodes(s.items, depth + 1)] : ["array"];
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object") {
      return ["map of ", ...typeNodes(s.additionalProperties, depth + 1)];
    }
    return [s.format ? `${t} (${s.format})` : t];
  });
  const out = parts.length ? join(parts, " | ") : [nullable ? "null" : "any"];
  if (nullable && parts.length) out.push(" ", el("span", { className: "nullable" }, "nullable"));
  const values = Array.isArray(s.enum) ? s.enum : "const" in s ? [s.const] : null;
  if (values) {
    out.push(el("span", { className: "enum" }, " one of ",
      join(values.map((v) => [el("code", {}, JSON.stringify(v))]), ", ")));
  }
  return out;
}

function typeCell(s) {
  return el("span", { className: "type" }, typeNodes(s));
}

// Bounds, lengths, defaults... as short phrases. A $ref's own constraints live on its schema.
function constraints(s) {
  if (!s || typeof s !== "object" || s.$ref) return [];
  const out = [];
  const rules = [
    ["minimum", "≥ "], ["exclusiveMinimum", "> "], ["maximum", "≤ "], ["exclusiveMaximum", "< "],
    ["multipleOf", "multiple of "], ["minLength", "min length "], ["maxLength", "max length "],
    ["pattern", "pattern "], ["minItems", "min items "], ["maxItems", "max items "],
    ["minProperties", "min properties "], ["maxProperties", "max properties "], ["default", "default "],
  ];
  for (const [key, label] of rules) if (key in s) out.push(label + JSON.stringify(s[key]));
  if (s.uniqueItems) out.push("unique items");
  if (s.additionalProperties === false) out.push("no other properties");
  if (s.readOnly) out.push("read-only");
  if (s.writeOnly) out.push("write-only");
  if (s.deprecated) out.push("deprecated");
  return out;
}

function constraintList(s) {
  return el("span", { className: "constraints" },
    join(constraints(s).map((c) => [el("span", { className: "constraint" }, c)]), " "));
}

// An inline object (or array of inline objects) inside a property gets rows of its own.
function innerObject(p) {
  if (p && p.properties) return { schema: p, suffix: "." };
  if (p && p.items && p.items.properties) return { schema: p.items, suffix: "[]." };
  return null;
}

function propertyRows(s, prefix, depth, rows) {
  const required = new Set(s.required || []);
  for (const [name, p] of Object.entries(s.properties || {})) {
    rows.push(el("tr", { className: depth ? "nested" : "", "data-prop": prefix + name },
      el("td", { className: "prop-name" }, prefix ? el("span", { className: "prefix" }, prefix) : null,
        el("code", {}, name)),
      el("td", {}, typeCell(p)),
      el("td", {}, required.has(name) ? el("span", { className: "required" }, "required") : ""),
      el("td", {}, richText(p && p.description)),
      el("td", {}, constraintList(p))));
    const inner = innerObject(p);
    if (inner && depth < 5) propertyRows(inner.schema, prefix + name + inner.suffix, depth + 1, rows);
  }
}

function table(className, heads, rows) {
  return el("table", { className }, el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

function propertyTable(s, prefix) {
  const rows = [];
  propertyRows(s, prefix, 0, rows);
  return table("props", ["Name", "Type", "Required", "Description", "Constraints"], rows);
}

// A schema as a block: its type (unless it is a plain object), what it includes (allOf refs) and
// a property table (allOf's inline parts merged in; an array of inline objects shows the items').
function schemaBlock(s) {
  const box = el("div", { className: "schema-body" });
  if (!s || typeof s !== "object" || s.$ref) {
    box.append(el("p", { className: "schema-type" }, s && s.$ref ? "" : "Type: ", typeCell(s)));
    return box;
  }
  const merged = { properties: { ...s.properties }, required: [...(s.required || [])] };
  for (const part of s.allOf || []) {
    if (part.$ref) {
      const name = schemaName(part.$ref);
      box.append(el("p", { className: "schema-includes" }, "Every property of ", name ? refLink(name) : part.$ref, ", and:"));
    } else {
      Object.assign(merged.properties, part.properties);
      merged.required.push(...(part.required || []));
      if (part.description && !s.description) box.append(richText(part.description));
    }
  }
  const hasProps = Object.keys(merged.properties).length > 0;
  const plainObject = hasProps && (!s.type || s.type === "object") && !s.oneOf && !s.anyOf;
  if (!s.allOf && !plainObject) {
    box.append(el("p", { className: "schema-type" }, "Type: ", typeCell(s), " ", constraintList(s)));
  } else if (s.additionalProperties === false) {
    box.append(el("p", { className: "schema-type" }, constraintList(s)));
  }
  if (hasProps) box.append(propertyTable(merged, ""));
  else if (s.items && s.items.properties) box.append(propertyTable(s.items, "[]."));
  return box;
}

function renderSchemas() {
  const section = document.getElementById("schemas");
  const schemas = (spec.components && spec.components.schemas) || {};
  for (const [name, s] of Object.entries(schemas)) {
    section.append(el("section", { className: "schema", id: "schema-" + slug(name), "data-name": name },
      el("h3", {}, el("a", { className: "anchor", href: "#schema-" + slug(name) }, name)),
      s && s.description ? richText(s.description) : null,
      schemaBlock(s)));
  }
  section.hidden = Object.keys(schemas).length === 0;
}

// --- operations

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// Operation-level parameters override path-level ones with the same name and location.
function operationParams(pathItem, op) {
  const byKey = new Map();
  for (const p of [...(pathItem.parameters || []), ...(op.parameters || [])].map(deref)) {
    if (p && p.name) byKey.set(p.in + ":" + p.name, p);
  }
  return [...byKey.values()];
}

function contentBlocks(content) {
  return Object.entries(content || {}).map(([type, media]) =>
    el("div", { className: "media" }, el("span", { className: "media-type" }, type),
      media && media.schema ? schemaBlock(media.schema) : null));
}

function parametersTable(params) {
  return table("params", ["Name", "In", "Required", "Schema", "Description"], params.map((p) => el("tr", { "data-param": p.name },
    el("td", {}, el("code", {}, p.name)),
    el("td", {}, p.in),
    el("td", {}, p.required ? el("span", { className: "required" }, "required") : ""),
    el("td", {}, typeCell(p.schema), " ", constraintList(p.schema)),
    el("td", {}, richText(p.description)))));
}

function responsesTable(responses) {
  return table("responses", ["Status", "Description", "Content"], Object.entries(responses || {}).map(([status, raw]) => {
    const r = deref(raw) || {};
    const headers = Object.entries(r.headers || {}).map(([name, h]) => el("p", { className: "resp-header" },
      "Header ", el("code", {}, name), ": ", typeCell(deref(h).schema)));
    return el("tr", { "data-status": status },
      el("td", {}, el("span", { className: "status status-" + status.charAt(0) }, status)),
      el("td", {}, richText(r.description), headers),
      el("td", {}, contentBlocks(r.content)));
  }));
}

function renderOperation(path, method, op, pathItem) {
  const params = operationParams(pathItem, op);
  const body = el("div", { className: "op-body" });
  if (op.description) body.append(richText(op.description));
  if (op.operationId) body.append(el("p", { className: "op-id" }, "operationId ", el("code", {}, op.operationId)));
  if (params.length) body.append(el("h4", {}, "Parameters"), parametersTable(params));
  const rb = deref(op.requestBody);
  if (rb) {
    body.append(el("h4", {}, "Request body", rb.required ? el("span", { className: "required" }, "required") : " (optional)"),
      rb.description ? richText(rb.description) : "", ...contentBlocks(rb.content));
  }
  body.append(el("h4", {}, "Responses"), responsesTable(op.responses));
  if (method === "get") body.append(tryItPanel(path, params));

  const details = el("details", {
    className: "operation", id: op.operationId ? "op-" + slug(op.operationId) : undefined,
    "data-method": method, "data-path": path,
    "data-filter": [method, path, op.summary || "", op.operationId || ""].join(" ").toLowerCase(),
  }, el("summary", {},
    el("span", { className: "method method-" + method }, method.toUpperCase()),
    el("code", { className: "op-path" }, path),
    el("span", { className: "op-summary" }, op.summary || "")),
  body);
  if (op.deprecated) details.classList.add("deprecated");
  return details;
}

// Groups operations by their first tag, in the order of the document's `tags`, then any other.
function renderOperations() {
  const groups = new Map();
  for (const t of spec.tags || []) groups.set(t.name, { tag: t, ops: [] });
  for (const [path, pathItem] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const op = pathItem[method];
      if (!op) continue;
      const name = (op.tags && op.tags[0]) || "Other";
      if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
      groups.get(name).ops.push(renderOperation(path, method, op, pathItem));
    }
  }
  const box = document.getElementById("operations");
  const toc = document.getElementById("toc-list");
  for (const [name, g] of groups) {
    if (!g.ops.length) continue;
    const id = "tag-" + slug(name);
    box.append(el("section", { className: "tag-group", id, "data-tag": name },
      el("h2", {}, el("a", { className: "anchor", href: "#" + id }, name)),
      g.tag.description ? richText(g.tag.description) : null, g.ops));
    toc.append(el("li", { id: "toc-" + id }, el("a", { href: "#" + id }, name),
      el("span", { className: "count" }, String(g.ops.length))));
  }
  if (spec.components && spec.components.schemas) {
    toc.append(el("li", { className: "toc-schemas" }, el("a", { href: "#schemas" }, "Schemas")));
  }
}

// --- filter

function applyFilter(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const group of document.querySelectorAll("section.tag-group")) {
    let inGroup = 0;
    for (const op of group.querySelectorAll(".operation")) {
      const hit = words.every((w) => op.dataset.filter.includes(w));
      op.hidden = !hit;
      if (hit) inGroup++;
    }
    group.hidden = inGroup === 0;
    document.getElementById("toc-" + group.id).hidden = inGroup === 0;
    shown += inGroup;
  }
  document.getElementById("filter-empty").hidden = shown > 0;
}

// --- try it

function storedKey() {
  try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

function tryItPanel(path, params) {
  const inputs = params.filter((p) => p.in === "path" || p.in === "query").map((p) => {
    const s = deref(p.schema) || {};
    const input = el("input", {
      type: "text", name: p.name, "data-param": p.name, "data-in": p.in, autocomplete: "off",
      placeholder: "default" in s ? JSON.stringify(s.default) : [].concat(s.type || "").join(" | "),
      required: !!p.required,
    });
    const field = el("label", { className: "try-field" },
      el("span", { className: "try-label" }, p.name, p.required ? el("span", { className: "required" }, "*") : null,
        el("span", { className: "try-in" }, p.in)), input);
    // Enum values as suggestions, not a select, so a wrong value can still be sent to see the 400.
    if (Array.isArray(s.enum)) {
      const list = el("datalist", { id: "enum-" + slug(path) + "-" + slug(p.name) },
        s.enum.map((v) => el("option", { value: String(v) })));
      input.setAttribute("list", list.id);
      field.append(list);
    }
    return field;
  });
  const stream = /\/\$stream$/.test(path);
  const send = el("button", { type: "button", className: "try-send" }, "Send");
  const result = el("pre", { className: "try-result", hidden: true });
  const auth = el("div", { className: "try-auth", hidden: true });
  const panel = el("div", { className: "try-panel", hidden: true },
    inputs.length ? el("div", { className: "try-fields" }, inputs) : null,
    stream ? el("p", { className: "docs-muted" },
      `An event stream: the page shows its first event (waiting at most ${STREAM_WAIT_MS / 1000} s), then closes it.`) : null,
    el("div", { className: "try-actions" }, send, el("code", { className: "try-url" })),
    auth, result);
  const toggle = el("button", { type: "button", className: "try-it", "aria-expanded": "false" }, "Try it");
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) { const first = panel.querySelector("input[data-param]"); if (first) first.focus(); }
  });
  send.addEventListener("click", () => sendTry(path, panel, stream));
  // Enter in a field sends, as a form would (there is no form: CSP forbids form actions anyway).
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.matches("input[data-param]")) { e.preventDefault(); send.click(); }
  });
  return el("div", { className: "try" }, toggle, panel);
}

// Builds the URL from the panel's fields; null (and marks the field) if a path parameter is empty.
function buildUrl(path, panel) {
  let missing = null;
  const query = new URLSearchParams();
  const values = {};
  for (const input of panel.querySelectorAll("input[data-param]")) {
    const v = input.value.trim();
    input.classList.remove("invalid");
    if (input.dataset.in === "path") {
      if (!v) { input.classList.add("invalid"); missing = missing || input; }
      values[input.dataset.param] = v;
    } else if (v) {
      query.append(input.dataset.param, v);
    }
  }
  if (missing) { missing.focus(); return null; }
  const url = path.replace(/\{([^}]+)\}/g, (m, name) => encodeURIComponent(values[name] || ""));
  const qs = query.toString();
  return qs ? url + "?" + qs : url;
}

async function sendTry(path, panel, stream) {
  const send = panel.querySelector(".try-send");
  const result = panel.querySelector(".try-result");
  const auth = panel.querySelector(".try-auth");
  const url = buildUrl(path, panel);
  if (url === null) return;
  panel.querySelector(".try-url").textContent = "GET " + url;
  const headers = {};
  const key = storedKey();
  if (settings.api_key_header && key) headers[settings.api_key_header] = key;

  send.disabled = true;
  send.textContent = "Sending…";
  auth.hidden = true;
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), stream ? STREAM_WAIT_MS : REQUEST_WAIT_MS);
  try {
    const res = await fetch(url, { headers, signal: ctrl.signal, cache: "no-store" });
    const type = res.headers.get("content-type") || "";
    const text = type.startsWith("text/event-stream") ? await firstEvent(res, ctrl) : await res.text();
    showResult(result, res, type, text);
    if (res.status === 401) {
      // Without settings.json: WWW-Authenticate: ApiKey header="X-API-Key".
      settings.api_key_header = settings.api_key_header
        || (/header="([^"]+)"/.exec(res.headers.get("WWW-Authenticate")) || [0, "X-API-Key"])[1];
      showAuth(auth, text, () => sendTry(path, panel, stream));
    }
  } catch (err) {
    result.replaceChildren(el("span", { className: "try-status status-error" },
      ctrl.signal.aborted ? `No answer within ${(stream ? STREAM_WAIT_MS : REQUEST_WAIT_MS) / 1000} s` : `Request failed: ${err.message}`));
    result.hidden = false;
  } finally {
    clearTimeout(timer);
    send.disabled = false;
    send.textContent = "Send";
  }
}

// Reads a Server-Sent Events body up to its first `data:` event, then stops the stream; null if
// none came before the timeout aborted the request.
async function firstEvent(res, ctrl) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buffer += decoder.decode(value, { stream: true });
      const blocks = buffer.replace(/\r\n?/g, "\n").split("\n\n");
      for (const block of done ? blocks : blocks.slice(0, -1)) {
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
        if (data.length) return data.join("\n");
      }
      if (done) return buffer;
    }
  } catch (err) {
    if (ctrl.signal.aborted) return null;
    throw err;
  } finally {
    reader.cancel().catch(() => {});
    ctrl.abort();
  }
}

function showResult(result, res, type, text) {
  const stream = type.startsWith("text/event-stream");
  let body = text === null ? `(no event within ${STREAM_WAIT_MS / 1000} s)` : text;
  if (text && (/[/+]json\b/.test(type) || stream)) {
    try { body = JSON.stringify(parseJSON(text), null, 2); } catch { /* not JSON: show it as it came */ }
  }
  result.replaceChildren(
    el("span", { className: "try-status status-" + String(res.status).charAt(0) }, `HTTP ${res.status} ${res.statusText}`.trim()),
    "\n", el("span", { className: "try-type" }, "Content-Type: " + (type || "(none)")),
    stream && text !== null ? el("span", { className: "try-note" }, "\n(first event only; the page closed the stream)") : "",
    "\n\n", body);
  result.hidden = false;
}

// After a 401: the host's detail, and a field to keep a key in this tab's sessionStorage.
function showAuth(auth, text, retry) {
  let detail = "";
  try { detail = JSON.parse(text).detail || ""; } catch { detail = text; }
  const children = [el("p", { className: "try-auth-detail" }, detail || "Unauthorized")];
  if (settings.api_key_header) {
    const input = el("input", { type: "password", className: "try-key", autocomplete: "off",
      placeholder: settings.api_key_header, "aria-label": "API key" });
    const save = el("button", { type: "submit", className: "try-key-save" }, "Use key and send again");
    // A form (submit handled here, never sent) so the password field is where browsers expect it.
    const form = el("form", { className: "try-key-row" }, input, save);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!input.value) return;
      try { sessionStorage.setItem(KEY_STORAGE, input.value); } catch { /* storage off: nothing to keep */ }
      retry();
    });
    children.push(form,
      el("p", { className: "docs-muted" }, "Kept in this tab only, shared with the console."));
  }
  auth.replaceChildren(...children);
  auth.hidden = false;
}

// --- page

function renderIntro() {
  const info = spec.info || {};
  const title = info.title || settings.display_name || "taskhost";
  document.getElementById("api-title").textContent = title + " API";
  document.getElementById("api-version").textContent = [info.version || settings.version, spec.openapi && "OpenAPI " + spec.openapi]
    .filter(Boolean).join(" · ");
  document.title = `API reference · ${title}`;
  const intro = document.getElementById("api-intro");
  if (info.summary) intro.append(el("p", { className: "api-summary" }, info.summary));
  if (info.description) intro.append(richText(info.description));
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`${url} answered ${res.status} ${res.statusText}`.trim());
  return parseJSON(await res.text());
}

async function main() {
  const [specResult, settingsResult] = await Promise.allSettled([getJSON("/openapi.json"), getJSON("/console/settings.json")]);
  document.getElementById("docs-loading").hidden = true;
  // Without settings the page still documents the API; "try it" then sends no key.
  if (settingsResult.status === "fulfilled" && settingsResult.value) settings = settingsResult.value;
  if (specResult.status === "rejected") return fail("Could not load the API description: " + specResult.reason.message);
  spec = specResult.value || {};
  renderIntro();
  renderOperations();
  renderSchemas();

  const filter = document.getElementById("op-filter");
  filter.addEventListener("input", () => applyFilter(filter.value));
  window.addEventListener("hashchange", revealHash);
  revealHash();
  document.body.dataset.ready = "true";
}

// A link to an operation opens it; the target only exists after rendering, so scroll again.
function revealHash() {
  let id = location.hash.slice(1);
  try { id = decodeURIComponent(id); } catch { /* a malformed %-escape: as it is */ }
  const target = id && document.getElementById(id);
  if (!target) return;
  if (target.matches("details.operation")) target.open = true;
  target.scrollIntoView();
}

function fail(message) {
  const error = document.getElementById("docs-error");
  error.textContent = message;
  error.hidden = false;
  document.body.dataset.ready = "error";
}

main().catch((err) => fail("The page failed: " + err.message));

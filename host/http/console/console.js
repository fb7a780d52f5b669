// The taskhost web console: one page, hash routes, no library, no build step.
// Every text that comes from the API reaches the DOM through textContent
// (el() below): task docs, results and tracebacks are other teams' data.
"use strict";

// One function scope for the whole file (its body is not indented).
(() => {
const KEY_STORAGE = "taskhost.apiKey";
const SAMPLES_STORAGE = "taskhost.metricSamples";
const SVG_NS = "http://www.w3.org/2000/svg";
const TERMINAL = new Set(["completed", "failed", "canceled"]);
const JOB_STATUSES = ["scheduled", "pending", "running", "completed", "failed", "canceled"];
const PAGE_SIZE = 20;
const JOBS_POLL_MS = 2000;
const SCHEDULES_POLL_MS = 2000;
const HEALTH_POLL_MS = 5000;
const SAMPLE_KEEP_MS = 30 * 60 * 1000;
const SAMPLE_GAP_MS = 60 * 1000;   // a longer gap: the health view was closed meanwhile
const JSON_MAX_CHILDREN = 500;     // a result with 100k items must not freeze the tab

const settings = { version: "", display_name: "taskhost", api_key_header: null };

const $ = (selector) => document.querySelector(selector);
const view = $("#view");
const bannerNode = $("#banner");
const keyDialog = $("#key-dialog");

// ---- DOM

// el("td#id.num", "text", node, [more]): children that are no node become
// text (an API value is never more), arrays are flattened, null and false
// skipped. Attributes only explicitly: h("a", {href, onclick}, ...children)
// (never style: the CSP forbids it); null and false values are skipped.
const el = (spec, ...children) => build(null, spec, null, children);
const h = (spec, attrs, ...children) => build(null, spec, attrs, children);
const svg = (spec, attrs, ...children) => build(SVG_NS, spec, attrs, children);

function build(ns, spec, attrs, children) {
  const [tag, ...marks] = spec.split(/(?=[.#])/);
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const mark of marks) {
    if (mark[0] === "#") node.id = mark.slice(1);
    else node.classList.add(mark.slice(1));
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "class") node.classList.add(...String(value).split(" ").filter(Boolean));
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const enc = encodeURIComponent;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const str = (value) => (typeof value === "string" ? value : "");   // an API text, or nothing
const button = (attrs, ...children) => h("button", { type: "button", ...attrs }, ...children);
const idLink = (section, id, attrs) => h("a.mono", { href: `#/${section}/${enc(id)}`, ...attrs }, id);
const scheduleHref = (id) => `#/schedules?id=${enc(id)}`;   // the schedules view, showing that one
const thead = (...titles) => el("thead", el("tr", titles.map((t) => (t instanceof Node ? t : h("th", { scope: "col" }, t)))));
const emptyRow = (columns, text) => el("tr", h("td", { colspan: columns, class: "empty" }, text));

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function setTitle(title) {
  document.title = `${title} · ${settings.display_name}`;
}

// ---- times

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const minuteFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function localTime(iso) {
  const date = new Date(iso);
  return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

function relative(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return relativeFormat.format(Math.round(seconds), "second");
  if (abs < 45 * 60) return relativeFormat.format(Math.round(seconds / 60), "minute");
  if (abs < 22 * 3600) return relativeFormat.format(Math.round(seconds / 3600), "hour");
  return relativeFormat.format(Math.round(seconds / 86400), "day");
}

function duration(ms) {
  if (!(ms >= 0)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

const between = (from, to) => Date.parse(to) - Date.parse(from);

// "14:03:22" plus "3 minutes ago", which refreshRelative() keeps current.
function timeCell(iso) {
  if (!iso) return el("span.muted", "—");
  return el("span.when",
    h("time", { datetime: iso, title: dateTimeFormat.format(new Date(iso)) }, localTime(iso)),
    " ", h("span.rel", { "data-time": iso }, relative(iso)));
}

// A duration still growing (a running job): refreshRelative() updates it.
function liveDuration(sinceIso) {
  return h("span.live", { "data-since": sinceIso }, duration(Date.now() - Date.parse(sinceIso)));
}

function refreshRelative(root) {
  for (const node of root.querySelectorAll("[data-time]")) node.textContent = relative(node.dataset.time);
  for (const node of root.querySelectorAll("[data-since]")) node.textContent = duration(Date.now() - Date.parse(node.dataset.since));
}

// ---- exact JSON

// JSON kept as text: an integer beyond 2^53 (a number would round it), or
// params as typed.
class JsonText {
  constructor(text) { this.text = text; }
  toString() { return this.text; }
}

// JSON.stringify that keeps JsonText (JSON.rawJSON would, but Firefox ESR lacks it).
function stringify(value, indent = "", pad = "\n") {
  if (value instanceof JsonText) return value.text;
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  const array = Array.isArray(value);
  const inner = indent && pad + indent;
  const items = Object.entries(value).filter(([, v]) => array || v !== undefined)
    .map(([k, v]) => (array ? "" : JSON.stringify(k) + (indent ? ": " : ":")) + stringify(v, indent, inner));
  const body = items.length ? inner + items.join(`,${inner}`) + (indent && pad) : "";
  return array ? `[${body}]` : `{${body}}`;
}

// JSON.parse keeping integers beyond 2^53 as JsonText where a reviver sees
// the source (Chromium, Firefox 135); elsewhere `exact` refuses to round.
function parseJSON(text, exact = false) {
  return JSON.parse(text, (key, value, context) => {
    if (!Number.isInteger(value) || Number.isSafeInteger(value)) return value;
    if (context && /^-?\d+$/.test(context.source)) return new JsonText(context.source);
    if (exact && !context) throw new RangeError("this browser would round the integers beyond 2^53 here: send the params as JSON");
    return value;
  });
}

// ---- API

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.name = "ApiError";
    this.status = status;   // 0: the host could not be reached
    this.detail = detail;
  }
}

// The one way the console talks to the host: adds the API key header,
// sends and reads exact JSON, and turns problem+json answers into ApiError.
// A 401 opens the key dialog here, so views only have to stop.
// as: "json" (default), "text", or "response" (the caller reads the body).
async function api(path, { method = "GET", body, signal, as = "json", accept = "application/json" } = {}) {
  const headers = { Accept: as === "text" ? "text/plain" : accept };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key && settings.api_key_header) headers[settings.api_key_header] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `Cannot reach the host (${err.message}).`);
  }
  if (response.ok) {
    hideBanner("network");
    if (as === "response") return response;
    if (response.status === 204) return null;
    return as === "text" ? response.text() : parseJSON(await response.text());
  }
  const text = await response.text();
  let problem = null;
  try {
    problem = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page): the status line has to do.
  }
  const detail = str(problem && problem.detail) || str(problem && problem.title) || `${response.status} ${response.statusText}`.trim();
  if (response.status === 401) {
    // Without settings.json: WWW-Authenticate: ApiKey header="X-API-Key".
    settings.api_key_header = settings.api_key_header
      || (/header="([^"]+)"/.exec(response.headers.get("WWW-Authenticate")) || [0, "X-API-Key"])[1];
    askForKey(detail);
  }
  throw new ApiError(response.status, detail);
}

const isAbort = (err) => err && err.name === "AbortError";
const httpStatus = (err) => (err instanceof ApiError ? err.status : -1);
const isAuth = (err) => httpStatus(err) === 401;
const errorText = (err) => (err instanceof ApiError ? err.detail : err.message);

// Server-Sent Events read from a fetch() body (EventSource cannot send the
// API key header). Yields the data of each event; comments are skipped.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = /\r?\n\r?\n/.exec(buffer))) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        const data = block.split(/\r?\n/).filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""));
        if (data.length) yield data.join("\n");
      }
    }
  } finally {
    reader.cancel().catch(() => {});   // already closed or aborted: nothing to release
  }
}

// ---- banner

// kind "network" clears itself on the next good answer; "error" is cleared
// when the view changes; "csp" and "settings" stay until dismissed.
function showBanner(message, kind = "error") {
  $("#banner-text").textContent = message;
  bannerNode.dataset.kind = kind;
  bannerNode.hidden = false;
}

function hideBanner(kind) {
  if (bannerNode.hidden || (kind && bannerNode.dataset.kind !== kind)) return;
  bannerNode.hidden = true;
  $("#banner-text").textContent = "";
}

// An error no field owns: the banner, unless the view is gone (aborted)
// or the key dialog is already saying it (401).
function report(err) {
  if (!err || isAbort(err) || isAuth(err)) return;
  if (err instanceof ApiError) showBanner(err.status ? `${err.detail} (HTTP ${err.status})` : err.detail, err.status ? "error" : "network");
  else showBanner(`Console error: ${err.message || err}`);
}

// ---- lifetime

// What a view (titled `title`) owns: one AbortController for its requests
// and listeners, and its timers. dispose() (its cleanup) ends them all.
function lifetime(main, title) {
  setTitle(title);
  const controller = new AbortController();
  const timers = new Set();
  const life = {
    get alive() { return !controller.signal.aborted; },
    // api() with this view's signal: leaving the view cancels the request.
    api(path, options) {
      return api(path, { ...options, signal: controller.signal });
    },
    timeout(fn, ms) {
      const id = setTimeout(() => { timers.delete(id); fn(); }, ms);
      timers.add(id);
      return id;
    },
    interval(fn, ms) {
      const id = setInterval(fn, ms);
      timers.add(id);
      return id;
    },
    clear(id) {
      clearTimeout(id);
      timers.delete(id);
    },
    sleep(ms) {
      return new Promise((resolve) => life.timeout(resolve, ms));
    },
    // A listener removed with the view, or before by calling the answer.
    listen(target, type, fn) {
      target.addEventListener(type, fn, { signal: controller.signal });
      return () => target.removeEventListener(type, fn);
    },
    ready() {
      if (life.alive) main.dataset.ready = "true";
    },
    fail(err) {
      if (life.alive) report(err);
    },
    // The view's first load failed: say so in the view itself.
    failView(err) {
      if (!life.alive || isAbort(err)) return;
      if (isAuth(err)) {
        main.replaceChildren(el("div.empty",
          el("p", "This view needs an API key."),
          button({ onclick: () => askForKey(err.detail) }, "Enter API key")));
        return;
      }
      main.replaceChildren(el("div.empty",
        el("p.error-text", err instanceof ApiError ? err.detail : `Console error: ${err.message}`),
        el("p", h("a", { href: "#/tasks" }, "Back to the tasks"))));
      life.ready();
    },
    dispose() {
      controller.abort();
      for (const id of timers) clearTimeout(id);   // clearTimeout also clears intervals
      timers.clear();
    },
  };
  return life;
}

// Runs load() now, then every `ms` after it settles, but only while the
// tab is visible: a hidden tab stops asking and catches up when shown.
// A 401 stops it for good (a dismissed key dialog stays closed); a key
// entered renders the view again.
function poll(life, ms, load) {
  let timer = 0;
  let busy = false;
  const stopListening = life.listen(document, "visibilitychange", () => {
    if (document.visibilityState === "visible") run(false);
  });
  async function run(first) {
    if (!life.alive || busy) return;
    if (!first && document.visibilityState !== "visible") return;
    life.clear(timer);
    busy = true;
    try {
      await load();
    } catch (err) {
      if (isAuth(err)) {
        stopListening();
        life.failView(err);
        return;
      }
      life.fail(err);
    } finally {
      busy = false;
    }
    if (life.alive) timer = life.timeout(() => run(false), ms);
  }
  run(true);
}

// ---- router

const routes = [
  { pattern: /^\/tasks$/, name: "tasks", render: tasksView },
  { pattern: /^\/tasks\/([^/]+)$/, name: "task", render: taskView },
  { pattern: /^\/jobs$/, name: "jobs", render: jobsView },
  { pattern: /^\/jobs\/([^/]+)$/, name: "job", render: jobView },
  { pattern: /^\/schedules$/, name: "schedules", render: schedulesView },
  { pattern: /^\/artifacts$/, name: "artifacts", render: artifactsView },
  { pattern: /^\/artifacts\/([^/]+)$/, name: "artifact", render: artifactView },
  { pattern: /^\/plugins$/, name: "plugins", render: pluginsView },
  { pattern: /^\/health$/, name: "health", render: healthView },
];

let disposeView = null;
let renderedHash = null;

function currentRoute() {
  const raw = location.hash.replace(/^#/, "") || "/tasks";
  const q = raw.indexOf("?");
  return { path: q < 0 ? raw : raw.slice(0, q), query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

function render({ focus = false } = {}) {
  if (disposeView) disposeView();
  disposeView = null;
  renderedHash = location.hash;
  hideBanner("error");
  const { path, query } = currentRoute();
  let match = null;
  const route = routes.find((r) => (match = r.pattern.exec(path)));
  let params = [];
  try {
    params = match ? match.slice(1).map(decodeURIComponent) : [];
  } catch {
    match = null;   // a malformed %-escape: treat as an unknown page
  }
  view.replaceChildren();
  view.dataset.view = route && match ? route.name : "notfound";
  view.dataset.ready = "false";
  markNav(path);
  disposeView = (route && match ? route.render : notFoundView)(view, { params, query });
  if (focus) {
    window.scrollTo(0, 0);
    view.focus({ preventScroll: true });   // screen readers start at the new view
  }
}

// A view changing its own query (filter, page) without re-rendering:
// pushState fires no hashchange, yet Back still returns to the old state;
// `replace` corrects it (a page past the end) instead.
function pushQuery(path, params, replace = false) {
  const qs = Object.entries(params).filter(([, v]) => v !== "" && v != null)
    .map(([k, v]) => `${k}=${String(v).split(",").map(enc).join(",")}`).join("&");
  const hash = `#${path}${qs ? `?${qs}` : ""}`;
  if (location.hash === hash) return;
  history[replace ? "replaceState" : "pushState"](null, "", hash);
  renderedHash = location.hash;
}

function onLocationChange() {
  if (location.hash !== renderedHash) render({ focus: true });
}

function markNav(path) {
  for (const link of document.querySelectorAll('#nav a[href^="#/"]')) {
    const section = link.getAttribute("href").slice(1);
    if (path === section || path.startsWith(`${section}/`)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function notFoundView(main) {
  const life = lifetime(main, "Not found");
  life.failView(new ApiError(404, `The console has no page at ${location.hash}.`));
  return life.dispose;
}

// ---- shared

function pageHead(title, ...extra) {
  return el("div.view-head", el("h1", title), ...extra);
}

function crumbs(...parts) {
  return h("nav.crumbs", { "aria-label": "Breadcrumb" }, parts.map((p, i) => [i ? " / " : "", p]));
}

function badge(attr, value, text = value) {
  return h("span.badge", { [`data-${attr}`]: value }, text);
}

function paging(onMove) {
  const prev = button({ id: "page-prev", onclick: () => onMove(-1) }, "← Newer");
  const next = button({ id: "page-next", onclick: () => onMove(1) }, "Older →");
  const info = h("span#page-info.muted", { "aria-live": "polite" });
  return {
    node: el("div.paging", prev, info, next),
    update(data, page, noun) {
      const pages = Math.max(data.pages, 1);
      info.textContent = `page ${page} of ${pages}, ${plural(data.total, noun)}`;
      prev.disabled = page <= 1;
      next.disabled = page >= pages;
    },
  };
}

// Answers `request`, with `node` disabled (and saying `label`) meanwhile.
async function busy(node, label, request) {
  const idle = node.textContent;
  node.disabled = true;
  node.textContent = label;
  try {
    return await request;
  } finally {
    node.disabled = false;
    node.textContent = idle;
  }
}

const readPage = (query) => Math.max(Number.parseInt(query.get("page"), 10) || 1, 1);

// A button that asks twice: the first click arms it ("Confirm delete"),
// the second runs action(); leaving it (blur, 10 s) disarms it.
function confirmButton(life, attrs, label, action) {
  let timer = 0;
  const arm = (armed) => {
    life.clear(timer);
    node.textContent = armed ? "Confirm delete" : label;
    node.classList.toggle("armed", armed);
    if (armed) timer = life.timeout(() => arm(false), 10000);
  };
  const node = button({
    class: "button-danger", ...attrs,
    onblur: () => node.disabled || arm(false),
    onkeydown: (e) => e.key === "Escape" && arm(false),
    onclick: async () => {
      if (!node.classList.contains("armed")) return arm(true);
      life.clear(timer);
      node.disabled = true;
      try {
        await action();
      } catch (err) {
        life.fail(err);
        arm(false);
        node.disabled = false;
      }
    },
  }, label);
  return node;
}

// ---- JSON tree

// Objects and arrays become <details> (open to `openDepth`); closed ones
// build their children on first opening, so a large result stays cheap.
function jsonTree(value, openDepth = 2) {
  return el("div.json-tree", jsonNode(null, value, 0, openDepth));
}

function jsonNode(key, value, depth, openDepth) {
  const label = key === null ? null
    : h("span", { class: typeof key === "number" ? "json-index" : "json-key" }, String(key), ": ");
  const isArray = Array.isArray(value);
  const entries = value !== null && typeof value === "object" && !(value instanceof JsonText)
    ? (isArray ? [...value.entries()] : Object.entries(value)) : null;
  if (!entries || entries.length === 0) return el("div.json-leaf", label, jsonLeaf(value));

  const count = plural(entries.length, isArray ? "item" : "key");
  const details = h("details", { open: depth < openDepth },
    el("summary", label, el("span.json-meta", isArray ? `[ ${count} ]` : `{ ${count} }`)));
  const fill = () => {
    const shown = entries.slice(0, JSON_MAX_CHILDREN);
    details.append(el("ul",
      shown.map(([k, v]) => el("li", jsonNode(k, v, depth + 1, openDepth))),
      entries.length > shown.length ? el("li.muted", `… ${entries.length - shown.length} more not shown`) : null));
  };
  if (details.open) fill();
  else details.addEventListener("toggle", fill, { once: true });
  return details;
}

function jsonLeaf(value) {
  if (value === null) return el("span.json-null", "null");
  if (Array.isArray(value)) return el("span.json-meta", "[]");
  if (value instanceof JsonText) return el("span.json-number", value.text);
  switch (typeof value) {
    case "string": return el("span.json-string", `"${value}"`);
    case "number": return el("span.json-number", String(value));
    case "boolean": return el("span.json-boolean", String(value));
    case "object": return el("span.json-meta", "{}");
    default: return el("span.json-null", String(value));
  }
}

function preview(data) {
  if (data && typeof data === "object" && "task_name" in data && "result" in data && "error" in data) {
    const outcome = data.error ? `error ${str(data.error.type)}`.trim() : stringify(data.result);
    return truncate(`${str(data.task_name)} → ${outcome}`, 90);
  }
  return truncate(stringify(data), 90);
}

// ---- tasks

function tasksView(main, { query }) {
  const life = lifetime(main, "Tasks");
  const selected = new Set((query.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean));
  let allTasks = [];
  let shown = [];
  let loadSeq = 0;

  const count = h("p.muted", { id: "task-count", "aria-live": "polite" });
  const chips = h("div.chips", { role: "group", "aria-label": "Tags (a task must carry every selected tag)" });
  const list = el("ul.task-list");
  main.append(pageHead("Tasks", count), chips, list);

  function renderChips() {
    const tags = new Set(selected);
    for (const task of allTasks) for (const tag of task.tags) tags.add(tag);
    chips.replaceChildren(...[...tags].sort().map((tag) =>
      button({ class: "tag-chip", "data-tag": tag, "aria-pressed": String(selected.has(tag)), onclick: () => toggle(tag) }, tag)));
  }

  function renderList() {
    count.textContent = shown.length === allTasks.length ? plural(allTasks.length, "task") : `${shown.length} of ${plural(allTasks.length, "task")}`;
    if (!shown.length) {
      list.replaceChildren(el("li.empty",
        selected.size ? `No task carries every one of: ${[...selected].join(", ")}. ` : "No tasks: no plugin is loaded. ",
        selected.size ? button({ class: "button-quiet", onclick: clearTags }, "Clear the tags") : null));
      return;
    }
    list.replaceChildren(...shown.map(taskRow));
  }

  function taskRow(task) {
    return h("li.task-row.card", { "data-task": task.name },
      el("div.task-row-head",
        h("a.task-link", { href: `#/tasks/${enc(task.name)}` }, task.name),
        el("span.plugin.muted", `${task.plugin.name}@${task.plugin.version}`)),
      h("p", { class: task.docstring ? "doc" : "doc muted" }, task.docstring || "No description."),
      el("code.signature", task.signature),
      task.tags.length ? el("div.tags", task.tags.map((t) => el("span.tag", t))) : null);
  }

  async function load() {
    const seq = ++loadSeq;
    const tags = [...selected];
    const tasks = tags.length ? await life.api(`/api/v1/tasks?tags=${tags.map(enc).join(",")}`) : allTasks;
    if (seq !== loadSeq) return;   // a newer toggle's answer wins
    shown = tasks;
    renderList();
  }

  // Chips change in place (not rebuilt), so keyboard focus stays on them.
  function applyTags() {
    pushQuery("/tasks", { tags: [...selected].join(",") });
    for (const chip of chips.children) chip.setAttribute("aria-pressed", String(selected.has(chip.dataset.tag)));
    load().catch(life.fail);
  }

  function toggle(tag) {
    if (!selected.delete(tag)) selected.add(tag);
    applyTags();
  }

  function clearTags() {
    selected.clear();
    applyTags();
  }

  life.api("/api/v1/tasks")
    .then((tasks) => {
      allTasks = tasks;
      renderChips();
      return load();
    })
    .then(() => life.ready(), life.failView);
  return life.dispose;
}

// ---- task

function taskView(main, { params: [name] }) {
  const life = lifetime(main, name);
  main.append(el("p.muted", "Loading…"));
  life.api(`/api/v1/tasks/${enc(name)}`).then((task) => {
    main.replaceChildren(
      crumbs(h("a", { href: "#/tasks" }, "Tasks"), task.name),
      el("h1#task-name", el("span.mono", task.name)),
      h("p#task-doc", { class: task.docstring ? "lead" : "lead muted" }, task.docstring || "No description."),
      el("dl.meta",
        el("dt", "Signature"), el("dd", el("code#task-signature", task.signature)),
        el("dt", "Tags"), el("dd#task-tags", task.tags.length
          ? task.tags.map((t) => h("a.tag", { href: `#/tasks?tags=${enc(t)}` }, t)) : el("span.muted", "none")),
        el("dt", "Plugin"), el("dd#task-plugin", `${task.plugin.name}@${task.plugin.version}`),
        el("dt", "Timeout"), el("dd", task.timeout_s != null ? duration(task.timeout_s * 1000) : "none"),
        el("dt", "Retry-safe"), el("dd", task.retry_safe ? "yes: queued again if its host is lost" : "no"),
        el("dt", "Priority"), el("dd#task-priority", String(task.priority ?? 0)),
        el("dt", "Retries"), el("dd#task-retry", retryText(task.retry))),
      runForm(task, life),
      taskSchedules(task, life));
    life.ready();
  }, life.failView);
  return life.dispose;
}

// The schedules that run this task, in brief, after its run form.
function taskSchedules(task, life) {
  const title = el("h2#task-schedules-title", "Schedules");
  const box = h("section#task-schedules.card", { "aria-labelledby": "task-schedules-title" }, title, el("p.muted", "Loading…"));
  const more = el("p", h("a", { href: `#/schedules?task=${enc(task.name)}` }, "New schedule for this task"));
  life.api("/api/v1/schedules").then((all) => {
    const mine = all.filter((s) => s.task_name === task.name);
    box.replaceChildren(title, mine.length
      ? el("ul.schedule-list", mine.map((s) => h("li", { "data-schedule-id": s.id },
        h("a", { href: scheduleHref(s.id) }, el("code", s.cron)), ` (${s.tz}) `,
        s.enabled ? ["next run ", timeCell(s.next_run_at)] : el("span.muted", "paused"))))
      : el("p.muted", "No schedule runs this task."), more);
  }, (err) => {
    if (!isAbort(err)) box.replaceChildren(title, el("p.error-text", `The schedules could not be read: ${errorText(err)}`));
  });
  return box;
}

// "4 attempts, exponential from 0.5 s up to 1 min, with jitter", or "none".
function retryText(retry) {
  if (!retry || retry.max_attempts <= 1) return "none: a failure is final";
  const from = duration(retry.delay_s * 1000);
  const how = retry.backoff === "fixed" ? `${from} apart`
    : `exponential from ${from} up to ${duration(retry.max_delay_s * 1000)}`;
  return `${retry.max_attempts} attempts, ${how}${retry.jitter ? ", with jitter" : ""}`;
}

// ---- form from schema

function jsonType(value) {
  if (value === null) return "null";
  if (value instanceof JsonText) return "integer";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

// The host's checks of a typed number, in its words; the value sent keeps
// an integer's digits at any size (int64 has no bounds in the schema). On
// error the value is what was typed (for the raw view).
function checkNumber(text, s, integer) {
  if (!NUMBER_TEXT.test(text)) return { value: text, error: `expected ${integer ? "integer" : "number"}, got string` };
  const n = Number(text);
  const digits = integer && /^[+-]?\d+$/.test(text);
  const exact = digits ? BigInt(text) : n;   // compares exactly with the bounds
  let error = null;
  if (!Number.isFinite(n)) error = `${text} is out of range`;
  else if (integer && !Number.isInteger(n)) error = `${text} is not an integer`;
  else if (integer && !digits && !Number.isSafeInteger(n)) error = `write ${text} as digits: it would be rounded`;
  else if (s.minimum != null && exact < s.minimum) error = `must be at least ${s.minimum}`;
  else if (s.maximum != null && exact > s.maximum) error = `must be at most ${s.maximum}`;
  if (error) return { value: JSON_NUMBER.test(text) ? new JsonText(text) : text, error };
  return { value: digits ? new JsonText(String(exact)) : n };
}

// An optional C++ parameter's schema is {anyOf: [X, {type: "null"}]}:
// its control is X's, and leaving it empty sends nothing (the host's null).
function withoutNull(s) {
  const alts = Array.isArray(s.anyOf) ? s.anyOf.filter((a) => a && a.type !== "null") : [];
  return alts.length === 1 && s.anyOf.length === 2 ? { ...alts[0], description: s.description } : s;
}

// Which control a property schema gets (see the contract).
function fieldKind(s) {
  const items = s.items || {};
  if (s.type === "string" && Array.isArray(s.enum)) return "enum";
  if (["integer", "number", "string", "boolean"].includes(s.type)) return s.type;
  if (s.type === "array" && ["string", "number", "integer"].includes(items.type) && !items.enum) return "list";
  return "json";
}

function fieldHint(s, kind, annotation) {
  let what = "";
  if (kind === "integer" || kind === "number") {
    const low = s.minimum != null ? ` from ${s.minimum}` : "";
    what = `${kind}${low}${s.maximum != null ? `${low ? "" : " up"} to ${s.maximum}` : ""}`;
  } else if (kind === "list") {
    what = `one ${s.items.type === "string" ? "item" : s.items.type} per line`;
  } else if (kind === "json") {
    what = s.type ? `JSON (${[].concat(s.type).join(" or ")})` : "any JSON value";
  }
  return [what, annotation && `C++ ${annotation}`, s.description].filter(Boolean).join(" · ");
}

// One form field: its node, read() and write(). read() answers the value
// (best effort, for the raw JSON view), the host's objection as `error`,
// or `omit` for an optional field left empty (a required string or list
// left empty is "" or []: the host takes those).
function makeField(name, s, required, annotation) {
  const kind = fieldKind(s);
  const id = `param-${name.replace(/[^\w-]/g, "_")}`;
  const hintText = fieldHint(s, kind, annotation);
  const hint = hintText ? h("span.hint", { id: `${id}-hint` }, hintText) : null;
  const error = h("div.field-error", { id: `${id}-error`, "aria-live": "polite" });
  const common = { id, name, "aria-describedby": [hint && hint.id, error.id].filter(Boolean).join(" "), "aria-required": required ? "true" : null };

  let control;
  if (kind === "boolean") {
    control = h("input", { type: "checkbox", ...common });
  } else if (kind === "enum") {
    control = h("select", common,
      required ? null : h("option", { value: "" }, "(not set)"),
      s.enum.map((v) => h("option", { value: v }, v)));
  } else if (kind === "list" || kind === "json") {
    control = h(`textarea.${kind}`, { ...common, rows: kind === "json" ? 4 : 3, spellcheck: "false" });
  } else {
    control = h("input", { type: "text", autocomplete: "off", spellcheck: "false", inputmode: kind === "string" ? null : "decimal", ...common });
  }

  const label = h("label", { for: id },
    el("span.mono", name),
    required ? [h("span.required", { "aria-hidden": "true" }, "*"), el("span.visually-hidden", " (required)")] : null);
  const node = h(`div.field.field-${kind}`, { "data-param": name },
    kind === "boolean" ? el("div.check", control, label) : [label, control],
    hint, error);

  function read() {
    if (kind === "boolean") return { value: control.checked };
    if (kind === "string") return control.value || required ? { value: control.value } : { omit: true };
    if (kind === "list") {
      // Strings as typed, one a line; a single trailing newline ends the last.
      const strings = s.items.type === "string";
      const lines = control.value.split("\n");
      if (strings && lines[lines.length - 1] === "") lines.pop();
      const items = strings ? lines : lines.map((l) => l.trim()).filter(Boolean)
        .map((line) => checkNumber(line, s.items, s.items.type === "integer"));
      if (!items.length) return required ? { value: [] } : { omit: true };
      if (strings) return { value: items };
      const bad = items.findIndex((item) => item.error);
      return { value: items.map((item) => item.value), error: bad < 0 ? null : `item ${bad + 1}: ${items[bad].error}` };
    }
    const text = kind === "enum" ? control.value : control.value.trim();
    if (text === "") return { omit: true, error: required ? "required" : null };
    if (kind === "enum") return { value: text };
    if (kind === "integer" || kind === "number") return checkNumber(text, s, kind === "integer");
    try {
      const value = parseJSON(text, true);
      const types = s.type ? [].concat(s.type) : null;
      const type = jsonType(value);
      const fits = !types || types.includes(type) || (type === "integer" && types.includes("number"));
      return { value, error: fits ? null : `expected ${types.join(" or ")}, got ${type}` };
    } catch (err) {
      return { value: text, error: err instanceof SyntaxError ? `not valid JSON: ${err.message}` : err.message };
    }
  }

  // A value the field cannot hold (5 in a string field) is written anyway:
  // read() then answers another one, which runForm notices.
  function write(value) {
    if (kind === "boolean") control.checked = value === true;
    else if (value === undefined) control.value = "";
    else if (kind === "list" && Array.isArray(value)) control.value = value.join("\n") + (value[value.length - 1] === "" ? "\n" : "");
    else control.value = typeof value === "string" && kind !== "json" ? value : stringify(value, kind === "json" ? "  " : "");
  }

  function setError(message) {
    error.textContent = message || "";
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  }

  write(s.default);
  return { name, node, control, read, write, setError };
}

function runForm(task, life) {
  const schema = task.parameters_schema || {};
  const required = new Set(schema.required || []);
  const annotations = new Map((task.parameters || []).map((p) => [p.name, p.annotation]));
  // In the order the C++ signature declares them, not the schema's key order.
  const order = new Map((task.parameters || []).map((p, i) => [p.name, i]));
  const fields = Object.entries(schema.properties || {})
    .sort(([a], [b]) => (order.get(a) ?? Infinity) - (order.get(b) ?? Infinity))
    .map(([name, s]) => makeField(name, required.has(name) ? s || {} : withoutNull(s || {}), required.has(name),
      annotations.get(name)));
  const byName = new Map(fields.map((f) => [f.name, f]));

  const fieldBox = el("div.fields",
    fields.length ? fields.map((f) => f.node) : el("p.muted", "This task takes no parameters."));
  const raw = h("textarea#raw-params.json", { rows: 8, spellcheck: "false", "aria-describedby": "form-error", "aria-label": "Params as a JSON object" });
  const rawBox = h("div.raw-box", { hidden: true },
    h("label", { for: "raw-params" }, "Params (a JSON object)"), raw);
  const rawToggle = button({ id: "raw-toggle", class: "button-quiet", "aria-pressed": "false" }, "Edit as JSON");
  const formError = h("p#form-error.form-error", { "aria-live": "polite" });
  const run = h("button", { type: "submit", id: "run", class: "button-primary" }, "Run");
  // How the job runs, beside its params: empty fields send nothing.
  const priority = h("input#run-priority", { type: "number", min: -10, max: 10, step: 1,
    placeholder: String(task.priority ?? 0), inputmode: "numeric" });
  const delay = h("input#run-delay", { type: "number", min: 0, step: "any", placeholder: "now", inputmode: "decimal" });
  const attempts = h("input#run-attempts", { type: "number", min: 1, max: 100, step: 1,
    placeholder: String(task.retry ? task.retry.max_attempts : 1), inputmode: "numeric" });
  const form = h("form#run-form.card.run-form", { novalidate: true, "aria-labelledby": "run-title" },
    el("div.form-head", el("h2#run-title", "Run"), rawToggle),
    fieldBox, rawBox, formError,
    el("div.actions.run-options",
      h("label", { for: "run-priority" }, "Priority"), priority,
      h("label", { for: "run-delay" }, "Delay (s)"), delay,
      h("label", { for: "run-attempts" }, "Attempts"), attempts, run));
  let rawMode = false;

  const collect = () => {
    const params = {};
    const errors = [];
    for (const field of fields) {
      const result = field.read();
      if (result.error) errors.push([field, result.error]);
      if (!result.omit) params[field.name] = result.value;
    }
    return { params, errors };
  };

  const clearErrors = () => {
    formError.textContent = "";
    for (const f of fields) f.setError("");
  };

  // The raw text as a params object, or an error saying why not.
  const parseRaw = (exact) => {
    let value;
    try {
      value = raw.value.trim() === "" ? {} : parseJSON(raw.value, exact);
    } catch (err) {
      return { error: err instanceof SyntaxError ? `not valid JSON: ${err.message}` : err.message };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) return { error: "params must be a JSON object" };
    return { value };
  };

  // Fills the fields; answers those that cannot hold their value as is.
  const rawToFields = (params) => fields.filter((f) => {
    f.write(params[f.name]);
    const back = f.read();
    return params[f.name] === undefined ? !back.omit : back.omit || stringify(back.value) !== stringify(params[f.name]);
  }).map((f) => f.name);

  // The two views are synced when switching.
  rawToggle.addEventListener("click", () => {
    clearErrors();
    if (!rawMode) {
      raw.value = stringify(collect().params, "  ");
    } else {
      const parsed = parseRaw(true);
      const unknown = parsed.value && Object.keys(parsed.value).find((k) => !byName.has(k));
      const lost = parsed.value && !unknown ? rawToFields(parsed.value) : [];
      const problem = parsed.error || (unknown && `unknown parameter '${unknown}': the form has no field for it`)
        || (lost.length && `the form cannot hold ${lost.join(", ")} exactly as given (or left out) here: keep editing the JSON`);
      if (problem) {
        formError.textContent = problem;
        return;
      }
    }
    rawMode = !rawMode;
    rawBox.hidden = !rawMode;
    fieldBox.hidden = rawMode;
    rawToggle.setAttribute("aria-pressed", String(rawMode));
    rawToggle.textContent = rawMode ? "Edit as form" : "Edit as JSON";
    (rawMode ? raw : fields[0] ? fields[0].control : rawToggle).focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    let params;
    if (rawMode) {
      const parsed = parseRaw(false);
      if (parsed.error) {
        formError.textContent = parsed.error;
        raw.focus();
        return;
      }
      params = raw.value.trim() ? new JsonText(raw.value) : {};   // sent as typed
    } else {
      const { params: collected, errors } = collect();
      if (errors.length) {
        for (const [field, message] of errors) field.setError(message);
        errors[0][0].control.focus();
        return;
      }
      params = collected;
    }
    try {
      const body = { params };
      if (priority.value.trim() !== "") body.priority = Number(priority.value);
      if (delay.value.trim() !== "") body.delay_s = Number(delay.value);
      if (attempts.value.trim() !== "") body.retry = { max_attempts: Number(attempts.value) };
      const answer = await busy(run, "Starting…", life.api(`/api/v1/tasks/${enc(task.name)}/$execute`, { method: "POST", body }));
      location.hash = `#/jobs/${enc(answer.job_id)}`;
    } catch (err) {
      if (isAbort(err)) return;
      if (isAuth(err)) {
        formError.textContent = `${err.detail}: enter an API key and run again.`;
      } else if (httpStatus(err) > 0) {
        // "... parameter 'a': expected integer, got string" goes to field a.
        const named = /parameter '([^']*)'/.exec(err.detail);
        const field = named && byName.get(named[1]);
        if (field) field.setError(err.detail);
        if (!field || rawMode) formError.textContent = err.detail;
      } else {
        formError.textContent = err.message;
      }
    }
  });
  return form;
}

// ---- jobs

function jobsView(main, { query }) {
  const life = lifetime(main, "Jobs");
  let status = JOB_STATUSES.includes(query.get("status")) ? query.get("status") : "";
  let page = readPage(query);
  let loadSeq = 0;
  let rows = new Map();   // job id → {tr, key}: unchanged rows stay, so focus and selection survive a refresh

  const filter = el("select#status-filter",
    h("option", { value: "" }, "All"), JOB_STATUSES.map((s) => h("option", { value: s }, s)));
  filter.value = status;
  const tbody = el("tbody");
  const table = el("table#jobs-table.data",
    thead("Job", "Task", "Status", "Submitted", "Duration", h("th", { scope: "col", class: "col-detail" }, "Detail")),
    tbody);
  const pager = paging((step) => {
    page += step;
    navigate().catch(life.fail);
  });
  main.append(
    pageHead("Jobs", el("span.muted", "refreshed every 2 s")),
    el("div.toolbar", h("label", { for: "status-filter" }, "Status"), filter),
    el("div.table-wrap", table),
    pager.node);

  filter.addEventListener("change", () => {
    status = filter.value;
    page = 1;
    navigate().catch(life.fail);
  });

  function navigate(replace = false) {
    pushQuery("/jobs", { status, page: page > 1 ? page : "" }, replace);
    return load();
  }

  function jobRow(job) {
    let took = null;
    if (job.started_at && job.finished_at) took = duration(between(job.started_at, job.finished_at));
    else if (job.started_at) took = liveDuration(job.started_at);
    const progress = job.status === "running" && job.progress != null ? ` ${Math.round(job.progress * 100)}%` : "";
    const detail = job.status === "failed" ? job.error : job.status === "running" ? job.progress_message : null;
    return h("tr.job-row", { "data-job-id": job.id, "data-status": job.status },
      el("td", idLink("jobs", job.id)),
      el("td", h("a", { href: `#/tasks/${enc(job.task_name)}` }, job.task_name)),
      el("td", badge("status", job.status), el("span.muted", progress),
        job.cancel_requested && !TERMINAL.has(job.status) ? el("span.muted", " cancel requested") : null),
      el("td", timeCell(job.submitted_at)),
      el("td.num", took || el("span.muted", TERMINAL.has(job.status) ? "never started"
        : job.status === "scheduled" ? "scheduled" : "queued")),
      el("td.col-detail", detail ? h("span.detail", { title: detail }, truncate(detail, 80)) : null));
  }

  function renderRows(items) {
    const old = rows;
    rows = new Map(items.map((job) => {
      const key = JSON.stringify(job);
      const entry = old.get(job.id);
      if (entry && entry.key === key) return [job.id, entry];
      const tr = jobRow(job);
      if (entry) entry.tr.replaceWith(tr);
      return [job.id, { tr, key }];
    }));
    const trs = [...rows.values()].map((entry) => entry.tr);
    if (!trs.length) {
      tbody.replaceChildren(emptyRow(6, status ? `No ${status} jobs.` : "No jobs yet. Run a task to start one."));
    } else if (trs.length !== tbody.children.length || trs.some((tr, i) => tbody.children[i] !== tr)) {
      tbody.replaceChildren(...trs);
    }
    refreshRelative(tbody);
  }

  async function load() {
    const seq = ++loadSeq;
    const qs = new URLSearchParams({ page, size: PAGE_SIZE });
    if (status) qs.set("status_filter", status);
    const data = await life.api(`/api/v1/jobs?${qs}`);
    if (seq !== loadSeq) return;
    const last = Math.max(data.pages, 1);   // no jobs: 0 pages, shown as page 1 of 1
    if (page > last) {   // past the end (deletes, an old link): show the last page
      page = last;
      return navigate(true);
    }
    renderRows(data.items);
    pager.update(data, page, "job");
    life.ready();
  }

  poll(life, JOBS_POLL_MS, load);
  return life.dispose;
}

// ---- job

function jobView(main, { params: [id] }) {
  const life = lifetime(main, `Job ${id}`);
  let job = null;
  let outcomeShown = false;

  const status = h("span#job-status.badge.badge-large", { "aria-live": "polite", "aria-atomic": "true" });
  const task = el("a#job-task");
  const progress = h("progress#job-progress", { max: 1, value: 0, "aria-label": "Progress" });
  const percent = el("span.percent");
  const progressLine = el("div.progress-line", progress, percent);
  const message = el("span#job-progress-message.muted");
  const timings = el("dl#job-timings.meta");
  const cancel = button({ id: "job-cancel" }, "Cancel");
  const remove = confirmButton(life, { id: "job-delete" }, "Delete", async () => {
    await life.api(`/api/v1/jobs/${enc(id)}`, { method: "DELETE" });
    location.hash = "#/jobs";
  });
  const note = h("p.note", { "aria-live": "polite" });
  const earlier = h("section#job-attempts.card", { "aria-labelledby": "attempts-title", hidden: true });
  const outcome = el("div.outcome");

  main.append(
    crumbs(h("a", { href: "#/jobs" }, "Jobs"), el("span.mono", id)),
    el("div.view-head", el("h1", "Job ", el("span.mono", id))),
    h("section.card.job-summary", { "aria-label": "Status" },
      el("div.job-line", status, el("span", "task "), task),
      progressLine,
      message,
      timings,
      el("div.actions", cancel, remove),
      note),
    earlier,
    outcome);

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const answer = await life.api(`/api/v1/jobs/${enc(id)}/$cancel`, { method: "POST" });
      note.textContent = answer.status === "canceled" ? "Canceled." : "Cancel requested: the task stops at its next check.";
      update(answer);
    } catch (err) {
      if (httpStatus(err) === 409) note.textContent = "The job had already finished.";
      else life.fail(err);
    }
  });

  function timingRows() {
    const { submitted_at: submitted, started_at: started, finished_at: finished } = job;
    const rows = [["Submitted", timeCell(submitted)]];
    if (job.schedule_id) rows.push(["Schedule", h("a#job-schedule.mono", { href: scheduleHref(job.schedule_id) }, job.schedule_id)]);
    if (job.run_at) rows.push(["Run at", timeCell(job.run_at)]);
    if (job.priority) rows.push(["Priority", String(job.priority)]);
    const queued = job.run_at && job.run_at > submitted ? job.run_at : submitted;   // ISO strings order as times
    if (started) rows.push(["Started", timeCell(started)], ["Queued for", duration(between(queued, started))]);
    else if (job.status === "scheduled") rows.push(["Started", "not yet: scheduled"]);
    else rows.push(TERMINAL.has(job.status) ? ["Started", "never"] : ["Queued for", liveDuration(submitted)]);
    if (finished) rows.push(["Finished", timeCell(finished)], started && ["Ran for", duration(between(started, finished))]);
    else if (started) rows.push(["Running for", liveDuration(started)]);
    if (job.timeout_s != null) rows.push(["Timeout", duration(job.timeout_s * 1000)]);
    if (job.max_attempts > 1 || job.attempt > 1) {
      // A retry-safe job lost with its host may run beyond its policy's count.
      rows.push(["Attempt", job.attempt > job.max_attempts ? String(job.attempt) : `${job.attempt} of ${job.max_attempts}`]);
      if (job.next_attempt_at) rows.push(["Next attempt", timeCell(job.next_attempt_at)]);
    }
    return rows.filter(Boolean).flatMap(([term, value]) => [el("dt", term), el("dd", value)]);
  }

  function update(record) {
    if (record.status === "deleted") {   // the stream's last word when someone deleted it
      status.textContent = "deleted";
      status.dataset.status = "deleted";
      cancel.disabled = remove.disabled = true;
      note.textContent = "This job has been deleted.";
      return;
    }
    job = record;
    setTitle(`${job.task_name} ${job.status}`);
    if (status.dataset.status !== job.status) {   // aria-live: announce changes only
      status.textContent = job.status;
      status.dataset.status = job.status;
    }
    task.textContent = job.task_name;
    task.href = `#/tasks/${enc(job.task_name)}`;
    const value = job.status === "completed" ? 1 : job.progress;
    if (value == null && job.status === "running") progress.removeAttribute("value");   // indeterminate
    else progress.value = value || 0;
    percent.textContent = value == null ? "" : `${Math.round(value * 100)}%`;
    progressLine.hidden = value == null && TERMINAL.has(job.status);   // a failed job that never reported any
    message.textContent = job.progress_message || "";
    timings.replaceChildren(...timingRows());
    showAttempts();
    cancel.disabled = TERMINAL.has(job.status) || job.cancel_requested;
    if (job.cancel_requested && !TERMINAL.has(job.status)) note.textContent = "Cancel requested: the task stops at its next check.";
    else if (job.status === "canceled") note.textContent = "Canceled.";
    if (TERMINAL.has(job.status)) showOutcome();
  }

  // The attempts before this one, each with why it failed.
  function showAttempts() {
    const list = job.attempts || [];
    earlier.hidden = list.length === 0;
    if (earlier.hidden || earlier.dataset.count === String(list.length)) return;
    earlier.dataset.count = String(list.length);
    earlier.replaceChildren(el("h2#attempts-title", "Earlier attempts"),
      el("table.data.attempts",
        thead("#", "Started", "Ran for", "Error"),
        el("tbody", ...list.map((a) => el("tr",
          el("td", String(a.attempt)),
          el("td", a.started_at ? timeCell(a.started_at) : "?"),
          el("td", a.started_at && a.finished_at ? duration(between(a.started_at, a.finished_at)) : "?"),
          el("td.error-text", a.error || ""))))));
  }

  // What the job record says (its error and traceback) shows at once; the
  // artifact (result, params) follows, with a retry if it cannot be read.
  function showOutcome() {
    if (outcomeShown) return;
    outcomeShown = true;
    const failed = job.status === "failed";
    const traceback = el("pre#job-traceback", str(job.error_traceback) || "No traceback was captured.");
    const result = el("div");
    const stored = el("p.muted");
    outcome.replaceChildren(failed
      ? h("section.card.failure", { "aria-labelledby": "error-title" }, el("h2#error-title", "Error"),
        el("p#job-error.error-text", str(job.error) || "The job failed without a message."),
        el("h3", "Traceback"), traceback, stored)
      : h("section#job-result.card", { "aria-labelledby": "result-title" },
        el("h2#result-title", "Result"), result, stored));
    const show = (data) => {
      const value = "result" in data ? data.result : null;
      if (!failed) {
        result.replaceChildren(job.status === "canceled" && value == null
          ? el("p.muted", "Canceled before it produced a result.") : jsonTree(value, 3));
      } else if (!str(job.error_traceback) && data.error && str(data.error.traceback)) {
        traceback.textContent = data.error.traceback;
      }
      if (data.params) {
        outcome.append(h("section.card", { "aria-labelledby": "params-title" },
          el("h2#params-title", "Params"), jsonTree(data.params, 1)));
      }
    };
    if (!job.artifact_id) return show({});
    const link = idLink("artifacts", job.artifact_id);
    const load = async () => {
      stored.replaceChildren("Reading artifact ", link, "…");
      try {
        const { data } = await life.api(`/api/v1/artifacts/${enc(job.artifact_id)}`);
        stored.replaceChildren("Stored as artifact ", link);
        show(data && typeof data === "object" ? data : {});
      } catch (err) {
        const gone = httpStatus(err) === 404;
        if (gone) show({});
        if (!isAbort(err)) {
          stored.replaceChildren(...(gone ? ["Its artifact was deleted: ", link] : ["Could not read artifact ", link,
            `: ${errorText(err)} `, button({ class: "button-quiet", onclick: load }, "Retry")]));
        }
      }
    };
    load();
  }

  // Follows $stream until the job ends; reconnects if it ends early (a host
  // restarting, a proxy), backing off from 0.5 to 10 s until news comes.
  async function follow() {
    let retries = 0;
    let last = "";
    while (life.alive && !TERMINAL.has(job.status)) {
      try {
        const response = await life.api(`/api/v1/jobs/${enc(id)}/$stream`, { as: "response", accept: "text/event-stream" });
        for await (const data of sseEvents(response)) {
          if (data !== last) retries = 0;   // not the same record again
          last = data;
          const record = parseJSON(data);
          update(record);
          if (record.status === "deleted") return;
        }
      } catch (err) {
        if (isAbort(err) || isAuth(err) || httpStatus(err) === 404) return;
        if (retries >= 2) life.fail(err);
      }
      if (life.alive && !TERMINAL.has(job.status)) await life.sleep(Math.min(500 * 2 ** retries++, 10000));
    }
  }

  life.interval(() => { if (job && !TERMINAL.has(job.status)) refreshRelative(timings); }, 1000);

  life.api(`/api/v1/jobs/${enc(id)}`).then((record) => {
    update(record);
    life.ready();
    return follow();
  }).catch((err) => (job ? life.fail(err) : life.failView(err)));
  return life.dispose;
}

// ---- schedules

const PLUGIN_DECLARED = "Its task's plugin declares it: its task, cron and time zone change there; here it may be paused";
const PLUGIN_KEEPS = "Its task's plugin declares it and would bring it back at its next load: pause it instead";

function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";   // no Intl time zones in this browser
  }
}

function schedulesView(main, { query }) {
  const life = lifetime(main, "Schedules");
  const zone = localZone();
  let wanted = query.get("id") || "";   // the row to show (a job page's link)
  let scrolled = false;
  let loadSeq = 0;
  let rows = new Map();   // schedule id → row, updated in place: an armed Delete and focus survive a refresh

  const tbody = el("tbody");
  const missing = h("p#schedule-missing.note", { "aria-live": "polite" });
  const task = h("select#schedule-task", { name: "task" });
  const params = h("textarea#schedule-params.json", { rows: 3, spellcheck: "false", "aria-describedby": "schedule-error" });
  params.value = "{}";
  const cron = h("input#schedule-cron.mono", { type: "text", autocomplete: "off", spellcheck: "false",
    placeholder: "*/15 * * * *", "aria-describedby": "schedule-cron-hint schedule-error" });
  const tz = h("input#schedule-tz", { type: "text", autocomplete: "off", spellcheck: "false", value: zone,
    "aria-describedby": "schedule-tz-hint schedule-error" });
  const enabled = h("input#schedule-enabled", { type: "checkbox", checked: true });
  const formError = h("p#schedule-error.form-error", { "aria-live": "polite" });
  const create = h("button", { type: "submit", id: "schedule-create", class: "button-primary" }, "Create");
  const form = h("form#schedule-form.card", { novalidate: true, "aria-labelledby": "schedule-form-title" },
    el("h2#schedule-form-title", "New schedule"),
    el("div.field", h("label", { for: "schedule-task" }, "Task"), task),
    el("div.field", h("label", { for: "schedule-params" }, "Params (a JSON object)"), params),
    el("div.field", h("label", { for: "schedule-cron" }, "Cron"), cron,
      h("span.hint", { id: "schedule-cron-hint" }, "minute hour day month weekday (6 fields: seconds first), or ",
        "@hourly, @daily, @weekly, @monthly, @yearly. E.g. ", el("code", "*/15 * * * *"), " every 15 minutes, ",
        el("code", "0 9 * * MON-FRI"), " at 9:00 on weekdays, ", el("code", "*/10 * * * * *"), " every 10 s.")),
    el("div.field", h("label", { for: "schedule-tz" }, "Time zone"), tz,
      h("span.hint", { id: "schedule-tz-hint" }, `An IANA name: UTC, Europe/Oslo, … (this browser's is ${zone}).`)),
    el("div.field", el("div.check", enabled, h("label", { for: "schedule-enabled" }, "Enabled"))),
    formError, el("div.actions", create));

  main.append(
    pageHead("Schedules", el("span.muted", "refreshed every 2 s")),
    missing,
    el("div.table-wrap", el("table#schedules-table.data",
      thead("Task", "Cron", "Enabled", "Source", "Next run", "Last run", "Runs",
        h("th", { scope: "col" }, el("span.visually-hidden", "Actions"))),
      tbody)),
    form);

  const tasksLoaded = life.api("/api/v1/tasks").then((tasks) => {
    task.replaceChildren(...tasks.map((t) => h("option", { value: t.name }, t.name)));
    if (!tasks.length) task.append(h("option", { value: "" }, "(no task is loaded)"));
    const pick = query.get("task");   // the task page's "New schedule"
    if (pick && tasks.some((t) => t.name === pick)) {
      task.value = pick;
      cron.focus();
    }
  }, life.fail);

  // replaceChildren() would write a null as "null": these leave it out.
  function lastRun(s) {
    if (!s.last_run_at) return [el("span.muted", "never")];
    return [timeCell(s.last_run_at),
      s.last_job_id ? el("div", "job ", idLink("jobs", s.last_job_id)) : null,
      s.last_error ? el("div.error-text", s.last_error) : null].filter(Boolean);
  }

  function scheduleRow(first) {
    const { id } = first;
    const plugin = first.source === "plugin";
    const [taskCell, cronCell, nextCell, lastCell] = [el("td"), el("td.cron"), el("td.next-run"), el("td.last-run")];
    const runs = el("td.num.runs");
    const state = el("span.badge");
    const toggle = button({ "data-action": "toggle", onclick: () => setEnabled(row, toggle) });
    const trigger = button({ "data-action": "trigger", onclick: () => runNow(id, trigger) }, "Run now");
    const remove = confirmButton(life, { "data-action": "delete", disabled: plugin, title: plugin ? PLUGIN_KEEPS : null },
      "Delete", async () => {
        await life.api(`/api/v1/schedules/${enc(id)}`, { method: "DELETE" });
        if (id === wanted) {
          wanted = "";
          pushQuery("/schedules", {}, true);
        }
        load().catch(life.fail);   // it is deleted: a failed refresh is no failed delete
      });
    const row = {
      tr: h("tr.schedule-row", { "data-schedule-id": id, "data-source": first.source },
        taskCell, cronCell, el("td", state, " ", toggle),
        el("td", plugin ? h("span.tag", { title: PLUGIN_DECLARED }, "declared by plugin") : el("span.muted", "API")),
        nextCell, lastCell, runs, el("td", el("div.row-actions", trigger, remove))),
      key: "",
      schedule: first,
      fill(s) {
        const key = stringify(s);
        if (key === row.key) return;
        row.key = key;
        row.schedule = s;
        row.tr.dataset.enabled = String(s.enabled);
        const args = stringify(s.params);
        taskCell.replaceChildren(h("a", { href: `#/tasks/${enc(s.task_name)}` }, s.task_name));
        if (args !== "{}") taskCell.append(el("div", h("code.preview", { title: args }, truncate(args, 40))));
        cronCell.replaceChildren(el("code", s.cron), el("div.muted", s.tz));
        state.dataset.state = s.enabled ? "active" : "paused";
        state.textContent = s.enabled ? "active" : "paused";
        toggle.textContent = s.enabled ? "Pause" : "Resume";
        nextCell.replaceChildren(timeCell(s.next_run_at));
        lastCell.replaceChildren(...lastRun(s));
        runs.textContent = String(s.runs);
      },
    };
    return row;
  }

  async function setEnabled(row, toggle) {
    toggle.disabled = true;
    try {
      const s = await life.api(`/api/v1/schedules/${enc(row.schedule.id)}`, { method: "PUT", body: { enabled: !row.schedule.enabled } });
      loadSeq++;   // a refresh asked before the PUT would show the old state
      row.fill(s);
    } catch (err) {
      life.fail(err);
    } finally {
      toggle.disabled = false;
    }
  }

  async function runNow(id, node) {
    try {
      const answer = await busy(node, "Starting…", life.api(`/api/v1/schedules/${enc(id)}/$trigger`, { method: "POST" }));
      location.hash = `#/jobs/${enc(answer.job_id)}`;
    } catch (err) {
      life.fail(err);
    }
  }

  function renderRows(list) {
    const old = rows;
    rows = new Map(list.map((s) => [s.id, old.get(s.id) || scheduleRow(s)]));
    for (const s of list) rows.get(s.id).fill(s);
    const trs = [...rows.values()].map((row) => row.tr);
    if (!trs.length) {
      tbody.replaceChildren(emptyRow(8, "No schedules yet: create one below."));
    } else if (trs.length !== tbody.children.length || trs.some((tr, i) => tbody.children[i] !== tr)) {
      tbody.replaceChildren(...trs);
    }
    refreshRelative(tbody);
    for (const [id, row] of rows) {
      row.tr.classList.toggle("highlight", id === wanted);
      if (id === wanted) row.tr.setAttribute("aria-current", "true");
      else row.tr.removeAttribute("aria-current");
    }
    missing.textContent = wanted && !rows.has(wanted) ? `Schedule ${wanted} does not exist (any more).` : "";
    if (rows.has(wanted) && !scrolled) {
      scrolled = true;
      rows.get(wanted).tr.scrollIntoView({ block: "center" });
    }
  }

  async function load() {
    const seq = ++loadSeq;
    const list = await life.api("/api/v1/schedules");
    await tasksLoaded;
    if (seq !== loadSeq) return;
    renderRows(list);
    life.ready();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    let value;
    try {
      value = params.value.trim() === "" ? {} : JSON.parse(params.value);
    } catch (err) {
      formError.textContent = `params: not valid JSON: ${err.message}`;
      params.focus();
      return;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      formError.textContent = "params must be a JSON object";
      params.focus();
      return;
    }
    const body = { task: task.value, params: params.value.trim() ? new JsonText(params.value) : {},   // as typed
      cron: cron.value.trim(), tz: tz.value.trim() || "UTC", enabled: enabled.checked };
    try {
      const made = await busy(create, "Creating…", life.api("/api/v1/schedules", { method: "POST", body }));
      wanted = made.id;
      scrolled = false;
      pushQuery("/schedules", { id: wanted }, true);
      load().catch(life.fail);   // it is made: a failed refresh goes to the banner, not under the form
    } catch (err) {
      if (isAbort(err)) return;
      formError.textContent = isAuth(err) ? `${err.detail}: enter an API key and create again.` : errorText(err);
    }
  });

  poll(life, SCHEDULES_POLL_MS, load);
  return life.dispose;
}

// ---- artifacts

function artifactsView(main, { query }) {
  const life = lifetime(main, "Artifacts");
  let page = readPage(query);
  let loadSeq = 0;

  const tbody = el("tbody");
  const pager = paging((step) => {
    page += step;
    pushQuery("/artifacts", { page: page > 1 ? page : "" });
    load().catch(life.fail);
  });
  const data = h("textarea#artifact-data.json", { rows: 5, spellcheck: "false", placeholder: '{"key": "value"}', "aria-describedby": "artifact-create-error" });
  const parent = h("input", { type: "text", id: "artifact-parent", class: "mono", autocomplete: "off", spellcheck: "false", placeholder: "ULID of an existing artifact" });
  const createError = h("p#artifact-create-error.form-error", { "aria-live": "polite" });
  const create = h("button", { type: "submit", id: "artifact-create", class: "button-primary" }, "Create");
  const form = h("form#artifact-form.card", { novalidate: true, "aria-labelledby": "create-title" },
    el("h2#create-title", "New artifact"),
    el("div.field", h("label", { for: "artifact-data" }, "Data (JSON)"), data),
    el("div.field", h("label", { for: "artifact-parent" }, "Parent id (optional)"), parent),
    createError, el("div.actions", create));

  main.append(
    pageHead("Artifacts", el("span.muted", "newest first")),
    el("div.table-wrap", el("table#artifacts-table.data",
      thead("Artifact", "Created", "Level", "Parent", "Data"),
      tbody)),
    pager.node,
    form);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    createError.textContent = "";
    try {
      if (JSON.parse(data.value) === null) {
        createError.textContent = "data must not be null";
        return;
      }
    } catch (err) {
      createError.textContent = data.value.trim() ? `not valid JSON: ${err.message}` : "Enter the artifact's data as JSON.";
      data.focus();
      return;
    }
    const body = { data: new JsonText(data.value) };   // sent as typed: big integers keep their digits
    if (parent.value.trim()) body.parent_id = parent.value.trim();
    try {
      const made = await busy(create, "Creating…", life.api("/api/v1/artifacts", { method: "POST", body }));
      location.hash = `#/artifacts/${enc(made.id)}`;
    } catch (err) {
      if (!isAbort(err)) createError.textContent = errorText(err);
    }
  });

  // The API lists oldest first; the console shows newest first, so page 1
  // is the tail of that list, read with limit/offset.
  async function load() {
    const seq = ++loadSeq;
    const { total } = await life.api("/api/v1/artifacts/$stats");
    const pages = Math.max(Math.ceil(total / PAGE_SIZE), 1);
    page = Math.min(page, pages);
    pushQuery("/artifacts", { page: page > 1 ? page : "" }, true);
    const end = total - (page - 1) * PAGE_SIZE;
    const offset = Math.max(end - PAGE_SIZE, 0);
    const items = end > 0 ? await life.api(`/api/v1/artifacts?limit=${end - offset}&offset=${offset}`) : [];
    if (seq !== loadSeq) return;
    items.reverse();
    tbody.replaceChildren(...(items.length ? items.map((a) =>
      h("tr.artifact-row", { "data-artifact-id": a.id },
        el("td", idLink("artifacts", a.id)),
        el("td", timeCell(a.created_at)),
        el("td.num", String(a.level)),
        el("td", a.parent_id ? idLink("artifacts", a.parent_id) : el("span.muted", "—")),
        el("td", el("code.preview", preview(a.data)))))
      : [emptyRow(5, "No artifacts yet.")]));
    pager.update({ total, pages }, page, "artifact");
    life.ready();
  }

  load().catch(life.failView);
  return life.dispose;
}

function artifactView(main, { params: [id] }) {
  const life = lifetime(main, `Artifact ${id}`);
  const base = `/api/v1/artifacts/${enc(id)}`;

  function treeList(nodes) {
    return el("ul.tree", nodes.map((node) =>
      h("li.tree-node", { "data-artifact-id": node.id, "data-level-label": node.level_label || "" },
        el("div.tree-line",
          badge("level", String(node.level), node.level_label || `level ${node.level}`),
          idLink("artifacts", node.id, { "aria-current": node.id === id ? "page" : null }),
          el("code.preview.muted", preview(node.data))),
        node.children && node.children.length ? treeList(node.children) : null)));
  }

  Promise.all([life.api(base), life.api(`${base}/$tree`)]).then(([artifact, tree]) => {
    const remove = confirmButton(life, { id: "artifact-delete" }, "Delete", async () => {
      await life.api(base, { method: "DELETE" });
      location.hash = "#/artifacts";
    });
    main.append(
      crumbs(h("a", { href: "#/artifacts" }, "Artifacts"), el("span.mono", id)),
      el("div.view-head", el("h1", "Artifact ", el("span.mono", id))),
      el("section.card",
        el("dl.meta",
          el("dt", "Created"), el("dd", timeCell(artifact.created_at)),
          el("dt", "Updated"), el("dd", timeCell(artifact.updated_at)),
          el("dt", "Level"), el("dd", String(artifact.level),
            tree.level_label ? ` (${tree.level_label}${tree.hierarchy ? ` in ${tree.hierarchy}` : ""})` : ""),
          el("dt", "Parent"), el("dd", artifact.parent_id
            ? idLink("artifacts", artifact.parent_id) : "none (a root)"),
          artifact.tags.length ? [el("dt", "Tags"), el("dd", artifact.tags.map((t) => el("span.tag", t)))] : null),
        el("div.actions", remove, el("span.muted", "Deleting keeps its children, as roots."))),
      h("section.card", { "aria-labelledby": "data-title" },
        el("h2#data-title", "Data"),
        el("div#artifact-json", jsonTree(artifact.data, 3))),
      h("section.card", { "aria-labelledby": "tree-title" },
        el("h2#tree-title", "Tree"),
        el("div#artifact-tree", treeList([tree]))));
    life.ready();
  }, life.failView);
  return life.dispose;
}

// ---- plugins

function pluginsView(main) {
  const life = lifetime(main, "Plugins");
  const tbody = el("tbody");
  const reload = button({ id: "reload", class: "button-primary" }, "Reload plugins");
  const reportBox = h("div#reload-report", { "aria-live": "polite" });
  main.append(
    pageHead("Plugins", reload),
    reportBox,
    el("div.table-wrap", el("table#plugins-table.data",
      thead("File", "Name", "Version", "Generation", "State", "Reason", "In flight", "Tasks"),
      tbody)));

  function reason(p) {
    if (p.error) return p.error;
    if (p.quarantine) {
      const q = p.quarantine;
      return `${q.reason} (crashes ${q.crashes}, hangs ${q.hangs}, load failures ${q.load_failures})`;
    }
    return p.note || "";
  }

  function pluginRow(p) {
    return h("tr.plugin-row", { "data-file": p.file },
      el("td.mono", p.file),
      el("td", p.name || "—"),
      el("td", p.version || "—"),
      el("td.num", p.generation != null ? String(p.generation) : "—"),
      el("td", h("span.state.badge", { "data-state": p.state }, p.state)),
      el("td.reason", reason(p) || el("span.muted", "—")),
      el("td.num", String(p.jobs_in_flight)),
      el("td.task-links", p.tasks.length
        ? p.tasks.map((t, i) => [i ? ", " : "", h("a", { href: `#/tasks/${enc(t)}` }, t)]) : el("span.muted", "none")));
  }

  async function load() {
    const plugins = await life.api("/api/v1/plugins");
    tbody.replaceChildren(...(plugins.length ? plugins.map(pluginRow)
      : [emptyRow(9, "No plugin files in the plugins folder.")]));
    life.ready();
  }

  function renderReport(r) {
    const list = (kind, items, text) => el("section.report-list",
      el("h3", `${kind} (${items.length})`),
      h("ul", { "data-kind": kind }, items.map((item) => el("li", text(item)))),
      items.length ? null : el("p.muted", "none"));
    const name = (file) => el("span.mono", file);
    reportBox.replaceChildren(el("div.card.report",
      el("p.report-summary",
        `${r.unchanged} unchanged in ${r.duration_ms < 10 ? r.duration_ms.toFixed(1) : Math.round(r.duration_ms)} ms`),
      el("div.report-grid",
        list("added", r.added, name),
        list("replaced", r.replaced, name),
        list("removed", r.removed, name),
        list("refused", r.refused, (x) => [name(x.file), `: ${x.reason}`, x.kept_previous ? " (the previous version keeps running)" : ""]),
        r.deferred && r.deferred.length ? list("deferred", r.deferred, name) : null)));
  }

  reload.addEventListener("click", async () => {
    try {
      renderReport(await busy(reload, "Reloading…", life.api("/api/v1/plugins/$reload", { method: "POST" })));
      await load();
    } catch (err) {
      if (!isAbort(err) && !isAuth(err)) reportBox.replaceChildren(el("p.card.form-error", errorText(err)));
    }
  });

  load().catch(life.failView);
  return life.dispose;
}

// ---- health

// Sums taskhost_jobs_finished_total over tasks, per status.
function finishedTotals(text) {
  const totals = { completed: 0, failed: 0, canceled: 0 };
  for (const [, labels, value] of text.matchAll(/^taskhost_jobs_finished_total\{([^}]*)\}\s+(\S+)/gm)) {
    const status = /(?:^|,)\s*status="([^"]*)"/.exec(labels);
    if (status && status[1] in totals) totals[status[1]] += Number(value) || 0;
  }
  return totals;
}

function loadSamples() {
  try {
    const samples = JSON.parse(sessionStorage.getItem(SAMPLES_STORAGE) || "[]");
    return Array.isArray(samples) ? samples.filter((s) => s && typeof s.t === "number") : [];
  } catch {
    return [];   // unreadable: start sampling again
  }
}

function addSample(totals) {
  const now = Date.now();
  const samples = loadSamples().filter((s) => now - s.t <= SAMPLE_KEEP_MS);
  samples.push({ t: now, c: totals.completed, f: totals.failed, x: totals.canceled });
  sessionStorage.setItem(SAMPLES_STORAGE, JSON.stringify(samples));
  return samples;
}

// A counter that went down means the host restarted: count from zero.
const delta = (from, to) => (to >= from ? to - from : to);

// Completed and failed per minute, from the deltas between samples; a
// gap (the view was closed) is left out, not blamed on one minute.
function perMinute(samples) {
  const buckets = new Map();
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    if (b.t - a.t > SAMPLE_GAP_MS) continue;
    const minute = Math.floor(b.t / 60000) * 60000;
    const bucket = buckets.get(minute) || { completed: 0, failed: 0 };
    bucket.completed += delta(a.c, b.c);
    bucket.failed += delta(a.f, b.f);
    buckets.set(minute, bucket);
  }
  return buckets;
}

// Finished jobs (any final status) per second over the last minute.
function jobsPerSecond(samples) {
  const last = samples[samples.length - 1];
  const window = samples.filter((s) => last.t - s.t <= 60000);
  if (window.length < 2) return null;
  let finished = 0;
  for (let i = 1; i < window.length; i++) {
    const a = window[i - 1];
    const b = window[i];
    finished += delta(a.c, b.c) + delta(a.f, b.f) + delta(a.x || 0, b.x || 0);
  }
  return finished / ((last.t - window[0].t) / 1000);
}

function drawChart(chart, samples) {
  const W = 640, H = 200, left = 36, right = 8, top = 12, bottom = 26;
  const plotW = W - left - right, plotH = H - top - bottom;
  const buckets = perMinute(samples);
  const now = Math.floor(Date.now() / 60000) * 60000;
  const first = samples.length ? Math.max(Math.floor(samples[0].t / 60000) * 60000, now - 29 * 60000) : now;
  const minutes = Math.max((now - first) / 60000 + 1, 10);   // at least 10 slots, so one bar is not a wall
  const start = now - (minutes - 1) * 60000;
  let peak = 1;
  for (const b of buckets.values()) peak = Math.max(peak, b.completed + b.failed);
  const step = Math.pow(10, Math.floor(Math.log10(peak)));
  const yMax = Math.ceil(peak / step) * step;
  const y = (v) => top + plotH - (v / yMax) * plotH;
  const slot = plotW / minutes;

  const parts = [];
  for (const v of yMax % 2 ? [0, yMax] : [0, yMax / 2, yMax]) {
    parts.push(svg("line.grid", { x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      svg("text.axis", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  let completed = 0, failed = 0;
  for (const [minute, b] of [...buckets].filter(([m]) => m >= start)) {
    completed += b.completed;
    failed += b.failed;
    const x = left + ((minute - start) / 60000) * slot + slot * 0.15;
    const w = slot * 0.7;
    const label = `${minuteFormat.format(new Date(minute))}: ${b.completed} completed, ${b.failed} failed`;
    parts.push(
      svg("rect.bar-completed", { x, y: y(b.completed), width: w, height: y(0) - y(b.completed) }, svg("title", null, label)),
      svg("rect.bar-failed", { x, y: y(b.completed + b.failed), width: w, height: y(b.completed) - y(b.completed + b.failed) }, svg("title", null, label)));
  }
  for (const [minute, anchor] of [[start, "start"], [now, "end"]]) {
    const x = anchor === "start" ? left : W - right;
    parts.push(svg("text.axis", { x, y: H - 6, "text-anchor": anchor }, minuteFormat.format(new Date(minute))));
  }
  if (samples.length < 2) {
    parts.push(svg("text.axis.chart-note", { x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" },
      "Sampling /metrics every 5 s: the first bars appear shortly."));
  }
  chart.replaceChildren(
    svg("title#chart-title", null, "Completed and failed jobs per minute"),
    svg("desc", null, `${completed} completed and ${failed} failed in the time shown.`),
    ...parts);
}

function healthView(main) {
  const life = lifetime(main, "Health");
  const statusNode = h("span#health-status.badge.badge-large", { "aria-live": "polite" }, "…");
  const checks = el("ul#health-checks.checks");
  const stat = (id, label, hint) => el("div.stat.card",
    el("div.stat-label", label), h("div", { id, class: "stat-value" }, "—"),
    hint ? el("div.muted.stat-hint", hint) : null);
  const chart = svg("svg#chart", { viewBox: "0 0 640 200", role: "img", "aria-labelledby": "chart-title" });
  const caption = el("figcaption.muted");
  const about = h("p.muted", { id: "system-about" });

  main.append(
    pageHead("Health", statusNode),
    h("section.card", { "aria-label": "Checks" }, checks),
    el("div.stats",
      stat("workers", "Workers"),
      stat("jobs-running", "Jobs running"),
      stat("queue-depth", "Queued / capacity"),
      stat("jobs-per-second", "Jobs per second", "finished, over the last minute"),
      stat("retention", "Finished jobs kept"),
      stat("schedule-runs", "Schedule runs", "made / failed / caught up by this host since it started")),
    el("figure.card.chart-card",
      el("div.legend",
        el("span.swatch.swatch-completed"), "completed ",
        el("span.swatch.swatch-failed"), "failed (per minute)"),
      chart, caption),
    about);

  function renderHealth(health) {
    statusNode.textContent = health.status;
    statusNode.dataset.status = health.status;
    checks.replaceChildren(...Object.entries(health.checks || {}).map(([name, check]) =>
      el("li", el("strong", name), " ", badge("status", check.state),
        check.message ? el("span.muted", ` ${check.message}`) : null)));
    if (!checks.children.length) checks.append(el("li.muted", "No checks reported."));
  }

  function renderSystem(sys) {
    $("#workers").textContent = String(sys.workers);
    $("#jobs-running").textContent = String(sys.jobs_running);
    $("#queue-depth").textContent = `${sys.jobs_queued} / ${sys.queue_capacity}`;
    const kept = sys.retention || {};
    const age = (secs) => secs >= 86400 && secs % 86400 === 0 ? plural(secs / 86400, "day")
      : secs >= 3600 && secs % 3600 === 0 ? plural(secs / 3600, "hour") : duration(secs * 1000);
    const limits = [kept.finished_s != null ? `for ${age(kept.finished_s)}` : null,
      kept.max_jobs != null ? `the newest ${kept.max_jobs}` : null].filter(Boolean);
    $("#retention").textContent = limits.length ? limits.join(", at most ") : "all, however old";
    $("#retention").title = `${plural(kept.jobs_deleted || 0, "job")} deleted since start${kept.last_error ? `; last pass failed: ${kept.last_error}` : ""}`;
    const runs = sys.schedules || {};
    $("#schedule-runs").textContent = `${runs.runs_made ?? 0} / ${runs.runs_failed ?? 0} / ${runs.runs_caught_up ?? 0}`;
    about.textContent = `${sys.hostname} · version ${sys.version} · pid ${sys.pid} · ${sys.database} · ${plural(sys.waiting_requests, "request")} waiting on jobs`;
  }

  function renderMetrics(text) {
    const samples = addSample(finishedTotals(text));
    const rate = jobsPerSecond(samples);
    $("#jobs-per-second").textContent = rate == null ? "measuring…" : rate < 10 ? rate.toFixed(2) : String(Math.round(rate));
    drawChart(chart, samples);
    caption.textContent = `Completed and failed jobs per minute, from the /metrics counters this tab has sampled every 5 s since ${localTime(new Date(samples[0].t).toISOString())} while this view was open (kept for 30 minutes).`;
  }

  async function refresh() {
    const [health, system, metrics] = await Promise.allSettled([
      life.api("/health"),
      life.api("/api/v1/system"),
      life.api("/metrics", { as: "text" }),
    ]);
    if (!life.alive) return;
    if (health.status === "fulfilled") renderHealth(health.value);
    if (system.status === "fulfilled") renderSystem(system.value);
    if (metrics.status === "fulfilled") renderMetrics(metrics.value);
    const failed = [health, system, metrics].filter((r) => r.status === "rejected").map((r) => r.reason);
    const auth = failed.find(isAuth);
    if (auth || failed.length === 3) throw auth || failed[0];   // poll() stops on a 401
    if (failed.length) life.fail(failed[0]);
    life.ready();
  }

  drawChart(chart, loadSamples());
  poll(life, HEALTH_POLL_MS, refresh);
  return life.dispose;
}

// ---- API key

function askForKey(detail) {
  $("#key-error").textContent = detail || "";
  $("#key-explain").textContent = `This host asks for an API key, sent as the ${settings.api_key_header || "API key"} header. It is kept in this browser tab only (session storage).`;
  if (!keyDialog.open) {
    $("#key-input").value = "";
    keyDialog.showModal();
  }
  $("#key-input").focus();
}

function updateKeyButton() {
  $("#key-forget").hidden = !sessionStorage.getItem(KEY_STORAGE);
}

function wireKeyDialog() {
  $("#key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("#key-input").value.trim();
    if (!key) {
      $("#key-error").textContent = "Enter the key.";
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    try {
      await busy($("#key-submit"), "Checking…", api("/api/v1/info"));   // a cheap call that needs the key
      $("#key-input").value = "";   // nothing left for a password manager to offer saving
      keyDialog.close();
      updateKeyButton();
      render();
    } catch (err) {
      sessionStorage.removeItem(KEY_STORAGE);   // a 401 already put its detail in #key-error
      if (!isAuth(err)) $("#key-error").textContent = errorText(err);
    }
  });
  $("#key-cancel").addEventListener("click", () => keyDialog.close());
  $("#key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    updateKeyButton();
    render();
  });
}

// ---- boot

async function boot() {
  // A blocked script, style or request is a console bug: make it visible.
  document.addEventListener("securitypolicyviolation", (e) => {
    showBanner(`Content-Security-Policy blocked ${e.blockedURI || "an inline resource"} (${e.effectiveDirective}): please report this console bug.`, "csp");
  });
  $("#banner-close").addEventListener("click", () => hideBanner());
  wireKeyDialog();
  try {
    const response = await fetch("/console/settings.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    Object.assign(settings, await response.json());
  } catch (err) {
    showBanner(`Could not read /console/settings.json (${err.message}): the API key header is learnt from the host's first 401.`, "settings");
  }
  $("#brand-name").textContent = settings.display_name;
  $("#brand-version").textContent = settings.version ? `v${settings.version}` : "";
  updateKeyButton();
  window.addEventListener("hashchange", onLocationChange);
  window.addEventListener("popstate", onLocationChange);
  setInterval(() => refreshRelative(view), 15000);   // "3 minutes ago" stays true
  if (!location.hash) history.replaceState(null, "", "#/tasks");
  render();
}

boot();
})();

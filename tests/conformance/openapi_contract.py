#!/usr/bin/python3
"""Contract test: GET /openapi.json against what a real taskhost answers.

    openapi_contract.py <taskhost-binary> <plugins-dir> <fixture-plugins-dir>

Starts taskhost on a free loopback port with a temporary SQLite file, then
checks that the document is well formed (every $ref resolves, every schema
is a valid JSON Schema 2020-12, every operation is tagged) and true: the
methods of every documented path are exactly the ones the host allows, and
for each call below, of every operation, the status is one the document
declares and the body validates against its schema (python3-jsonschema),
with no undocumented field at the top level; /metrics parses as Prometheus
text (python3-prometheus-client). Prints "PASS: <check>" per
check and ends with "N passed, 0 failed"; exits non-zero at the first
failure. The host is always stopped on exit.
"""

import http.client
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
import traceback

from jsonschema import Draft202012Validator, RefResolver
from prometheus_client.parser import text_string_to_metric_families

import taskhost_host
from taskhost_host import Failure, Response, call

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
ULID_UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # valid ULID that names nothing
MAX_BODY = 4096  # the host's --max-body-bytes here, small enough to provoke 413

passed = 0


def ok(check):
    global passed
    passed += 1
    print(f"PASS: {check}", flush=True)


class Host(taskhost_host.Host):
    """The host of these tests: one worker, a queue of one job and bodies of at most MAX_BODY."""

    def __init__(self, binary, plugins, work, env=None, flags=()):
        super().__init__(binary, plugins, work, env, ("--max-concurrency", "1", "--queue-size", "1",
                                                      "--max-body-bytes", str(MAX_BODY), *flags))


def require(cond, check, detail=""):
    if not cond:
        raise Failure(f"{check}" + (f"\n{detail}" if detail else ""))


def read_events(host, path, max_events):
    """The data: events of an SSE stream, up to max_events (then hangs up)."""
    conn = http.client.HTTPConnection(*host.address, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        events = []
        while len(events) < max_events:
            line = r.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                events.append(json.loads(line[len(b"data: "):]))
        return r.status, r.getheader("Content-Type", ""), events
    finally:
        conn.close()


# ---- the document -------------------------------------------------------------------------

def resolve_pointer(doc, ref):
    require(ref.startswith("#/"), f"$ref {ref} is local")
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        require(isinstance(node, dict) and part in node, f"$ref {ref} resolves")
        node = node[part]
    return node


def walk_refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                walk_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            walk_refs(item, found)


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve_pointer(doc, node["$ref"])
    return node


def strict(schema):
    """The schema, with no undocumented field allowed at its top level."""
    if "$ref" in schema or "allOf" in schema:
        return dict(schema, unevaluatedProperties=False)
    if schema.get("type") == "array" and "items" in schema:
        return dict(schema, items=strict(schema["items"]))
    if "oneOf" in schema:
        return dict(schema, oneOf=[strict(s) for s in schema["oneOf"]])
    if "anyOf" in schema:
        return dict(schema, anyOf=[strict(s) for s in schema["anyOf"]])
    return schema


class Contract:
    def __init__(self, doc):
        self.doc = doc
        self.resolver = RefResolver(base_uri="", referrer=doc)
        self.templates = []  # (regex, template) of every documented path
        for template in doc["paths"]:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            self.templates.append((re.compile(pattern + "$"), template))
        self.seen = set()  # (template, method, status) exercised

    def operation(self, method, path):
        bare = path.split("?", 1)[0].replace("%24", "$")
        for regex, template in self.templates:
            if regex.match(bare):
                op = self.doc["paths"][template].get(method.lower())
                require(op is not None, f"{method} {path}: documented", f"path {template} has no {method}")
                return template, op
        raise Failure(f"{method} {path}: documented (no path template matches)")

    def validate(self, schema, instance, what, standalone=False):
        """standalone: the schema's $refs are its own ($defs), not the document's."""
        resolver = None if standalone else self.resolver
        errors = sorted(Draft202012Validator(strict(schema), resolver=resolver).iter_errors(instance),
                        key=lambda e: list(e.path))
        require(not errors, f"{what}: body matches the document",
                "\n".join(f"  at {list(e.path)}: {e.message}" for e in errors[:5]) +
                f"\n  body: {json.dumps(instance)[:600]}")

    def check(self, method, path, response):
        """The status is declared for this operation, and the body is what it says."""
        template, op = self.operation(method, path)
        what = f"{method} {path} -> {response.status}"
        declared = op["responses"].get(str(response.status))
        require(declared is not None, f"{what}: status documented",
                f"documented: {sorted(op['responses'])}; body: {response.body[:300]!r}")
        declared = deref(self.doc, declared)
        content = declared.get("content")
        if not content:
            require(response.body == b"", f"{what}: no body, as documented", repr(response.body[:300]))
        else:
            ctype = response.headers.get("content-type", "").split(";")[0].strip()
            require(ctype in content, f"{what}: content type documented", f"{ctype} not in {sorted(content)}")
            if ctype == "application/json" or ctype.endswith("+json"):
                self.validate(content[ctype]["schema"], response.json(), what)
        for header in declared.get("headers", {}):
            require(header.lower() in response.headers, f"{what}: header {header} present")
        self.seen.add((template, method.lower(), str(response.status)))
        ok(what)
        return response


def check_document(doc, info):
    require(doc.get("openapi") == "3.1.0", "openapi is 3.1.0", str(doc.get("openapi")))
    for key in ("title", "version", "summary", "description"):
        expected = info["display_name" if key == "title" else key]
        require(doc["info"].get(key) == expected, f"info.{key} is the service's", f"{doc['info'].get(key)!r}")
    ok("document: version 3.1.0, info agrees with GET /api/v1/info")

    refs = []
    walk_refs(doc, refs)
    for ref in refs:
        resolve_pointer(doc, ref)
    ok(f"document: all {len(refs)} $refs resolve")

    for name, schema in doc["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # jsonschema.SchemaError
            raise Failure(f"components.schemas.{name} is a valid JSON Schema\n{e}")
    ok(f"document: all {len(doc['components']['schemas'])} component schemas are valid JSON Schema 2020-12")

    declared_tags = {t["name"] for t in doc["tags"]}
    operation_ids = set()
    for template, item in doc["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", template))
        for method, op in item.items():
            require(method in METHODS, f"{template}: {method} is an HTTP method")
            where = f"{method.upper()} {template}"
            require(op.get("tags") and set(op["tags"]) <= declared_tags, f"{where}: tagged with declared tags")
            require(op.get("operationId") and op["operationId"] not in operation_ids, f"{where}: unique operationId")
            operation_ids.add(op["operationId"])
            params = [deref(doc, p) for p in op.get("parameters", [])]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            require(in_path == names, f"{where}: path parameters declared", f"{in_path} vs {names}")
            require(op.get("responses"), f"{where}: responses declared")
    ok(f"document: {len(operation_ids)} operations, each tagged, named once, with its path parameters")

    # The original's case 58.
    for template in ("/api/v1/jobs", "/api/v1/jobs/{job_id}"):
        require(doc["paths"].get(template, {}).get("get", {}).get("tags") == ["Jobs"], f"{template} tagged Jobs")
    ok("document: /api/v1/jobs and /api/v1/jobs/{job_id} are listed with tag Jobs")


def check_methods(host, doc):
    """For every documented path, the host allows exactly the documented methods."""
    for template, item in doc["paths"].items():
        path = template.replace("{name}", "hello")
        path = re.sub(r"\{[^}]+\}", ULID_UNKNOWN, path)
        r = call(host, "PATCH", path)
        require(r.status == 405, f"PATCH {path} is 405 (the path is routed)", f"got {r.status}")
        allowed = {m.strip().lower() for m in r.headers.get("allow", "").split(",")}
        require(allowed == set(item), f"{template}: Allow matches the documented methods",
                f"Allow: {sorted(allowed)}, documented: {sorted(item)}")
    ok(f"every one of the {len(doc['paths'])} documented paths allows exactly its documented methods")
    # The console (tests/browser/ drives it) links the reference, which links the document.
    for path, target in (("/", b'href="/docs"'), ("/docs", b'href="/openapi.json"'), ("/redoc", b'href="/openapi.json"')):
        r = call(host, "GET", path)
        require(r.status == 200 and r.headers.get("content-type", "").startswith("text/html"),
                f"GET {path} is an HTML page", f"{r.status} {r.headers.get('content-type')}")
        require(target in r.body, f"GET {path} holds {target.decode()}")
    ok("/ links /docs, and /docs and /redoc link /openapi.json")


def check_metrics(response):
    """GET /metrics parses as Prometheus text (python3-prometheus-client's parser)."""
    require(response.headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
            "GET /metrics: Prometheus content type", response.headers.get("content-type", ""))
    try:
        families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    except Exception as e:
        raise Failure(f"GET /metrics parses as Prometheus text\n{e}")
    expected = {"taskhost_jobs_submitted": "counter", "taskhost_jobs_finished": "counter",
                "taskhost_job_run_seconds": "histogram", "taskhost_http_responses": "counter",
                "taskhost_store_commits": "counter", "process_resident_memory_bytes": "gauge"}
    for name, kind in expected.items():
        require(name in families and families[name].type == kind, f"GET /metrics has {kind} {name}",
                str(sorted(families)))
    ok(f"GET /metrics parses as Prometheus text: {len(families)} families")


def wait_until(what, predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise Failure(f"timed out waiting for {what}")


def check_schema_route(host, c, ex, schema_path, instance_path):
    """A $schema route answers a valid JSON Schema that what it describes validates against."""
    schema = ex("GET", schema_path).json()
    Draft202012Validator.check_schema(schema)
    c.validate(schema, call(host, "GET", instance_path).json(), f"GET {instance_path} against {schema_path}",
               standalone=True)


def stuck_reload(binary, fixtures, work, c):
    """$reload's 503: a host of its own, whose reload hangs in blocking_init.so's init."""
    work = os.path.join(work, "stuck-reload")
    plugins = os.path.join(work, "plugins")
    os.makedirs(plugins)
    host = Host(binary, plugins, work, flags=("--reload-timeout-s", "0.2", "--shutdown-timeout", "1"))
    try:
        shutil.copyfile(os.path.join(fixtures, "blocking_init.so"), os.path.join(plugins, "blocking_init.so"))
        r = call(host, "POST", "/api/v1/plugins/$reload")
        require(r.status == 503, "a reload that outlasts --reload-timeout-s answers 503", f"got {r.status}")
        c.check("POST", "/api/v1/plugins/$reload", r)
    finally:
        host.close()


def waiters_full(binary, plugins, work, c):
    """The 503 of ?wait and streams when every --max-waiters place is taken: a host of its own
    with one place, held by a long-poll on a slow job."""
    work = os.path.join(work, "waiters-full")
    os.makedirs(work)
    host = Host(binary, plugins, work, flags=("--max-waiters", "1", "--http-threads", "4"))
    holder = None
    try:
        job = call(host, "POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 30}}).json()["job_id"]
        holder = http.client.HTTPConnection(*host.address, timeout=30)
        holder.request("GET", f"/api/v1/jobs/{job}?wait=30")
        wait_until("the long-poll to take the one place",
                   lambda: call(host, "GET", "/api/v1/system").json()["waiting_requests"] == 1)
        for path in (f"/api/v1/jobs/{job}?wait=5", f"/api/v1/jobs/{job}/$stream", "/health/$stream"):
            r = call(host, "GET", path)
            require(r.status == 503 and "retry-after" in r.headers, f"GET {path} with no waiter place left is 503",
                    f"got {r.status}")
            c.check("GET", path, r)
        call(host, "POST", f"/api/v1/jobs/{job}/$cancel")
    finally:
        if holder:
            holder.close()
        host.close()


def store_cannot_write(host):
    """From now on, until the returned function is called, no file of the host can grow past
    4 KiB, so no WAL frame can be written (EFBIG, as on a full disk); the host ignores SIGXFSZ."""
    pid = host.proc.pid
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    return lambda: resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def exercise_schedules(host, c, ex):
    """The schedules' operations on the main host: create, read, list, edit, $trigger (and
    its 503 with the queue full), the store's 503, delete, and the errors."""
    # A yearly expression: no run fires during the test, only $trigger makes jobs.
    ex("GET", "/api/v1/schedules")
    created = ex("POST", "/api/v1/schedules",
                 {"task": "greet_user", "cron": "0 0 1 1 *", "params": {"name": "Cron"}, "tz": "Europe/Oslo"})
    schedule = created.json()
    sid = schedule["id"]
    require(created.status == 201 and created.headers.get("location") == f"{host.url}/api/v1/schedules/{sid}",
            "a created schedule is 201 with an absolute Location", f"{created.status} {created.headers}")
    require(schedule["source"] == "api" and schedule["next_run_at"] and schedule["runs"] == 0,
            "a new schedule runs next, has not run, and comes from the API", json.dumps(schedule))
    ex("POST", "/api/v1/schedules", {"task": "greet_user", "cron": "0 0 30 2 *"})  # 400: never fires
    ex("POST", "/api/v1/schedules", {"task": "greet_user", "cron": "@daily", "tz": "Mars/Base"})  # 400
    ex("POST", "/api/v1/schedules", {"task": "greet_user", "cron": "@daily", "params": {"nam": "x"}})  # 400
    ex("POST", "/api/v1/schedules", {"task": "greet_user", "cron": "@daily", "every": "day"})  # 400: unknown
    ex("POST", "/api/v1/schedules", {"cron": "@daily"})  # 400: task is required
    ex("POST", "/api/v1/schedules", {"task": "no_such_task", "cron": "@daily"})  # 404
    ex("POST", "/api/v1/schedules", raw=b'{"task":"' + b"x" * MAX_BODY + b'"}')  # 413
    listed = ex("GET", "/api/v1/schedules").json()
    require([s["id"] for s in listed] == [sid], "the list holds the schedule", json.dumps(listed))
    ex("GET", f"/api/v1/schedules/{sid}")
    ex("GET", "/api/v1/schedules/not-a-ulid")
    ex("GET", f"/api/v1/schedules/{ULID_UNKNOWN}")
    paused = ex("PUT", f"/api/v1/schedules/{sid}", {"enabled": False, "params": {"name": "Paused"}}).json()
    require(paused["enabled"] is False and paused["next_run_at"] is None and paused["params"] == {"name": "Paused"},
            "a paused schedule has no next run", json.dumps(paused))
    ex("PUT", f"/api/v1/schedules/{sid}", {"cron": "61 * * * *"})  # 400
    ex("PUT", f"/api/v1/schedules/{sid}", {"task": "no_such_task"})  # 404: no host has it
    ex("PUT", f"/api/v1/schedules/{ULID_UNKNOWN}", {"enabled": True})  # 404
    ex("PUT", "/api/v1/schedules/not-a-ulid", {"enabled": True})  # 400
    ex("PUT", f"/api/v1/schedules/{sid}", raw=b'{"task":"' + b"x" * MAX_BODY + b'"}')  # 413

    triggered = ex("POST", f"/api/v1/schedules/{sid}/$trigger")
    job_id = triggered.json()["job_id"]
    require(triggered.headers.get("location") == f"/api/v1/jobs/{job_id}", "a $trigger's Location names its job",
            str(triggered.headers))
    job = ex("GET", f"/api/v1/jobs/{job_id}?wait=10").json()
    require(job["status"] == "completed" and job["schedule_id"] == sid, "the triggered job ran and names its schedule",
            json.dumps(job))
    after = ex("GET", f"/api/v1/schedules/{sid}").json()
    require(after["runs"] == 1 and after["last_job_id"] == job_id and after["last_run_at"] and
            after["next_run_at"] is None, "the trigger counts as its last run and leaves its next run",
            json.dumps(after))
    ex("POST", f"/api/v1/schedules/{ULID_UNKNOWN}/%24trigger")  # 404
    ex("POST", "/api/v1/schedules/not-a-ulid/$trigger")  # 400
    # The one worker and the one queue slot taken: the trigger is refused (503, Retry-After).
    running = ex("POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 120}}).json()["job_id"]
    wait_until("the slow job to run",
               lambda: call(host, "GET", f"/api/v1/jobs/{running}").json()["status"] == "running")
    queued = ex("POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 120}}).json()["job_id"]
    ex("POST", f"/api/v1/schedules/{sid}/$trigger")  # 503
    for job in (queued, running):
        ex("POST", f"/api/v1/jobs/{job}/$cancel")
    ex("GET", f"/api/v1/jobs/{running}?wait=30")
    ex("GET", "/api/v1/jobs?limit=5")

    # A store that cannot write: each change is a 503 that says why.
    later = ex("POST", "/api/v1/tasks/greet_user/$execute", {"params": {"name": "Later"}, "delay_s": 3600})
    restore = store_cannot_write(host)
    try:
        ex("POST", f"/api/v1/jobs/{later.json()['job_id']}/$cancel")  # 503: its canceled state is not stored
        ex("POST", "/api/v1/schedules", {"task": "greet_user", "cron": "@daily"})
        ex("PUT", f"/api/v1/schedules/{sid}", {"enabled": True})
        ex("DELETE", f"/api/v1/schedules/{sid}")
    finally:
        restore()
    wait_until("commits to work again", lambda: call(host, "GET", "/health").json()["status"] == "healthy")
    call(host, "DELETE", f"/api/v1/jobs/{later.json()['job_id']}")  # it must not hold a place in the queue

    ex("DELETE", f"/api/v1/schedules/{sid}")
    ex("DELETE", f"/api/v1/schedules/{sid}")  # 404
    ex("DELETE", "/api/v1/schedules/not-a-ulid")
    require(call(host, "GET", f"/api/v1/jobs/{job_id}").json()["schedule_id"] == sid,
            "a deleted schedule's jobs still name it")


def plugin_schedules(binary, fixtures, work, c):
    """A schedule a plugin declares (ticker_v1.so: "tick" every second): it runs, and refuses
    edits of its rule and deletion (409); a host of its own."""
    work = os.path.join(work, "plugin-schedules")
    plugins = os.path.join(work, "plugins")
    os.makedirs(plugins)
    shutil.copyfile(os.path.join(fixtures, "ticker_v1.so"), os.path.join(plugins, "ticker_v1.so"))
    host = Host(binary, plugins, work)
    ex = lambda method, path, body=None: c.check(method, path, call(host, method, path, body))
    try:
        task = ex("GET", "/api/v1/tasks/tick").json()
        require(task["every"] == {"cron": "* * * * * *", "tz": "UTC"}, "the task shows its declared schedule",
                json.dumps(task))
        sid = wait_until("the declared schedule to run", lambda: next(
            (s["id"] for s in call(host, "GET", "/api/v1/schedules").json() if s["runs"] > 0), None))
        declared = ex("GET", f"/api/v1/schedules/{sid}").json()
        require(declared["source"] == "plugin" and declared["task_name"] == "tick", "the schedule is the plugin's",
                json.dumps(declared))
        ex("PUT", f"/api/v1/schedules/{sid}", {"cron": "@daily"})  # 409
        ex("DELETE", f"/api/v1/schedules/{sid}")  # 409
        paused = ex("PUT", f"/api/v1/schedules/{sid}", {"enabled": False, "params": {"n": 2}}).json()
        require(paused["enabled"] is False and paused["next_run_at"] is None, "a plugin's schedule may be paused",
                json.dumps(paused))
        jobs = ex("GET", "/api/v1/jobs").json()
        require(any(j["schedule_id"] == sid for j in jobs), "its runs are jobs that name it", json.dumps(jobs)[:600])
        system = ex("GET", "/api/v1/system").json()
        require(system["schedules"]["runs_made"] >= 1, "/api/v1/system counts the runs made",
                json.dumps(system["schedules"]))
    finally:
        host.close()


def quarantined_trigger(binary, fixtures, work, c):
    """$trigger's 409: the schedule's task belongs to a quarantined plugin (timeouts.so, whose
    stubborn_sleep hangs past its timeout twice); a host of its own."""
    work = os.path.join(work, "quarantined-trigger")
    plugins = os.path.join(work, "plugins")
    os.makedirs(plugins)
    shutil.copyfile(os.path.join(fixtures, "timeouts.so"), os.path.join(plugins, "timeouts.so"))
    host = Host(binary, plugins, work, flags=("--stop-grace-s", "0.5"))
    try:
        r = call(host, "POST", "/api/v1/schedules", {"task": "stubborn_sleep", "cron": "@yearly",
                                                     "params": {"seconds": 3600}})
        sid = c.check("POST", "/api/v1/schedules", r).json()["id"]
        for _ in range(2):
            r = call(host, "POST", "/api/v1/tasks/stubborn_sleep/$execute", {"params": {"seconds": 3600}})
            require(r.status == 202, "a stubborn job is accepted", f"got {r.status}")
        wait_until("timeouts.so to be quarantined", lambda: any(
            p["file"] == "timeouts.so" and p["state"] == "quarantined"
            for p in call(host, "GET", "/api/v1/plugins").json()))
        r = call(host, "POST", f"/api/v1/schedules/{sid}/$trigger")
        require(r.status == 409, "a quarantined task's schedule cannot be triggered", f"got {r.status}")
        c.check("POST", f"/api/v1/schedules/{sid}/$trigger", r)
    finally:
        host.close()


def check_browser_rules(host, c):
    """What a web page could send: every operation answers the documented 421 to a foreign
    Host; each state-changing one the documented 403 to a foreign Origin, and each that takes
    a body the documented 415 to a text/plain one. Nothing of it is carried out."""
    jobs_before = len(call(host, "GET", "/api/v1/jobs").json())
    counts = {"421": 0, "403": 0, "415": 0}
    for template, item in c.doc["paths"].items():
        path = re.sub(r"\{[^}]+\}", ULID_UNKNOWN, template.replace("{name}", "hello"))
        for method, op in item.items():
            m = method.upper()
            tries = {"421": dict(headers={"Host": "evil.example"}),
                     "403": dict(headers={"Origin": "http://evil.example"}),
                     "415": dict(raw=b'{"params": {}}', headers={"Content-Type": "text/plain"})}
            for status, how in tries.items():
                if status not in op["responses"]:
                    continue
                r = call(host, m, path, **how)
                require(r.status == int(status), f"{m} {template} from a page: {status}", f"got {r.status}")
                c.check(m, path, r)
                counts[status] += 1
    require(len(call(host, "GET", "/api/v1/jobs").json()) == jobs_before, "refused requests ran nothing")
    ok(f"browser rules: {counts['421']} operations answer 421 to a foreign Host, {counts['403']} 403 to a "
       f"foreign Origin, {counts['415']} 415 to a text/plain body")


def exercise(host, c, stuck, own_hosts):
    """At least one call per operation, and every reachable documented status;
    `stuck` makes a reload outlast its timeout, and `own_hosts` what the main host
    cannot show (plugin schedules, a quarantined task), each on a host of its own."""
    ex = lambda method, path, body=None, raw=None: c.check(method, path, call(host, method, path, body, raw))

    # Tasks
    ex("GET", "/api/v1/tasks")
    ex("GET", "/api/v1/tasks?tags=demo,simple")
    ex("GET", "/api/v1/tasks/greet_user")
    ex("GET", "/api/v1/tasks/no_such_task")
    job_id = ex("POST", "/api/v1/tasks/greet_user/$execute", {"params": {"name": "Ada"}}).json()["job_id"]
    # The queue holds one job: the next submit needs this one taken by the
    # worker (on a loaded machine that is not immediate).
    wait_until("the first job to leave the queue",
               lambda: call(host, "GET", f"/api/v1/jobs/{job_id}").json()["status"] != "pending")
    finished = ex("POST", "/api/v1/tasks/greet_user/$execute?wait=10", {"params": {"name": "Bo"}}).json()
    require(finished["status"] == "completed", "the waited job completed", json.dumps(finished))
    artifact_id = finished["artifact_id"]
    # An Idempotency-Key: the first request makes the job (waited: 200),
    # the same one again answers it (200, replayed), another is a 409.
    keyed = lambda body: c.check("POST", "/api/v1/tasks/greet_user/$execute?wait=10",
                                 call(host, "POST", "/api/v1/tasks/greet_user/$execute?wait=10", body,
                                      headers={"Idempotency-Key": "contract-key"}))
    first = keyed({"params": {"name": "Key"}}).json()
    replayed = keyed({"params": {"name": "Key"}})
    require(replayed.headers.get("idempotent-replayed") == "true" and replayed.json()["job_id"] == first["id"],
            "the same keyed request answers its first job", json.dumps(replayed.json()))
    other = keyed({"params": {"name": "Other"}})
    require(other.status == 409, "another request with the key is a 409", str(other.status))
    ex("POST", "/api/v1/tasks/add/%24execute?wait=10", {"params": {"a": 1, "b": 2}})
    ex("POST", "/api/v1/tasks/greet_user/$execute", {"params": {"nam": "x"}})
    ex("POST", "/api/v1/tasks/greet_user/$execute?wait=soon")
    ex("POST", "/api/v1/tasks/no_such_task/$execute")
    ex("POST", "/api/v1/tasks/greet_user/$execute", raw=b'{"params":{"name":"' + b"x" * MAX_BODY + b'"}}')

    # Jobs (the one worker and the one queue slot: running, queued, then 503)
    ex("GET", f"/api/v1/jobs/{job_id}?wait=10")
    ex("GET", f"/api/v1/jobs/{job_id}")
    ex("GET", f"/api/v1/jobs/{ULID_UNKNOWN}")
    ex("GET", f"/api/v1/jobs/{job_id}?wait=-1")
    running = ex("POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 120}}).json()["job_id"]
    wait_until("the slow job to run", lambda: call(host, "GET", f"/api/v1/jobs/{running}").json()["status"] == "running")
    queued = ex("POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 120}}).json()["job_id"]
    ex("POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 120}})  # 503: queue full
    ex("GET", "/api/v1/jobs")
    ex("GET", "/api/v1/jobs?status_filter=completed&limit=2&offset=0")
    ex("GET", "/api/v1/jobs?page=1&size=2")
    ex("GET", "/api/v1/jobs?status_filter=done")
    ex("GET", "/api/v1/jobs?page=1")
    check_schema_route(host, c, ex, "/api/v1/jobs/$schema", "/api/v1/jobs")
    ex("POST", f"/api/v1/jobs/{queued}/$cancel")   # 200: pending, canceled at once
    ex("POST", f"/api/v1/jobs/{running}/$cancel")  # 202: running, asked to stop
    ex("GET", f"/api/v1/jobs/{running}?wait=30")
    ex("POST", f"/api/v1/jobs/{job_id}/$cancel")   # 409: finished
    ex("POST", f"/api/v1/jobs/{ULID_UNKNOWN}/$cancel")

    status, ctype, events = read_events(host, f"/api/v1/jobs/{job_id}/$stream", 5)
    c.check("GET", f"/api/v1/jobs/{job_id}/$stream", Response(status, {"content-type": ctype}, b""))
    require(len(events) == 1, "a finished job's stream sends one event and ends", str(events))
    job_schema = {"$ref": "#/components/schemas/JobRecord"}
    c.validate(job_schema, events[0], "job $stream event")
    ex("GET", "/api/v1/jobs/not-a-ulid/$stream")
    ex("GET", f"/api/v1/jobs/{ULID_UNKNOWN}/$stream")
    ex("DELETE", f"/api/v1/jobs/{job_id}")
    ex("DELETE", f"/api/v1/jobs/{job_id}")
    ex("DELETE", "/api/v1/jobs?finished_before=2000-01-01T00:00:00Z&status_filter=failed")  # 200, nothing that old
    ex("DELETE", "/api/v1/jobs")  # 400: finished_before is required

    # Schedules
    exercise_schedules(host, c, ex)
    own_hosts(c)

    # Artifacts
    ex("GET", "/api/v1/artifacts")
    ex("GET", "/api/v1/artifacts?page=1&size=1")
    ex("GET", "/api/v1/artifacts?limit=100000")
    root = ex("POST", "/api/v1/artifacts", {"data": {"x": 1}, "tags": ["t"]}).json()["id"]
    child = ex("POST", "/api/v1/artifacts", {"data": [1, 2], "parent_id": root}).json()["id"]
    ex("POST", "/api/v1/artifacts", {"data": 1, "parent_id": ULID_UNKNOWN})
    ex("POST", "/api/v1/artifacts", {"tags": [1]})
    ex("POST", "/api/v1/artifacts", raw=b'{"data":"' + b"x" * MAX_BODY + b'"}')
    ex("GET", "/api/v1/artifacts/$stats")
    check_schema_route(host, c, ex, "/api/v1/artifacts/$schema", f"/api/v1/artifacts/{artifact_id}")
    result = ex("GET", f"/api/v1/artifacts/{artifact_id}").json()
    c.validate({"$ref": "#/components/schemas/TaskResult"}, result["data"], "a job's result artifact data")
    ex("GET", "/api/v1/artifacts/not-a-ulid")
    ex("GET", f"/api/v1/artifacts/{ULID_UNKNOWN}")
    ex("PUT", f"/api/v1/artifacts/{child}", {"tags": ["u"]})
    ex("PUT", f"/api/v1/artifacts/{child}", {"tags": "u"})
    ex("PUT", f"/api/v1/artifacts/{ULID_UNKNOWN}", {"data": 2})
    ex("PUT", f"/api/v1/artifacts/{child}", raw=b'{"data":"' + b"x" * MAX_BODY + b'"}')
    ex("GET", f"/api/v1/artifacts/{root}/$tree")
    ex("GET", f"/api/v1/artifacts/not-a-ulid/$tree")
    ex("GET", f"/api/v1/artifacts/{ULID_UNKNOWN}/$tree")
    ex("GET", f"/api/v1/artifacts/{root}/$expand")
    ex("GET", f"/api/v1/artifacts/not-a-ulid/$expand")
    ex("GET", f"/api/v1/artifacts/{ULID_UNKNOWN}/$expand")
    ex("DELETE", f"/api/v1/artifacts/{child}")
    ex("DELETE", f"/api/v1/artifacts/{child}")
    ex("DELETE", "/api/v1/artifacts/not-a-ulid")

    # Plugins, health, service, system
    ex("GET", "/api/v1/plugins")
    ex("POST", "/api/v1/plugins/$reload")
    stuck(c)
    ex("GET", "/health")
    status, ctype, events = read_events(host, "/health/$stream?poll_interval=0.05", 2)
    c.check("GET", "/health/$stream", Response(status, {"content-type": ctype}, b""))
    require(len(events) == 2, "the health stream sends an event per interval", str(events))
    for event in events:
        c.validate({"$ref": "#/components/schemas/HealthStatus"}, event, "health $stream event")
    ex("GET", "/health/$stream?poll_interval=0")
    check_metrics(ex("GET", "/metrics"))
    ex("GET", "/ping")
    ex("GET", "/api/v1/info")
    ex("GET", "/api/v1/system")
    ex("GET", "/api/v1/system/apps")
    ex("GET", "/api/v1/system/hosts")
    check_schema_route(host, c, ex, "/api/v1/system/apps/$schema", "/api/v1/system/apps")
    check_browser_rules(host, c)

    operations = {(t, m) for t, item in c.doc["paths"].items() for m in item}
    missed = operations - {(t, m) for t, m, _ in c.seen}
    require(not missed, "every documented operation was called", str(sorted(missed)))
    ok(f"every one of the {len(operations)} documented operations was called and answered as documented")
    declared = {(t, m, s) for t, item in c.doc["paths"].items() for m, op in item.items() for s in op["responses"]}
    require(c.seen == declared, "every documented status was answered", str(sorted(declared - c.seen)))
    ok(f"every one of the {len(declared)} documented (operation, status) pairs was answered")


def check_auth(binary, plugins, work):
    """With API keys (here through TASKHOST_API_KEYS), every secured operation answers a
    documented 401 without one, and the exempt ones need none."""
    key = "contract-key"
    host = Host(binary, plugins, work, env={"TASKHOST_API_KEYS": key})
    try:
        doc = call(host, "GET", "/openapi.json").json()
        scheme = doc["components"]["securitySchemes"]["ApiKey"]
        require(scheme == {"type": "apiKey", "in": "header", "name": "X-API-Key"}, "the ApiKey scheme is declared",
                json.dumps(scheme))
        c = Contract(doc)
        secured = 0
        for template, item in doc["paths"].items():
            path = re.sub(r"\{[^}]+\}", ULID_UNKNOWN, template.replace("{name}", "hello"))
            for method, op in item.items():
                if op.get("security") == []:
                    r = call(host, method.upper(), path + ("?poll_interval=0" if "$stream" in path else ""))
                    require(r.status != 401, f"{method.upper()} {template} is exempt", f"got {r.status}")
                    continue
                r = call(host, method.upper(), path)
                require(r.status == 401, f"{method.upper()} {template} without a key is 401", f"got {r.status}")
                c.check(method.upper(), path, r)
                secured += 1
        ok(f"with API keys, each of the {secured} secured operations answers the documented 401 without one")
        r = call(host, "GET", "/api/v1/tasks", headers={"X-API-Key": key})
        c.check("GET", "/api/v1/tasks", r)
        require(r.status == 200, "with the key, the API answers")
        ok("with API keys, a request that sends one is served")
    finally:
        host.close()


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    binary, plugins, fixtures = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="taskhost-openapi-") as work:
        host = None
        try:
            host = Host(binary, plugins, work)
            r = call(host, "GET", "/openapi.json")
            require(r.status == 200 and r.headers.get("content-type") == "application/json",
                    "GET /openapi.json is 200 application/json", f"{r.status} {r.headers.get('content-type')}")
            doc = r.json()
            check_document(doc, call(host, "GET", "/api/v1/info").json())
            check_methods(host, doc)
            exercise(host, Contract(doc),
                     lambda c: (stuck_reload(binary, fixtures, work, c), waiters_full(binary, plugins, work, c)),
                     lambda c: (plugin_schedules(binary, fixtures, work, c),
                                quarantined_trigger(binary, fixtures, work, c)))
            host.close()
            host = None
            check_auth(binary, plugins, work)
        except Exception as f:  # a Failure, or an answer that is not what the test can read
            print(f"FAIL: {f}", file=sys.stderr)
            if not isinstance(f, Failure):
                traceback.print_exc()
            if host:
                print("--- taskhost stderr ---\n" + host.log()[-4000:], file=sys.stderr)
            print(f"{passed} passed, 1 failed")
            return 1
        finally:
            if host:
                host.close()
    print(f"{passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

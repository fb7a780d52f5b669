#!/usr/bin/python3
"""Browser test: the web console (host/http/console/) in headless Chromium against a real taskhost.

    console_test.py <taskhost-binary> <example-plugins-dir> <fixture-plugins-dir> <output-dir>

Starts taskhost on a free loopback port with a copy of the example plugins
(the reload check changes a plugin in it, form-types adds the types fixture,
plugin-states adds a refused one and takes it out again) and a temporary
SQLite file, and a
second host with --api-keys; then drives one headless Chromium (Debian's
chromium, chromium-driver and python3-selenium) through the console,
selecting on the ids, classes and data- attributes the console promises its
tests (the DOM contract of issue 18). Each check saves a screenshot
NN-name.png into the output folder; after each, the browser's log is read and
any JavaScript or console error or warning, any Content Security Policy
violation and any failed request the check did not expect fails it. Waits are
conditions with deadlines, never fixed sleeps. Prints "PASS: <check>" or
"FAIL: <check>" per check, the screenshots' paths, and ends with
"N passed, M failed"; exits 1 if any failed, 77 (skipped) without Chromium,
its driver or Selenium. The hosts and the browser are always stopped on exit.
TASKHOST_BROWSER_CHECKS=name,name runs only those checks (while working on one);
job-delete and artifact-delete use what jobs-list and artifact-tree made, so name those too.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import urllib.parse

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    SELENIUM_MISSING = None
except ImportError as e:
    SELENIUM_MISSING = str(e)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))
from taskhost_host import Failure, Host, call  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
API_KEY = "k-test-1"
DEADLINE = 15  # seconds, for every wait
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Every file of the console: path, Content-Type (the contract's table); any other file the pages
# link under /console/ is checked too, with the type of its extension.
CONSOLE_FILES = [
    ("/", "text/html; charset=utf-8"),
    ("/console/console.css", "text/css; charset=utf-8"),
    ("/console/console.js", "text/javascript; charset=utf-8"),
    ("/docs", "text/html; charset=utf-8"),
    ("/redoc", "text/html; charset=utf-8"),
    ("/console/docs.js", "text/javascript; charset=utf-8"),
    ("/console/icon.svg", "image/svg+xml"),
    ("/manifest.json", "application/manifest+json"),
    ("/console/settings.json", "application/json"),
]
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}
# The contract's size budget (approximate: reported, not enforced).
SIZE_BUDGET = {"/console/console.js": 60_000, "/console/console.css": 15_000, "/console/docs.js": 25_000}


def require(cond, what, detail=""):
    if not cond:
        raise Failure(what + (f"\n  {detail}" if detail else ""))


def api(host, method, path, body=None, key=None, expect=None):
    """An API call over plain HTTP; its JSON answer (None if empty). `expect`: the status required."""
    headers = {"X-API-Key": key} if key else None
    r = call(host, method, path, body=body, headers=headers)
    if expect is not None:
        require(r.status == expect, f"{method} {path} answers {expect}", f"got {r.status}: {r.body[:300]!r}")
    return r.json() if r.body else None


class Suite:
    def __init__(self, driver, host, keyed, fixtures, plugins, out):
        self.driver, self.host, self.keyed = driver, host, keyed
        self.fixtures, self.plugins, self.out = fixtures, plugins, out
        self.jobs = {}          # what the checks ran: name -> job id
        self.allowed = []       # network log entries the current check expects (regexes)
        self.screenshots = []

    # ---- the browser ---------------------------------------------------------------------

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def text(self, selector):
        """The textContent of the first element matching `selector`, or None."""
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                       selector)

    def exists(self, selector):
        return self.js("return document.querySelector(arguments[0]) !== null;", selector)

    def shown(self, selector):
        """There is such an element and the user can see it (WebDriver's "displayed")."""
        found = self.driver.find_elements(By.CSS_SELECTOR, selector)
        return bool(found) and found[0].is_displayed()

    def el(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def until(self, what, condition, detail=None, timeout=DEADLINE):
        """Waits for condition() to be truthy and returns it; fails after `timeout` s with what
        was awaited and, from detail(), what there was instead."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
                                 ).until(lambda _: condition())
        except TimeoutException:
            seen = ""
            if detail:
                try:
                    seen = f"\n  instead: {detail()}"
                except Exception as e:  # the page is not what detail() reads
                    seen = f"\n  instead: ({e.__class__.__name__})"
            raise Failure(f"timed out after {timeout} s waiting for {what}{seen}") from None

    def view_state(self):
        return self.js("const v = document.querySelector('main#view');"
                       "return v ? `data-view=${v.dataset.view} data-ready=${v.dataset.ready} ` +"
                       "`hash=${location.hash} banner=${(document.getElementById('banner') || {}).textContent}`"
                       " : `no main#view at ${location.href}`;")

    def wait_view(self, view):
        self.until(f'main#view[data-view="{view}"][data-ready="true"]',
                   lambda: self.exists(f'main#view[data-view="{view}"][data-ready="true"]'), self.view_state)

    def open(self, host, route, view):
        """Opens `route` ("#/jobs", ...) of `host`'s console and waits for `view` to be ready: a hash
        change within the page when it is already loaded (the view's data-ready is marked stale first,
        so a leftover "true" does not count), a page load otherwise."""
        url = f"{host.url}/{route}"
        current = self.driver.current_url
        if current == url or not current.startswith(host.url + "/") or "/docs" in current or "/redoc" in current \
                or not self.exists("main#view"):
            self.driver.get("about:blank")
            self.load(url)
        else:
            self.js("document.querySelector('main#view').dataset.ready = 'stale';")
            self.driver.get(url)
        self.wait_view(view)

    def load(self, url):
        """A page load; the page may then keep as many resource timings as it likes."""
        self.driver.get(url)
        self.js("performance.setResourceTimingBufferSize(100000);")

    def requests(self, pattern, since=0.0):
        """The URLs the page fetched (resource timings) matching `pattern`, started after `since` (ms)."""
        names = self.js("return performance.getEntriesByType('resource')"
                        ".filter(e => e.startTime > arguments[0]).map(e => e.name);", since)
        return [n for n in names if re.search(pattern, n)]

    def hash_route(self):
        return self.js("return location.hash;")

    def type(self, selector, value):
        e = self.el(selector)
        e.clear()
        e.send_keys(value)

    def click(self, selector, center=False):
        """Clicks the element; `center`: scrolled to the middle of the window first (WebDriver scrolls a
        control above the window to its top edge, where the console's sticky top bar covers it)."""
        e = self.el(selector)
        if center:
            self.js("arguments[0].scrollIntoView({block: 'center'});", e)
        e.click()

    def expect_network(self, pattern):
        """A failed request the current check causes on purpose (a regex on the log message)."""
        self.allowed.append(pattern)

    def log_problems(self):
        """The browser log since the last read, less what the check expected: errors and warnings of
        scripts, CSP violations, failed requests, and any other error."""
        problems = []
        for e in self.driver.get_log("browser"):
            message, level, source = e.get("message", ""), e.get("level", ""), e.get("source", "")
            if source == "network":
                if not any(re.search(p, message) for p in self.allowed):
                    problems.append(e)
            elif "Content Security Policy" in message:
                problems.append(e)
            elif source in ("javascript", "console-api") and level in ("SEVERE", "WARNING"):
                problems.append(e)
            elif level == "SEVERE":
                problems.append(e)
        return problems

    # ---- the checks ----------------------------------------------------------------------

    def check_tasks(self):
        """The task list and its tag chips: one chip filters, two are an AND, as the API's ?tags=."""
        h = self.host
        self.load(h.url + "/")
        self.wait_view("tasks")
        every = api(h, "GET", "/api/v1/tasks", expect=200)
        rows = lambda: sorted(self.js("return [...document.querySelectorAll('.task-row')].map(r => r.dataset.task);"))
        require(rows() == sorted(t["name"] for t in every), "every task is listed", f"rows: {rows()}")
        add = next(t for t in every if t["name"] == "add")
        row = self.text('.task-row[data-task="add"]') or ""
        for part in (add["docstring"], add["signature"], f"{add['plugin']['name']}@{add['plugin']['version']}"):
            require(part in row, f"the add row shows {part!r}", f"row text: {row!r}")
        require(self.exists('.task-row[data-task="add"] a[href="#/tasks/add"]'), "the add row links #/tasks/add")
        chips = sorted(self.js("return [...document.querySelectorAll('button.tag-chip')].map(c => c.dataset.tag);"))
        require(chips == sorted({tag for t in every for tag in t["tags"]}), "a chip per tag", f"chips: {chips}")
        require(self.js("return [...document.querySelectorAll('button.tag-chip')]"
                        ".every(c => c.getAttribute('aria-pressed') === 'false');"), "no chip is pressed at first")

        expected = sorted(t["name"] for t in api(h, "GET", "/api/v1/tasks?tags=math", expect=200))
        require(expected == ["add", "multiply", "multiply_numbers"], "the API's math tasks", str(expected))
        self.click('button.tag-chip[data-tag="math"]')
        self.until(f"only the math tasks {expected}", lambda: rows() == expected, rows)
        require(self.js("return document.querySelector('button.tag-chip[data-tag=\"math\"]')"
                        ".getAttribute('aria-pressed');") == "true", "the math chip is pressed")
        self.until("the hash to say tags=math", lambda: re.search(r"tags=math\b", self.hash_route()),
                   self.hash_route)

        both = sorted(t["name"] for t in api(h, "GET", "/api/v1/tasks?tags=math,demo", expect=200))
        require(both == ["multiply_numbers"], "the API's math AND demo tasks", str(both))
        self.click('button.tag-chip[data-tag="demo"]')
        self.until(f"the tasks tagged math and demo {both}", lambda: rows() == both, rows)
        pressed = sorted(self.js("return [...document.querySelectorAll('button.tag-chip[aria-pressed=\"true\"]')]"
                                 ".map(c => c.dataset.tag);"))
        require(pressed == ["demo", "math"], "both chips are pressed", str(pressed))
        tags = lambda: sorted(urllib.parse.unquote((re.search(r"tags=([^&]*)", self.hash_route())
                                                    or [None, ""])[1]).split(","))
        self.until("the hash to name both tags", lambda: tags() == ["demo", "math"], self.hash_route)
        return f"{len(every)} tasks, 'math' lists {expected}, 'math'+'demo' lists {both} as ?tags=math,demo"

    def jobs_total(self, host=None):
        return api(host or self.host, "GET", "/api/v1/jobs?page=1&size=1", expect=200)["total"]

    def check_field_error(self):
        """A wrong type in a number field is reported at the field, and nothing is submitted."""
        before = self.jobs_total()
        self.open(self.host, "#/tasks/add", "task")
        require(self.text("#task-name") == "add", "#task-name is add", repr(self.text("#task-name")))
        for name in ("a", "b"):
            field = f'.field[data-param="{name}"]'
            require(self.exists(f"{field} span.required"), f"field {name} is marked required")
            kind = self.js("const c = document.querySelector(arguments[0]); return c && [c.tagName, c.type,"
                           " c.getAttribute('inputmode')];", f'{field} [name="{name}"]')
            require(kind == ["INPUT", "text", "decimal"], f"field {name} is a decimal text input", str(kind))
            require((self.text(f"{field} .field-error") or "") == "", f"field {name} shows no error at first")
        since = self.js("return performance.now();")
        self.type('[name="a"]', "x")
        self.type('[name="b"]', "2")
        self.click("#run")
        err = '.field[data-param="a"] .field-error'
        self.until("field a's error", lambda: (self.text(err) or "").strip(), lambda: repr(self.text(err)))
        require("expected integer, got string" in self.text(err), "field a says: expected integer, got string",
                repr(self.text(err)))
        first = self.text(err).strip()
        self.type('[name="a"]', "1.5")
        self.click("#run")
        self.until("field a's error for 1.5", lambda: "1.5 is not an integer" in (self.text(err) or ""),
                   lambda: repr(self.text(err)))
        require(not (self.text('.field[data-param="b"] .field-error') or "").strip(), "field b shows no error")
        require(self.hash_route() == "#/tasks/add", "the page stays on the form", self.hash_route())
        require(not self.requests(r"execute", since), "nothing was sent to $execute",
                str(self.requests(r"execute", since)))
        require(self.jobs_total() == before, "no job was created")
        return f"'x' -> {first!r}; '1.5' -> {self.text(err).strip()!r}; no request, no job"

    def check_host_400(self):
        """The raw editor and the fields stay in sync both ways; params only the host refuses (in raw
        mode the console does not validate): its 400 detail is shown in #form-error, and at the field
        it names."""
        before = self.jobs_total()
        self.open(self.host, "#/tasks/add", "task")
        self.type('[name="a"]', "3")
        self.type('[name="b"]', "4")
        self.click("#raw-toggle")
        self.until("textarea#raw-params to show", lambda: self.shown("textarea#raw-params"))
        raw = self.js("return document.querySelector('textarea#raw-params').value;")
        try:
            require(json.loads(raw) == {"a": 3, "b": 4}, "the raw editor holds the fields' params", raw)
        except ValueError:
            raise Failure(f"the raw editor holds JSON\n  {raw!r}")
        self.type("textarea#raw-params", '{"a": "x", "b": 2}')
        self.click("#raw-toggle")
        self.until("the fields to show again", lambda: self.shown('[name="a"]'))
        value = self.js("return document.querySelector('[name=\"a\"]').value;")
        require(value == "x", "field a took the raw editor's value", repr(value))
        self.click("#raw-toggle")
        self.until("textarea#raw-params to show again", lambda: self.shown("textarea#raw-params"))

        self.expect_network(r"execute - Failed to load resource: the server responded with a status of 400")
        since = self.js("return performance.now();")
        self.type("textarea#raw-params", '{"a": 1, "b": 2, "c": 3}')
        self.click("#run")
        self.until("#form-error to show the host's detail", lambda: (self.text("#form-error") or "").strip(),
                   self.view_state)
        shown = self.text("#form-error").strip()
        require("Invalid params for task 'add'" in shown and "unknown parameter 'c'" in shown,
                "#form-error shows the host's 400 detail", repr(shown))
        require(self.requests(r"execute", since), "the params were sent to the host")

        self.type("textarea#raw-params", '{"a": "x", "b": 2}')
        self.click("#run")
        self.until("#form-error to name parameter 'a'",
                   lambda: "expected integer, got string" in (self.text("#form-error") or ""),
                   lambda: repr(self.text("#form-error")))
        a_error = (self.text('.field[data-param="a"] .field-error') or "").strip()
        require("expected integer, got string" in a_error, "field a's error holds the detail too", repr(a_error))
        require(self.jobs_total() == before, "no job was created")
        return f"unknown parameter -> #form-error {shown!r}; raw {{'a': 'x'}} -> field a {a_error!r}"

    def run_form(self, task, values, opened=False):
        """Opens the task's form (unless `opened`), fills `values` (name -> text), runs it; returns
        the new job's id once the job page is shown."""
        if not opened:
            self.open(self.host, f"#/tasks/{task}", "task")
        for name, value in values.items():
            self.type(f'[name="{name}"]', value)
        self.click("#run")
        m = self.until(f"the {task} job's page (#/jobs/{{id}})",
                       lambda: re.fullmatch(f"#/jobs/({ULID})", self.hash_route()), self.view_state)
        self.wait_view("job")
        self.jobs[task] = m.group(1)
        return m.group(1)

    def job_status(self):
        return self.js("const s = document.querySelector('#job-status'); return s && s.dataset.status;")

    def check_greet_user(self):
        """Run greet_user from its form: the job page follows it to completed and shows the result
        (as text: the name's markup stays text)."""
        self.open(self.host, "#/tasks/greet_user", "task")
        default = self.js("return document.querySelector('[name=\"name\"]').value;")
        require(default == "World", "the name field holds its default", repr(default))
        name = "Ada <b>Lovelace</b>"
        job = self.run_form("greet_user", {"name": name}, opened=True)
        self.until('#job-status[data-status="completed"]', lambda: self.job_status() == "completed", self.job_status)
        greeting = f"Hello, {name}!"
        self.until("#job-result to show the greeting", lambda: greeting in (self.text("#job-result") or ""),
                   lambda: repr(self.text("#job-result")))
        require(not self.exists("#job-result b"), "the result's markup is shown as text, not parsed")
        require(self.exists("#job-result .json-tree") and self.exists("#job-result details summary"),
                "the result is a JSON tree of details/summary")
        record = api(self.host, "GET", f"/api/v1/jobs/{job}", expect=200)
        require(record["status"] == "completed", "the API says completed", record["status"])
        require(self.exists(f'#job-result a[href="#/artifacts/{record["artifact_id"]}"], '
                            f'a[href="#/artifacts/{record["artifact_id"]}"]'), "the page links the result artifact")
        require("greet_user" in (self.text("#job-task") or ""), "#job-task names the task",
                repr(self.text("#job-task")))
        require(not self.shown("pre#job-traceback"), "no traceback is shown for a completed job")
        require(not self.js("const b = document.querySelector('#job-cancel'); return !!b && !b.disabled;"),
                "Cancel is not enabled once completed")
        return f"job {job} completed, #job-result shows {greeting!r} as text"

    def check_scheduled(self):
        """Run greet_user from its form with a priority and a delay: the job page shows it scheduled, with
        its time and priority; Cancel ends it at once, never started; the jobs list filters scheduled."""
        self.open(self.host, "#/tasks/greet_user", "task")
        require((self.text("#task-priority") or "").strip() == "0", "the task page shows its default priority",
                repr(self.text("#task-priority")))
        self.expect_network(r"greet_user/\$execute - .* status of 400")
        self.type("#run-priority", "11")
        self.click("#run")
        self.until("#form-error to relay the host's 400 on priority",
                   lambda: "priority must be an integer from -10 to 10" in (self.text("#form-error") or ""),
                   lambda: repr(self.text("#form-error")))
        self.type("#run-priority", "4")
        self.type("#run-delay", "600")
        completed = self.jobs.get("greet_user")
        job = self.run_form("greet_user", {}, opened=True)
        # Later checks look for greet-user's completed job under its task's name.
        self.jobs["scheduled"] = job
        if completed:
            self.jobs["greet_user"] = completed
        self.until('#job-status[data-status="scheduled"]', lambda: self.job_status() == "scheduled", self.job_status)
        record = api(self.host, "GET", f"/api/v1/jobs/{job}", expect=200)
        require(record["priority"] == 4 and record["run_at"], "the API has its priority and run_at", json.dumps(record))
        timings = self.text("#job-timings") or ""
        require("Run at" in timings and "Priority" in timings and "not yet: scheduled" in timings,
                "#job-timings shows its time and priority", repr(timings))
        self.open(self.host, "#/jobs?status=scheduled", "jobs")
        self.until(f"the scheduled filter to list job {job}",
                   lambda: self.exists(f'#jobs-table a[href="#/jobs/{job}"]'), lambda: self.text("#jobs-table"))
        self.screenshot("scheduled-list")
        self.open(self.host, f"#/jobs/{job}", "job")
        self.until("#job-cancel to be enabled", lambda: self.el("#job-cancel").is_enabled())
        self.click("#job-cancel")
        self.until('#job-status[data-status="canceled"]', lambda: self.job_status() == "canceled", self.job_status)
        record = api(self.host, "GET", f"/api/v1/jobs/{job}", expect=200)
        require(record["status"] == "canceled" and record["started_at"] is None, "canceled, never started",
                json.dumps(record))
        return f"job {job} scheduled (priority 4, run_at {record['run_at']}), listed, canceled before it ran"

    def check_retries(self):
        """The flaky fixture's fail_then_succeed: its task page states its retry policy; run from the form
        with "Attempts" 2 and one failure, the job completes at its second attempt, and the job page
        shows the attempt count and the first attempt's error under "Earlier attempts"."""
        h = self.host
        self.place("flaky.so", "flaky.so")  # stays: no other check minds its tasks
        api(h, "POST", "/api/v1/plugins/$reload", expect=200)
        self.open(h, "#/tasks/fail_then_succeed", "task")
        policy = (self.text("#task-retry") or "").strip()
        require(policy.startswith("4 attempts, exponential from"), "the task page states its retry policy",
                repr(policy))
        counter = os.path.join(self.out, "flaky-counter")
        if os.path.exists(counter):
            os.remove(counter)
        self.type("#run-attempts", "2")
        job = self.run_form("fail_then_succeed", {"counter": counter, "failures": "1"}, opened=True)
        self.until('#job-status[data-status="completed"]', lambda: self.job_status() == "completed", self.job_status)
        record = api(h, "GET", f"/api/v1/jobs/{job}", expect=200)
        require(record["attempt"] == 2 and record["max_attempts"] == 2 and len(record["attempts"]) == 1,
                "the API has two attempts, the first logged", json.dumps(record))
        timings = self.text("#job-timings") or ""
        require("2 of 2" in timings, "#job-timings shows the attempt", repr(timings))
        self.until("#job-attempts to list the failed attempt",
                   lambda: "attempt 1 failed" in (self.text("#job-attempts") or ""),
                   lambda: repr(self.text("#job-attempts")))
        self.screenshot("retried")
        return f"job {job} completed at attempt 2 of 2; its first attempt's error listed"

    def control(self, name):
        """Field `name`'s control as [tag, type, inputmode, has class json], or None."""
        return self.js("const c = document.querySelector(arguments[0]); return c && [c.tagName, c.type,"
                       " c.getAttribute('inputmode'), c.classList.contains('json')];",
                       f'.field[data-param="{name}"] [name="{name}"]')

    def value(self, name):
        return self.js("const c = document.querySelector(arguments[0]);"
                       "return !c ? null : c.type === 'checkbox' ? c.checked : c.value;", f'[name="{name}"]')

    def field_errors(self):
        """Every field's error text (stripped): name -> text."""
        return self.js("return Object.fromEntries([...document.querySelectorAll('.field[data-param]')].map(f => "
                       "[f.dataset.param, (f.querySelector('.field-error') || {textContent: '?'})"
                       ".textContent.trim()]));")

    def job_result(self, job):
        """The finished job's result, read from the API: its record, then its artifact's data."""
        record = api(self.host, "GET", f"/api/v1/jobs/{job}", expect=200)
        require(record["artifact_id"], f"job {job} has a result artifact", json.dumps(record))
        return api(self.host, "GET", f"/api/v1/artifacts/{record['artifact_id']}", expect=200)["data"]

    def check_form_types(self):
        """The types fixture's echo_types: a control per kind of parameter as the contract says, filled
        and run it returns exactly what was typed; client validation of a list item and of JSON; the raw
        editor holds the fields' params; with_default's form is prefilled and runs as is."""
        h = self.host
        self.place("types.so", "types.so")  # stays: no other check minds its tasks
        api(h, "POST", "/api/v1/plugins/$reload", expect=200)
        plugin = next((p for p in api(h, "GET", "/api/v1/plugins", expect=200) if p["file"] == "types.so"), None)
        require(plugin and plugin["state"] == "active", "types.so is active after the reload", json.dumps(plugin))

        self.open(h, "#/tasks/echo_types", "task")
        require(self.text("#task-name") == "echo_types", "#task-name is echo_types", repr(self.text("#task-name")))
        # The contract's controls: boolean -> checkbox; integer/number -> decimal text input; string ->
        # text input; array of numbers -> textarea, one item per line; {} -> textarea.json; an optional
        # (anyOf X or null) -> X's control, left empty for null.
        expected = {"b": ("INPUT", "checkbox", False), "i": ("INPUT", "text", False), "d": ("INPUT", "text", False),
                    "s": ("INPUT", "text", False), "j": ("TEXTAREA", "textarea", True),
                    "v": ("TEXTAREA", "textarea", False), "o": ("INPUT", "text", False)}
        fields = self.js("return [...document.querySelectorAll('form#run-form .field')].map(f => f.dataset.param);")
        require(fields == list(expected), "a .field per parameter, in the signature's order", str(fields))
        for name, (tag, kind, is_json) in expected.items():
            got = self.control(name)
            require(got and (got[0], got[1], got[3]) == (tag, kind, is_json),
                    f"field {name}'s control is {tag.lower()} {kind}" + (" .json" if is_json else ""), str(got))
            if name in ("i", "d"):
                require(got[2] == "decimal", f"field {name} has inputmode decimal", str(got))
            required = self.exists(f'.field[data-param="{name}"] span.required')
            require(required == (name != "o"), f"field {name} is {'' if name != 'o' else 'not '}marked required")
            require(not (self.text(f'.field[data-param="{name}"] .field-error') or "").strip(),
                    f"field {name} shows no error at first")
        empty = {n: self.value(n) for n in expected}
        require(empty["b"] is False and all(empty[n] == "" for n in "idsjv"), "the required fields start empty",
                str(empty))
        # o's default is null: prefilled as null (or left empty); either way it is cleared below.
        require(empty["o"].strip() in ("", "null"), "field o holds its default null or nothing", repr(empty["o"]))

        def fill():
            if not self.el('[name="b"]').is_selected():
                self.click('[name="b"]', center=True)
            for name, text in (("i", "7"), ("d", "2.5"), ("s", "hi"), ("j", '{"k":[1,null]}'), ("v", "1\n2\n3"),
                               ("o", "")):
                self.type(f'[name="{name}"]', text)
        fill()
        require(self.el('[name="b"]').is_selected(), "b is checked")
        self.screenshot("form-types-filled")
        job = self.run_form("echo_types", {}, opened=True)
        self.until('#job-status[data-status="completed"]', lambda: self.job_status() == "completed",
                   lambda: f"{self.job_status()}: {self.text('#job-error')!r}")
        canon = lambda value: json.dumps(value, sort_keys=True)  # as JSON: true is not 1, 7 is not 7.0
        data = self.job_result(job)
        want = {"b": True, "i": 7, "d": 2.5, "s": "hi", "j": {"k": [1, None]}, "v": [1, 2, 3], "o": None}
        require(canon(data["result"]) == canon(want), "echo_types returns exactly what the form holds",
                f"result {canon(data['result'])}\n  wanted {canon(want)}")
        sent = {k: v for k, v in want.items() if k != "o"}
        require(canon(data["params"]) == canon(sent), "the params sent leave the empty optional o out",
                f"sent {canon(data['params'])}\n  wanted {canon(sent)}")
        self.until("#job-result to show the result", lambda: "hi" in (self.text("#job-result") or ""),
                   lambda: repr(self.text("#job-result")))

        # The raw editor holds the fields' params; then client validation (nothing is sent).
        before = self.jobs_total()
        self.open(h, "#/tasks/echo_types", "task")
        fill()
        self.click("#raw-toggle", center=True)
        self.until("textarea#raw-params to show", lambda: self.shown("textarea#raw-params"))
        raw = self.js("return document.querySelector('textarea#raw-params').value;")
        try:
            shown = json.loads(raw)
        except ValueError:
            raise Failure(f"the raw editor holds JSON\n  {raw!r}") from None
        require(canon(shown) == canon(sent), "the raw editor holds the fields' params", f"raw {canon(shown)}")
        self.click("#raw-toggle", center=True)
        self.until("the fields to show again", lambda: self.shown('[name="v"]'))
        back = {n: self.value(n) for n in ("b", "i", "d", "s", "v", "o")}
        require(back == {"b": True, "i": "7", "d": "2.5", "s": "hi", "v": "1\n2\n3", "o": ""},
                "the fields hold the same values after the raw editor", str(back))
        require(json.loads(self.value("j")) == {"k": [1, None]}, "field j holds the same JSON", repr(self.value("j")))

        since = self.js("return performance.now();")
        self.type('[name="v"]', "1\nx\n3")
        self.click("#run")
        v_err = '.field[data-param="v"] .field-error'
        self.until("field v's error", lambda: (self.text(v_err) or "").strip(), self.field_errors)
        v_message = self.text(v_err).strip()
        require("expected integer, got string" in v_message, "field v says: expected integer, got string",
                repr(v_message))
        others = {n: e for n, e in self.field_errors().items() if n != "v" and e}
        require(not others, "no other field shows an error", str(others))
        self.type('[name="v"]', "1\n2\n3")
        self.type('[name="j"]', '{"k": [1, null}')
        self.click("#run")
        j_err = '.field[data-param="j"] .field-error'
        self.until("field j's error", lambda: (self.text(j_err) or "").strip(), self.field_errors)
        j_message = self.text(j_err).strip()
        require(j_message.startswith("not valid JSON"), "field j says: not valid JSON: ...", repr(j_message))
        require(not (self.text(v_err) or "").strip(), "field v's error is gone once v is valid", repr(self.text(v_err)))
        require(self.hash_route() == "#/tasks/echo_types", "the page stays on the form", self.hash_route())
        require(not self.requests(r"execute", since), "nothing was sent to $execute",
                str(self.requests(r"execute", since)))
        require(self.jobs_total() == before, "no job was created")

        # with_default: the form holds the defaults, and runs as it is.
        info = api(h, "GET", "/api/v1/tasks/with_default", expect=200)
        defaults = {n: p["default"] for n, p in info["parameters_schema"]["properties"].items()}
        require(defaults.get("n") == 5 and isinstance(defaults.get("label"), str), "with_default's defaults",
                json.dumps(defaults))
        self.open(h, "#/tasks/with_default", "task")
        prefilled = {n: self.value(n) for n in ("n", "label")}
        require(prefilled == {"n": "5", "label": defaults["label"]}, "the defaults are prefilled", str(prefilled))
        require(not self.exists("form#run-form span.required"), "no field of with_default is marked required")
        plain = self.run_form("with_default", {}, opened=True)
        self.until('#job-status[data-status="completed"]', lambda: self.job_status() == "completed",
                   lambda: f"{self.job_status()}: {self.text('#job-error')!r}")
        result = self.job_result(plain)["result"]
        require(canon(result) == canon(defaults), "with_default returns its defaults",
                f"result {canon(result)}, defaults {canon(defaults)}")
        return (f"job {job}: {canon(data['result'])} (sent {canon(data['params'])}); v '1,x,3' -> {v_message!r}; "
                f"j -> {j_message!r}; no job; with_default {plain}: {canon(result)}")

    def progress(self):
        return self.js("const p = document.querySelector('progress#job-progress');"
                       "return p && p.hasAttribute('value') ? p.value : null;")

    def check_slow_task(self):
        """slow_task's progress bar moves while it runs; Cancel stops it; leaving a running job's page
        closes its stream."""
        job = self.run_form("slow_task", {"seconds": "60"})
        try:
            return self.follow_slow_task(job)
        finally:  # a failure part-way must not leave jobs that end (and store artifacts) during later checks
            for running in api(self.host, "GET", "/api/v1/jobs?status_filter=running", expect=200):
                api(self.host, "POST", f"/api/v1/jobs/{running['id']}/$cancel")

    def follow_slow_task(self, job):
        self.until('#job-status[data-status="running"]', lambda: self.job_status() == "running", self.job_status)
        require(self.js("return document.querySelector('progress#job-progress').max;") == 1, "the bar's max is 1")
        first = self.until("the progress bar to move off 0", lambda: (self.progress() or 0) > 0 and self.progress(),
                           self.progress)
        second = self.until(f"the progress bar to pass {first}", lambda: (self.progress() or 0) > first and
                            self.progress(), self.progress)
        message = (self.text("#job-progress-message") or "").strip()
        require(message == "sleeping", "#job-progress-message shows the task's message", repr(message))
        self.until("#job-cancel to be enabled", lambda: self.el("#job-cancel").is_enabled())
        self.click("#job-cancel")
        self.until('#job-status[data-status="canceled"]', lambda: self.job_status() == "canceled", self.job_status)
        require(api(self.host, "GET", f"/api/v1/jobs/{job}", expect=200)["status"] == "canceled",
                "the API says canceled")
        self.until("#job-cancel to be disabled", lambda: not self.el("#job-cancel").is_enabled())

        # A job page left while its job runs stops reading the stream (the host counts it as a waiter).
        other = api(self.host, "POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": 60}},
                    expect=202)["job_id"]
        self.open(self.host, f"#/jobs/{other}", "job")
        self.until("the second slow job to run", lambda: self.job_status() == "running", self.job_status)
        waiting = lambda: api(self.host, "GET", "/api/v1/system", expect=200)["waiting_requests"]
        self.until("the job page's stream to be open on the host", lambda: waiting() >= 1, waiting)
        self.open(self.host, "#/tasks", "tasks")
        self.until("the stream to close once the page is left", lambda: waiting() == 0, waiting)
        api(self.host, "POST", f"/api/v1/jobs/{other}/$cancel")
        self.open(self.host, f"#/jobs/{job}", "job")  # for the screenshot: the canceled job
        self.until('#job-status[data-status="canceled"]', lambda: self.job_status() == "canceled", self.job_status)
        return f"job {job}: progress {first:.3f} -> {second:.3f} ({message}), canceled; a left page's stream closed"

    def check_failing_task(self):
        """failing_task fails; its page shows the error and the traceback with a frame."""
        job = self.run_form("failing_task", {})
        self.until('#job-status[data-status="failed"]', lambda: self.job_status() == "failed", self.job_status)
        self.until("the traceback", lambda: "Something went wrong" in (self.text("pre#job-traceback") or ""),
                   lambda: repr(self.text("pre#job-traceback")))
        trace = self.text("pre#job-traceback")
        require(re.search(r"#0 .*failing_task", trace), "the traceback has the task's frame", trace)
        require(self.shown("pre#job-traceback"), "the traceback is shown")
        require("Something went wrong" in (self.text("#job-error") or ""), "#job-error shows the error",
                repr(self.text("#job-error")))
        frame = re.search(r"#0 [^\n]*", trace).group(0)
        return f"job {job} failed; traceback frame: {frame!r}"

    def rows(self):
        return self.js("return [...document.querySelectorAll('tr.job-row')]"
                       ".map(r => [r.dataset.jobId, r.dataset.status]);")

    def check_jobs_list(self):
        """The jobs list: newest first as the API, live (a job submitted over HTTP shows up without a
        reload), paging, and the status filter."""
        h = self.host
        self.open(h, "#/jobs", "jobs")
        ids = lambda: [r[0] for r in self.rows()]
        page = api(h, "GET", "/api/v1/jobs?page=1&size=20", expect=200)
        self.until("the rows of the API's first page, newest first",
                   lambda: ids() == [j["id"] for j in page["items"]], self.rows)
        statuses = dict(self.rows())
        for task, status in (("greet_user", "completed"), ("slow_task", "canceled"), ("failing_task", "failed")):
            if task in self.jobs:
                require(statuses.get(self.jobs[task]) == status, f"the {task} job is listed as {status}",
                        str(statuses.get(self.jobs[task])))
        require(self.exists(f'tr.job-row a[href="#/jobs/{page["items"][0]["id"]}"]'), "a row links its job")
        require(str(page["total"]) in (self.text("#page-info") or ""), "#page-info gives the total",
                repr(self.text("#page-info")))

        self.js("window.__noReload = true;")
        live = api(h, "POST", "/api/v1/tasks/greet_user/$execute", {"params": {"name": "live"}},
                   expect=202)["job_id"]
        self.until(f"the job submitted over HTTP ({live}) to be listed", lambda: live in ids(), self.rows)
        self.jobs["live"] = live

        # More than a page: 20 per page.
        for _ in range(max(0, 21 - self.jobs_total())):
            api(h, "POST", "/api/v1/tasks/hello/$execute?wait=10", {"params": {}}, expect=200)
        total = self.jobs_total()
        pages = (total + 19) // 20
        self.until(f"#page-info to count {total} jobs on {pages} pages",
                   lambda: re.search(fr"\b1 of {pages}\b.*\b{total}\b", self.text("#page-info") or ""),
                   lambda: repr(self.text("#page-info")))
        self.click("#page-next")
        second = [j["id"] for j in api(h, "GET", "/api/v1/jobs?page=2&size=20", expect=200)["items"]]
        self.until("the API's second page", lambda: ids() == second, self.rows)
        require("page=2" in self.hash_route(), "the hash says page=2", self.hash_route())
        self.click("#page-prev")
        self.until("the first page again", lambda: ids() == [j["id"] for j in api(
            h, "GET", "/api/v1/jobs?page=1&size=20")["items"]], self.rows)

        Select(self.el("select#status-filter")).select_by_value("failed")
        failed = [j["id"] for j in api(h, "GET", "/api/v1/jobs?page=1&size=20&status_filter=failed",
                                       expect=200)["items"]]
        self.until("only the failed jobs", lambda: ids() == failed and all(s == "failed" for _, s in self.rows()),
                   self.rows)
        require("status=failed" in self.hash_route(), "the hash says status=failed", self.hash_route())
        more = api(h, "POST", "/api/v1/tasks/failing_task/$execute", {"params": {}}, expect=202)["job_id"]
        self.until("a failed job submitted over HTTP to be listed", lambda: more in ids(), self.rows)
        require(all(s == "failed" for _, s in self.rows()), "the filtered list holds failed jobs only", self.rows())
        require(self.js("return window.__noReload === true;"), "the page was not reloaded")
        return f"{total} jobs newest first, a job over HTTP listed live, page 2 of {pages}, filter failed"

    def check_job_delete(self):
        """Delete on a job page takes two clicks, then the job is gone and the list is shown."""
        job = self.jobs["live"]
        self.open(self.host, f"#/jobs/{job}", "job")
        self.until('#job-status[data-status="completed"]', lambda: self.job_status() == "completed", self.job_status)
        before = self.el("#job-delete").text
        self.click("#job-delete")
        self.until('#job-delete to ask "Confirm delete"', lambda: "Confirm" in self.el("#job-delete").text,
                   lambda: self.el("#job-delete").text)
        require(call(self.host, "GET", f"/api/v1/jobs/{job}").status == 200, "one click deletes nothing")
        self.click("#job-delete")
        self.until("the job to be deleted", lambda: call(self.host, "GET", f"/api/v1/jobs/{job}").status == 404)
        self.until("the jobs list", lambda: self.hash_route().startswith("#/jobs") and
                   "/" not in self.hash_route()[len("#/jobs"):].split("?")[0], self.hash_route)
        self.wait_view("jobs")
        self.until("the deleted job to be gone from the list", lambda: job not in [r[0] for r in self.rows()])
        return f"{before!r} -> 'Confirm delete' -> job {job} deleted, back on the list"

    def schedule_row(self, schedule):
        return f'tr.schedule-row[data-schedule-id="{schedule}"]'

    def check_schedules(self):
        """The Schedules view: a schedule made through its form (add, every second, UTC) runs, and its row
        shows the runs and a link to the last job, whose page links back to it; Pause shows it paused with
        no next run; a bad cron shows the host's 400 detail; Run now opens the job it made; Delete takes
        two clicks."""
        h = self.host
        before = {s["id"] for s in api(h, "GET", "/api/v1/schedules", expect=200)}
        self.open(h, "#/schedules", "schedules")
        require(self.exists('#nav a[href="#/schedules"][aria-current="page"]'), "the nav marks Schedules")
        defaults = self.js("return ['#schedule-params', '#schedule-tz', '#schedule-enabled'].map(s => {"
                           " const c = document.querySelector(s);"
                           " return c.type === 'checkbox' ? c.checked : c.value; });")
        require(defaults[0].strip() == "{}" and defaults[1] and defaults[2] is True,
                "the form starts with params {}, the browser's time zone and enabled", str(defaults))
        self.until("select#schedule-task to offer add",
                   lambda: self.exists('select#schedule-task option[value="add"]'))
        Select(self.el("select#schedule-task")).select_by_value("add")
        self.type("#schedule-params", '{"a": 1, "b": 2}')
        self.type("#schedule-cron", "* * * * * *")
        self.type("#schedule-tz", "UTC")
        self.click("#schedule-create", center=True)
        made = self.until("the new schedule", lambda: [s for s in api(h, "GET", "/api/v1/schedules", expect=200)
                                                       if s["id"] not in before])[0]
        sid = made["id"]
        try:
            require((made["task_name"], made["params"], made["cron"], made["tz"], made["enabled"], made["source"])
                    == ("add", {"a": 1, "b": 2}, "* * * * * *", "UTC", True, "api"),
                    "the schedule holds the form's values", json.dumps(made))
            return self.follow_schedule(sid)
        finally:  # a failure part-way must not leave a job made every second for the later checks
            if call(h, "GET", f"/api/v1/schedules/{sid}").status == 200:
                api(h, "DELETE", f"/api/v1/schedules/{sid}")

    def follow_schedule(self, sid):
        h = self.host
        row = self.schedule_row(sid)
        self.until(f"{row}, highlighted", lambda: self.exists(f"{row}.highlight"), self.view_state)
        require(self.hash_route() == f"#/schedules?id={sid}", "the hash names the new schedule", self.hash_route())
        runs = lambda: int((self.text(f"{row} td.runs") or "0").strip() or 0)
        last_job = lambda: self.js("const a = document.querySelector(arguments[0]);"
                                   "return a && a.getAttribute('href');", f"{row} td.last-run a[href^='#/jobs/']")
        self.until("the row to show runs >= 1 and a last-run job link", lambda: runs() >= 1 and last_job(),
                   lambda: self.text(row))
        cells = self.js("return [...document.querySelector(arguments[0]).cells].map(c => c.textContent.trim());", row)
        require(cells[1] == "* * * * * *UTC" and cells[2].startswith("active") and cells[3] == "API",
                "the row shows its cron, time zone, state and source", str(cells))
        require(self.exists(f'{row} a[href="#/tasks/add"]'), "the row links its task")
        self.screenshot("schedules-running")

        href = last_job()
        job = re.fullmatch(f"#/jobs/({ULID})", href).group(1)
        self.open(h, href, "job")
        require(api(h, "GET", f"/api/v1/jobs/{job}", expect=200)["schedule_id"] == sid,
                "the API's job names the schedule")
        link = f'#job-schedule[href="#/schedules?id={sid}"]'
        self.until(f"the job page's Schedule row ({link})", lambda: self.exists(link),
                   lambda: self.text("#job-timings"))
        require("Schedule" in (self.text("#job-timings") or ""), "#job-timings has a Schedule row")
        self.screenshot("schedule-job")
        self.click("#job-schedule")
        self.wait_view("schedules")
        self.until(f"{row} highlighted again", lambda: self.exists(f'{row}.highlight[aria-current="true"]'))

        self.click(f'{row} button[data-action="toggle"]', center=True)
        state = lambda: self.js("const r = document.querySelector(arguments[0]); return r && [r.dataset.enabled,"
                                " r.querySelector('.badge').textContent,"
                                " r.querySelector('td.next-run').textContent.trim(),"
                                " r.querySelector('button[data-action=\"toggle\"]').textContent];", row)
        self.until("the row to show paused, next run —, and Resume",
                   lambda: state() == ["false", "paused", "—", "Resume"], state)
        record = api(h, "GET", f"/api/v1/schedules/{sid}", expect=200)
        require(not record["enabled"] and record["next_run_at"] is None, "the API says paused, no next run",
                json.dumps(record))
        self.screenshot("schedule-paused")

        self.expect_network(r"/api/v1/schedules - Failed to load resource: .* status of 400")
        count = len(api(h, "GET", "/api/v1/schedules", expect=200))
        self.type("#schedule-cron", "61 * * * *")
        self.click("#schedule-create", center=True)
        detail = "cron field 'minute': 61 is out of range 0-59"
        self.until("#schedule-error to show the host's detail", lambda: detail in (self.text("#schedule-error") or ""),
                   lambda: repr(self.text("#schedule-error")))
        require(len(api(h, "GET", "/api/v1/schedules", expect=200)) == count, "no schedule was made")
        self.screenshot("schedule-bad-cron")

        made_runs = api(h, "GET", f"/api/v1/schedules/{sid}", expect=200)["runs"]
        self.click(f'{row} button[data-action="trigger"]', center=True)
        m = self.until("the triggered job's page", lambda: re.fullmatch(f"#/jobs/({ULID})", self.hash_route()),
                       self.view_state)
        self.wait_view("job")
        triggered = m.group(1)
        require(triggered != job, "Run now made another job")
        require(api(h, "GET", f"/api/v1/jobs/{triggered}", expect=200)["schedule_id"] == sid,
                "the triggered job names the schedule")
        self.until("its Schedule row", lambda: self.exists(link))

        self.open(h, "#/schedules", "schedules")
        self.until(f"the row to count the run ({made_runs + 1}) and link job {triggered}",
                   lambda: runs() == made_runs + 1 and last_job() == f"#/jobs/{triggered}", lambda: self.text(row))
        self.click(f'{row} button[data-action="delete"]', center=True)
        self.until("Delete to ask to confirm", lambda: "Confirm" in self.el(f'{row} button[data-action="delete"]').text)
        require(call(h, "GET", f"/api/v1/schedules/{sid}").status == 200, "one click deletes nothing")
        self.click(f'{row} button[data-action="delete"]', center=True)
        self.until("the schedule to be deleted", lambda: call(h, "GET", f"/api/v1/schedules/{sid}").status == 404)
        self.until("its row to go", lambda: not self.exists(row))
        return (f"schedule {sid} ran {made_runs} times (job {job} links back), paused, {detail!r} shown, "
                f"Run now -> job {triggered}, deleted")

    def place(self, fixture, file):
        """Puts the fixture plugin `fixture` into the host's plugins folder as `file`, the way a deploy
        should: a new file renamed over the old one."""
        temp = os.path.join(self.plugins, f".{file}.partial")
        shutil.copyfile(os.path.join(self.fixtures, fixture), temp)
        os.chmod(temp, 0o755)
        os.replace(temp, os.path.join(self.plugins, file))

    def report(self, kind):
        return self.js("return [...document.querySelectorAll(arguments[0])].map(li => li.textContent);",
                       f'#reload-report ul[data-kind="{kind}"] li')

    def active_row(self, file):
        """The text of `file`'s active row (cells separated by tabs), or None."""
        return self.js("const r = [...document.querySelectorAll(arguments[0])]"
                       ".find(r => r.querySelector('.state[data-state=\"active\"]'));"
                       "return r ? r.innerText : null;", f'tr.plugin-row[data-file="{file}"]')

    def check_plugin_reload(self):
        """A plugin added to the folder, then replaced by a new version, through the Reload button."""
        h = self.host
        self.open(h, "#/plugins", "plugins")
        files = sorted(p["file"] for p in api(h, "GET", "/api/v1/plugins", expect=200))
        for file in files:
            require(self.active_row(file), f"{file} is listed as active",
                    str(self.js("return [...document.querySelectorAll('tr.plugin-row')].map(r => r.outerHTML);")))

        def put(fixture):
            self.place(fixture, "versioned.so")

        put("versioned_v1.so")
        self.click("#reload")
        self.until("versioned.so in the report's added list",
                   lambda: any("versioned.so" in t for t in self.report("added")),
                   lambda: self.text("#reload-report"))
        summary = self.text("#reload-report")
        require(re.search(rf"\b{len(files)} unchanged in [\d.]+ ?ms", summary), "the report says what is unchanged",
                repr(summary))
        self.until("versioned.so 1.0.0 active", lambda: "1.0.0" in (self.active_row("versioned.so") or ""),
                   lambda: self.active_row("versioned.so"))
        v1 = self.active_row("versioned.so")
        added = self.report("added")

        put("versioned_v2.so")
        self.click("#reload")
        self.until("versioned.so in the report's replaced list",
                   lambda: any("versioned.so" in t for t in self.report("replaced")),
                   lambda: self.text("#reload-report"))
        require(not any("versioned.so" in t for t in self.report("added")), "the report is the new answer's",
                str(self.report("added")))
        self.until("versioned.so 2.0.0 active", lambda: "2.0.0" in (self.active_row("versioned.so") or ""),
                   lambda: self.active_row("versioned.so"))
        require(api(h, "GET", "/api/v1/tasks/which_version", expect=200)["plugin"]["version"] == "2.0.0",
                "the API serves version 2")
        v2 = self.active_row("versioned.so")
        row = lambda text: " ".join(text.split())
        return f"added {added} ({row(v1)!r}); replaced {self.report('replaced')} ({row(v2)!r})"

    def check_plugin_states(self):
        """A plugin the host refuses (wrong_abi.so: ABI major 99) added through the Reload button: the
        report lists it as refused with its reason, its row says refused and why, as GET /api/v1/plugins
        does; then it is taken out again (Reload lists it as removed, the host is healthy again)."""
        h, file = self.host, "wrong_abi.so"
        target = os.path.join(self.plugins, file)
        row = f'tr.plugin-row[data-file="{file}"]'
        rows = lambda: self.js("return [...document.querySelectorAll(arguments[0])].map(r => [(r.querySelector"
                               "('.state') || {dataset: {}}).dataset.state, r.textContent]);", row)
        self.open(h, "#/plugins", "plugins")
        require(not self.exists(row), f"{file} is not listed before it is in the folder")
        try:
            self.place(file, file)
            self.click("#reload")
            self.until(f"{file} in the report's refused list", lambda: any(file in t for t in self.report("refused")),
                       lambda: self.text("#reload-report"))
            entry = next((p for p in api(h, "GET", "/api/v1/plugins", expect=200) if p["file"] == file), None)
            require(entry and entry["state"] == "refused" and entry["error"], f"the API says {file} is refused",
                    json.dumps(entry))
            reason = entry["error"]
            require("ABI" in reason and "99" in reason, "the reason is the ABI major 99", reason)
            refused = self.report("refused")
            require(refused == [f"{file}: {reason}"], "the refused list names it with its reason (as the API)",
                    f"refused {refused}\n  API reason {reason!r}")
            require(not any(file in t for kind in ("added", "replaced", "removed") for t in self.report(kind)),
                    f"{file} is in no other list", self.text("#reload-report"))
            self.until(f"{file}'s row to say refused and why",
                       lambda: len(rows()) == 1 and rows()[0][0] == "refused" and reason in rows()[0][1], rows)
            require(self.exists(f'{row} .state[data-state="refused"]'), f'{row} .state[data-state="refused"]')
            self.screenshot("plugin-states-refused")

            self.until("#reload to be enabled again", lambda: self.el("#reload").is_enabled())
            os.remove(target)
            self.click("#reload")
            self.until(f"{file} in the report's removed list", lambda: any(file in t for t in self.report("removed")),
                       lambda: self.text("#reload-report"))
            self.until(f"{file}'s row to go", lambda: not rows(), rows)
        finally:  # whatever failed, the other checks get the folder and host they expect
            if os.path.exists(target):
                os.remove(target)
                api(h, "POST", "/api/v1/plugins/$reload")
        require(all(p["file"] != file for p in api(h, "GET", "/api/v1/plugins", expect=200)),
                f"the API no longer lists {file}")
        health = api(h, "GET", "/health", expect=200)
        require(health["status"] == "healthy", "the host is healthy again", json.dumps(health))
        return f"{file} refused: {reason!r} in the report and its row (state refused); removed again, host healthy"

    def tree_node(self, artifact, label):
        return self.exists(f'#artifact-tree .tree-node[data-artifact-id="{artifact}"][data-level-label="{label}"]')

    def check_artifact_tree(self):
        """An artifact's page shows its $tree with level labels; one created through the form."""
        h = self.host
        parent = api(h, "POST", "/api/v1/artifacts", {"data": {"kind": "parent", "n": 1}}, expect=201)["id"]
        child = api(h, "POST", "/api/v1/artifacts", {"data": [1, 2, 3], "parent_id": parent}, expect=201)["id"]
        self.open(h, f"#/artifacts/{parent}", "artifact")
        tree = lambda: self.js("return [...document.querySelectorAll('#artifact-tree .tree-node')]"
                               ".map(n => [n.dataset.artifactId, n.dataset.levelLabel]);")
        self.until("the parent (task_run) and child (output) tree nodes",
                   lambda: self.tree_node(parent, "task_run") and self.tree_node(child, "output"), tree)
        require(self.js("const p = document.querySelector(`.tree-node[data-artifact-id='${arguments[0]}']`);"
                        "const c = document.querySelector(`.tree-node[data-artifact-id='${arguments[1]}']`);"
                        "return p !== c && p.contains(c);", parent, child), "the child's node is inside the parent's")
        for artifact, label in ((parent, "task_run"), (child, "output")):
            node = self.text(f'.tree-node[data-artifact-id="{artifact}"]')
            require(label in node and artifact in node, f"the {label} node shows its label and id", repr(node))
        require(self.exists(f'#artifact-tree a[href="#/artifacts/{child}"]'), "the child's node links it")
        require('"parent"' in (self.text("#artifact-json") or "") or "parent" in (self.text("#artifact-json") or ""),
                "#artifact-json shows the data", repr(self.text("#artifact-json")))

        self.open(h, "#/artifacts", "artifacts")
        listed = self.js("return [...document.querySelectorAll('tr.artifact-row')].map(r => r.dataset.artifactId);")
        # Newest first, 20 a page, as the jobs (the API lists them oldest first).
        first = [a["id"] for a in reversed(api(h, "GET", "/api/v1/artifacts?limit=1000", expect=200))][:20]
        require(listed == first, "the list shows the 20 newest artifacts, newest first",
                f"listed {listed}\n  newest {first}")
        require(self.exists(f'tr.artifact-row a[href="#/artifacts/{first[0]}"]'), "a row links its artifact")
        since = self.js("return performance.now();")
        self.type("textarea#artifact-data", "{not json")
        self.click("#artifact-create")
        self.until("#artifact-create-error for bad JSON", lambda: (self.text("#artifact-create-error") or "").strip())
        require(not self.requests(r"/api/v1/artifacts$", since), "bad JSON is not sent",
                str(self.requests(r"/api/v1/artifacts$", since)))
        data = {"made_by": "console", "values": [1, 2]}
        self.type("textarea#artifact-data", json.dumps(data))
        self.type("input#artifact-parent", parent)
        self.click("#artifact-create")
        m = self.until("the new artifact's page", lambda: re.fullmatch(f"#/artifacts/({ULID})", self.hash_route())
                       if self.hash_route() not in (f"#/artifacts/{parent}", f"#/artifacts/{child}") else None,
                       self.hash_route)
        created = m.group(1)
        self.wait_view("artifact")
        record = api(h, "GET", f"/api/v1/artifacts/{created}", expect=200)
        require(record["data"] == data and record["parent_id"] == parent, "the artifact holds the form's data",
                json.dumps(record))
        self.until("its tree node (output)", lambda: self.tree_node(created, "output"), tree)
        self.created_artifact = created
        self.open(h, f"#/artifacts/{parent}", "artifact")
        self.until("the parent's tree with both children",
                   lambda: self.tree_node(child, "output") and self.tree_node(created, "output"), tree)
        return f"tree of {parent}: task_run + output {child}; created {created} (parent {parent}) from the form"

    def check_artifact_delete(self):
        """Delete on an artifact page takes two clicks."""
        artifact = self.created_artifact
        self.open(self.host, f"#/artifacts/{artifact}", "artifact")
        self.click("#artifact-delete")
        self.until('#artifact-delete to ask "Confirm"', lambda: "Confirm" in self.el("#artifact-delete").text,
                   lambda: self.el("#artifact-delete").text)
        require(call(self.host, "GET", f"/api/v1/artifacts/{artifact}").status == 200, "one click deletes nothing")
        self.click("#artifact-delete")
        self.until("the artifact to be deleted",
                   lambda: call(self.host, "GET", f"/api/v1/artifacts/{artifact}").status == 404)
        self.until("a view other than the deleted artifact", lambda: artifact not in self.hash_route(),
                   self.hash_route)
        return f"artifact {artifact} deleted after 'Confirm'; now at {self.hash_route()}"

    def check_health(self):
        """The health view: state, checks, figures (the retention setting and the schedule counters too), and
        the chart's bars for jobs finished while it is open; the jobs list's timer stopped when that view was
        left."""
        h = self.host
        self.open(h, "#/jobs", "jobs")
        self.open(h, "#/health", "health")
        left = self.js("return performance.now();")
        self.until('#health-status[data-status="healthy"]',
                   lambda: self.exists('#health-status[data-status="healthy"]'),
                   lambda: self.js("const s = document.querySelector('#health-status'); return s && s.outerHTML;"))
        require("database" in (self.text("ul#health-checks") or ""), "ul#health-checks lists the database check",
                repr(self.text("ul#health-checks")))
        system = api(h, "GET", "/api/v1/system", expect=200)
        require(str(system["workers"]) in (self.text("#workers") or ""), "#workers", repr(self.text("#workers")))
        require(re.search(rf"\d+ / {system['queue_capacity']}\b", self.text("#queue-depth") or ""), "#queue-depth",
                repr(self.text("#queue-depth")))
        require(self.exists("#jobs-running") and self.exists("#jobs-per-second"), "#jobs-running and #jobs-per-second")
        # The host runs with the default retention: finished jobs kept 7 days.
        require((self.text("#retention") or "").strip() == "for 7 days", "#retention states the retention setting",
                repr(self.text("#retention")))
        runs = system["schedules"]
        counters = f"{runs['runs_made']} / {runs['runs_failed']} / {runs['runs_caught_up']}"
        self.until(f"#schedule-runs to say {counters} (made / failed / caught up)",
                   lambda: (self.text("#schedule-runs") or "").strip() == counters,
                   lambda: repr(self.text("#schedule-runs")))
        require(self.exists("svg#chart"), "svg#chart is drawn")
        # Jobs that finish between two samples of /metrics (every 5 s) become bars: one of each
        # kind is submitted every 2 s until they show (the first sample's time is the page's).
        submitted = [0.0]

        def bars():
            if time.monotonic() - submitted[0] >= 2:
                submitted[0] = time.monotonic()
                for task in ("greet_user", "failing_task"):
                    api(h, "POST", f"/api/v1/tasks/{task}/$execute", {"params": {}}, expect=202)
            return self.js("const tall = k => [...document.querySelectorAll(`svg#chart rect.${k}`)]"
                           "  .some(r => parseFloat(r.getAttribute('height')) > 0);"
                           "return tall('bar-completed') && tall('bar-failed');")
        self.until("bars for completed and failed jobs", bars,
                   lambda: self.js("return document.querySelector('svg#chart').outerHTML.slice(0, 800);"))
        polls = self.requests(r"/api/v1/jobs(\?|$)", left + 500)
        require(not polls, "the jobs list stopped fetching once left", str(polls))
        return (f"healthy; workers {self.text('#workers').strip()}, queue {self.text('#queue-depth').strip()}, "
                f"schedule runs {counters}; chart bars drawn; no /api/v1/jobs fetch after the jobs view was left")

    def operation(self, path):
        return f'.operation[data-method="get"][data-path="{path}"]'

    def try_it(self, path, params=None):
        """Opens "Try it" on GET `path` (expanding it first if need be), sends, returns pre.try-result."""
        op = self.operation(path)
        if self.js("const d = document.querySelector(arguments[0]); return d.tagName === 'DETAILS' && !d.open;", op):
            self.el(f"{op} > summary").click()
            self.until(f"the try-it button of {path}", lambda: self.shown(f"{op} button.try-it"))
        self.el(f"{op} button.try-it").click()
        for name, value in (params or {}).items():
            self.until(f"input {name} of {path}", lambda: self.shown(f'{op} input[data-param="{name}"]'))
            self.type(f'{op} input[data-param="{name}"]', value)
        self.until(f"the send button of {path}", lambda: self.shown(f"{op} button.try-send"))
        self.el(f"{op} button.try-send").click()
        self.until(f"the answer of {path}", lambda: re.search(r"\b\d{3}\b", self.text(f"{op} pre.try-result") or ""),
                   lambda: repr(self.text(f"{op} pre.try-result")))
        return self.text(f"{op} pre.try-result")

    def check_docs(self):
        """/docs renders /openapi.json: operations by tag, schemas, and "Try it" on GETs."""
        h = self.host
        self.load(h.url + "/docs")
        self.until('body[data-ready="true"]', lambda: self.exists('body[data-ready="true"]'))
        doc = api(h, "GET", "/openapi.json", expect=200)
        ops = self.js("return document.querySelectorAll('.operation').length;")
        documented = sum(len(item) for item in doc["paths"].values())
        require(ops == documented, "an .operation per documented operation", f"{ops} shown, {documented} documented")
        groups = self.js("return document.querySelectorAll('section.tag-group').length;")
        used = {tag for item in doc["paths"].values() for op in item.values() for tag in op.get("tags", [])}
        require(groups == len(used), "a section.tag-group per tag", f"{groups} groups, {len(used)} tags")
        require(self.exists('section#schemas .schema[data-name="JobRecord"]'), "the JobRecord schema is shown")
        require(self.exists(self.operation("/api/v1/tasks")), "GET /api/v1/tasks is listed")
        result = self.try_it("/api/v1/tasks")
        require(re.search(r"\b200\b", result) and '"add"' in result, "try-it on GET /api/v1/tasks: 200 and the tasks",
                result[:300])
        one = self.try_it("/api/v1/tasks/{name}", {"name": "greet_user"})
        require(re.search(r"\b200\b", one) and '"greet_user"' in one, "try-it with a path parameter: 200", one[:300])
        return f"{ops} operations in {groups} tag groups; try-it GET /api/v1/tasks and /api/v1/tasks/greet_user: 200"

    def key_dialog_open(self):
        return self.js("const d = document.querySelector('dialog#key-dialog'); return !!d && d.open;")

    def check_api_key(self):
        """With API keys on: the console asks for one, shows the 401 detail of a wrong one, keeps the
        right one in sessionStorage only; /docs uses it too; Forget removes it."""
        k = self.keyed
        self.expect_network(r"Failed to load resource: the server responded with a status of 401")
        self.load(k.url + "/")
        self.until("dialog#key-dialog to open", self.key_dialog_open, self.view_state)
        require(self.js("return document.querySelector('#key-input').type;") == "password",
                "the key input is a password")
        self.type("#key-input", "wrong-key")
        self.click("#key-submit")
        self.until("#key-error to say Invalid API key", lambda: "Invalid API key" in (self.text("#key-error") or ""),
                   lambda: repr(self.text("#key-error")))
        require(self.key_dialog_open(), "the dialog stays open after a wrong key")
        self.screenshot("api-key-wrong")
        self.type("#key-input", API_KEY)
        self.click("#key-submit")
        self.until("the dialog to close", lambda: not self.key_dialog_open(), lambda: repr(self.text("#key-error")))
        self.wait_view("tasks")
        require(self.exists('.task-row[data-task="add"]'), "the tasks are listed with the key")
        stored = self.js("return {session: sessionStorage.getItem('taskhost.apiKey'),"
                         " local: Object.keys(localStorage).map(k => localStorage.getItem(k)),"
                         " cookie: document.cookie};")
        require(stored["session"] == API_KEY, "the key is in sessionStorage['taskhost.apiKey']", str(stored))
        require(not any(API_KEY in (v or "") for v in stored["local"]), "the key is not in localStorage", str(stored))
        require(stored["cookie"] == "" and not self.driver.get_cookies(), "no cookie is set", str(stored))
        require(self.shown("button#key-forget"), "button#key-forget shows while a key is stored")
        self.screenshot("api-key-console")

        self.load(k.url + "/docs")
        self.until('body[data-ready="true"]', lambda: self.exists('body[data-ready="true"]'))
        result = self.try_it("/api/v1/tasks")
        require(re.search(r"\b200\b", result), "/docs's try-it sends the stored key", result[:300])
        self.screenshot("api-key-docs")

        self.load(k.url + "/#/jobs")
        self.wait_view("jobs")
        self.click("button#key-forget")
        self.until("the key to be forgotten",
                   lambda: self.js("return sessionStorage.getItem('taskhost.apiKey');") is None)
        self.until("button#key-forget to hide", lambda: not self.shown("button#key-forget"))
        return "dialog on 401, 'Invalid API key' for a wrong key, tasks with the right one (sessionStorage only), " \
               "docs try-it 200 with it, Forget removes it"

    def check_headers(self):
        """Every console file's headers (both hosts), 304 on If-None-Match, no key needed for them while
        the API needs one, settings.json; and the HTML files' rules (no inline script or style)."""
        sizes = {}
        info = api(self.host, "GET", "/api/v1/info", expect=200)
        files = list(CONSOLE_FILES)
        for page in ("/", "/docs"):
            html = call(self.host, "GET", page).body.decode()
            for path in re.findall(r'(?:href|src)="(/console/[^"?#]+)"', html):
                if path not in [f for f, _ in files]:
                    files.append((path, TYPES.get(os.path.splitext(path)[1], "?")))
        problems = []  # every file's every header is checked, and all that is wrong reported at once

        def expect(cond, what, got):
            if not cond:
                problems.append(f"{what}: got {got}")
        for host, keyed in ((self.host, False), (self.keyed, True)):
            for path, ctype in files:
                r = call(host, "GET", path)
                where = f"GET {path}" + (" (keyed host, no key)" if keyed else "")
                if r.status != 200:
                    problems.append(f"{where}: 200: got {r.status}")
                    continue
                got = {k: r.headers.get(k) for k in ("content-type", "cache-control", "x-content-type-options",
                                                     "referrer-policy", "content-security-policy", "etag")}
                expect(got["content-type"] == ctype, f"{where}: Content-Type {ctype}", got["content-type"])
                expect(got["cache-control"] == "no-cache", f"{where}: Cache-Control no-cache", got["cache-control"])
                expect(got["x-content-type-options"] == "nosniff", f"{where}: nosniff", got["x-content-type-options"])
                expect(got["referrer-policy"] == "no-referrer", f"{where}: Referrer-Policy no-referrer",
                       got["referrer-policy"])
                expect(got["content-security-policy"] == CSP, f"{where}: the contract's CSP",
                       got["content-security-policy"])
                if not re.fullmatch(r'"[^"]+"', got["etag"] or ""):
                    problems.append(f"{where}: a strong ETag: got {got['etag']}")
                else:
                    again = call(host, "GET", path, headers={"If-None-Match": got["etag"]})
                    expect(again.status == 304 and again.body == b"", f"{where}: If-None-Match answers 304",
                           f"{again.status}, {len(again.body)} bytes")
                    expect(again.headers.get("etag") == got["etag"], f"{where}: the 304 carries the ETag",
                           again.headers.get("etag"))
                if not keyed:
                    sizes[path] = len(r.body)
                if path == "/console/settings.json":
                    settings = r.json()
                    expected = {"version": info["version"], "display_name": info["display_name"],
                                "api_key_header": "X-API-Key" if keyed else None}
                    expect(settings == expected, f"{where}: the settings {json.dumps(expected)}", json.dumps(settings))
        r = call(self.keyed, "GET", "/api/v1/tasks")
        expect(r.status == 401 and b"Missing authentication header: X-API-Key" in r.body,
               "the keyed host's /api/v1/tasks answers 401 without the key", f"{r.status} {r.body[:200]!r}")
        r = call(self.keyed, "GET", "/api/v1/tasks", headers={"X-API-Key": API_KEY})
        expect(r.status == 200, "the keyed host's /api/v1/tasks answers with the key", r.status)
        expect(call(self.host, "GET", "/docs").body == call(self.host, "GET", "/redoc").body, "/redoc is /docs",
               "another page")

        # What the CSP would refuse, read from the files (the browser log shows only what ran).
        for path in ("/", "/docs"):
            html = call(self.host, "GET", path).body.decode()
            for link in ('<link rel="icon" href="/console/icon.svg">', '<link rel="manifest" href="/manifest.json">'):
                expect(link in html, f"{path} has {link}", "none")
            inline = re.findall(r"<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", html, re.I)
            expect(not inline, f"{path}: no inline script, style or handler", inline)
        for path in ("/console/console.js", "/console/docs.js"):
            source = call(self.host, "GET", path).body.decode()
            bad = re.findall(r"\beval\(|new Function|insertAdjacentHTML|document\.write|outerHTML\s*=|"
                             r"innerHTML\s*=\s*(?![\"'`]{2})|setAttribute\(\s*[\"']style", source)
            expect(not bad, f"{path} builds the DOM without HTML strings, eval or style attributes", bad)
            expect('"use strict"' in source[:2000], f"{path} is strict", "no \"use strict\"")
        manifest = json.loads(call(self.host, "GET", "/manifest.json").body)
        expect(manifest.get("name"), "the manifest names the app", json.dumps(manifest))
        # The screenshot shows the console (a JSON file would make Chrome ask for /favicon.ico).
        self.open(self.host, "#/tasks", "tasks")
        over = {p: n for p, n in sizes.items() if p in SIZE_BUDGET and n > SIZE_BUDGET[p]}
        total = sum(n for p, n in sizes.items() if p not in ("/redoc", "/console/settings.json"))
        size_note = f"sizes {sizes} (total {total} bytes)" + (f"; over the budget: {over}" if over else "")
        require(not problems, f"{len(problems)} problems", "\n  ".join(problems + [size_note]))
        return f"{len(files)} files on both hosts: types, no-cache, ETag/304, CSP, nosniff, no key needed; {size_note}"

    # ---- the runner ----------------------------------------------------------------------

    def screenshot(self, name):
        path = os.path.join(self.out, f"{len(self.screenshots) + 1:02d}-{name}.png")
        self.driver.save_screenshot(path)
        self.screenshots.append(path)

    def run(self, checks):
        passed = failed = 0
        for name, check in checks:
            self.allowed = []
            started = time.monotonic()
            try:
                outcome, error = check(), None
            except Failure as f:
                outcome, error = None, str(f)
            except Exception as e:  # the page was not what the check could read: a failure too
                outcome, error = None, unexpected(e)
            try:
                self.screenshot(name)
            except Exception as e:
                error = (error + "\n" if error else "") + f"no screenshot: {e}"
            problems = self.log_problems()
            if problems:
                error = (error + "\n" if error else "") + "browser log:\n" + "\n".join(
                    f"  {p['level']} {p['source']}: {p['message']}" for p in problems)
            took = time.monotonic() - started
            if error:
                failed += 1
                print(f"FAIL: {name} ({took:.1f} s): {error}", flush=True)
            else:
                passed += 1
                print(f"PASS: {name} ({took:.1f} s): {outcome}", flush=True)
        return passed, failed


def unexpected(e):
    """An exception a check did not raise itself, with where in this file it came from (without
    WebDriver's own stack trace)."""
    message = getattr(e, "msg", None) or str(e)
    here = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == os.path.abspath(__file__)]
    where = "".join(f"\n  at line {f.lineno}: {f.line}" for f in here[-2:])
    return f"{e.__class__.__name__}: {message.strip()}{where}"


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    binary, examples, fixtures, out = sys.argv[1:]
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"SKIP: {path} is missing (Debian's chromium and chromium-driver)")
            return 77
    if SELENIUM_MISSING:
        print(f"SKIP: the selenium module is missing (Debian's python3-selenium): {SELENIUM_MISSING}")
        return 77
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old.endswith(".png"):
            os.remove(os.path.join(out, old))
    started = time.monotonic()
    hosts, driver = [], None
    with tempfile.TemporaryDirectory(prefix="taskhost-browser-") as work:
        try:
            plugins = os.path.join(work, "plugins")
            os.makedirs(plugins)
            for name in sorted(os.listdir(examples)):
                if name.endswith(".so"):
                    shutil.copy2(os.path.join(examples, name), os.path.join(plugins, name))
            for name in ("host", "keyed-host"):
                os.makedirs(os.path.join(work, name), mode=0o700)
            hosts.append(Host(binary, plugins, os.path.join(work, "host")))
            hosts.append(Host(binary, examples, os.path.join(work, "keyed-host"), flags=("--api-keys", API_KEY)))
            r = call(hosts[0], "GET", "/console/settings.json")
            if r.status != 200:
                raise Failure(f"this taskhost serves no console: GET /console/settings.json is {r.status}")
            driver = start_browser()
            suite = Suite(driver, hosts[0], hosts[1], fixtures, plugins, out)
            checks = [("tasks", suite.check_tasks), ("field-error", suite.check_field_error),
                      ("host-400", suite.check_host_400), ("form-types", suite.check_form_types),
                      ("greet-user", suite.check_greet_user), ("scheduled", suite.check_scheduled),
                      ("retries", suite.check_retries),
                      ("slow-task", suite.check_slow_task), ("failing-task", suite.check_failing_task),
                      ("jobs-list", suite.check_jobs_list), ("job-delete", suite.check_job_delete),
                      ("schedules", suite.check_schedules),
                      ("plugin-reload", suite.check_plugin_reload), ("plugin-states", suite.check_plugin_states),
                      ("artifact-tree", suite.check_artifact_tree),
                      ("artifact-delete", suite.check_artifact_delete), ("health", suite.check_health),
                      ("docs", suite.check_docs), ("api-key", suite.check_api_key), ("headers", suite.check_headers)]
            only = os.environ.get("TASKHOST_BROWSER_CHECKS")
            if only:
                checks = [c for c in checks if c[0] in only.split(",")]
            passed, failed = suite.run(checks)
            print("screenshots:")
            for path in suite.screenshots:
                print(f"  {path}")
            sys.stdout.flush()
            if failed:
                for host, name in zip(hosts, ("host", "keyed host")):
                    if host.log().strip():
                        print(f"--- {name} stderr ---\n{host.log()[-3000:]}", file=sys.stderr)
        except Exception as f:
            sys.stdout.flush()
            print(f"FAIL: {f}", file=sys.stderr)
            if not isinstance(f, Failure):
                traceback.print_exc()
            for host in hosts:
                print(f"--- taskhost stderr ---\n{host.log()[-3000:]}", file=sys.stderr)
            print("0 passed, 1 failed")
            return 1
        finally:
            try:
                if driver:
                    driver.quit()
            finally:  # the hosts stop even when the driver is already gone
                for host in hosts:
                    host.close()
    print(f"took {time.monotonic() - started:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

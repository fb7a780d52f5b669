"""A real taskhost for the Python tests: started on a free loopback port, and
plain HTTP calls to it (shared by openapi_contract.py and browser/console_test.py)."""

import http.client
import json
import os
import re
import select
import subprocess
import time


class Failure(Exception):
    pass


class Host:
    """A taskhost process on a free port (--port 0, the address read from its
    "listening on" line); stopped (SIGTERM, then SIGKILL) on close. Its database
    and stderr are files in `work`; `flags` are added to the command line."""

    def __init__(self, binary, plugins, work, env=None, flags=()):
        self.stderr = open(os.path.join(work, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [binary, "--plugins", plugins, "--db", os.path.join(work, "db.sqlite"), "--port", "0",
             "--log-level", "warn", *flags],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if m:
                self.address = (m.group(1), int(m.group(2)))
                return
        self.close()
        raise Failure(f"taskhost did not start (last line: {line!r})")

    @property
    def url(self):
        return f"http://{self.address[0]}:{self.address[1]}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def call(host, method, path, body=None, raw=None, headers=None):
    """One request on a connection of its own; `body` is sent as JSON, `raw` as is.
    The answer's header names are lower case."""
    conn = http.client.HTTPConnection(*host.address, timeout=30)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = dict(headers or {})
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()

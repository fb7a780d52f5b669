#!/usr/bin/env python3
"""An fsync that fails is not retried (issue 20).

Runs the host with tests/durability/fail_fsync.c preloaded, so that the WAL's
fsyncs start failing with EIO after a few succeeded. It requires:
- submits answer 503 from then on, naming the fsync failure;
- /health stays unhealthy with that reason, its probes notwithstanding;
- after a restart on a healthy disk, every job acknowledged before the
  failure is there.

usage: fsync_failure.py TASKHOST PLUGINS_DIR SHIM WORK_DIR
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, plugins, db, env):
    port = free_port()
    host = subprocess.Popen([binary, "--db", db, "--plugins", plugins, "--port", str(port), "--sync", "full",
                             "--isolation", "in-process", "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/v1/info")
            if c.getresponse().status == 200:
                return host, port
        except OSError:
            pass
        if host.poll() is not None:
            raise SystemExit("the host exited: " + host.stderr.read().decode(errors="replace")[:500])
        if time.monotonic() > deadline:
            raise SystemExit("the host did not answer within 60 s")
        time.sleep(0.05)


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, json.dumps(body) if body is not None else None, {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read().decode(errors="replace")


def stop(host):
    host.send_signal(signal.SIGTERM)
    try:
        host.wait(30)
    except subprocess.TimeoutExpired:
        host.kill()
        host.wait()


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    binary, plugins, shim, work = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "t.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    env = dict(os.environ, LD_PRELOAD=shim, TASKHOST_FAIL_FSYNC_AFTER="30")
    host, port = start(binary, plugins, db, env)
    acknowledged, refused = [], None
    try:
        for n in range(500):
            status, body = call(port, "POST", "/api/v1/tasks/add/$execute", {"params": {"a": n, "b": 1}})
            if status == 202:
                acknowledged.append(json.loads(body)["job_id"])
                continue
            refused = (status, body)
            break
        if refused is None:
            raise SystemExit("500 submits and no fsync failed: is the shim preloaded?")
        # The batch whose fsync failed answers with SQLite's own words.
        if refused[0] != 503:
            raise SystemExit(f"the first refused submit: {refused}")
        print(f"{len(acknowledged)} jobs acknowledged, then: {refused[0]} {json.loads(refused[1])['detail'][:80]}")
        # Never retried: later submits, and health after its probes, say the same.
        for n in range(5):
            status, body = call(port, "POST", "/api/v1/tasks/add/$execute", {"params": {"a": n, "b": 2}})
            if status != 503 or "fsync failed" not in body:
                raise SystemExit(f"a submit after the failure: {status} {body[:200]}")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            status, body = call(port, "GET", "/health")
            if json.loads(body).get("status") != "unhealthy" or "fsync failed" not in body:
                raise SystemExit(f"/health recovered after an fsync failure: {body[:300]}")
            time.sleep(0.2)
        print("/health: unhealthy, naming the fsync failure, after 3 s of probes")
    finally:
        stop(host)
    host, port = start(binary, plugins, db, dict(os.environ))
    try:
        missing = [job for job in acknowledged if call(port, "GET", f"/api/v1/jobs/{job}")[0] != 200]
        if missing:
            raise SystemExit(f"{len(missing)} acknowledged job(s) missing after the restart, e.g. {missing[0]}")
        print(f"after a restart: all {len(acknowledged)} acknowledged jobs are there")
    finally:
        stop(host)
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""An fsync that fails is not retried (issue 20).

Runs the host with tests/durability/fail_fsync.c preloaded, so that fsyncs
start failing with EIO: first the WAL's (a commit's), then the database
file's (a checkpoint's). Each time it requires:
- submits answer 503 from then on, naming the fsync failure;
- /health stays unhealthy with that reason, its probes notwithstanding;
- after a restart on a healthy disk, every job acknowledged before the
  failure is there.

usage: fsync_failure.py TASKHOST PLUGINS_DIR SHIM WORK_DIR
"""
import hashlib
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


def start(binary, plugins, db, sync, env):
    port = free_port()
    host = subprocess.Popen([binary, "--db", db, "--plugins", plugins, "--port", str(port), "--sync", sync,
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


def digest(path):
    """The file's bytes, hashed: a write of the same size within one mtime tick shows too."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stop(host):
    host.send_signal(signal.SIGTERM)
    try:
        host.wait(30)
    except subprocess.TimeoutExpired:
        host.kill()
        host.wait()


def scenario(binary, plugins, shim, work, name, sync, suffix, arm_after, reason):
    """Arms the shim for files ending in `suffix` once `arm_after` jobs were
    acknowledged, then submits until one is refused."""
    print(f"--- {name} (--sync {sync})")
    db = os.path.join(work, name + ".db")
    armed = os.path.join(work, name + ".armed")
    for path in (db, db + "-wal", db + "-shm", armed):
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ, LD_PRELOAD=shim, TASKHOST_FAIL_FSYNC_ARMED=armed, TASKHOST_FAIL_FSYNC_SUFFIX=suffix)
    host, port = start(binary, plugins, db, sync, env)
    acknowledged, refused = [], None
    try:
        for n in range(3000):
            if n == arm_after:
                open(armed, "w").close()
            status, body = call(port, "POST", "/api/v1/tasks/add/$execute", {"params": {"a": n, "b": 1}})
            if status == 202:
                acknowledged.append(json.loads(body)["job_id"])
                continue
            refused = (status, body)
            break
        if refused is None:
            raise SystemExit("3000 submits and no fsync failed: is the shim preloaded?")
        if refused[0] != 503 or "fsync failed" not in refused[1]:
            raise SystemExit(f"the first refused submit: {refused}")
        detail = json.loads(refused[1])["detail"]
        print(f"{len(acknowledged)} jobs acknowledged, then: {refused[0]} {detail[:100]}")
        # The batch whose commit fsync failed was written to the WAL first:
        # only a restart can tell whether it was kept, and it says so. (A
        # checkpoint's failure latches between batches: then the first
        # refusal is already one that wrote nothing.)
        if "fsync failed" in detail and "known only after a restart" not in detail and \
                "refused until the host is restarted" not in detail:
            raise SystemExit(f"the first refusal does not say what became of it: {detail}")
        files = {path: digest(path) for path in (db, db + "-wal") if os.path.exists(path)}
        # Never retried: later submits, and health after its probes, say the same.
        for n in range(5):
            status, body = call(port, "POST", "/api/v1/tasks/add/$execute", {"params": {"a": n, "b": 2}})
            if status != 503 or "fsync failed" not in body:
                raise SystemExit(f"a submit after the failure: {status} {body[:200]}")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            status, body = call(port, "GET", "/health")
            if json.loads(body).get("status") != "unhealthy" or "fsync failed" not in body or reason not in body:
                raise SystemExit(f"/health recovered after an fsync failure, or does not say why: {body[:300]}")
            time.sleep(0.2)
        print(f"/health: unhealthy, naming the fsync failure ({reason!r}), after 3 s of probes")
    finally:
        stop(host)
    # Nothing is written after the latch: not the later submits, not a
    # probe, not a checkpoint, not SQLite's checkpoint as the host stops.
    for path, before in files.items():
        if digest(path) != before:
            raise SystemExit(f"{os.path.basename(path)} was written after the fsync failure")
    print(f"nothing written after the failure, up to the host's exit "
          f"({', '.join(os.path.basename(p) for p in files)} unchanged)")
    host, port = start(binary, plugins, db, sync, dict(os.environ))
    try:
        missing = [job for job in acknowledged if call(port, "GET", f"/api/v1/jobs/{job}")[0] != 200]
        if missing:
            raise SystemExit(f"{len(missing)} acknowledged job(s) missing after the restart, e.g. {missing[0]}")
        print(f"after a restart: all {len(acknowledged)} acknowledged jobs are there")
        # The refused submits are gone, but for the one whose batch was in
        # the WAL when its fsync failed (it may have been kept).
        status, body = call(port, "GET", "/api/v1/jobs?page=1&size=1")
        total = json.loads(body)["total"]
        if not len(acknowledged) <= total <= len(acknowledged) + 1:
            raise SystemExit(f"{total} jobs after the restart, for {len(acknowledged)} acknowledged")
        print(f"and {total - len(acknowledged)} of the refused ones")
    finally:
        stop(host)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    binary, plugins, shim, work = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    # A commit's own fsync of the WAL.
    scenario(binary, plugins, shim, work, "wal", "full", "-wal", 20, "disk I/O error")
    # A checkpoint's fsync of the database file (after ~1,000 WAL pages),
    # which happens under either setting.
    scenario(binary, plugins, shim, work, "checkpoint", "normal", "checkpoint.db", 0, "WAL checkpoint failed")
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The order of writes, fsyncs and acknowledgements, not their timing (issue 20).

Runs the host under Debian's strace, recording the WAL's writes and fsyncs and
every send on a socket, while several clients submit jobs (plain submits,
answered 202, and ?wait submits, answered 200 with the finished job). For each
job it finds the WAL write that carries the job's id and the first send that
names it, and requires, with --sync full, an fsync of the WAL between the two:
no client hears of a job before the commit holding it is on disk. With --sync
normal it shows that the opposite happens (that is what normal allows).

usage: sync_order.py TASKHOST PLUGINS_DIR WORK_DIR
Exits 77 (skipped) when strace is missing or ptrace is not permitted.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SKIPPED = 77
CLIENTS, JOBS_PER_CLIENT = 4, 20

LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIPPED)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_buffer(args):
    """The bytes of the first string argument strace printed (with -xx)."""
    m = HEX.search(args)
    return bytes.fromhex(m.group(1).replace("\\x", "")) if m else b""


def result(text):
    m = re.search(r"=\s+(-?\d+)", text.rsplit(")", 1)[-1] if ")" in text else text)
    return int(m.group(1)) if m else None


def parse(log_path, ids):
    """Events in the order strace saw them: a syscall's arguments when it
    started, its result when it ended (an interleaved call is split into
    '<unfinished ...>' and '<... resumed>' lines)."""
    wal_fds, syncs = set(), []
    written, acked = {}, {}
    started = {}  # pid -> (name, args) of a call left unfinished
    encoded = {i: i.encode() for i in ids}
    with open(log_path, errors="replace") as log:
        for index, raw in enumerate(log):
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, rest = m.groups()
            resumed = RESUMED.match(rest)
            if resumed:
                name, tail = resumed.groups()
                args = started.pop(pid, (name, ""))[1] + tail
                finished = True
            else:
                call = CALL.match(rest)
                if not call:
                    continue
                name, args = call.groups()
                finished = not args.endswith("<unfinished ...>")
                if not finished:
                    args = args[: -len("<unfinished ...>")].rstrip()
                    started[pid] = (name, args)
                # Arguments are known at the start.
                if name in ("pwrite64", "write") and int(args.split(",", 1)[0]) in wal_fds:
                    data = first_buffer(args)
                    for job, key in encoded.items():
                        if job not in written and key in data:
                            written[job] = index
                elif name in ("sendto", "write", "sendmsg", "writev") and args.split(",", 1)[0].isdigit():
                    data = first_buffer(args)
                    if data.startswith(b"HTTP/1.1 20") or data.startswith(b"{"):
                        for job, key in encoded.items():
                            if job not in acked and key in data:
                                acked[job] = index
            if not finished:
                continue
            # Results are known at the end.
            if name == "openat" and first_buffer(args).endswith(b"-wal"):
                fd = result(args)
                if fd is not None and fd >= 0:
                    wal_fds.add(fd)
            elif name == "close":
                fd = args.split(")", 1)[0]
                if fd.isdigit():
                    wal_fds.discard(int(fd))
            elif name in ("fdatasync", "fsync"):
                fd = args.split(")", 1)[0]
                if fd.isdigit() and int(fd) in wal_fds and result(args) == 0:
                    syncs.append(index)
    return written, acked, syncs


def traced_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def submit_all(port):
    ids, failures = [], []
    lock = threading.Lock()

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for k in range(JOBS_PER_CLIENT):
            wait = "?wait=5" if k % 2 else ""
            conn.request("POST", f"/api/v1/tasks/add/$execute{wait}", json.dumps({"params": {"a": n, "b": k}}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            with lock:
                if r.status in (200, 202):
                    doc = json.loads(body)
                    ids.append(doc.get("job_id") or doc.get("id"))
                else:
                    failures.append((r.status, body[:200]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, failures


def run(mode, binary, plugins, work):
    db, log = os.path.join(work, f"{mode}.db"), os.path.join(work, f"{mode}.strace")
    port = free_port()
    host = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", log, "-s", "65536", "-xx",
         "-e", "trace=openat,close,pwrite64,write,writev,fdatasync,fsync,sendto,sendmsg",
         binary, "--db", db, "--plugins", plugins, "--port", str(port), "--sync", mode,
         "--isolation", "in-process", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if host.poll() is not None:
                err = host.stderr.read().decode(errors="replace")
                if "ptrace" in err or "Operation not permitted" in err:
                    skip(f"strace cannot trace here: {err.strip()[:200]}")
                raise SystemExit(f"the host under strace exited: {err[:500]}")
            if time.monotonic() > deadline:
                raise SystemExit("the host under strace did not answer within 60 s")
            time.sleep(0.05)
        ids, failures = submit_all(port)
    finally:
        # The host is strace's child: SIGTERM to it stops it as an operator
        # would (strace itself would only detach).
        for child in traced_children(host.pid):
            os.kill(child, signal.SIGTERM)
        try:
            host.wait(30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()
    if failures:
        raise SystemExit(f"{mode}: submits failed: {failures[:3]}")
    written, acked, syncs = parse(log, ids)
    missing = [i for i in ids if i not in written or i not in acked]
    if missing:
        raise SystemExit(f"{mode}: no WAL write or no acknowledgement found for {len(missing)} job(s), "
                         f"e.g. {missing[0]}")
    unsynced = []
    for job in ids:
        if not any(written[job] < s < acked[job] for s in syncs):
            unsynced.append(job)
        if acked[job] < written[job]:
            raise SystemExit(f"{mode}: job {job} was acknowledged before its WAL write")
    return len(ids), unsynced, len(syncs)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, plugins, work = sys.argv[1:]
    if not shutil.which("strace"):
        skip("strace is not installed (Debian: apt-get install strace)")
    probe = subprocess.run(["strace", "-qq", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        skip(f"ptrace is not permitted here: {probe.stderr.decode(errors='replace').strip()[:200]}")
    os.makedirs(work, exist_ok=True)
    jobs, unsynced, syncs = run("full", binary, plugins, work)
    print(f"full: {jobs} jobs, {syncs} WAL fsyncs, {len(unsynced)} acknowledged before an fsync covered them")
    if unsynced:
        raise SystemExit(f"full: job {unsynced[0]} was acknowledged before an fsync of the WAL that holds it")
    jobs, unsynced, syncs = run("normal", binary, plugins, work)
    print(f"normal: {jobs} jobs, {syncs} WAL fsyncs, {len(unsynced)} acknowledged before an fsync covered them")
    if not unsynced:
        raise SystemExit("normal: every acknowledgement followed an fsync; the test cannot tell the settings apart")
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The order of writes, fsyncs and acknowledgements, not their timing (issue 20).

Runs the host under Debian's strace, recording the WAL's writes and fsyncs and
every send on a socket, in two phases on one host per --sync setting:

- submits: several clients submit jobs at once (plain submits, answered 202,
  and ?wait submits, answered 200 with the finished job);
- queued: with --max-concurrency 2, clients submit slow jobs (202 each), which
  queue and end later in commits of their own, and poll GET /api/v1/jobs/{id}
  (plain and ?wait) until they show a terminal state.

Two checks, for every job:

- acknowledged: the first WAL write that carries the job's id (its insert) and
  the first send that names it (202, or ?wait's 200);
- terminal: the first WAL write whose copy of the job's row has a terminal
  status (the commit that ended it, found by reading the page's record) and
  the first send that shows the job terminal (?wait's 200, or a GET).

Each of those writes is a page of a WAL frame; the rule uses the commit
frame of the same transaction: the first frame at or after it, written by the
same thread, whose header gives the database size (other frames give 0; only
padding after a commit frame repeats it). With --sync full, that frame (header
and page) must have been written before an fsync of the WAL started, and that
fsync must have ended before the send started: no client hears of a job, or
of its end, before the commit holding it is on disk. The first write would not
do: another connection's fsync of the WAL (the checkpointer's, before it
copies) between it and the commit frame would pass a commit that skipped its
own. With --sync normal it shows that the opposite happens (that is what
normal allows).

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
# Two workers and 12 jobs of 50 ms: most are still queued when their 202
# leaves, so their ends are later commits of their own.
WORKERS, QUEUED_PER_CLIENT, SLOW_S = 2, 3, 0.05
STOP_DEADLINE_S = 30

# jobs(id, task_name, params, status, ...): host/store/sqlite/schema.cpp. The
# table is WITHOUT ROWID with id as its key, so a row's record holds its
# columns in that order, the id first.
STATUS_COLUMN = 3
STATUSES = {b"pending", b"scheduled", b"running", b"completed", b"failed", b"canceled"}
TERMINAL = {"completed", "failed", "canceled"}

# A WAL frame: a 24-byte header (big-endian u32s: the page number; for a
# commit frame the database size in pages after it, else 0; salts; checksums)
# and then the page, each by a pwrite64 of its own (some builds coalesce them
# into one). The WAL's own header is 32 bytes at offset 0, written at a reset.
FRAME_HEADER, WAL_HEADER = 24, 32

LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
# pwrite64's count and offset, after its buffer (write has no offset).
COUNT_OFFSET = re.compile(r'"(?:\\x[0-9a-f]{2})*"(?:\.\.\.)?, (\d+), (\d+)')
TERMINAL_TEXT = re.compile(rb'"status"\s*:\s*"(?:completed|failed|canceled)"')


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


def all_buffers(args):
    """Every string argument, joined: writev and sendmsg may split a
    response's head and body between iovecs."""
    return b"".join(bytes.fromhex(s.replace("\\x", "")) for s in HEX.findall(args))


def is_page_size(n):
    return 512 <= n <= 65536 and n & (n - 1) == 0


def commit_of(write, writes):
    """The commit frame of the transaction `write` belongs to: the first
    frame from its own on (or after it, for a page with no header before it:
    one rewritten in place) that the same thread wrote and whose header
    gives a database size. A transaction's frames are all written by the
    thread that commits it, the commit frame last (padding frames, which
    synchronous=FULL may add to fill a sector, give the size too, but after
    it)."""
    for w in writes[(write.frame or write).n:]:
        if w.pid == write.pid and w.header and int.from_bytes(w.header[4:8], "big"):
            return w
    return None


def result(text):
    m = re.search(r"=\s+(-?\d+)", text.rsplit(")", 1)[-1] if ")" in text else text)
    return int(m.group(1)) if m else None


def varint(buf, i):
    """A SQLite varint at buf[i]: (value, index after it), or (None, i)."""
    value = 0
    for n in range(9):
        if i + n >= len(buf):
            return None, i
        b = buf[i + n]
        if n == 8:
            return (value << 8) | b, i + 9
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i + n + 1
    return None, i


def serial_size(t):
    if t >= 12:
        return (t - 12) // 2
    return (0, 1, 2, 3, 4, 6, 8, 8, 0, 0, None, None)[t]


def row_statuses(page, key):
    """The status of each jobs row keyed `key` in a page image. A record is
    its header (its size, then one serial type per column) and then the
    values; the id is the first value, so the header ends where the id's bytes
    start, and its first serial type is the id's. Other copies of the id (the
    status index's (status, id) entries, the finished index's) do not parse as
    such a header, and a parse must also give a known status."""
    id_type = 13 + 2 * len(key)
    assert id_type < 0x80, "a one-byte serial type (ids are 26-character ULIDs)"
    found, at = [], 0
    while (p := page.find(key, at)) >= 0:
        at, q = p + 1, p
        while (q := page.rfind(bytes([id_type]), max(p - 256, 0), q)) > 0:
            for h in (q - 1, q - 2):  # the header's size: one byte or two
                size, i = varint(page, h) if h >= 0 else (None, h)
                if size is None or i != q or h + size != p:
                    continue
                types = []
                while i < p:
                    t, i = varint(page, i)
                    if t is None:
                        break
                    types.append(t)
                if i != p or len(types) <= STATUS_COLUMN:
                    continue
                sizes = [serial_size(t) for t in types[: STATUS_COLUMN + 1]]
                if None in sizes or types[STATUS_COLUMN] < 13 or types[STATUS_COLUMN] % 2 == 0:
                    continue
                start = p + sum(sizes[:STATUS_COLUMN])
                status = page[start : start + sizes[STATUS_COLUMN]]
                if status in STATUSES:
                    found.append(status.decode())
    return found


def shows_terminal(data, encoded):
    """The jobs a response shows in a terminal state: each JSON object with
    an id and a status. A body that does not parse (cut, or not JSON) counts
    for every job it names if it has a terminal status anywhere: the stricter
    reading."""
    if data.startswith(b"HTTP/"):
        data = data.partition(b"\r\n\r\n")[2]
    if not data.startswith((b"{", b"[")):
        return set()
    try:
        doc = json.loads(data)
    except ValueError:
        if not TERMINAL_TEXT.search(data):
            return set()
        return {job for job, key in encoded.items() if key in data}
    shown, todo = set(), [doc]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            if item.get("status") in TERMINAL and item.get("id") in encoded:
                shown.add(item["id"])
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return shown


class Call:
    """One syscall: the strace lines where it started and ended. A call
    interleaved with another thread's is split into '<unfinished ...>' and
    '<... resumed>' lines; otherwise both are the same line."""

    def __init__(self, start, pid):
        self.start, self.end, self.pid = start, None, pid


def parse(log_path, ids):
    """WAL writes (with their bytes and the jobs each names), WAL fsyncs that
    succeeded, and the first send that names each job and the first that
    shows it terminal, in the order strace saw them."""
    wal_fds = set()
    writes, syncs = [], []
    acked, ended = {}, {}  # job -> Call of the send starting the response
    started = {}  # pid -> (name, args, Call) of a call left unfinished
    headers = {}  # pid -> Call of a frame header whose page is still to come
    heads = {}  # (pid, fd) -> Call of a send of a response's head alone
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
                _, args, call = started.pop(pid, (name, "", Call(index, pid)))
                args += tail
                call.end = index
            else:
                syscall = CALL.match(rest)
                if not syscall:
                    continue
                name, args = syscall.groups()
                call = Call(index, pid)
                if args.endswith("<unfinished ...>"):
                    args = args[: -len("<unfinished ...>")].rstrip()
                    started[pid] = (name, args, call)
                else:
                    call.end = index
                # Arguments are known at the start.
                fd = args.split(",", 1)[0]
                if name in ("pwrite64", "write") and fd.isdigit() and int(fd) in wal_fds:
                    call.data = first_buffer(args)
                    call.names = {job for job, key in encoded.items() if key in call.data}
                    call.n = len(writes)
                    # Which frame it is part of: a header, its page (the
                    # same thread's next write, just after it), or both.
                    call.header = call.frame = call.page = None
                    at = COUNT_OFFSET.search(args)
                    size, offset = (int(at.group(1)), int(at.group(2))) if at else (0, 0)
                    header = headers.pop(pid, None)
                    if offset < WAL_HEADER:
                        pass  # the WAL's header, not a frame's
                    elif size == FRAME_HEADER or is_page_size(size - FRAME_HEADER):
                        call.header, call.frame, call.offset = call.data[:FRAME_HEADER], call, offset
                        if size == FRAME_HEADER:
                            headers[pid] = call
                    elif header and offset == header.offset + FRAME_HEADER:
                        header.page, call.frame = call, header
                    writes.append(call)
                elif name in ("sendto", "write", "sendmsg", "writev") and fd.isdigit():
                    data = all_buffers(args)
                    # A body sent apart from its head counts from the head:
                    # the response was decided before either left.
                    response, head = call, heads.pop((pid, fd), None)
                    if data.startswith(b"HTTP/"):
                        if not data.partition(b"\r\n\r\n")[2]:
                            heads[(pid, fd)] = call
                    elif head:
                        response = head
                    if data.startswith(b"HTTP/1.1 20") or data.startswith(b"{"):
                        for job, key in encoded.items():
                            if job not in acked and key in data:
                                acked[job] = response
                    for job in shows_terminal(data, encoded):
                        ended.setdefault(job, response)
            if call.end is None:
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
                    syncs.append(call)
    return writes, syncs, acked, ended


def covered(commit, send, syncs):
    """Whether the thread that wrote the commit frame `commit` (its page too)
    then fsynced the WAL, and that fsync ended before `send` started. strace
    prints a call's start before the kernel runs it and its end after, so
    line order is the order of the calls themselves: one still running when
    the send starts has not put the commit on disk yet. Only the committing
    thread's own fsync counts (SQLite's FULL makes it inside COMMIT): another
    thread's, or a child process's on a descriptor of the same number, says
    nothing of this commit."""
    written = (commit.page or commit).end
    return any(s.pid == commit.pid and written < s.start and s.end < send.start for s in syncs)


def traced_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        pass
    # Kernels without CONFIG_PROC_CHILDREN: the processes whose parent it is.
    children = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return children


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    return r.status, r.read()


def in_parallel(port, client):
    """Runs client(n, conn, ids, failures, lock) for each of CLIENTS, each
    on a connection of its own; returns the job ids and failures they add."""
    ids, failures = [], []
    lock = threading.Lock()

    def run(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            client(n, conn, ids, failures, lock)
        except (OSError, http.client.HTTPException, ValueError) as e:
            with lock:
                failures.append(("client", repr(e)))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, failures


def submits(port):
    def client(n, conn, ids, failures, lock):
        for k in range(JOBS_PER_CLIENT):
            wait = "?wait=5" if k % 2 else ""
            status, body = request(conn, "POST", f"/api/v1/tasks/add/$execute{wait}", {"params": {"a": n, "b": k}})
            with lock:
                if status in (200, 202):
                    doc = json.loads(body)
                    ids.append(doc.get("job_id") or doc.get("id"))
                else:
                    failures.append((status, body[:200]))

    return in_parallel(port, client)


def queued(port):
    """Slow jobs, 202 each, then polled until terminal: every other one by
    plain GETs (each may be the first to see the end), the others by ?wait."""

    def client(n, conn, ids, failures, lock):
        mine = []
        for k in range(QUEUED_PER_CLIENT):
            status, body = request(conn, "POST", "/api/v1/tasks/slow_task/$execute", {"params": {"seconds": SLOW_S}})
            if status != 202:
                with lock:
                    failures.append((status, body[:200]))
                return
            mine.append(json.loads(body)["job_id"])
        with lock:
            ids.extend(mine)
        deadline = time.monotonic() + 30
        for k, job in enumerate(mine):
            path = f"/api/v1/jobs/{job}" + ("?wait=5" if k % 2 else "")
            while True:
                status, body = request(conn, "GET", path)
                doc = json.loads(body) if status == 200 else {}
                if doc.get("status") in TERMINAL:
                    break
                if status != 200 or time.monotonic() > deadline:
                    with lock:
                        failures.append((status, body[:200]))
                    return
                if not k % 2:
                    time.sleep(0.005)  # a poll, not a wait for the job

    return in_parallel(port, client)


def stop(host):
    """The host is strace's child: SIGTERM to it stops it as an operator
    would (strace itself would only detach, so its shutdown would go
    untraced). strace and the host have a process group of their own: if
    the host does not stop in time, the whole group is killed, so no traced
    host outlives the test."""
    for child in traced_children(host.pid):
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        host.wait(STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        # strace is not reaped yet, so the group's id is still ours.
        os.killpg(host.pid, signal.SIGKILL)
        host.wait()


def check(mode, phase, ids, writes, syncs, acked, ended):
    """Counts for one phase's jobs; raises on what neither setting allows."""
    missing = [i for i in ids if i not in acked or not any(i in w.names for w in writes)]
    if missing:
        raise SystemExit(f"{mode}: no WAL write or no acknowledgement found for {len(missing)} job(s), "
                         f"e.g. {missing[0]}")
    unacked, unended, terminal, ended_after_ack = [], [], 0, 0
    for job in ids:
        # The first write naming the job is a frame of its insert's commit:
        # its id exists nowhere before. The fsync must follow that commit's
        # commit frame, not this one: one in between (another connection's)
        # leaves the commit unsynced.
        write = next(w for w in writes if job in w.names)
        if acked[job].start < write.end:
            raise SystemExit(f"{mode}: job {job} was acknowledged before its WAL write")
        commit = commit_of(write, writes)
        if commit is None:
            raise SystemExit(f"{mode}: no commit frame follows job {job}'s insert in the WAL")
        if not covered(commit, acked[job], syncs):
            unacked.append(job)
        if job not in ended:
            continue
        # The write that carries the job's end: the first WAL write whose
        # copy of the job's row (its record parsed, not just its id found)
        # has a terminal status. A page holds several jobs' rows, so a write
        # naming the job may be any commit's; but no page held this row
        # terminal before the commit that ended the job wrote it, so the
        # first such write is that commit's (a frame it wrote, perhaps
        # spilled before its last), and commit_of finds its commit frame.
        # That commit's own fsync starts after all its writes end and, under
        # full, ends before the commit returns, so the rule cannot fail a
        # host that waits for its commit; nor does it depend on the 202 (a
        # job may end before its 202 leaves). The last write naming the job
        # would not do: another job's later commit rewriting the page may
        # still be on its way to the disk when our end is sent.
        end = next((w for w in writes if job in w.names and TERMINAL & set(row_statuses(w.data, job.encode()))),
                   None)
        if end is None:
            raise SystemExit(f"{mode}: job {job} was shown terminal, but no WAL write holds its row terminal")
        if ended[job].start < end.end:
            raise SystemExit(f"{mode}: job {job} was shown terminal before its end's WAL write")
        commit = commit_of(end, writes)
        if commit is None:
            raise SystemExit(f"{mode}: no commit frame follows job {job}'s end in the WAL")
        terminal += 1
        if end.start > acked[job].start:
            ended_after_ack += 1
        if not covered(commit, ended[job], syncs):
            unended.append(job)
    # The fsyncs while the phase ran: from its first job's insert to its last send.
    first = min(next(w for w in writes if job in w.names).start for job in ids)
    last = max(max(acked[j].start, ended[j].start if j in ended else 0) for j in ids)
    phase_syncs = sum(1 for s in syncs if first < s.start < last)
    print(f"{mode}, {phase}: {len(ids)} jobs acknowledged, {phase_syncs} WAL fsyncs, "
          f"{len(unacked)} acknowledged before an fsync covered them; {terminal} terminal states seen "
          f"({ended_after_ack} ended after their 202), {len(unended)} before an fsync covered them")
    return unacked, unended, terminal, ended_after_ack


def run(mode, binary, plugins, work):
    db, log = os.path.join(work, f"{mode}.db"), os.path.join(work, f"{mode}.strace")
    # Each run starts from an empty database, so none inherits a WAL (say,
    # from a run that was killed) near the background checkpoint's size,
    # whose fsyncs would cover some of what normal shows unsynced.
    for stale in (db, db + "-wal", db + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    port = free_port()
    host = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", log, "-s", "65536", "-xx",
         "-e", "trace=openat,close,pwrite64,write,writev,fdatasync,fsync,sendto,sendmsg",
         binary, "--db", db, "--plugins", plugins, "--port", str(port), "--sync", mode,
         "--isolation", "in-process", "--max-concurrency", str(WORKERS), "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
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
        phases = [("submits", *submits(port)), ("queued", *queued(port))]
    finally:
        stop(host)
    for phase, ids, failures in phases:
        if failures:
            raise SystemExit(f"{mode}, {phase}: requests failed: {failures[:3]}")
    writes, syncs, acked, ended = parse(log, [j for _, ids, _ in phases for j in ids])
    return {phase: check(mode, phase, ids, writes, syncs, acked, ended) for phase, ids, _ in phases}


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

    full = run("full", binary, plugins, work)
    for phase, (unacked, unended, _, _) in full.items():
        if unacked:
            raise SystemExit(f"full, {phase}: job {unacked[0]} was acknowledged before an fsync of the WAL "
                             "that holds it")
        if unended:
            raise SystemExit(f"full, {phase}: job {unended[0]} was shown terminal before an fsync of the WAL "
                             "that holds its end")
    if not full["queued"][3]:
        raise SystemExit("full, queued: no job ended after its 202: the phase did not exercise separate ends")

    normal = run("normal", binary, plugins, work)
    if not normal["submits"][0]:
        raise SystemExit("normal: every acknowledgement followed an fsync; the test cannot tell the settings apart")
    if not normal["queued"][3]:
        raise SystemExit("normal, queued: no job ended after its 202: the phase did not exercise separate ends")
    if not normal["queued"][1]:
        raise SystemExit("normal, queued: every terminal state followed an fsync; the test cannot tell the "
                         "settings apart for ends")
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""scale.py - the hub's own cost as work grows, on the multi-node test swarm.

Started by tests/bench/scale.sh (which starts a throwaway PostgreSQL and
exports SWARMHUB_TEST_DB / SWARMHUB_TEST_PG_DIR). The hub runs as users run
it: a service on the cluster's overlay, CONNECT=dns, admin token and a
signed-in admin (tests/integration/clusterhub.py: swarm_session,
hub_service), and the per-node usage agents (`swarmhub agent`, a global
service, clusterhub.usage_agent; the hub has SWARMHUB_USAGE_AGENTS). The
servers run swarmhub/test-tiny (images/test-tiny: a static C fake notebook,
one thread, ~1 MB), so that the hub's probes cost the servers next to
nothing. With 10,000 users it measures, at 1, 100 and 500 running
servers: one culler pass, one usage pass over every node (both from
the hub's own swarmhub_pass_* metrics), GET /hub/api/users (all, and
?state=active), rendering /hub/admin, a restart with adoption of every
running server, and GET /hub/api/user latency during culler passes against
between them. Between the rows of 1 and 100 servers it starts 60 servers at
once (issue 11): time to all ready, spread per node, the hub's share of each
spawn, API latency meanwhile, and one usage pass over them.
Writes tests/bench/results/scale.md and scale.svg (also printed).

Knobs:
  SWARMHUB_BENCH_QUICK=1        2,000 users, rows at 1, 20 and 50, burst 20
  SWARMHUB_BENCH_SCALE=1,100,500  the rows (running servers)
  SWARMHUB_BENCH_USERS=N        users (default 10,000)
  SWARMHUB_BENCH_BURST=N        servers started at once (default 60; 0: none)
  SWARMHUB_BENCH_IMAGE=I        the servers' image: tiny (default,
                                swarmhub/test-tiny:latest) or test-notebook
                                (swarmhub/test-notebook:latest, the Python
                                fake of the tests)
  SWARMHUB_BIN_DIR              where bin/swarmhub is (default bin)
  SWARMHUB_BENCH_HUB_ENV="K=V ..."  more settings for the hub (e.g.
                                SWARMHUB_CULL_CONCURRENCY=1), in the report
  SWARMHUB_BENCH_AB_BIN_DIR=D   after each row, the same row again with
                                D/swarmhub (a before/after on one set of
                                servers)
  SWARMHUB_BENCH_HOLD=1         after each row, write <scratch>/hold (the
                                hub's URL, service and admin token) and
                                wait until it is removed: to profile by hand

Exit status: 0 when everything could be measured (a missed target is a MISS
in the report), 1 when the cluster or the hub could not be used.
"""
import http.client
import json
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pytest  # noqa: E402  (clusterhub skips/fails with pytest's exceptions)
import requests  # noqa: E402
import clusterhub as C  # noqa: E402
import hubtest as T  # noqa: E402

HOLD = os.environ.get("SWARMHUB_BENCH_HOLD", "") not in ("", "0")

RESULTS = os.path.join(HERE, "results", "scale.md")
SVG = os.path.join(HERE, "results", "scale.svg")
QUICK = os.environ.get("SWARMHUB_BENCH_QUICK", "") not in ("", "0")
# another build of the hub measured on the same servers after each row
AB_BIN = os.environ.get("SWARMHUB_BENCH_AB_BIN_DIR", "")
# more of the hub's settings, "SWARMHUB_X=v" separated by spaces
HUB_ENV = os.environ.get("SWARMHUB_BENCH_HUB_ENV", "").split()


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


CFG = {
    "sizes": ints(os.environ.get("SWARMHUB_BENCH_SCALE") or
                  ("1,20,50" if QUICK else "1,100,500")),
    "users": int(os.environ.get("SWARMHUB_BENCH_USERS") or
                 (2000 if QUICK else 10000)),
    "burst": int(os.environ.get("SWARMHUB_BENCH_BURST") or
                 (20 if QUICK else 60)),
    "subnet": "10.160.0.0/20",      # 4,094 addresses: > 500 tasks
    "batch": 50,                    # starts POSTed at once when growing
    "cull_every_s": 10, "usage_every_s": 10,
    "passes": 3,                    # culler passes per latency window
    "lat_threads": 4, "lat_every_s": 0.01,
    "reps": 10,                     # timed GETs per list / page
    "batch_timeout_s": 300,
    "per_server_mb": 20,            # memory guess until measured (tiny:
                                    # its containerd-shim, mostly)
    "keep_free_mb": 3000,
    "targets": {"p99_ratio": 1.5},
}
# the servers' image and how the hub starts it (the profile's cmd)
TINY_IMAGE = "swarmhub/test-tiny:latest"
SERVER_IMAGES = {
    "tiny": (TINY_IMAGE, ["/tiny-notebook",
                          "--NotebookApp.base_url={base_url}",
                          "--ip=0.0.0.0", "--port={port}"]),
    "test-notebook": (T.TINY, T.NB_CMD + ["--no-browser"]),
}
IMAGE_KEY = os.environ.get("SWARMHUB_BENCH_IMAGE") or "tiny"
if IMAGE_KEY not in SERVER_IMAGES:
    sys.exit("scale.py: SWARMHUB_BENCH_IMAGE must be one of: %s"
             % ", ".join(SERVER_IMAGES))
SERVER_IMAGE, SERVER_CMD = SERVER_IMAGES[IMAGE_KEY]
IMAGES = "%s %s" % (C.HUB_IMAGE, SERVER_IMAGE)
PROFILES = {
    "cpu_reservation_ratio": 0.1,
    "images": {"tiny": {"image": SERVER_IMAGE,
                        "description": "fake notebook",
                        "cmd": SERVER_CMD, "port": 8888}},
    "profiles": {"default": {"images": ["tiny"],
                             "cpu": {"min": 0.01, "max": 1, "default": 0.02},
                             "mem_gb": {"min": 0.02, "max": 1,
                                        "default": 0.03}}}}
ADMIN, ADMIN_PW = "benchadmin", "bench-admin-pw-1"
SWARM = None    # the test swarm, once up


def log(msg):
    print("bench: scale: " + msg, file=sys.stderr, flush=True)


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    return v[max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))]


def sh(cmd):
    return os.popen(cmd).read().strip()


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def procs():
    """What Docker is doing on the machine: "shims S, runc R, D-state D"
    (containerd-shim and runc processes, and processes in uninterruptible
    sleep: where the node daemons stalled at ~350 Python servers)."""
    shim = runc = dstate = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                v = f.read()
        except OSError:
            continue
        name, rest = v[v.find("(") + 1:v.rfind(")")], v[v.rfind(")") + 2:]
        shim += name.startswith("containerd-shim")
        runc += name == "runc"
        dstate += rest[:1] == "D"
    return "shims %d, runc %d, D-state %d" % (shim, runc, dstate)


def mem_avail_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


# ---------------------------------------------------------------- HTTP

class Client:
    """One keep-alive connection to the hub; request() -> (status, body, s)."""

    def __init__(self, hub, token=True, cookies=None, timeout=120):
        u = urllib.parse.urlsplit(hub["url"])
        self.host, self.port = u.hostname, u.port
        self.headers = {}
        if token:
            self.headers["Authorization"] = "token " + hub["token"]
        if cookies:
            self.headers["Cookie"] = "; ".join(
                "%s=%s" % kv for kv in cookies.items())
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
        h = dict(self.headers)
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data, time.perf_counter() - t0
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise

    def json(self, method, path, body=None, want=(200,)):
        st, data, _ = self.request(method, path, body)
        if st not in want:
            raise RuntimeError("%s %s: HTTP %d: %s" % (
                method, path, st, data[:300].decode(errors="replace")))
        return json.loads(data) if data else None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def metrics(c):
    """The hub's /hub/metrics as {"name{labels}": value}."""
    st, data, _ = c.request("GET", "/hub/metrics")
    if st != 200:
        raise RuntimeError("GET /hub/metrics: HTTP %d" % st)
    out = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Passes:
    """Follows the hub's swarmhub_pass_* metrics every 0.2 s and keeps every
    pass seen: {"kind", "n", "ms", "servers", "t_start", "t_end"}."""

    def __init__(self, hub):
        self.c = Client(hub, timeout=30)
        self.seen = []
        self.count = {}
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.th = None

    def poll(self):
        m = metrics(self.c)
        for kind in ("culler", "usage"):
            n = m.get('swarmhub_pass_duration_seconds_count{pass="%s"}'
                      % kind, 0)
            if n and n != self.count.get(kind):
                end = m['swarmhub_pass_last_end_timestamp_seconds{pass="%s"}'
                        % kind]
                ms = m['swarmhub_pass_last_seconds{pass="%s"}' % kind] * 1e3
                cpu = m.get('swarmhub_pass_last_cpu_seconds{pass="%s"}'
                            % kind)     # None: a build from before it
                with self.lock:
                    if kind in self.count:  # not one from before we looked
                        self.seen.append({
                            "kind": kind, "n": n, "ms": ms, "t_end": end,
                            "cpu_ms": None if cpu is None else cpu * 1e3,
                            "t_start": end - ms / 1e3,
                            "servers": int(m['swarmhub_pass_last_servers{'
                                             'pass="%s"}' % kind])})
                    self.count[kind] = n
        return m

    def run(self):
        while not self.stop_ev.wait(0.2):
            try:
                self.poll()
            except (OSError, RuntimeError, http.client.HTTPException,
                    KeyError):
                self.c.close()

    def start(self):
        self.poll()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()
        return self

    def since(self, t, kind):
        with self.lock:
            return [p for p in self.seen if p["kind"] == kind and
                    p["t_start"] >= t]

    def wait(self, t, kind, n, timeout, servers=None):
        end = time.time() + timeout
        while time.time() < end:
            got = [p for p in self.since(t, kind)
                   if servers is None or p["servers"] >= servers]
            if len(got) >= n:
                return got
            time.sleep(0.3)
        return [p for p in self.since(t, kind)
                if servers is None or p["servers"] >= servers]

    def stop(self):
        self.stop_ev.set()
        if self.th:
            self.th.join(10)
        self.c.close()


class Latency:
    """lat_threads threads, each one keep-alive connection, GET /hub/api/user
    with the admin token every lat_every_s: samples (start epoch, ms, st)."""

    def __init__(self, hub):
        self.hub = hub
        self.samples = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def run(self):
        c = Client(self.hub, timeout=30)
        mine = []
        while not self.stop_ev.is_set():
            t0 = time.time()
            try:
                st, _, s = c.request("GET", "/hub/api/user")
            except (OSError, http.client.HTTPException):
                st, s = 0, time.time() - t0
            mine.append((t0, s * 1e3, st))
            time.sleep(CFG["lat_every_s"])
        c.close()
        with self.lock:
            self.samples.extend(mine)

    def start(self):
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(CFG["lat_threads"])]
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(60)
        return sorted(self.samples)


def lat_stats(samples):
    v = [ms for _, ms, _ in samples]
    return {"n": len(v), "bad": sum(1 for s in samples if s[2] != 200),
            "p50": pct(v, 50), "p99": pct(v, 99),
            "max": max(v) if v else None}


def split(samples, passes):
    inside = [s for s in samples if any(
        p["t_start"] - 0.001 <= s[0] <= p["t_end"] + 0.001 for p in passes)]
    outside = [s for s in samples if not any(
        p["t_start"] - 0.001 <= s[0] <= p["t_end"] + 0.001 for p in passes)]
    return inside, outside


# ---------------------------------------------------------------- servers

def users_of(c, state="active"):
    v = c.json("GET", "/hub/api/users?state=" + state)
    return {u["name"]: u for u in v}


def is_ready(u):
    s = (u.get("servers") or {}).get("")
    return bool(s and s.get("ready"))


def post_server(hub, u):
    c = Client(hub)
    try:
        return c.request("POST", "/hub/api/users/%s/server" % u, {})[0]
    finally:
        c.close()


def grow(hub, names, count, R):
    """Starts the servers of the first count names without one, CFG['batch']
    at a time, each batch waited for until ready; returns how many are
    ready in all."""
    c = Client(hub)
    t_all = time.time()
    active = users_of(c)   # a burst's late or failed starts are not retried
    names = [u for u in names if u not in active][:count]
    for i in range(0, len(names), CFG["batch"]):
        b = names[i:i + CFG["batch"]]
        t0 = time.time()
        codes = T.parallel(*[(lambda u=u: post_server(hub, u)) for u in b])
        bad = [(u, st) for u, st in zip(b, codes) if st not in (201, 202)]
        for u, st in bad[:3]:
            R["notes"].append("POST /hub/api/users/%s/server: HTTP %s"
                              % (u, st))
        want = [u for u, st in zip(b, codes) if st in (201, 202)]
        ready = 0
        while time.time() < t0 + CFG["batch_timeout_s"]:
            m = users_of(c)
            ready = sum(1 for u in want if is_ready(m.get(u, {})))
            pending = sum(1 for u in want if u in m and not is_ready(m[u]))
            if ready + (len(want) - ready - pending) >= len(want) or \
                    pending == 0:
                break
            time.sleep(1)
        log("  started %d of %d in %.1f s (load %s; %s)"
            % (ready, len(b), time.time() - t0, load(), procs()))
        if ready < len(b):
            R["notes"].append("a batch of %d starts had %d ready after %.0f s"
                              " (load %s; %s)" % (len(b), ready,
                                                  time.time() - t0, load(),
                                                  procs()))
    total = len([u for u in users_of(c).values() if is_ready(u)])
    c.close()
    R.setdefault("grow", []).append((total, time.time() - t_all))
    return total


# ---------------------------------------------------------------- the rows

def timed_gets(c, path, reps, check):
    st, data, _ = c.request("GET", path)
    if st != 200:
        raise RuntimeError("GET %s: HTTP %d" % (path, st))
    first = check(data)
    ms, size = [], len(data)
    for _ in range(reps):
        st, data, s = c.request("GET", path)
        if st != 200:
            raise RuntimeError("GET %s: HTTP %d" % (path, st))
        ms.append(s * 1e3)
    return {"median": statistics.median(ms), "max": max(ms), "bytes": size,
            "check": first}


def use_binary(hub, directory):
    """The hub's service runs directory/swarmhub from its next restart."""
    spec = hub["spec"]["TaskTemplate"]["ContainerSpec"]
    for m in spec["Mounts"]:
        if m["Target"] == "/usr/local/bin/swarmhub":
            m["Source"] = os.path.join(directory, "swarmhub")


def hub_cpu_s(hub):
    """CPU seconds the hub's process has used (its task's container on the
    manager, /proc/PID/stat), or None."""
    try:
        host, t = SWARM["engine"].node_of(hub["service"])
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        st, c = SWARM["engine"].call("GET", "/containers/%s/json" % cid)
        with open("/proc/%d/stat" % c["State"]["Pid"]) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, KeyError, TypeError, ValueError, IndexError):
        return None


def measure_row(hub, cookies, n, R, key="rows"):
    row = {"n": n, "load": load()}
    c = Client(hub)
    # lists and the admin page
    row["users_all"] = timed_gets(c, "/hub/api/users", CFG["reps"],
                                  lambda d: len(json.loads(d)))
    row["users_active"] = timed_gets(c, "/hub/api/users?state=active",
                                     CFG["reps"],
                                     lambda d: len(json.loads(d)))
    pc = Client(hub, token=False, cookies=cookies)
    row["admin"] = timed_gets(pc, "/hub/admin", CFG["reps"],
                              lambda d: d.count(b"<tr"))
    row["admin_sorted"] = timed_gets(
        pc, "/hub/admin?sort=last_activity&page=2", CFG["reps"],
        lambda d: d.count(b"<tr"))
    pc.close()
    if row["users_all"]["check"] != CFG["users"] + 1:
        R["notes"].append("%d servers: GET /hub/api/users gave %d users, "
                          "not %d" % (n, row["users_all"]["check"],
                                      CFG["users"] + 1))
    if row["users_active"]["check"] != n:
        R["notes"].append("%d servers: ?state=active gave %d users"
                          % (n, row["users_active"]["check"]))
    # culler and usage passes, latency during and between culler passes
    P = Passes(hub).start()
    t0 = time.time()
    cpu0 = hub_cpu_s(hub)
    lat = Latency(hub).start()
    every = CFG["cull_every_s"]
    cp = P.wait(t0, "culler", CFG["passes"] + 1, every * (CFG["passes"] + 3)
                + 120, servers=n)
    samples = lat.stop()
    cpu1 = hub_cpu_s(hub)
    row["hub_cpu"] = (cpu1 - cpu0) / (time.time() - t0) * 100 \
        if cpu0 is not None and cpu1 is not None else None
    up = P.wait(t0, "usage", 1, CFG["usage_every_s"] * 3 + 60)
    P.stop()
    row["culler"] = cp
    row["usage"] = up
    inside, outside = split(samples, cp)
    row["lat_in"], row["lat_out"] = lat_stats(inside), lat_stats(outside)
    # few requests fall inside short passes, so their p99 is about their
    # maximum; the share of them slower than the p99 between passes (1 %
    # when passes change nothing) does not depend on how many there are
    cut = row["lat_out"]["p99"]
    row["lat_in"]["over"] = (100.0 * sum(1 for x in inside if x[1] > cut) /
                             len(inside)) if inside and cut else None
    log("  %d servers: culler passes %s ms; usage %s ms; p99 in %.1f / "
        "out %.1f ms" % (n, [round(p["ms"]) for p in cp],
                         [round(p["ms"]) for p in up],
                         row["lat_in"]["p99"] or -1,
                         row["lat_out"]["p99"] or -1))
    # restart with adoption
    t = time.time()
    hub["restart"]()
    row["restart_s"] = time.time() - t
    m = metrics(c)
    row["start_s"] = m.get("swarmhub_start_seconds")
    row["start_servers"] = m.get("swarmhub_start_servers")
    row["after_restart_active"] = len(users_of(c))
    if row["start_servers"] != n:
        R["notes"].append("%d servers: the restarted hub adopted %s"
                          % (n, row["start_servers"]))
    c.close()
    R[key].append(row)
    return row


# ---------------------------------------------------------------- burst (issue 11)

def iso_s(s):
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", s or "")
    if not m:
        return None
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=timezone.utc).timestamp()
    return t + float(m.group(2) or 0)


def progress_ready(hub, name, errors, timeout=240):
    """Follows the progress stream until ready: the client's epoch time.
    A stream that breaks is noted in errors and followed again."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            r = T.DIRECT.get(hub["url"] + "/hub/api/users/%s/server/progress"
                             % name, stream=True, timeout=60, headers={
                                 "Authorization": "token " + hub["token"]})
            try:
                for line in r.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        ev = json.loads(line[5:])
                        if ev.get("ready"):
                            return time.time()
                        if ev.get("failed"):
                            return None
            finally:
                r.close()
        except requests.RequestException as e:
            errors.append("%s's progress stream: %s" % (name, e))
            time.sleep(0.5)
    return None


LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)")


def first_probe(swarm, task):
    """Epoch time of the server's first answered api/status (test-tiny
    logs the first one, test-notebook each request; the node's Engine adds
    timestamps), or None."""
    cid = ((task.get("Status") or {}).get("ContainerStatus") or {}) \
        .get("ContainerID")
    if not cid or task["NodeID"] not in swarm["nodes"]:
        return None
    idx = swarm["nodes"].index(task["NodeID"])
    eng = C.Engine("unix://" + C.node_socket(swarm["engine"], idx))
    st, raw = eng.call("GET", "/containers/%s/logs?stderr=1&stdout=1&"
                       "timestamps=1" % cid)
    if st != 200 or not isinstance(raw, str):
        return None
    for line in raw.splitlines():
        m = LOG_LINE.search(line)   # after the stream's 8-byte frame header
        if m and "api/status" in m.group(2) and '" 200 ' in m.group(2):
            return iso_s(m.group(1))
    return None


def burst(hub, swarm, names, R):
    B = {"n": len(names), "load_before": load()}
    eng = swarm["engine"]
    lat = Latency(hub).start()
    time.sleep(5)
    base = lat.stop()
    B["lat_idle"] = lat_stats(base)
    lat = Latency(hub).start()
    barrier = threading.Barrier(len(names))
    T0, ready, code, errors = {}, {}, {}, []

    def one(u):
        c = Client(hub)
        c.request("GET", "/hub/api")       # connection open before the go
        barrier.wait()
        T0[u] = time.time()
        code[u] = c.request("POST", "/hub/api/users/%s/server" % u, {})[0]
        c.close()
        ready[u] = progress_ready(hub, u, errors)

    t_go = time.time()
    T.parallel(*[(lambda u=u: one(u)) for u in names])
    samples = lat.stop()
    B["lat_during"] = lat_stats([s for s in samples if s[0] >= t_go])
    B["codes"] = {}
    for st in code.values():
        B["codes"][str(st)] = B["codes"].get(str(st), 0) + 1
    ok = [u for u in names if ready.get(u)]
    B["ready"] = len(ok)
    if errors:
        R["notes"].append("burst: %d progress streams broke and were "
                          "followed again; first: %s" % (len(errors),
                                                         errors[0]))
    B["all_ready_s"] = (max(ready[u] for u in ok) - min(T0.values())) \
        if ok else None
    B["load_after"] = load()
    # where they run and the Docker side of each spawn
    nodes = {}
    for nid in swarm["nodes"]:
        st, n = eng.call("GET", "/nodes/" + nid)
        nodes[nid] = n["Description"]["Hostname"] if st == 200 else nid
    B["per_node"] = {}
    per = []
    for u in ok:
        svc = "%s-%s" % (hub["run"], u)
        st, s = eng.call("GET", "/services/" + svc)
        tasks = [t for t in eng.tasks(svc) if t["Status"]["State"] ==
                 "running"]
        if st != 200 or not tasks:
            continue
        t = tasks[0]
        host = nodes.get(t["NodeID"], t["NodeID"])
        B["per_node"][host] = B["per_node"].get(host, 0) + 1
        tc = iso_s(s.get("CreatedAt"))
        tr = iso_s(t["Status"].get("Timestamp"))
        tp = first_probe(swarm, t)
        total = ready[u] - T0[u]
        d = {"total": total, "before": tc - T0[u] if tc else None,
             "docker": tr - tc if tc and tr else None,
             "to_probe": tp - tr if tp and tr else None,
             "after": ready[u] - tp if tp else None}
        if d["before"] is not None and d["after"] is not None:
            d["hub"] = d["before"] + d["after"]
        per.append(d)
    B["spawns"] = per
    R["burst"] = B
    log("  burst: %d of %d ready, all in %.1f s; per node %s" % (
        B["ready"], len(names), B["all_ready_s"] or -1, B["per_node"]))
    P = Passes(hub).start()
    t = time.time()
    up = P.wait(t, "usage", 1, CFG["usage_every_s"] * 3 + 60)
    P.stop()
    B["usage"] = up


# ---------------------------------------------------------------- report

def growth(a, b, na, nb):
    """Exponent k of t ~ n^k between two rows (None when not measurable)."""
    if not a or not b or a <= 0 or b <= 0 or na == nb:
        return None
    return math.log(b / a) / math.log(nb / na)


def series(rows):
    """name -> [(n, ms)] for the plot and the growth check."""
    med = lambda ps: statistics.median(p["ms"] for p in ps) if ps else None
    return {
        "culler pass": [(r["n"], med(r["culler"])) for r in rows],
        "culler pass, hub CPU": [(r["n"], med_cpu(r["culler"])) for r in rows],
        "usage pass": [(r["n"], med(r["usage"])) for r in rows],
        "GET /hub/api/users": [(r["n"], r["users_all"]["median"])
                               for r in rows],
        "GET /hub/api/users?state=active": [(r["n"], r["users_active"]
                                             ["median"]) for r in rows],
        "GET /hub/admin": [(r["n"], r["admin"]["median"]) for r in rows],
        "hub start (adoption)": [(r["n"], (r["start_s"] or 0) * 1e3)
                                 for r in rows],
        "API p99 during culler pass": [(r["n"], r["lat_in"]["p99"])
                                       for r in rows],
    }


COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
          "#e377c2", "#17becf"]


def svg(S):
    """A small log-log plot of every series: ms against running servers."""
    W, H, L, B, Rt, Tp = 720, 420, 70, 50, 250, 20
    pts = [(n, v) for s in S.values() for n, v in s if v and v > 0]
    if not pts:
        return None
    xs = [n for n, _ in pts]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs)) or 1
    y0 = math.floor(math.log10(min(v for _, v in pts)))
    y1 = math.ceil(math.log10(max(v for _, v in pts)))
    if y1 == y0:
        y1 += 1
    X = lambda n: L + (math.log10(n) - x0) / ((x1 - x0) or 1) * (W - L - Rt)
    Y = lambda v: H - B - (math.log10(v) - y0) / (y1 - y0) * (H - B - Tp)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>']
    for e in range(int(y0), int(y1) + 1):
        y = Y(10 ** e)
        o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                 % (L, W - Rt, y, y))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s ms</text>'
                 % (L - 4, y + 4, ("%g" % 10 ** e)))
    for n in sorted(set(xs)):
        x = X(n)
        o.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>'
                 % (x, x, Tp, H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>'
                 % (x, H - B + 14, n))
    o.append('<text x="%d" y="%d" text-anchor="middle">running servers '
             '(log scale; 10,000 users)</text>' % ((L + W - Rt) // 2, H - 12))
    for i, (name, s) in enumerate(S.items()):
        col = COLORS[i % len(COLORS)]
        p = [(X(n), Y(v)) for n, v in s if v and v > 0]
        if len(p) > 1:
            o.append('<polyline fill="none" stroke="%s" stroke-width="2" '
                     'points="%s"/>' % (col, " ".join("%.1f,%.1f" % q
                                                      for q in p)))
        for x, y in p:
            o.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>'
                     % (x, y, col))
        ly = Tp + 10 + i * 18
        o.append('<rect x="%d" y="%d" width="12" height="4" fill="%s"/>'
                 % (W - Rt + 12, ly - 4, col))
        o.append('<text x="%d" y="%d">%s</text>'
                 % (W - Rt + 30, ly, name.replace("&", "&amp;")
                    .replace("<", "&lt;")))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def text_plot(S, width=40):
    """The same series as bars (log scale) for reading in a terminal."""
    vals = [v for s in S.values() for _, v in s if v and v > 0]
    if not vals:
        return []
    lo, hi = math.log10(min(vals)), math.log10(max(vals))
    out = ["```"]
    for name, s in S.items():
        out.append(name)
        for n, v in s:
            k = 1 if not v or v <= 0 else 1 + int(
                (math.log10(v) - lo) / ((hi - lo) or 1) * (width - 1))
            out.append("  %4d %s %s" % (n, "#" * k, "—" if v is None
                                          else "%.1f ms" % v))
    out.append("```")
    return out


def fmt(v, unit="ms", nd=1):
    return "—" if v is None else ("%.*f %s" % (nd, v, unit))


def med_cpu(ps):
    """The median CPU ms of passes ps, None when the hub did not say."""
    v = [p["cpu_ms"] for p in ps if p.get("cpu_ms") is not None]
    return statistics.median(v) if v else None


def rows_section(L, rows, title, svg_name):
    """The table of rows, the plot and the growth verdicts, into L."""
    tg = CFG["targets"]
    if rows:
        L += [title, "",
              "Each at N running servers (`%s`) with %s users; times "
              "are medians of %d sequential requests (after one untimed), "
              "passes the hub's own `swarmhub_pass_*` metrics, the start "
              "`swarmhub_start_seconds`. Load is `/proc/loadavg` (1, 5, "
              "15 min) when the row began." % (SERVER_IMAGE,
                                               "{:,}".format(CFG["users"]),
                                               CFG["reps"]), ""]
        hdr = "| metric | " + " | ".join("N = %d" % r["n"] for r in rows) + \
            " | growth, last two rows | target |"
        L += [hdr, "|" + " --- |" * (len(rows) + 3)]

        def line(label, vals, target="", grow=True):
            g = ""
            if grow and len(rows) > 1:
                k = growth(vals[-2], vals[-1], rows[-2]["n"], rows[-1]["n"])
                g = "—" if k is None else "n^%.2f%s" % (
                    k, " **faster than linear**" if k > 1.15 else "")
            L.append("| %s | %s | %s | %s |" % (
                label, " | ".join(fmt(v) for v in vals), g, target))

        med = lambda ps: statistics.median(p["ms"] for p in ps) if ps \
            else None
        line("one culler pass (median of %d; servers listed; paced: "
             "`CULL_PROBE_RATE` 100 probes a second, all started within "
             "`CULL_EVERY` / 2)" % (CFG["passes"] + 1),
             [med(r["culler"]) for r in rows])
        line("one culler pass: the hub's CPU time "
             "(`swarmhub_pass_last_cpu_seconds`, median)",
             [med_cpu(r["culler"]) for r in rows])
        line("one usage pass (containers sampled: %s)" % ", ".join(
            str(r["usage"][-1]["servers"]) if r["usage"] else "—"
            for r in rows), [med(r["usage"]) for r in rows])
        line("one usage pass: the hub's CPU time",
             [med_cpu(r["usage"]) for r in rows])
        line("`GET /hub/api/users` (all %s; body %s)" % (
            "{:,}".format(CFG["users"] + 1), ", ".join(
                "%.1f MB" % (r["users_all"]["bytes"] / 1e6) for r in rows)),
            [r["users_all"]["median"] for r in rows])
        line("`GET /hub/api/users?state=active`",
             [r["users_active"]["median"] for r in rows])
        line("`GET /hub/admin` (page 1 of 50 rows)",
             [r["admin"]["median"] for r in rows])
        line("`GET /hub/admin?sort=last_activity&page=2`",
             [r["admin_sorted"]["median"] for r in rows])
        line("hub start to listening, adopting every server "
             "(`swarmhub_start_seconds`; adopted: %s)" % ", ".join(
                 "%s" % (int(r["start_servers"]) if r["start_servers"]
                         is not None else "—") for r in rows),
             [(r["start_s"] * 1e3 if r["start_s"] is not None else None)
              for r in rows])
        line("restart as seen by a client (service update → /hub/health "
             "200; Docker's task swap included)",
             [r["restart_s"] * 1e3 for r in rows])
        line("`GET /hub/api/user` p99 between culler passes",
             [r["lat_out"]["p99"] for r in rows])
        vals = [r["lat_in"]["p99"] for r in rows]
        ratios = [(r["lat_in"]["p99"] / r["lat_out"]["p99"])
                  if r["lat_in"]["p99"] and r["lat_out"]["p99"] else None
                  for r in rows]
        verdicts = ", ".join(
            "%d: %s" % (r["n"], "—" if q is None else "%.2f× %s" % (
                q, "PASS" if q <= tg["p99_ratio"] else "MISS"))
            for r, q in zip(rows, ratios))
        line("**`GET /hub/api/user` p99 during culler passes**", vals,
             "≤ %.1f× between: %s" % (tg["p99_ratio"], verdicts))
        L.append("| requests during / between passes | %s | | |" % " | ".join(
            "%d / %d" % (r["lat_in"]["n"], r["lat_out"]["n"]) for r in rows))
        L.append("| requests during passes slower than the p99 between them "
                 "(1 %% if passes changed nothing) | %s | | |" % " | ".join(
                     fmt(r["lat_in"].get("over"), "%") for r in rows))
        L.append("| machine load at the row's start | %s | | |" % " | ".join(
            r["load"] for r in rows))
        L.append("| the hub's own CPU use in the latency window (%% of one "
                 "core, /proc/PID/stat) | %s | | |" % " | ".join(
                     fmt(r.get("hub_cpu"), "%") for r in rows))
        L.append("")
        S = series(rows)
        if svg_name:
            L += ["![ms against running servers](%s)" % svg_name, ""]
        L += text_plot(S)
        L.append("")
        fast = []
        for name, s in S.items():
            if len(s) > 1:
                k = growth(s[-2][1], s[-1][1], s[-2][0], s[-1][0])
                if k is not None and k > 1.15:
                    fast.append("%s (n^%.2f)" % (name, k))
        L.append("Faster than linear between the last two rows (exponent > "
                 "1.15): %s." % (", ".join(fast) if fast else "nothing"))
        L.append("")


def report(R, failed):
    L = ["# The hub's own cost as work grows (%s users, multi-node swarm)"
         % "{:,}".format(CFG["users"]), ""]
    L.append("Generated by `tests/bench/scale.sh` (also run by `make bench`) "
             "on %s%s. Method: tests/bench/README.md, section \"Scale "
             "benchmark\"." % (R["date"], " — **quick run** "
                               "(SWARMHUB_BENCH_QUICK=1)" if QUICK else ""))
    L.append("")
    if failed:
        L += ["**The benchmark could not finish**: %s" % failed, ""]
    rows_section(L, R["rows"], "## Rows", "scale.svg" if R.get("svg")
                 else None)
    if R.get("rows_ab"):
        rows_section(L, R["rows_ab"], "## Rows with `%s`, on the same "
                     "servers right after each row above" % R["ab_bin"], None)
    B = R.get("burst")
    if B:
        sp = B["spawns"]
        g = lambda k, p: pct([d[k] for d in sp if d.get(k) is not None], p)
        L += ["## %d servers started at once (issue 11)" % B["n"], "",
              "| metric | value |", "| --- | --- |",
              "| POST answers | %s |" % ", ".join(
                  "%d × %s" % (v, k) for k, v in sorted(B["codes"].items())),
              "| ready | %d of %d |" % (B["ready"], B["n"]),
              "| **time to all ready** (first POST → last ready event) | %s |"
              % fmt(B["all_ready_s"], "s"),
              "| spread per node | %s |" % ", ".join(
                  "%s %d" % kv for kv in sorted(B["per_node"].items()))]
        for k, label in (("total", "per spawn: POST → ready event"),
                         ("before", "hub before Docker: POST → service "
                          "created"),
                         ("docker", "Docker: service created → task running"),
                         ("to_probe", "task running → first answered "
                          "`api/status` (server start + hub's poll delay)"),
                         ("after", "first answered `api/status` → ready "
                          "event at the client"),
                         ("hub", "**hub-side overhead** (before Docker + "
                          "after the first answer)")):
            L.append("| %s: median / p90 / max | %s / %s / %s |" % (
                label, fmt(g(k, 50) and g(k, 50) * 1e3),
                fmt(g(k, 90) and g(k, 90) * 1e3),
                fmt(g(k, 100) and g(k, 100) * 1e3)))
        for key, label in (("lat_idle", "`GET /hub/api/user` before (5 s)"),
                           ("lat_during", "`GET /hub/api/user` during the "
                            "starts")):
            s = B[key]
            L.append("| %s: p50 / p99 / max (%d requests, %d not 200) | "
                     "%s / %s / %s |" % (label, s["n"], s["bad"],
                                         fmt(s["p50"], nd=2),
                                         fmt(s["p99"], nd=2),
                                         fmt(s["max"])))
        u = B.get("usage") or []
        L.append("| one usage pass after they were ready | %s |" % (
            "%.0f ms over %d containers" % (u[0]["ms"], u[0]["servers"])
            if u else "—"))
        L.append("| load before / after | %s / %s |" % (B["load_before"],
                                                        B["load_after"]))
        L.append("")
    L += ["## Machine and method", "",
          "- date: %s; %s, `nproc` = %s, %s; kernel %s" % (
              R["date"], R["cpu"], os.cpu_count(), R["mem"], R["kernel"]),
          "- everything here (the hub, three dockerds, the servers, "
          "PostgreSQL, the client) shares the machine's cores; the load "
          "(`/proc/loadavg`) is given per row, and other work running beside "
          "this benchmark would show there; `uptime` at the start: %s"
          % R["uptime_start"],
          "- swarmhub: git %s (`%s`), as a service on the 3-node test swarm "
          "(`tests/services/cluster.sh start 3`, cluster id %s: one manager, "
          "two workers, each its own dockerd %s) pinned to the manager, "
          "CONNECT=dns, its users' overlay network %s, PostgreSQL %s on the "
          "host reached through a relay" % (
              R["git"], os.path.relpath(T.hub_binary(), ROOT),
              os.environ.get("SWARMHUB_CLUSTER_ID", "0"), R["docker"],
              CFG["subnet"], R["pg"]),
          "- profile: `%s` (fake notebook; `cmd` %s), cpu 0.02 (reservation 0.002), "
          "mem 0.03 GiB; no placement constraint (Swarm spreads over the 3 "
          "nodes); CULL_TIMEOUT=3600 (each pass probes every server, stops "
          "none), CULL_EVERY=%d, CULL_CONCURRENCY=10, CULL_PROBE_RATE unset "
          "(100 a second, so a pass over N servers lasts about N / 100 s, at "
          "most CULL_EVERY / 2), USAGE_EVERY=%d"
          % (SERVER_IMAGE, json.dumps(SERVER_CMD), CFG["cull_every_s"],
             CFG["usage_every_s"]),
          "- more settings for the hub (`SWARMHUB_BENCH_HUB_ENV`): %s"
          % (" ".join("`%s`" % x for x in HUB_ENV) or "none"),
          "- latency client: %d threads, one keep-alive connection each, "
          "`GET /hub/api/user` with the admin token then %.0f ms pause; a "
          "request is \"during\" a pass when it started inside [end − "
          "duration, end] of a culler pass (from the metrics; same clock)."
          % (CFG["lat_threads"], CFG["lat_every_s"] * 1e3),
          "- usage: the per-node agents (`swarmhub agent`, a global service "
          "on the hub's overlay, each reading its own node's Engine API; "
          "`SWARMHUB_USAGE_AGENTS=tasks.<agent>:8001`), so a usage pass "
          "samples the servers of every node (\"containers sampled\" in the "
          "rows: the pass's `swarmhub_pass_last_servers`)", ""]
    if R["notes"]:
        L += ["## Notes", ""] + ["- " + n for n in R["notes"]] + [""]
    return "\n".join(L)


# ---------------------------------------------------------------- main

def machine(R, swarm):
    R["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    R["uptime_start"] = sh("uptime")
    R["cpu"] = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    R["mem"] = "%.1f GiB" % (int(sh("grep MemTotal /proc/meminfo | "
                                    "awk '{print $2}'") or 0) / 1048576)
    R["kernel"] = sh("uname -r")
    R["git"] = sh("git -C %s rev-parse --short HEAD" % ROOT) + (
        "+dirty" if sh("git -C %s status --porcelain -uno" % ROOT) else "")
    st, v = swarm["engine"].call("GET", "/version")
    R["docker"] = v.get("Version", "?") if st == 200 else "?"
    R["pg"] = sh("psql --version | awk '{print $3}'")


def same_images(swarm):
    """Reloads into every node an image whose ID differs from the main
    dockerd's (swarm["load"] only adds missing ones; a rebuilt test-tiny
    would otherwise run in its old version)."""
    for img in IMAGES.split():
        want = sh("docker image inspect -f '{{.Id}}' %s" % img)
        for i in range(len(swarm["nodes"])):
            host = "unix://" + C.node_socket(swarm["engine"], i)
            if sh("docker -H %s image inspect -f '{{.Id}}' %s 2>/dev/null"
                  % (host, img)) != want:
                log("loading %s into node %d" % (img, i))
                os.system("docker save %s | docker -H %s load -q >/dev/null"
                          % (img, host))


def run(R):
    global SWARM
    with C.swarm_session(IMAGES, 3) as swarm, \
            tempfile.TemporaryDirectory(prefix="scale-") as d:
        SWARM = swarm
        same_images(swarm)
        machine(R, swarm)
        agent = C.agent_name("sclag")
        env = ["SWARMHUB_USAGE_AGENTS=tasks.%s:%d" % (agent, C.AGENT_PORT),
               "SWARMHUB_CULL_TIMEOUT=3600",
               "SWARMHUB_CULL_EVERY=%d" % CFG["cull_every_s"],
               "SWARMHUB_USAGE_EVERY=%d" % CFG["usage_every_s"],
               # 60 starts at once on a loaded machine: Docker alone may
               # take longer than the tests' 60 s
               "SWARMHUB_START_TIMEOUT=300"]
        env = C.env_merge(env, HUB_ENV)
        # the image's health check (5 s timeout, 3 tries) has Swarm kill
        # the hub when the shared machine is overloaded (seen at a load of
        # 100): that measures the machine, not the hub
        health = {"Healthcheck": {"Interval": 30 * 10**9,
                                  "Timeout": 60 * 10**9, "Retries": 10}}
        os.mkdir(os.path.join(d, "hub"))
        with C.hub_service(swarm, os.path.join(d, "hub"), PROFILES, env=env,
                           prefix="scl", subnet=CFG["subnet"],
                           container=health) as hub, \
                C.usage_agent(swarm, hub, d, agent):
            try:
                rows(hub, swarm, R)
            finally:
                save_log(swarm, hub)


def save_log(swarm, hub):
    """The hub's log (its service's, from the manager) into the scratch
    directory, for reading after a run."""
    out = os.environ.get("SWARMHUB_TEST_OUT")
    if not out:
        return
    try:
        st, raw = swarm["engine"].call("GET", "/services/%s/logs?stderr=1&"
                                       "stdout=1&tail=20000" % hub["service"],
                                       timeout=120)
    except OSError as e:    # a report without the log rather than none
        log("could not fetch the hub's log: %s" % e)
        return
    if st == 200 and isinstance(raw, str):
        with open(os.path.join(out, "hub.log"), "w") as f:
            f.write(raw)


def hold(hub, n):
    """SWARMHUB_BENCH_HOLD=1: say how to reach the hub and wait until the
    file is removed (for perf and experiments by hand)."""
    f = os.path.join(tempfile.gettempdir(), "swarmhub-scale-hold")
    with open(f, "w") as fh:
        fh.write("servers=%d\nurl=%s\nservice=%s\ntoken=%s\n"
                 % (n, hub["url"], hub["service"], hub["token"]))
    log("holding at %d servers: see %s; remove it to go on" % (n, f))
    while os.path.exists(f):
        time.sleep(1)


def rows(hub, swarm, R):
    log("hub %s at %s" % (hub["service"], hub["url"]))
    c = Client(hub)
    names = ["u%05d" % i for i in range(CFG["users"])]
    t = time.time()
    for i in range(0, len(names), 1000):
        c.json("POST", "/hub/api/users",
               {"usernames": names[i:i + 1000]}, want=(201,))
    log("%d users in %.1f s" % (len(names), time.time() - t))
    c.json("POST", "/hub/api/users/" + ADMIN, {}, want=(201,))
    c.json("PATCH", "/hub/api/users/" + ADMIN,
           {"admin": True, "password": ADMIN_PW})
    c.close()
    s, r = T.login(type("H", (), {"url": hub["url"]}), ADMIN,
                   ADMIN_PW)
    if r.status_code != 302:
        raise RuntimeError("admin login: HTTP %d" % r.status_code)
    cookies = s.cookies.get_dict()
    running = 0
    done_burst = CFG["burst"] <= 0
    per_mb = CFG["per_server_mb"]
    for n in CFG["sizes"]:
        if not done_burst and n > CFG["burst"] + running:
            log("burst: %d servers at once" % CFG["burst"])
            burst(hub, swarm, names[running:running + CFG["burst"]],
                  R)
            running += R["burst"]["ready"]
            done_burst = True
        want = n
        room = (mem_avail_mb() - CFG["keep_free_mb"]) // per_mb
        if want - running > room:
            want = running + max(0, room)
            R["notes"].append(
                "row %d: only %d servers (memory: %d MB available, "
                "~%d MB per server)" % (n, want, mem_avail_mb(),
                                        per_mb))
        if want > running:
            log("growing to %d servers (load %s, %d MB free)"
                % (want, load(), mem_avail_mb()))
            before = mem_avail_mb()
            got = grow(hub, names[running:], want - running, R)
            if got > running + 10:
                per_mb = max(per_mb, (before - mem_avail_mb()) //
                             (got - running) + 5)
            running = got
        log("row: %d servers (load %s)" % (running, load()))
        measure_row(hub, cookies, running, R)
        if HOLD:
            hold(hub, running)
        if AB_BIN:
            log("row: %d servers with %s" % (running, AB_BIN))
            use_binary(hub, AB_BIN)
            hub["restart"]()
            measure_row(hub, cookies, running, R, "rows_ab")
            use_binary(hub, os.path.dirname(T.hub_binary()))
            hub["restart"]()


def main():
    R = {"rows": [], "rows_ab": [], "ab_bin": AB_BIN, "notes": [], "date": "?", "uptime_start": sh("uptime"),
         "cpu": "?", "mem": "?", "kernel": "?", "git": "?", "docker": "?",
         "pg": "?"}
    failed = None
    try:
        run(R)
    except (pytest.skip.Exception, pytest.fail.Exception, AssertionError,
            RuntimeError, OSError, KeyError, ValueError,
            http.client.HTTPException, requests.RequestException) as e:
        failed = "%s: %s" % (type(e).__name__, e)
        log("FAILED: " + failed)
    if R["rows"]:
        text = svg(series(R["rows"]))
        if text:
            with open(SVG, "w") as f:
                f.write(text)
            R["svg"] = True
    text = report(R, failed)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write(text + "\n")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    sys.exit(main())

#!/usr/bin/python3
"""culler.py - the culler benchmark: one culler pass over N running servers.

Started by tests/bench/culler.sh, which starts a throwaway PostgreSQL cluster
and the Docker swarm. This program starts swarmhub with spawning and the
culler on (CULL_TIMEOUT large, so every pass probes every server and stops
none; CULL_EVERY=5, CULL_CONCURRENCY=10), starts N servers of the tiny test
image in batches, lets the culler run several passes over all N while a paced
client measures GET /hub/api/user, first at the default CULL_PROBE_RATE (what
users run), then after a restart with CULL_PROBE_RATE=0 (the hub's own speed
through a pass), then stops every server and writes
tests/bench/results/culler.md (also printed). Method: README.md here.

Environment (set by culler.sh): BENCH_WORK, BENCH_DB, BENCH_NETWORK,
BENCH_HUB_ID, BENCH_PG_VERSION (as for spawn.py, whose helpers it imports).
Knobs:
  SWARMHUB_BENCH_QUICK=1       40 servers
  SWARMHUB_BENCH_SERVERS=N     servers (default 200)
  SWARMHUB_BIN=PATH            the hub binary (default bin/swarmhub)

Exit status: 0 when the hub and Docker could be used (missed targets are
reported as MISS), 1 when the hub could not start or Docker could not be
used, 2 on a usage error. Standard library and tests/integration/hubtest.py
only.
"""
import http.client
import json
import os
import secrets
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import hub_api as H  # noqa: E402
import hubtest as T  # noqa: E402  (the tests' profiles writer)
import spawn as S    # noqa: E402  (Docker, SpawnHub, LOGFMT, parse_ts, remove_services…)

RESULTS = os.path.join(HERE, "results", "culler.md")
QUICK = os.environ.get("SWARMHUB_BENCH_QUICK", "") not in ("", "0")
CFG = {
    "servers": int(os.environ.get("SWARMHUB_BENCH_SERVERS") or (40 if QUICK else 200)),
    "batch": 50,
    "spawn_limit": 100,
    "cull_every_s": 5, "cull_concurrency": 10, "cull_timeout_s": 3600,
    "cull_probe_timeout_s": 5,
    "passes": 5,                    # passes over all N servers to measure
    "idle_s": 10,                   # latency client before any server exists
    "lat_threads": 4, "lat_every_s": 0.01,
    "batch_timeout_s": 300.0, "stop_timeout_s": 300.0,
    "cpu": 0.02, "cpu_min": 0.01, "mem_gb": 0.03, "mem_min": 0.02,
    "cpu_reservation_ratio": 0.1,
    "default_rate": 100,            # the hub's CULL_PROBE_RATE default
    "targets": {"pass_s": 2.0, "p99_ms": 20.0},
}
# the spawn benchmark's hub class reads its own CFG for the spawn limit
S.CFG["spawn_limit"] = CFG["spawn_limit"]


def log(msg):
    print("bench: culler: " + msg, file=sys.stderr, flush=True)


class CullHub(S.SpawnHub):
    extra = {}    # more settings, for the unpaced restart

    def environ(self):
        env = super().environ()
        env.update(self.extra)
        env.update(SWARMHUB_CULL_TIMEOUT=str(CFG["cull_timeout_s"]),
                   SWARMHUB_CULL_EVERY=str(CFG["cull_every_s"]),
                   SWARMHUB_CULL_CONCURRENCY=str(CFG["cull_concurrency"]),
                   SWARMHUB_CULL_PROBE_TIMEOUT=str(CFG["cull_probe_timeout_s"]))
        return env


def fit(docker, want):
    """The largest n ≤ want whose memory limits fit in 80 % of MemAvailable and
    whose CPU reservations fit beside what the node already has reserved."""
    notes = []
    mem_avail = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                mem_avail = int(line.split()[1]) * 1024
    per_mem = CFG["mem_gb"] * 2**30  # mem_gb is GiB
    n_mem = int(mem_avail * 0.8 // per_mem) if mem_avail else want
    n_cpu = want
    try:
        nodes = docker.get("/nodes")
        node_cpu = sum(((n.get("Description") or {}).get("Resources") or {})
                       .get("NanoCPUs", 0) for n in nodes) / 1e9
        reserved = 0.0
        for t in docker.get("/tasks?filters=" + S.q({"desired-state": ["running"]})):
            r = (((t.get("Spec") or {}).get("Resources") or {}).get("Reservations")
                 or {})
            reserved += r.get("NanoCPUs", 0) / 1e9
        per_cpu = CFG["cpu"] * CFG["cpu_reservation_ratio"]
        n_cpu = int(max(0.0, node_cpu - reserved - 0.1) // per_cpu)
        notes.append("node: %.0f CPUs, %.2f already reserved; %.1f GB available memory"
                     % (node_cpu, reserved, mem_avail / 1e9))
    except (S.DockerError, ValueError, KeyError) as e:
        notes.append("could not read the node's reservations: %s" % e)
    return min(want, n_mem, n_cpu), notes


# ---------------------------------------------------------------- latency client

class Latency:
    """CFG['lat_threads'] threads, each one keep-alive connection, GET /hub/api/user
    with the admin token every CFG['lat_every_s']; (start epoch s, ms, status)."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.samples = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def run(self):
        hdr = {"Authorization": "token " + self.token}
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        mine = []
        while not self.stop_ev.is_set():
            t0 = time.time()
            p0 = time.perf_counter()
            st = 0
            try:
                c.request("GET", "/hub/api/user", headers=hdr)
                r = c.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            mine.append((t0, (time.perf_counter() - p0) * 1e3, st))
            time.sleep(CFG["lat_every_s"])
        c.close()
        with self.lock:
            self.samples.extend(mine)

    def start(self):
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(CFG["lat_threads"])]
        for th in self.threads:
            th.start()

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(60)
        return sorted(self.samples)


def lat_stats(samples):
    v = [ms for _, ms, _ in samples]
    bad = sum(1 for _, _, st in samples if st != 200)
    if not v:
        return {"n": 0, "bad": bad}
    return {"n": len(v), "bad": bad, "p50": H.pct(v, 50), "p90": H.pct(v, 90),
            "p99": H.pct(v, 99), "max": max(v)}


# ---------------------------------------------------------------- hub log

def passes(path):
    """The culler.pass lines of the hub's log: [{t_end, ms, servers, probed, …}]."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if "event=culler.pass" not in line:
                continue
            kv = {k: v.strip('"') for k, v in S.LOGFMT.findall(line)}
            try:
                p = {k: int(kv[k]) for k in ("servers", "probed", "probe_failures", "ms")}
                for k in ("culled_idle", "culled_max_age", "failures"):
                    p[k] = int(kv.get(k, 0))
            except (KeyError, ValueError):
                continue
            p["t_end"] = S.parse_ts(kv.get("ts", ""))
            if p["t_end"] is None:
                continue
            p["t_start"] = p["t_end"] - p["ms"] / 1e3
            out.append(p)
    return out


# ---------------------------------------------------------------- measuring

def user_models(c):
    st, body, _ = c.request("GET", "/hub/api/users")
    H.expect(st, 200, "GET /hub/api/users", body)
    d = json.loads(body)
    if isinstance(d, dict):
        d = d.get("items") or []
    return {u["name"]: u for u in d}


def is_ready(u):
    s = (u.get("servers") or {}).get("")
    return bool(s and s.get("ready"))


def parallel(fn, items, workers):
    """fn(item) → value, over items with `workers` threads; {item: value}."""
    out, lock, it = {}, threading.Lock(), iter(list(items))

    def run():
        while True:
            with lock:
                x = next(it, None)
            if x is None:
                return
            try:
                v = fn(x)
            except Exception as e:  # recorded, counted as failure
                v = "%s: %s" % (type(e).__name__, e)
            with lock:
                out[x] = v

    ths = [threading.Thread(target=run, daemon=True) for _ in range(workers)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return out


def start_servers(hub, users, R):
    c = H.Client(hub.api_port, hub.token, timeout=60)

    def post(u):
        cc = H.Client(hub.api_port, hub.token, timeout=60)
        try:
            return cc.request("POST", "/hub/api/users/%s/server" % u, {})[0]
        finally:
            cc.close()

    t_all = time.time()
    batches = []
    for i in range(0, len(users), CFG["batch"]):
        b = users[i:i + CFG["batch"]]
        t0 = time.time()
        codes = parallel(post, b, len(b))
        bad = {u: v for u, v in codes.items() if v not in (201, 202)}
        want = [u for u in b if u not in bad]
        end = t0 + CFG["batch_timeout_s"]
        ready = 0
        while time.time() < end:
            m = user_models(c)
            ready = sum(1 for u in want if is_ready(m.get(u, {})))
            dead = [u for u in want if not is_ready(m.get(u, {})) and
                    not (m.get(u, {}).get("servers") or {}) and not m.get(u, {}).get("pending")]
            if ready + len(dead) >= len(want):
                break
            time.sleep(0.5)
        dt = time.time() - t0
        batches.append({"n": len(b), "ready": ready, "s": dt,
                        "post_errors": {str(k): v for k, v in bad.items()}})
        log("  batch %d: %d of %d ready in %.1f s" % (len(batches), ready, len(b), dt))
        for u, v in sorted(bad.items())[:5]:
            R["errors"].append("POST server %s: %s" % (u, v))
    R["start_s"] = time.time() - t_all
    R["batches"] = batches
    m = user_models(c)
    c.close()
    return [u for u in users if is_ready(m.get(u, {}))]


def stop_servers(hub, docker, users, R):
    def delete(u):
        cc = H.Client(hub.api_port, hub.token, timeout=60)
        try:
            return cc.request("DELETE", "/hub/api/users/%s/server" % u)[0]
        finally:
            cc.close()

    t0 = time.time()
    codes = parallel(delete, users, 20)
    R["delete_codes"] = {}
    for v in codes.values():
        R["delete_codes"][str(v)] = R["delete_codes"].get(str(v), 0) + 1
    c = H.Client(hub.api_port, hub.token, timeout=60)
    end = t0 + CFG["stop_timeout_s"]
    gone = False
    while time.time() < end:
        m = user_models(c)
        if not any((u.get("servers") or {}) for u in m.values()):
            R.setdefault("stop_hub_s", time.time() - t0)
            if not docker.services_labelled(hub.hub_id):
                gone = True
                break
        time.sleep(0.5)
    c.close()
    R["stop_gone_s"] = time.time() - t0 if gone else None
    log("  stopped: %s" % ("all services gone after %.1f s" % R["stop_gone_s"] if gone
                           else "NOT all gone after %.0f s" % CFG["stop_timeout_s"]))
    if not gone:
        R["errors"].append("services left %.0f s after the DELETEs" % CFG["stop_timeout_s"])


def observe(hub, n, R, key):
    """Waits for CFG['passes'] + 1 culler passes that start from now while
    the latency client runs; R["passes" + key], R["lat_pass" + key],
    R["lat_between" + key]."""
    log("culler passes (every %d s)%s: waiting for %d passes over %d servers"
        % (CFG["cull_every_s"], " unpaced" if key else "", CFG["passes"], n))
    t_from = time.time()
    lat = Latency(hub.api_port, hub.token)
    lat.start()
    end = t_from + CFG["passes"] * CFG["cull_every_s"] * 3 + 60
    P = []
    while time.time() < end:
        time.sleep(1)
        P = [p for p in passes(hub.log) if p["t_start"] >= t_from]
        if len(P) >= CFG["passes"] + 1:   # one more, so latency covers after the last
            break
        if hub.proc is None or hub.proc.poll() is not None:
            R["errors"].append("the hub exited during the passes")
            break
    samples = lat.stop()
    R["passes" + key] = P
    inpass = [s for s in samples
              if any(p["t_start"] - 0.001 <= s[0] <= p["t_end"] + 0.001 for p in P)]
    between = [s for s in samples
               if not any(p["t_start"] - 0.001 <= s[0] <= p["t_end"] + 0.001 for p in P)]
    R["lat_pass" + key] = lat_stats(inpass)
    R["lat_between" + key] = lat_stats(between)
    log("%d passes: ms %s" % (len(P), ", ".join(str(p["ms"]) for p in P)))


def measure(hub, docker, R):
    n = R["n"]
    users = ["cull%03d" % i for i in range(n)]
    c = H.Client(hub.api_port, hub.token)
    for i in range(0, n, 1000):
        st, body, _ = c.request("POST", "/hub/api/users", {"usernames": users[i:i + 1000]})
        H.expect(st, 201, "POST /hub/api/users", body)
    c.close()

    log("latency before any server (%d s)" % CFG["idle_s"])
    lat = Latency(hub.api_port, hub.token)
    lat.start()
    time.sleep(CFG["idle_s"])
    R["lat_idle"] = lat_stats(lat.stop())

    log("starting %d servers in batches of %d" % (n, CFG["batch"]))
    ready = start_servers(hub, users, R)
    R["ready"] = len(ready)
    log("%d of %d servers ready after %.1f s" % (len(ready), n, R["start_s"]))

    # passes over all ready servers at the default pace, then unpaced
    observe(hub, len(ready), R, "")
    log("restarting the hub with SWARMHUB_CULL_PROBE_RATE=0 (it adopts the "
        "servers)")
    hub.stop()
    hub.extra = {"SWARMHUB_CULL_PROBE_RATE": "0"}
    hub.start()
    observe(hub, len(ready), R, "0")

    log("stopping %d servers" % len(ready))
    stop_servers(hub, docker, [u for u in users], R)


# ---------------------------------------------------------------- report

def f(x, nd=1):
    return "—" if x is None else "%.*f ms" % (nd, x)


def report(R, m, failed):
    n, want = R.get("n"), CFG["servers"]
    tg = CFG["targets"]
    L = ["# Culler benchmark: one pass over %s running servers" % (n or "?"), ""]
    L.append("Generated by `tests/bench/culler.sh` (also run by `make bench`) on %s%s. "
             "Method: tests/bench/README.md, section \"Culler benchmark\"."
             % (m["date"], " — **quick run** (SWARMHUB_BENCH_QUICK=1)" if QUICK else ""))
    L.append("")
    if failed:
        L.append("**The benchmark could not run**: %s" % failed)
        L.append("")
    if n is not None and n < want:
        L.append("**Only %d servers** (of %d asked): that is what fits on this machine "
                 "(%s)." % (n, want, "; ".join(R.get("fit_notes", []))))
        L.append("")
    P = R.get("passes") or []
    full = [p for p in P if p["servers"] == R.get("ready")]
    if R.get("batches") is not None:
        L.append("## Results")
        L.append("")
        L.append("| metric | value | target |")
        L.append("| --- | --- | --- |")
        L.append("| servers started (batches of %d, CONCURRENT_SPAWN_LIMIT=%d) | %d of %d "
                 "ready | |" % (CFG["batch"], CFG["spawn_limit"], R.get("ready", 0), n))
        L.append("| time to start them all | %.1f s (batches: %s) | |" % (
            R.get("start_s", 0), ", ".join("%.1f s" % b["s"] for b in R["batches"])))
        full0 = [p for p in R.get("passes0") or [] if p["servers"] == R.get("ready")]
        L.append("| culler passes over all %d servers (after all were ready): "
                 "paced / unpaced | %d / %d | ≥ %d each |"
                 % (R.get("ready", 0), len(full), len(full0), CFG["passes"]))
        for P_, label in ((full, "pass duration at the default pace "
                           "(`CULL_PROBE_RATE` unset: %d probes a second; a pass "
                           "spreads its probes over servers / rate by design): "
                           "median / max" % CFG["default_rate"]),
                          (full0, "**pass duration unpaced** "
                           "(`CULL_PROBE_RATE=0`: the hub's speed): median / max")):
            ms_ = [p["ms"] for p in P_]
            mx = max(ms_) if ms_ else None
            tgt = ""
            if P_ is full0:
                ok = None if mx is None else (mx <= tg["pass_s"] * 1e3 and
                                              R.get("ready") == CFG["servers"])
                tgt = "≤ %.0f s with %d servers: %s" % (
                    tg["pass_s"], CFG["servers"], S.verdict(ok))
            L.append("| %s (`culler.pass ms=`) | %s / %s | %s |" % (
                label, "—" if not ms_ else "%.0f ms" % statistics.median(ms_),
                "—" if mx is None else "%.0f ms" % mx, tgt))
        L.append("| probe failures (sum over these passes) | %s | 0 |" % (
            sum(p["probe_failures"] for p in full + full0) if full else "—"))
        L.append("| servers culled by these passes | %s | 0 (timeout %d s) |" % (
            sum(p["culled_idle"] + p["culled_max_age"] for p in full + full0)
            if full else "—", CFG["cull_timeout_s"]))
        for key, label in (("lat_idle", "GET /hub/api/user before any server (%d s)"
                            % CFG["idle_s"]),
                           ("lat_pass", "**GET /hub/api/user during the passes** "
                            "(default pace)"),
                           ("lat_between", "GET /hub/api/user between the passes (N "
                            "servers running, no pass)"),
                           ("lat_pass0", "GET /hub/api/user during unpaced passes"),
                           ("lat_between0", "GET /hub/api/user between unpaced "
                            "passes")):
            s = R.get(key) or {}
            extra = ""
            if key == "lat_pass":
                ok = None if s.get("p99") is None else s["p99"] <= tg["p99_ms"]
                extra = "p99 ≤ %.0f ms: %s" % (tg["p99_ms"], S.verdict(ok))
            L.append("| %s: p50 / p99 / max (%s requests) | %s / %s / %s | %s |" % (
                label, s.get("n", 0), f(s.get("p50"), 2), f(s.get("p99"), 2),
                f(s.get("max"), 1), extra))
        L.append("| stop all (%d DELETEs, 20 at a time) → hub says stopped | %s | |" % (
            R.get("ready", 0), "—" if R.get("stop_hub_s") is None
            else "%.1f s" % R["stop_hub_s"]))
        L.append("| → every service gone from Docker | %s | |" % (
            "—" if R.get("stop_gone_s") is None else "%.1f s" % R["stop_gone_s"]))
        L.append("")
    for key, what in (("passes", "at the default pace"), ("passes0", "unpaced")):
        P_ = R.get(key) or []
        if not P_:
            continue
        L.append("Every `culler.pass` line logged after all servers were ready, "
                 "%s:" % what)
        L.append("")
        L.append("| # | servers | probed | probe_failures | culled | failures | ms |")
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for i, p in enumerate(P_, 1):
            L.append("| %d | %d | %d | %d | %d | %d | %d |" % (
                i, p["servers"], p["probed"], p["probe_failures"],
                p["culled_idle"] + p["culled_max_age"], p["failures"], p["ms"]))
        L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- date: %s" % m["date"])
    L.append("- CPU: %s, `nproc` = %s" % (m["cpu"], m["nproc"]))
    L.append("- memory: %s; kernel %s; %s" % (m["mem"], m["kernel"], m["os"]))
    L.append("- swarmhub: git %s, `%s`" % (m["git"], os.path.relpath(m["swarmhub_bin"], ROOT)))
    L.append("- Docker Engine %s, one-node swarm, overlay network `%s`; image %s"
             % (m.get("docker", "?"), os.environ.get("BENCH_NETWORK", "?"),
                m.get("image", S.IMAGE)))
    L.append("- PostgreSQL %s (throwaway cluster, fsync=off), Python %s"
             % (m["postgres"], m["python"]))
    L.append("")
    L.append("## Method (short)")
    L.append("")
    L.append("swarmhub on the host as in the spawn benchmark (SWARMHUB_CONNECT=gwbridge, "
             "local homes, hub id %s, CONCURRENT_SPAWN_LIMIT=%d), profile: image "
             "`%s`, cpu min %.2f default %.2f, mem_gb min %.2f default %.2f, "
             "cpu_reservation_ratio %.1f. Culler: CULL_TIMEOUT=%d (nothing is idle that "
             "long, so each pass probes every server and stops none), CULL_EVERY=%d, "
             "CULL_CONCURRENCY=%d, CULL_PROBE_TIMEOUT=%d; passes measured first "
             "at the default CULL_PROBE_RATE, then after a restart with "
             "CULL_PROBE_RATE=0 (the hub adopts the running servers). %d users, their servers "
             "POSTed %d at a time, each batch waited for until every server is ready in "
             "the user model. Pass durations and counts are the hub's own "
             "`event=culler.pass` lines; a pass is [ts − ms, ts]. Latency: %d threads, "
             "each on one keep-alive connection, `GET /hub/api/user` with the admin "
             "token then a %.0f ms pause (~%d requests/s); a request counts as "
             "\"during the passes\" when it started inside a pass. Percentiles are "
             "nearest-rank."
             % (R.get("hub_id", "?"), CFG["spawn_limit"], S.IMAGE, CFG["cpu_min"],
                CFG["cpu"], CFG["mem_min"], CFG["mem_gb"], CFG["cpu_reservation_ratio"],
                CFG["cull_timeout_s"], CFG["cull_every_s"], CFG["cull_concurrency"],
                CFG["cull_probe_timeout_s"], n or 0, CFG["batch"], CFG["lat_threads"],
                CFG["lat_every_s"] * 1e3,
                int(CFG["lat_threads"] / CFG["lat_every_s"])))
    L.append("")
    notes = list(R.get("errors", []))
    for key in ("lat_idle", "lat_pass", "lat_between", "lat_pass0",
                "lat_between0"):
        s = R.get(key) or {}
        if s.get("bad"):
            notes.append("%s: %d answers not 200" % (key, s["bad"]))
    if R.get("delete_codes") and set(R["delete_codes"]) - {"202", "204"}:
        notes.append("DELETE answers: %s" % ", ".join(
            "%d × %s" % (v, k) for k, v in sorted(R["delete_codes"].items())))
    for b in R.get("batches") or []:
        if b["ready"] < b["n"]:
            notes.append("a batch of %d had only %d ready after %.0f s" % (
                b["n"], b["ready"], b["s"]))
    if notes:
        L.append("## Notes")
        L.append("")
        L.extend("- " + x for x in notes)
        L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- main

def main():
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, H.on_signal)
    work = os.environ.get("BENCH_WORK")
    env = {k: os.environ.get(k) for k in ("BENCH_DB", "BENCH_NETWORK", "BENCH_HUB_ID")}
    if not work or not all(env.values()):
        print("culler.py: BENCH_WORK, BENCH_DB, BENCH_NETWORK and BENCH_HUB_ID must be "
              "set; run tests/bench/culler.sh", file=sys.stderr)
        return 2
    if CFG["servers"] < 1:
        print("culler.py: SWARMHUB_BENCH_SERVERS must be ≥ 1", file=sys.stderr)
        return 2
    hub_id = env["BENCH_HUB_ID"]
    R = {"errors": [], "hub_id": hub_id}
    failed = None
    hub = None
    try:
        docker = S.Docker()
        st, _ = docker.call("GET", "/_ping")
        if st != 200:
            raise S.DockerError("Docker GET /_ping: HTTP %d" % st)
    except S.DockerError as e:
        print("culler.py: %s" % e, file=sys.stderr)
        return 1
    R["n"], R["fit_notes"] = fit(docker, CFG["servers"])
    if R["n"] < CFG["servers"]:
        log("only %d servers fit (%s)" % (R["n"], "; ".join(R["fit_notes"])))
    binary = H.swarmhub_bin()
    try:
        if R["n"] < 1:
            raise S.DockerError("no server fits on this node (%s)"
                                % "; ".join(R["fit_notes"]))
        if not os.access(binary, os.X_OK):
            raise H.StartError("%s not found or not executable (run make)" % binary)
        profiles = os.path.join(work, "profiles.json")
        T.write_notebook_profiles(
            profiles, cpu=(CFG["cpu_min"], 1, CFG["cpu"]),
            mem_gb=(CFG["mem_min"], 1, CFG["mem_gb"]), real=False,
            ratio=CFG["cpu_reservation_ratio"], cmd=T.NB_CMD,
            tiny_description="the fake notebook of images/test-notebook")
        homes = os.path.join(work, "homes")
        os.makedirs(homes, exist_ok=True)
        hub = CullHub(work, env["BENCH_DB"], secrets.token_hex(24), binary,
                      env["BENCH_NETWORK"], hub_id, profiles, homes)
        log("swarmhub: log %s, hub id %s" % (hub.log, hub_id))
        hub.start()
        c = H.Client(hub.api_port, hub.token)
        st, body, _ = c.request("GET", "/hub/api/user")
        H.expect(st, 200, "GET /hub/api/user with the admin token", body)
        c.close()
        try:
            measure(hub, docker, R)
        except (RuntimeError, S.DockerError, OSError, http.client.HTTPException,
                ValueError) as e:
            R["errors"].append("measuring: %s: %s" % (type(e).__name__, e))
            log("FAILED: %s" % e)
        if hub.proc is None or hub.proc.poll() is not None:
            R["errors"].append("the hub exited during the measurements")
    except (H.StartError, S.DockerError) as e:
        failed = str(e)
        log(failed)
    finally:
        if hub is not None:
            H.cleanup()
        S.remove_services(docker, hub_id, "jupyter-%s-" % hub_id)

    text = report(R, S.machine(docker), failed)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write(text + "\n")
    print(text)
    print("\n(written to %s)" % os.path.relpath(RESULTS, os.getcwd()), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

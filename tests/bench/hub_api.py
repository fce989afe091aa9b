#!/usr/bin/python3
"""hub_api.py - the hub-API benchmark: swarmhub and JupyterHub 3.0 side by side.

Started by tests/bench/run.sh, which installs the packages, starts a throwaway
PostgreSQL cluster and creates one database per hub. This program starts each
hub, measures it with the identical method (see README.md in this directory),
stops it, and writes the table to tests/bench/results/hub-api.md and stdout.

Environment (set by run.sh):
  BENCH_WORK             scratch directory (logs, JupyterHub's files)
  BENCH_DB_SWARMHUB      postgresql:// URI of swarmhub's database
  BENCH_DB_JUPYTERHUB    postgresql:// URI of JupyterHub's database
  BENCH_PG_VERSION       PostgreSQL server version, for the report
Knobs:
  SWARMHUB_BENCH_QUICK=1       small fast run (2,000 users, 3 s wrk) for smoke tests
  SWARMHUB_BENCH_ONLY=NAME     only "swarmhub" or only "jupyterhub"
  SWARMHUB_BENCH_USERS=N       users to create (multiple of 1,000)
  SWARMHUB_BIN=PATH            the hub binary (default bin/swarmhub)

Exit status: 0 when every hub ran (missed targets are reported, not failed),
1 when a hub could not be started, 2 on a usage or setup error.
Needs Debian's /usr/bin/python3 (JupyterHub itself is a Debian package).
"""
import datetime
import http.client
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from hubtest import free_port  # noqa: E402  (the tests' helpers)

RESULTS = os.path.join(HERE, "results", "hub-api.md")

QUICK = os.environ.get("SWARMHUB_BENCH_QUICK", "") not in ("", "0")
BATCH = 1000
CFG = {
    "users": int(os.environ.get("SWARMHUB_BENCH_USERS") or (2000 if QUICK else 10000)),
    "restarts": 1 if QUICK else 3,
    "get_all_n": {"swarmhub": 20 if QUICK else 100, "jupyterhub": 5 if QUICK else 20},
    "get_page_n": 50 if QUICK else 200,
    "wrk_seconds": 3 if QUICK else 10,
    "wrk_threads": 2,
    "wrk_conns": 16,
    "settle_s": 2.0 if QUICK else 5.0,
    "start_timeout_s": 120.0,
    "poll_s": 0.005,
}

# ---------------------------------------------------------------- processes

_LIVE = []  # hubs with something possibly running, for cleanup


class StartError(Exception):
    pass


def port_open(port):
    s = socket.socket()
    s.settimeout(0.2)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid):
    """All live descendants of pid (scan of /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def kill_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


# ---------------------------------------------------------------- HTTP

class Client:
    """One keep-alive connection; request() returns (status, body, seconds)."""

    def __init__(self, port, token=None, timeout=600):
        self.port, self.token, self.timeout = port, token, timeout
        self.conn = None

    def request(self, method, path, body=None):
        headers = {}
        if self.token:
            headers["Authorization"] = "token " + self.token
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                dt = time.perf_counter() - t0
                if resp.will_close:
                    self.close()
                return resp.status, data, dt
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def first_200(port, path, t0, deadline, out, key, stop):
    """Poll GET path every CFG['poll_s'] until 200; out[key] = seconds since t0."""
    while not stop.is_set() and time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                out[key] = time.monotonic() - t0
                return
        except (http.client.HTTPException, OSError):
            pass
        finally:
            conn.close()
        time.sleep(CFG["poll_s"])


# ---------------------------------------------------------------- hubs

class Hub:
    key = label = ""
    api_port = 0      # where clients talk to the hub API (the usual URL)

    def __init__(self, work, db, token):
        self.work = os.path.join(work, self.key)
        os.makedirs(self.work, exist_ok=True)
        self.log = os.path.join(self.work, self.key + ".log")
        self.db, self.token = db, token
        self.proc = None
        self.starts = 0

    def command(self):
        raise NotImplementedError

    def environ(self):
        raise NotImplementedError

    def probes(self):
        """{name: port} polled for the first 200 on GET /hub/api."""
        return {"api": self.api_port}

    def start(self):
        """Start; return {probe: seconds from exec to first 200}."""
        for p in set(self.probes().values()):
            if port_open(p):
                raise StartError("port %d already in use" % p)
        self.starts += 1
        logf = open(self.log, "a")
        logf.write("\n===== start %d (%s)\n" % (self.starts, time.ctime()))
        logf.flush()
        out, stop, threads = {}, threading.Event(), []
        t0 = time.monotonic()
        deadline = t0 + CFG["start_timeout_s"]
        try:
            self.proc = subprocess.Popen(self.command(), env=self.environ(),
                                         cwd=self.work, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        except OSError as e:
            raise StartError("cannot exec %s: %s" % (self.command()[0], e))
        finally:
            logf.close()
        _LIVE.append(self)
        for name, port in self.probes().items():
            th = threading.Thread(target=first_200, daemon=True,
                                  args=(port, "/hub/api", t0, deadline, out, name, stop))
            th.start()
            threads.append(th)
        while any(th.is_alive() for th in threads):
            if self.proc.poll() is not None:
                stop.set()
                raise StartError("%s exited with status %s during start-up; see %s"
                                 % (self.label, self.proc.returncode, self.log))
            time.sleep(0.05)
        missing = [n for n in self.probes() if n not in out]
        if missing:
            raise StartError("%s: no 200 on GET /hub/api (%s) within %.0f s; see %s"
                             % (self.label, ", ".join(missing),
                                CFG["start_timeout_s"], self.log))
        return out

    def tree(self):
        return [self.proc.pid] + descendants(self.proc.pid) if self.proc else []

    def rss(self):
        """{part: KiB} with 'total'."""
        tot = sum(rss_kib(p) for p in self.tree())
        return {"total": tot}

    def stop(self, timeout=60):
        if self.proc is None:
            return
        pids = self.tree()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print("bench: %s did not stop in %d s, killing" % (self.label, timeout),
                      file=sys.stderr)
        self.kill_rest(pids)

    def kill_rest(self, pids):
        end = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.05)
        for p in pids:
            if alive(p):
                kill_pid(p, signal.SIGKILL)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        self.proc = None
        if self in _LIVE:
            _LIVE.remove(self)


class Swarmhub(Hub):
    key, label = "swarmhub", "swarmhub"

    def __init__(self, work, db, token, binary):
        super().__init__(work, db, token)
        self.binary = binary
        self.api_port = free_port()
        self.secret = secrets.token_hex(32)

    def command(self):
        return [self.binary]

    def environ(self):
        env = dict(os.environ)
        env.update(SWARMHUB_LISTEN="127.0.0.1:%d" % self.api_port,
                   SWARMHUB_DB=self.db, SWARMHUB_SECRET=self.secret,
                   SWARMHUB_AUTH="local", SWARMHUB_ADMIN_TOKEN=self.token)
        return env


class JupyterHub(Hub):
    key, label = "jupyterhub", "JupyterHub"

    def __init__(self, work, db, token):
        super().__init__(work, db, token)
        self.api_port = free_port()       # configurable-http-proxy, public
        self.proxy_api_port = free_port()
        self.hub_port = free_port()       # the hub itself

    def command(self):
        return ["/usr/bin/jupyterhub", "-f", os.path.join(HERE, "jupyterhub_config.py")]

    def environ(self):
        env = dict(os.environ)
        # Debian's configurable-http-proxy needs Debian's node modules.
        env["NODE_PATH"] = "/usr/share/nodejs"
        env.update(JH_BENCH_DIR=self.work, JH_BENCH_DB=self.db,
                   JH_BENCH_TOKEN=self.token, JH_BENCH_PORT=str(self.api_port),
                   JH_BENCH_API_PORT=str(self.proxy_api_port),
                   JH_BENCH_HUB_PORT=str(self.hub_port))
        return env

    def probes(self):
        return {"api": self.api_port, "hub": self.hub_port}

    def split(self):
        hub, proxy = [self.proc.pid], []
        for p in descendants(self.proc.pid):
            (proxy if "configurable-http-proxy" in cmdline(p) else hub).append(p)
        return hub, proxy

    def rss(self):
        hub, proxy = self.split()
        h = sum(rss_kib(p) for p in hub)
        pr = sum(rss_kib(p) for p in proxy)
        return {"hub": h, "proxy": pr, "total": h + pr}

    def stop(self, timeout=60):
        if self.proc is not None:
            pids = self.tree()
            pidfile = os.path.join(self.work, "jupyterhub-proxy.pid")
            try:
                with open(pidfile) as f:
                    pids.append(int(f.read().strip()))
            except (OSError, ValueError):
                pass
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    print("bench: JupyterHub did not stop in %d s, killing" % timeout,
                          file=sys.stderr)
            self.kill_rest(pids)


def cleanup():
    for h in list(_LIVE):
        try:
            h.stop(timeout=20)
        except Exception as e:  # keep cleaning the others
            print("bench: cleanup of %s: %s" % (h.label, e), file=sys.stderr)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- measuring

def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def expect(status, want, what, body=b""):
    if status != want:
        raise RuntimeError("%s: HTTP %d, wanted %d: %s"
                           % (what, status, want, body[:200].decode(errors="replace")))


def user_count(body):
    data = json.loads(body)
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    return len(data)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk(port, token, path="/hub/api/user"):
    cmd = ["wrk", "-t%d" % CFG["wrk_threads"], "-c%d" % CFG["wrk_conns"],
           "-d%ds" % CFG["wrk_seconds"], "--latency",
           "-H", "Authorization: token " + token, "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=CFG["wrk_seconds"] + 60).stdout
    r = {"raw": out}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise RuntimeError("wrk printed no Requests/sec:\n" + out)
    r["rps"] = float(m.group(1))
    for q in ("50", "90", "99"):
        m = re.search(r"^\s*%s(?:\.0+)?%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % q, out, re.M)
        if m:
            r["p" + q] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    r["sockerr"] = m.group(1).strip() if m else ""
    return r


def measure(hub, log, r):
    """The five measurements on one hub into r. Raises StartError if it cannot start."""
    n, label = CFG["users"], hub.label

    def step(name, fn):
        log("%s: %s" % (label, name))
        try:
            fn()
        except StartError:
            raise
        except Exception as e:
            r["errors"].append("%s: %s" % (name, e))
            log("%s: %s FAILED: %s" % (label, name, e))

    hub.start()
    c = Client(hub.api_port, hub.token)
    st, body, _ = c.request("GET", "/hub/api")
    expect(st, 200, "GET /hub/api", body)
    r["version"] = json.loads(body).get("version", "?")
    st, body, _ = c.request("GET", "/hub/api/user")
    if st != 200:
        r["errors"].append("GET /hub/api/user with the admin token: HTTP %d" % st)

    # 1. create users in batches of 1,000
    def create():
        times = []
        for b in range(0, n, BATCH):
            names = ["bench%05d" % i for i in range(b, min(n, b + BATCH))]
            st, body, dt = c.request("POST", "/hub/api/users", {"usernames": names})
            expect(st, 201, "POST /hub/api/users (batch %d)" % (b // BATCH), body)
            if user_count(body) != len(names):
                r["errors"].append("POST batch %d answered %d users for %d names"
                                   % (b // BATCH, user_count(body), len(names)))
            times.append(dt * 1e3)
            log("  batch %d: %.1f ms" % (b // BATCH, dt * 1e3))
        r["post_ms"] = times
    step("create %d users" % n, create)
    c.close()
    hub.stop()

    # 2. restart with n users in the database
    starts = []
    for i in range(CFG["restarts"]):
        if i:
            hub.stop()
        t = hub.start()
        log("  start %d: %s" % (i + 1, ", ".join("%s %.3f s" % kv for kv in sorted(t.items()))))
        starts.append(t)
    r["start_s"] = {k: [s[k] for s in starts] for k in starts[0]}

    # 3. idle RSS
    time.sleep(CFG["settle_s"])
    r["rss"] = hub.rss()
    log("  idle RSS: %s" % ", ".join("%s %.1f MiB" % (k, v / 1024) for k, v in r["rss"].items()))

    c = Client(hub.api_port, hub.token)

    # 4. GET /hub/api/users, whole list and ?limit=200
    def get_all():
        st, body, dt = c.request("GET", "/hub/api/users")  # warm-up, not in the median
        expect(st, 200, "GET /hub/api/users", body)
        r["get_all_first_ms"] = dt * 1e3
        log("  first GET /hub/api/users: %.1f ms" % (dt * 1e3))
        r["get_all_count"] = user_count(body)
        r["get_all_bytes"] = len(body)
        times = []
        for _ in range(CFG["get_all_n"][hub.key]):
            st, body, dt = c.request("GET", "/hub/api/users")
            expect(st, 200, "GET /hub/api/users", body)
            times.append(dt * 1e3)
        r["get_all_ms"] = times
    step("GET /hub/api/users", get_all)

    def get_page():
        path = "/hub/api/users?limit=200&offset=0"
        st, body, _ = c.request("GET", path)
        expect(st, 200, "GET " + path, body)
        r["get_page_count"] = user_count(body)
        times = []
        for _ in range(CFG["get_page_n"]):
            st, body, dt = c.request("GET", path)
            expect(st, 200, "GET " + path, body)
            times.append(dt * 1e3)
        r["get_page_ms"] = times
    step("GET /hub/api/users?limit=200", get_page)
    c.close()

    # 5. GET /hub/api/user under wrk
    def load():
        r["wrk"] = wrk(hub.api_port, hub.token)
        log("  wrk: %.0f req/s" % r["wrk"]["rps"])
        if isinstance(hub, JupyterHub):
            r["wrk_hub"] = wrk(hub.hub_port, hub.token)
            log("  wrk (hub port): %.0f req/s" % r["wrk_hub"]["rps"])
    step("wrk GET /hub/api/user", load)

    r["rss_after"] = hub.rss()
    if hub.proc is None or hub.proc.poll() is not None:
        r["errors"].append("%s exited during the measurements" % label)
    hub.stop()


# ---------------------------------------------------------------- report

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception:
        return ""


def swarmhub_bin():
    return os.environ.get("SWARMHUB_BIN") or os.path.join(ROOT, "bin", "swarmhub")


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    dpkg = lambda p: sh("dpkg-query -W -f='${Version}' %s 2>/dev/null" % p) or "?"
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": sh("nproc"), "cpu": cpu, "mem": mem,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo \"$PRETTY_NAME\""),
        "git": (sh("git -C '%s' rev-parse --short HEAD 2>/dev/null" % ROOT) or "no commit") +
               (" + uncommitted changes" if sh("git -C '%s' status --porcelain -uno -- . "
                                                 "':!tests/bench/results' 2>/dev/null" % ROOT)
                else ""),
        "jupyterhub_deb": dpkg("jupyterhub"),
        "chp_deb": dpkg("node-configurable-http-proxy"),
        "node": sh("node --version"),
        "python": platform.python_version(),
        "wrk_deb": dpkg("wrk"),
        "postgres": os.environ.get("BENCH_PG_VERSION", "?"),
        "swarmhub_bin": swarmhub_bin(),
    }


def med(v):
    return statistics.median(v) if v else None


def fmt(x, unit, nd=1):
    return "—" if x is None else ("%.*f %s" % (nd, x, unit)).strip()


def ratio(s, j, higher_better=False):
    if not s or not j:
        return "—"
    return "%.1f×" % ((s / j) if higher_better else (j / s))


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "MISS")


def build_rows(S, J):
    """S, J: result dicts (or None). Rows: metric, sh, jh, ratio, target."""
    S, J = S or {}, J or {}
    g = lambda d, *ks: (d.get(ks[0]) if len(ks) == 1 else
                        (d.get(ks[0]) or {}).get(ks[1]))
    rows = []

    ps, pj = med(S.get("post_ms")), med(J.get("post_ms"))
    rows.append(("POST /hub/api/users, 1,000 names (median of %d batches)"
                 % (CFG["users"] // BATCH), fmt(ps, "ms"), fmt(pj, "ms"), ratio(ps, pj),
                 "≤ 500 ms: %s" % verdict(None if ps is None else ps <= 500)))

    ss = med(g(S, "start_s", "api"))
    ja, jh = med(g(J, "start_s", "api")), med(g(J, "start_s", "hub"))
    rows.append(("start → first 200 on GET /hub/api (median of %d; JupyterHub via its proxy)"
                 % CFG["restarts"], fmt(ss, "s", 3), fmt(ja, "s", 3), ratio(ss, ja),
                 "≤ 0.2 s: %s" % verdict(None if ss is None else ss <= 0.2)))
    rows.append(("  same, JupyterHub at its own hub port", "", fmt(jh, "s", 3),
                 ratio(ss, jh), ""))

    rs = g(S, "rss", "total")
    rj = J.get("rss") or {}
    jtxt = ("%.1f MiB (hub %.1f + proxy %.1f)" % (rj["total"] / 1024, rj["hub"] / 1024,
                                                  rj["proxy"] / 1024) if rj else "—")
    rows.append(("idle RSS after start", fmt(rs and rs / 1024, "MiB"), jtxt,
                 ratio(rs, rj.get("total")),
                 # the target is in MB (10^6 bytes): 15 MB = 14.3 MiB
                 "≤ 15 MB (14.3 MiB): %s"
                 % verdict(None if rs is None else rs * 1024 <= 15e6)))

    gs, gj = S.get("get_all_ms"), J.get("get_all_ms")
    rows.append(("GET /hub/api/users, all users: median (N=%d / %d)"
                 % (CFG["get_all_n"]["swarmhub"], CFG["get_all_n"]["jupyterhub"]),
                 fmt(med(gs), "ms"), fmt(med(gj), "ms"), ratio(med(gs), med(gj)),
                 "≤ 60 ms: %s" % verdict(None if not gs else med(gs) <= 60)))
    p90 = lambda v: pct(v, 90) if v else None
    rows.append(("  p90", fmt(p90(gs), "ms"), fmt(p90(gj), "ms"),
                 ratio(p90(gs), p90(gj)), ""))
    fs, fj = S.get("get_all_first_ms"), J.get("get_all_first_ms")
    rows.append(("  first request after start (warm-up, not in the median)",
                 fmt(fs, "ms"), fmt(fj, "ms"), ratio(fs, fj), ""))
    ls, lj = med(S.get("get_page_ms")), med(J.get("get_page_ms"))
    rows.append(("GET /hub/api/users?limit=200: median (N=%d)" % CFG["get_page_n"],
                 fmt(ls, "ms", 2), fmt(lj, "ms", 2), ratio(ls, lj),
                 "≤ 3 ms: %s" % verdict(None if ls is None else ls <= 3)))

    ws, wj = g(S, "wrk", "rps"), g(J, "wrk", "rps")
    ok = None if ws is None or wj is None else ws >= 50 * wj
    rows.append(("GET /hub/api/user, wrk -t%d -c%d -d%ds: requests/s"
                 % (CFG["wrk_threads"], CFG["wrk_conns"], CFG["wrk_seconds"]),
                 fmt(ws, "", 0), fmt(wj, "", 0), ratio(ws, wj, True),
                 "≥ 50× JupyterHub: %s" % verdict(ok)))
    rows.append(("  latency p50 / p99",
                 "%s / %s" % (fmt(g(S, "wrk", "p50"), "ms", 2), fmt(g(S, "wrk", "p99"), "ms", 2)),
                 "%s / %s" % (fmt(g(J, "wrk", "p50"), "ms", 2), fmt(g(J, "wrk", "p99"), "ms", 2)),
                 "", ""))
    wh = g(J, "wrk_hub", "rps")
    rows.append(("  requests/s, JupyterHub at its own hub port", "", fmt(wh, "", 0),
                 ratio(ws, wh, True), ""))
    ra = g(S, "rss_after", "total")
    rja = J.get("rss_after") or {}
    rows.append(("RSS after the measurements (for information)",
                 fmt(ra and ra / 1024, "MiB"),
                 ("%.1f MiB (hub %.1f + proxy %.1f)" % (rja["total"] / 1024, rja["hub"] / 1024,
                                                        rja["proxy"] / 1024) if rja else "—"),
                 ratio(ra, rja.get("total")), ""))
    return rows


def report(results, m, failed):
    S, J = results.get("swarmhub"), results.get("jupyterhub")
    n = CFG["users"]
    L = ["# Hub API benchmark: swarmhub vs JupyterHub 3.0", ""]
    L.append("Generated by `tests/bench/run.sh` (`make bench`) on %s%s. Method: "
             "tests/bench/README.md." % (m["date"], " — **quick run** (SWARMHUB_BENCH_QUICK=1)"
                                          if QUICK else ""))
    L.append("")
    L.append("%s users in each hub's database%s." % (
        format(n, ","), "" if n == 10000 else
        " (the targets are stated for 10,000 users, so PASS/MISS here is indicative only)"))
    L.append("")
    L.append("| metric | swarmhub | JupyterHub 3.0 | ratio | target |")
    L.append("| --- | --- | --- | --- | --- |")
    for row in build_rows(S, J):
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("ratio: how many times better swarmhub is (JupyterHub ÷ swarmhub for times and "
             "memory, swarmhub ÷ JupyterHub for requests/s); > 1× means swarmhub is better. "
             "MiB = 2^20 bytes (VmRSS).")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- date: %s" % m["date"])
    L.append("- CPU: %s, `nproc` = %s" % (m["cpu"], m["nproc"]))
    L.append("- memory: %s; kernel %s; %s" % (m["mem"], m["kernel"], m["os"]))
    L.append("- swarmhub: git %s, `%s` (GET /hub/api says %s); JupyterHub %s (Debian %s), "
             "configurable-http-proxy Debian %s on node %s, Python %s"
             % (m["git"], os.path.relpath(m["swarmhub_bin"], ROOT),
                (S or {}).get("version", "not run"),
                (J or {}).get("version", "not run"), m["jupyterhub_deb"], m["chp_deb"],
                m["node"], m["python"]))
    L.append("- PostgreSQL %s (throwaway cluster, fsync=off, synchronous_commit=off), "
             "wrk Debian %s" % (m["postgres"], m["wrk_deb"]))
    L.append("")
    L.append("## Method (short)")
    L.append("")
    L.append("Both hubs run against their own database in one PostgreSQL cluster, on "
             "127.0.0.1, one after the other, measured by the same code "
             "(tests/bench/hub_api.py): %s users created by POST /hub/api/users in batches of "
             "1,000 (each POST timed); the hub is stopped and started %d time(s), timing exec "
             "to the first 200 on GET /hub/api (polled every 5 ms); after %.0f s idle the "
             "VmRSS of the hub process and its children is summed (JupyterHub: the Python "
             "hub and configurable-http-proxy apart); GET /hub/api/users (whole list, no "
             "pagination; JupyterHub's api_page_max_limit lifted so it returns every user) "
             "timed sequentially on one keep-alive connection after one warm-up request "
             "(reported apart); "
             "likewise ?limit=200&offset=0; then `wrk -t%d -c%d -d%ds --latency` on GET "
             "/hub/api/user with the admin token. JupyterHub is measured at its usual URL "
             "(through configurable-http-proxy); the rows 'at its own hub port' bypass the "
             "proxy."
             % (format(n, ","), CFG["restarts"], CFG["settle_s"], CFG["wrk_threads"],
                CFG["wrk_conns"], CFG["wrk_seconds"]))
    L.append("")
    notes = []
    for key, label in (("swarmhub", "swarmhub"), ("jupyterhub", "JupyterHub")):
        if key in failed:
            notes.append("**%s could not be started**: %s" % (label, failed[key]))
        r = results.get(key)
        if not r:
            continue
        for e in r["errors"]:
            notes.append("%s: error: %s" % (label, e))
        if "get_all_count" in r and r["get_all_count"] != n:
            notes.append("%s: GET /hub/api/users returned %d users, not %d"
                         % (label, r["get_all_count"], n))
        if "get_all_bytes" in r:
            notes.append("%s: GET /hub/api/users body: %.2f MB for %d users"
                         % (label, r["get_all_bytes"] / 1e6, r.get("get_all_count", 0)))
        if "get_page_count" in r and r["get_page_count"] != min(200, n):
            notes.append("%s: ?limit=200 returned %d users" % (label, r["get_page_count"]))
        if r.get("post_ms"):
            notes.append("%s: POST batches (ms): %s" % (label, ", ".join(
                "%.0f" % t for t in r["post_ms"])))
        for k, v in sorted((r.get("start_s") or {}).items()):
            notes.append("%s: start-up times (%s, s): %s" % (
                label, "proxy URL" if key == "jupyterhub" and k == "api" else
                "hub port" if k == "hub" else "API port", ", ".join("%.3f" % t for t in v)))
        for wk in ("wrk", "wrk_hub"):
            w = r.get(wk)
            if w and (w["non2xx"] or "Socket errors" in w["raw"]):
                notes.append("%s: %s: %d non-2xx responses; socket errors: %s"
                             % (label, wk, w["non2xx"], w["sockerr"] or "none"))
    if notes:
        L.append("## Notes")
        L.append("")
        L.extend("- " + x for x in notes)
        L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- main

def main():
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    work = os.environ.get("BENCH_WORK")
    if not work:
        print("hub_api.py: BENCH_WORK not set; run tests/bench/run.sh", file=sys.stderr)
        return 2
    if CFG["users"] < BATCH or CFG["users"] % BATCH:
        print("hub_api.py: SWARMHUB_BENCH_USERS must be a multiple of %d" % BATCH,
              file=sys.stderr)
        return 2
    only = os.environ.get("SWARMHUB_BENCH_ONLY", "")
    which = [k for k in ("swarmhub", "jupyterhub") if not only or only == k]
    if not which:
        print("hub_api.py: SWARMHUB_BENCH_ONLY must be swarmhub or jupyterhub",
              file=sys.stderr)
        return 2

    def log(msg):
        print("bench: " + msg, file=sys.stderr, flush=True)

    results, failed = {}, {}
    try:
        for key in which:
            token = secrets.token_hex(24)
            if key == "swarmhub":
                binary = swarmhub_bin()
                if not os.access(binary, os.X_OK):
                    failed[key] = "%s not found or not executable (run make)" % binary
                    log(failed[key])
                    continue
                hub = Swarmhub(work, os.environ["BENCH_DB_SWARMHUB"], token, binary)
            else:
                hub = JupyterHub(work, os.environ["BENCH_DB_JUPYTERHUB"], token)
            log("%s: %s users, log %s" % (hub.label, format(CFG["users"], ","), hub.log))
            results[key] = {"errors": []}
            try:
                measure(hub, log, results[key])
            except StartError as e:
                failed[key] = str(e)
                log("%s" % e)
            except Exception as e:  # unexpected: report it, as a failed hub
                failed[key] = "%s: %s" % (type(e).__name__, e)
                log("%s: %s" % (hub.label, failed[key]))
            cleanup()
    finally:
        cleanup()

    text = report(results, machine(), failed)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write(text + "\n")
    print(text)
    print("\n(written to %s)" % os.path.relpath(RESULTS, os.getcwd()), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

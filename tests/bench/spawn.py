#!/usr/bin/python3
"""spawn.py - the spawn benchmark: where the time of a server start goes.

Started by tests/bench/spawn.sh, which starts a throwaway PostgreSQL cluster
and the Docker swarm. This program starts swarmhub with spawning on (tiny test
image, local homes, CONNECT=gwbridge), measures (1) sequential single spawns
phase by phase against Docker's own timestamps and (2) a burst of spawns
requested at once while wrk measures GET /hub/api/user, then writes
tests/bench/results/spawn.md (also printed). Method: README.md here.

Environment (set by spawn.sh):
  BENCH_WORK         scratch directory (hub log, profiles, homes)
  BENCH_DB           postgresql:// URI of the hub's (empty) database
  BENCH_NETWORK      attachable overlay network (tests/services/docker.sh)
  BENCH_HUB_ID       SWARMHUB_HUB_ID, also the label every service carries
  BENCH_PG_VERSION   PostgreSQL server version, for the report
Knobs:
  SWARMHUB_BENCH_QUICK=1     3 sequential spawns and a burst of 10
  SWARMHUB_BENCH_SPAWNS=N    sequential spawns (default 10)
  SWARMHUB_BENCH_BURST=N     burst size (default 50)
  SWARMHUB_BIN=PATH          the hub binary (default bin/swarmhub)

Exit status: 0 when the hub and Docker could be used (missed targets are
reported as MISS), 1 when the hub could not start or Docker could not be
used, 2 on a usage or setup error. Standard library and
tests/integration/hubtest.py only.
"""
import datetime
import http.client
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import hub_api as H  # noqa: E402  (Client, Swarmhub, StartError, pct, sh, machine)
import hubtest as T  # noqa: E402  (the tests' Docker socket and profiles)

RESULTS = os.path.join(HERE, "results", "spawn.md")
QUICK = os.environ.get("SWARMHUB_BENCH_QUICK", "") not in ("", "0")
IMAGE = T.TINY
CFG = {
    "seq_n": int(os.environ.get("SWARMHUB_BENCH_SPAWNS") or (3 if QUICK else 10)),
    "burst_n": int(os.environ.get("SWARMHUB_BENCH_BURST") or (10 if QUICK else 50)),
    "spawn_limit": 60,
    "idle_s": 3 if QUICK else 5,        # wrk before the burst
    "wrk_threads": 2, "wrk_conns": 4, "wrk_delay_ms": 10,
    "probe_every_s": 0.005,             # our own probe of a starting server
    "ready_timeout_s": 300.0,
    "stop_timeout_s": 120.0,
    "pause_s": 0.5,                     # between sequential spawns
    "cpu": 0.05, "mem_gb": 0.05, "cpu_reservation_ratio": 0.1,
    "targets": {"overhead_ms": 50.0, "burst_p99_ms": 20.0},
}


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- time

def parse_ts(s):
    """RFC 3339 with up to 9 fraction digits ('…T12:00:00.123456789Z') → epoch s."""
    if not s or s.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        hh, mm = m.group(3)[1:].split(":")
        t -= sign * datetime.timedelta(hours=int(hh), minutes=int(mm))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() + frac


# ---------------------------------------------------------------- Docker

class DockerError(Exception):
    pass


def q(obj):
    return urllib.parse.quote(json.dumps(obj, separators=(",", ":")))


class Docker:
    """The Engine API over its unix socket; one connection per call (thread-safe)."""

    def __init__(self):
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if not host.startswith("unix://"):
            raise DockerError("DOCKER_HOST=%s: the benchmark talks to a local unix "
                              "socket only" % host)
        self.path = host[len("unix://"):]

    def call(self, method, path, timeout=30):
        try:
            return T.docker_call(method, path, timeout=timeout, sock=self.path)
        except OSError as e:
            raise DockerError("Docker %s %s: %s" % (method, path, e))

    def get(self, path, missing_ok=False):
        st, body = self.call("GET", path)
        if st == 404 and missing_ok:
            return None
        if st != 200:
            raise DockerError("Docker GET %s: HTTP %d %s" % (path, st, body[:200]))
        return json.loads(body)

    def service(self, name):
        return self.get("/services/%s" % urllib.parse.quote(name), missing_ok=True)

    def tasks(self, name):
        return self.get("/tasks?filters=" + q({"service": [name]}))

    def containers_of(self, names):
        """Containers (any state) of the services named."""
        out = []
        for c in self.get("/containers/json?all=1&filters=" +
                          q({"label": ["com.docker.swarm.service.name"]})):
            if (c.get("Labels") or {}).get("com.docker.swarm.service.name") in names:
                out.append(c)
        return out

    def gwbridge_ip(self, container):
        net = self.get("/networks/docker_gwbridge")
        c = (net.get("Containers") or {}).get(container)
        if not c or not c.get("IPv4Address"):
            return None
        return c["IPv4Address"].split("/")[0]

    def services_labelled(self, hub_id):
        return self.get("/services?filters=" + q({"label": ["swarmhub.hub=" + hub_id]}))


class Events(threading.Thread):
    """Docker's event stream, container 'start' events → the watcher of the service."""

    def __init__(self, docker):
        super().__init__(daemon=True)
        self.docker = docker
        self.lock = threading.Lock()
        self.watch = {}          # service name → callback(container id, epoch s)
        self.ready = threading.Event()
        self.conn = None
        self.error = None

    def add(self, service, fn):
        with self.lock:
            self.watch[service] = fn

    def run(self):
        try:
            self.conn = T.UnixConn(self.docker.path, timeout=None)
            self.conn.request("GET", "/events?filters=" +
                              q({"type": ["container"], "event": ["start"]}))
            resp = self.conn.getresponse()
            if resp.status != 200:
                raise DockerError("GET /events: HTTP %d" % resp.status)
            self.ready.set()
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                svc = attrs.get("com.docker.swarm.service.name")
                with self.lock:
                    fn = self.watch.pop(svc, None)
                if fn:
                    t = ev.get("timeNano")
                    fn(ev.get("id") or (ev.get("Actor") or {}).get("ID"),
                       t / 1e9 if t else time.time())
        except Exception as e:  # reported; the probes then simply find nothing
            self.error = str(e)
        finally:
            self.ready.set()

    def stop(self):
        try:
            if self.conn and self.conn.sock:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---------------------------------------------------------------- the hub

class SpawnHub(H.Swarmhub):
    key, label = "swarmhub", "swarmhub"

    def __init__(self, work, db, token, binary, network, hub_id, profiles, homes):
        super().__init__(work, db, token, binary)
        self.network, self.hub_id = network, hub_id
        self.profiles, self.homes = profiles, homes

    def environ(self):
        env = super().environ()
        env.update(SWARMHUB_NETWORK=self.network, SWARMHUB_CONNECT="gwbridge",
                   SWARMHUB_HOME=self.homes, SWARMHUB_HOME_MOUNT="bind",
                   SWARMHUB_HUB_ID=self.hub_id, SWARMHUB_PROFILES=self.profiles,
                   SWARMHUB_CONCURRENT_SPAWN_LIMIT=str(CFG["spawn_limit"]),
                   # service names of their own: other test runs share the swarm
                   SWARMHUB_SERVICE_NAME_TEMPLATE="jupyter-%s-{user}" % self.hub_id)
        return env

    def service(self, user):
        return "jupyter-%s-%s" % (self.hub_id, user)


LOGFMT = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def hub_events(path):
    """{user: [fields…]} of the spawn/stop lines of the hub's log, in order."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            if "event=spawn." not in line and "event=server." not in line:
                continue
            kv = {}
            for k, v in LOGFMT.findall(line):
                if v.startswith('"'):
                    v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                kv[k] = v
            if "user" in kv:
                kv["t"] = parse_ts(kv.get("ts", ""))
                out.setdefault(kv["user"], []).append(kv)
    return out


# ---------------------------------------------------------------- one spawn

def probe_server(docker, rec, container, port):
    """Our own readiness probe: from the container's start, GET api/status every
    CFG['probe_every_s'] on its docker_gwbridge address until 200 with JSON."""
    try:
        svc = docker.service(rec["service"]) or {}
        env = (((svc.get("Spec") or {}).get("TaskTemplate") or {})
               .get("ContainerSpec") or {}).get("Env") or []
        token = next((e.split("=", 1)[1] for e in env if e.startswith("JUPYTER_TOKEN=")), "")
        ip, end = None, time.time() + 10
        while ip is None and time.time() < end:
            ip = docker.gwbridge_ip(container)
            if ip is None:
                time.sleep(0.005)
        if ip is None:
            rec["probe_error"] = "no docker_gwbridge address for the container"
            return
        if ip.startswith("10."):  # an overlay address: never from the host
            rec["probe_error"] = "gwbridge lookup gave an overlay address %s" % ip
            return
        rec["probe_ip"] = ip
        path = "/user/%s/api/status" % rec["user"]
        hdr = {"Authorization": "token " + token}
        end = time.time() + CFG["ready_timeout_s"]
        tries = 0
        while time.time() < end and not rec.get("stop_probe"):
            tries += 1
            c = http.client.HTTPConnection(ip, port, timeout=2)
            try:
                c.request("GET", path, headers=hdr)
                r = c.getresponse()
                body = r.read()
                t = time.time()
                if r.status == 200 and isinstance(json.loads(body), dict):
                    rec["t_first200"] = t
                    rec["probe_tries"] = tries
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            finally:
                c.close()
            time.sleep(CFG["probe_every_s"])
        rec["probe_error"] = "no 200 from api/status (%d tries)" % tries
    except Exception as e:
        rec["probe_error"] = "%s: %s" % (type(e).__name__, e)


def read_progress(hub, rec):
    """Follow the progress stream until ready or failed; client receipt times."""
    c = http.client.HTTPConnection("127.0.0.1", hub.api_port,
                                   timeout=CFG["ready_timeout_s"])
    try:
        c.request("GET", "/hub/api/users/%s/server/progress" % rec["user"],
                  headers={"Authorization": "token " + hub.token,
                           "Accept": "text/event-stream"})
        r = c.getresponse()
        if r.status != 200:
            rec["failed"] = "progress stream: HTTP %d %s" % (r.status, r.read()[:200])
            return
        while True:
            line = r.readline()
            if not line:
                rec.setdefault("failed", "progress stream ended without ready")
                return
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            ev = json.loads(line[5:])
            t = time.time()
            rec.setdefault("events", []).append((t, ev))
            if ev.get("ready"):
                rec["t_ready"] = t
                return
            if ev.get("failed"):
                rec["failed"] = ev.get("message", "failed")
                return
    except (OSError, http.client.HTTPException, ValueError) as e:
        rec["failed"] = "progress stream: %s" % e
    finally:
        c.close()


def docker_facts(docker, rec):
    """Docker's own timestamps of the running server (call before stopping it)."""
    svc = docker.service(rec["service"])
    if not svc:
        return
    rec["d_service_created"] = parse_ts(svc.get("CreatedAt"))
    tasks = docker.tasks(rec["service"])
    if not tasks:
        return
    t = max(tasks, key=lambda x: x.get("CreatedAt", ""))
    st = t.get("Status") or {}
    rec["d_task_state"] = st.get("State")
    rec["d_task_created"] = parse_ts(t.get("CreatedAt"))
    if st.get("State") == "running":
        rec["d_running"] = parse_ts(st.get("Timestamp"))
    cid = (st.get("ContainerStatus") or {}).get("ContainerID")
    if cid:
        c = docker.get("/containers/%s/json" % cid, missing_ok=True) or {}
        rec["d_container_created"] = parse_ts(c.get("Created"))
        rec["d_container_started"] = parse_ts((c.get("State") or {}).get("StartedAt"))


def start_one(hub, docker, events, user, probe, client=None, barrier=None):
    """POST the server and follow it to ready; returns the record."""
    rec = {"user": user, "service": hub.service(user)}
    if probe:
        def on_start(cid, t):
            rec["d_start_event"] = t
            th = threading.Thread(target=probe_server, args=(docker, rec, cid, 8888),
                                  daemon=True)
            rec["probe_thread"] = th
            th.start()
    else:
        def on_start(cid, t):
            rec["d_start_event"] = t
    events.add(rec["service"], on_start)
    c = client or H.Client(hub.api_port, hub.token, timeout=60)
    if barrier is not None:     # connect first, so the POSTs leave together
        c.conn = http.client.HTTPConnection("127.0.0.1", hub.api_port, timeout=60)
        c.conn.connect()
        barrier.wait()
    rec["t_post"] = time.time()
    try:
        st, body, dt = c.request("POST", "/hub/api/users/%s/server" % user, {})
    except (OSError, http.client.HTTPException) as e:
        rec["post_status"], rec["failed"] = 0, "POST: %s" % e
        return rec
    finally:
        if client is None:
            c.close()
    rec["post_status"], rec["post_ms"] = st, dt * 1e3
    if st not in (201, 202):
        rec["failed"] = "POST server: HTTP %d %s" % (st, body[:200].decode(errors="replace"))
        return rec
    read_progress(hub, rec)
    return rec


def server_gone(hub, docker, c, user, t0, rec):
    """Poll until the hub says stopped and Docker has neither service nor container."""
    svc = hub.service(user)
    end = time.time() + CFG["stop_timeout_s"]
    while time.time() < end:
        if "t_stopped" not in rec:
            st, body, _ = c.request("GET", "/hub/api/users/%s" % user)
            if st == 200:
                m = json.loads(body)
                if not m.get("servers") and not m.get("pending"):
                    rec["t_stopped"] = time.time()
        if "t_stopped" in rec and docker.service(svc) is None and \
                not docker.containers_of({svc}):
            rec["t_gone"] = time.time()
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- phases

def ms(a, b):
    return None if a is None or b is None else (b - a) * 1e3


def phases(rec, hubev):
    """Every derived duration (ms) of one spawn; see README.md for the definitions."""
    g = rec.get
    evs = hubev.get(rec["user"], [])
    first = lambda pred: next((e["t"] for e in evs if pred(e)), None)
    h_req = first(lambda e: e.get("event") == "spawn.requested")
    h_created = first(lambda e: e.get("event") == "spawn.progress" and
                      e.get("progress") == "20")
    h_running = first(lambda e: e.get("event") == "spawn.progress" and
                      e.get("progress") == "70")
    h_ready = first(lambda e: e.get("event") == "spawn.ready")
    h_ready_ms = next((float(e["ms"]) for e in evs if e.get("event") == "spawn.ready"
                       and e.get("ms")), None)
    T0, Tc, Tr = g("t_post"), g("d_service_created"), g("d_running")
    Ts, Tready = g("t_first200"), g("t_ready")
    p = {
        "total": ms(T0, Tready),
        "post": g("post_ms"),
        "hub_ready_ms": h_ready_ms,
        "docker_c2r": ms(Tc, Tr),
        "d_sched": ms(Tc, g("d_task_created")),
        "d_task2ctr": ms(g("d_task_created"), g("d_container_created")),
        "d_ctr_c2s": ms(g("d_container_created"), g("d_container_started")),
        "d_s2r": ms(g("d_container_started"), Tr),
        "server_start": ms(Tr, Ts),
        "pre_create": ms(T0, Tc),
        "post_to_logged": ms(T0, h_req),
        "logged_to_created": ms(h_req, Tc),
        "create_call": ms(h_req, h_created),
        "after_answer": ms(Ts, Tready),
        "task_poll_lag": ms(Tr, h_running),
        "running_to_ready": ms(Tr, Tready),
        "delivery": ms(h_ready, Tready),
        "stop_hub": ms(g("t_delete"), g("t_stopped")),
        "stop_gone": ms(g("t_delete"), g("t_gone")),
    }
    if None not in (Ts, h_running, h_ready):
        exposed = max(Ts, h_running)
        p["poll_task_exposed"] = ms(Ts, exposed)
        p["poll_http"] = ms(exposed, h_ready)
    if None not in (p["total"], p["docker_c2r"], p["server_start"]):
        p["overhead"] = p["total"] - p["docker_c2r"] - p["server_start"]
        if p["delivery"] is not None:
            p["overhead_no_poll"] = p["pre_create"] + p["delivery"]
    return p


def stat(vals):
    v = [x for x in vals if x is not None]
    if not v:
        return None, None, None, 0
    return statistics.median(v), H.pct(v, 90), max(v), len(v)


def parse_wrk(out):
    r = {"raw": out}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    for qn in ("50", "75", "90", "99"):
        m = re.search(r"^\s*%s(?:\.0+)?%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % qn, out, re.M)
        if m:
            r["p" + qn] = float(m.group(1)) * H.UNITS[m.group(2)]
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    r["max"] = float(m.group(1)) * H.UNITS[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    r["sockerr"] = m.group(1).strip() if m else ""
    return r


class Wrk:
    """wrk paced by a Lua delay(), stopped with SIGINT (it then prints its stats)."""

    def __init__(self, work, port, token):
        self.script = os.path.join(work, "delay.lua")
        with open(self.script, "w") as f:
            f.write("function delay()\n  return %d\nend\n" % CFG["wrk_delay_ms"])
        self.cmd = ["wrk", "-t%d" % CFG["wrk_threads"], "-c%d" % CFG["wrk_conns"],
                    "-d3600s", "--latency", "-s", self.script,
                    "-H", "Authorization: token " + token,
                    "http://127.0.0.1:%d/hub/api/user" % port]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.t0 = time.time()

    def stop(self):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.proc = None
        r = parse_wrk(out)
        r["seconds"] = time.time() - self.t0
        return r


# ---------------------------------------------------------------- measuring

def sequential(hub, docker, events, R):
    c = H.Client(hub.api_port, hub.token)
    recs = []
    for i in range(CFG["seq_n"]):
        user = "seq%02d" % i
        st, body, _ = c.request("POST", "/hub/api/users/%s" % user)
        H.expect(st, 201, "POST /hub/api/users/%s" % user, body)
        rec = start_one(hub, docker, events, user, probe=True, client=c)
        th = rec.get("probe_thread")
        if th:
            th.join(10)
        rec["stop_probe"] = True
        if "t_ready" in rec:
            try:
                docker_facts(docker, rec)
            except DockerError as e:
                rec["docker_error"] = str(e)
        rec["t_delete"] = t0 = time.time()
        st, body, _ = c.request("DELETE", "/hub/api/users/%s/server" % user)
        rec["delete_status"] = st
        ok = server_gone(hub, docker, c, user, t0, rec)
        recs.append(rec)
        log("  %s: %s; stop %s" % (user, "ready in %.0f ms" % ms(rec["t_post"], rec["t_ready"])
                                   if "t_ready" in rec else "FAILED: %s" % rec.get("failed"),
                                   "%.0f ms" % ms(t0, rec["t_gone"]) if ok else "NOT DONE"))
        if not ok:
            R["errors"].append("%s: not stopped within %.0f s" % (user, CFG["stop_timeout_s"]))
        time.sleep(CFG["pause_s"])
    c.close()
    R["seq"] = recs


def burst(hub, docker, events, R):
    n = CFG["burst_n"]
    users = ["burst%02d" % i for i in range(n)]
    c = H.Client(hub.api_port, hub.token)
    st, body, _ = c.request("POST", "/hub/api/users", {"usernames": users})
    H.expect(st, 201, "POST /hub/api/users (burst users)", body)

    w = Wrk(hub.work, hub.api_port, hub.token)
    log("  wrk idle for %d s" % CFG["idle_s"])
    w.start()
    time.sleep(CFG["idle_s"])
    R["wrk_idle"] = w.stop()

    recs = [None] * n
    barrier = threading.Barrier(n + 1)

    def one(i):
        try:
            recs[i] = start_one(hub, docker, events, users[i], probe=False,
                                barrier=barrier)
        except Exception as e:
            recs[i] = {"user": users[i], "service": hub.service(users[i]),
                       "failed": "%s: %s" % (type(e).__name__, e)}

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for th in threads:
        th.start()
    w.start()
    time.sleep(0.5)   # wrk connected and running before the burst
    barrier.wait()
    t_burst = time.time()
    log("  burst of %d POSTs" % n)
    for th in threads:
        th.join(CFG["ready_timeout_s"] + 30)
    t_done = time.time()
    R["wrk_burst"] = w.stop()
    R["burst_t0"], R["burst_done"] = t_burst, t_done
    recs = [r or {"user": users[i], "service": hub.service(users[i]), "failed": "no answer"}
            for i, r in enumerate(recs)]
    for r in recs:
        if "t_ready" in r:
            try:
                docker_facts(docker, r)
            except DockerError as e:
                r["docker_error"] = str(e)
    R["burst"] = recs
    nready = sum(1 for r in recs if "t_ready" in r)
    log("  %d of %d ready, last after %.1f s" % (
        nready, n, max((r["t_ready"] for r in recs if "t_ready" in r), default=t_burst)
        - t_burst))

    # stop them all at once, and wait until every service and container is gone
    t0 = time.time()
    codes = {}
    lock = threading.Lock()

    def stop(u):
        cc = H.Client(hub.api_port, hub.token, timeout=60)
        try:
            st, _, _ = cc.request("DELETE", "/hub/api/users/%s/server" % u)
        except (OSError, http.client.HTTPException):
            st = 0
        finally:
            cc.close()
        with lock:
            codes[st] = codes.get(st, 0) + 1

    ts = [threading.Thread(target=stop, args=(u,), daemon=True) for u in users]
    for th in ts:
        th.start()
    for th in ts:
        th.join(60)
    R["burst_delete_codes"] = codes
    names = {hub.service(u) for u in users}
    end = time.time() + CFG["stop_timeout_s"]
    gone = False
    while time.time() < end:
        left = [u for u in users if json.loads(
            c.request("GET", "/hub/api/users/%s" % u)[1]).get("servers")]
        if not left:
            R.setdefault("burst_hub_stopped_s", time.time() - t0)
            if not docker.services_labelled(hub.hub_id) and not docker.containers_of(names):
                gone = True
                break
        time.sleep(0.25)
    R["burst_gone_s"] = time.time() - t0 if gone else None
    log("  stopped: %s" % ("all gone after %.1f s" % R["burst_gone_s"] if gone
                           else "NOT all gone after %.0f s" % CFG["stop_timeout_s"]))
    if not gone:
        R["errors"].append("burst: services or containers left %.0f s after DELETE"
                           % CFG["stop_timeout_s"])
    c.close()


def remove_services(docker, hub_id, prefix):
    """Every service labelled swarmhub.hub=hub_id, then wait for their containers."""
    try:
        svcs = docker.services_labelled(hub_id)
    except (DockerError, ValueError) as e:
        log("cleanup: cannot list services: %s" % e)
        return
    names = {s["Spec"]["Name"] for s in svcs}
    for s in svcs:
        docker.call("DELETE", "/services/%s" % s["ID"])
    end = time.time() + 60
    while time.time() < end:
        try:
            left = [c for c in docker.get("/containers/json?all=1&filters=" + q(
                {"label": ["com.docker.swarm.service.name"]}))
                if (c.get("Labels") or {}).get("com.docker.swarm.service.name", "")
                .startswith(prefix)]
        except (DockerError, ValueError):
            return
        if not left:
            return
        time.sleep(0.5)
    log("cleanup: containers of %s still present after 60 s" % ", ".join(sorted(names)))


# ---------------------------------------------------------------- report

def machine(docker):
    m = H.machine()
    try:
        v = docker.get("/version")
        m["docker"] = "%s (API %s)" % (v.get("Version"), v.get("ApiVersion"))
    except Exception:
        m["docker"] = "?"
    try:
        img = docker.get("/images/%s/json" % urllib.parse.quote(IMAGE, safe=""))
        m["image"] = "%s %s, %.0f MB" % (IMAGE, img["Id"][7:19], img.get("Size", 0) / 1e6)
    except Exception:
        m["image"] = IMAGE
    return m


def f(x, nd=0):
    return "—" if x is None else "%.*f ms" % (nd, x)


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "MISS")


def seq_rows(recs, hubev):
    P = [phases(r, hubev) for r in recs if "t_ready" in r]
    col = lambda k: [p.get(k) for p in P]
    rows = []

    def row(label, key, target=""):
        md, p90, mx, n = stat(col(key))
        rows.append((label, f(md), f(p90), f(mx), target))
        return md

    row("**total**: POST → ready event received (client)", "total")
    row("  the hub's own `spawn.ready ms=` (its job start → ready)", "hub_ready_ms")
    row("  POST answered (202)", "post")
    row("**Docker create → running** (service CreatedAt → task running Status.Timestamp)",
        "docker_c2r")
    row("  scheduling: service created → task created", "d_sched")
    row("  task created → container created", "d_task2ctr")
    row("  container created → started (State.StartedAt)", "d_ctr_c2s")
    row("  container started → task reported running", "d_s2r")
    row("**server start**: task running → first 200 on api/status (our probe, every "
        "%.0f ms)" % (CFG["probe_every_s"] * 1e3), "server_start")
    ov = row("**hub-side overhead** = total − Docker create→running − server start",
             "overhead")
    rows[-1] = rows[-1][:4] + ("≤ %.0f ms median: %s" % (
        CFG["targets"]["overhead_ms"],
        verdict(None if ov is None else ov <= CFG["targets"]["overhead_ms"])),)
    row("  (a) before Docker: POST sent → service CreatedAt", "pre_create")
    row("      POST sent → hub logs spawn.requested", "post_to_logged")
    row("      spawn.requested → service CreatedAt (home dir, spec, create call)",
        "logged_to_created")
    row("  (b) **hub poll delay**: server answering → ready event received", "after_answer")
    row("      waiting for the hub's next task poll (every 250 ms) to see running",
        "poll_task_exposed")
    row("      then the hub's api/status probe loop (every 250 ms) until ready logged",
        "poll_http")
    row("      ready logged → ready event received by the client", "delivery")
    row("  hub-side overhead without the poll delay ((a) + delivery)", "overhead_no_poll")
    row("task running → hub logs 'Container running' (its task poll, plus the swarm "
        "agent's delay in reporting the state; for information)", "task_poll_lag")
    row("task running → ready event (Docker's running → ready as the user sees it)",
        "running_to_ready")
    row("stop: DELETE → the hub says stopped (user model without server)", "stop_hub")
    row("stop: DELETE → service and container gone from Docker", "stop_gone")
    return rows, P


def where_it_goes(P):
    """One sentence: the largest part of the hub-side overhead (medians)."""
    parts = [("before Docker (request, home directory, spec, create call)", "pre_create"),
             ("waiting for the hub's next task poll (spawner.c wait_running, 250 ms)",
              "poll_task_exposed"),
             ("the hub's api/status probe loop (spawner.c wait_http: a probe, then 250 ms "
              "sleeps; 1 s after 20 tries)", "poll_http"),
             ("delivering the ready event", "delivery")]
    med = {k: stat([p.get(k) for p in P])[0] for _, k in parts}
    ov = stat([p.get("overhead") for p in P])[0]
    if ov is None or any(v is None for v in med.values()):
        return "Where the hub-side overhead goes: not enough data."
    label, key = max(parts, key=lambda lk: med[lk[1]])
    return ("Where the hub-side overhead goes (medians): %s. The largest part, %.0f of "
            "%.0f ms, is %s: it is sampling delay — the server already answers and the hub "
            "has not asked yet — not work." % (
                "; ".join("%s %.0f ms" % (lab, med[k]) for lab, k in parts),
                med[key], ov, label)
            if key in ("poll_task_exposed", "poll_http") else
            "Where the hub-side overhead goes (medians): %s." % "; ".join(
                "%s %.0f ms" % (lab, med[k]) for lab, k in parts))


def report(R, m, failed):
    L = ["# Spawn benchmark: swarmhub on a one-node Docker swarm", ""]
    L.append("Generated by `tests/bench/spawn.sh` (also run by `make bench`) on %s%s. "
             "Method: tests/bench/README.md, section \"Spawn benchmark\"."
             % (m["date"], " — **quick run** (SWARMHUB_BENCH_QUICK=1)" if QUICK else ""))
    L.append("")
    if failed:
        L.append("**The benchmark could not run**: %s" % failed)
        L.append("")
    hubev = R.get("hubev", {})
    seq = R.get("seq") or []
    if seq:
        nready = sum(1 for r in seq if "t_ready" in r)
        L.append("## 1. Sequential spawns (N = %d, %d ready)" % (len(seq), nready))
        L.append("")
        L.append("One spawn at a time: create the user, POST its server, follow the "
                 "progress stream to the ready event, DELETE, wait until the service and "
                 "its container are gone. Image `%s`, cpu %.2f, mem_gb %.2f. All times "
                 "are wall-clock on this host (client, hub log and dockerd share its "
                 "clock)." % (IMAGE, CFG["cpu"], CFG["mem_gb"]))
        L.append("")
        L.append("| phase | median | p90 | max | target |")
        L.append("| --- | --- | --- | --- | --- |")
        rows, P = seq_rows(seq, hubev)
        for r in rows:
            L.append("| " + " | ".join(r) + " |")
        L.append("")
        L.append(where_it_goes(P))
        L.append("")
        L.append("Per spawn (ms): total = Docker create→running + server start + hub "
                 "overhead; hub overhead = (a) before Docker + (b) poll delay.")
        L.append("")
        L.append("| user | total | Docker c→r | server start | hub overhead | (a) | (b) | "
                 "stop: DELETE → hub says stopped | DELETE → service and container gone |")
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        ok = [r for r in seq if "t_ready" in r]
        for r, p in zip(ok, P):
            g = lambda k: "—" if p.get(k) is None else "%.0f" % p[k]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["user"], g("total"), g("docker_c2r"), g("server_start"), g("overhead"),
                g("pre_create"), g("after_answer"),
                "—" if "t_stopped" not in r else "%.0f" % ms(r["t_delete"], r["t_stopped"]),
                "—" if "t_gone" not in r else "%.0f" % ms(r["t_delete"], r["t_gone"])))
        L.append("")
    B = R.get("burst")
    if B:
        n = len(B)
        ready = [r for r in B if "t_ready" in r]
        codes = {}
        for r in B:
            codes[r.get("post_status")] = codes.get(r.get("post_status"), 0) + 1
        t0 = R["burst_t0"]
        last = max((r["t_ready"] for r in ready), default=None)
        wi, wb = R.get("wrk_idle") or {}, R.get("wrk_burst") or {}
        tgt = CFG["targets"]["burst_p99_ms"]
        L.append("## 2. Burst: %d spawns requested at once" % n)
        L.append("")
        L.append("%d users POST their server in the same instant (%d threads released by "
                 "a barrier, connections already open; CONCURRENT_SPAWN_LIMIT=%d), each "
                 "then follows its progress stream. Meanwhile `wrk -t%d -c%d` with a %d ms "
                 "delay between requests per connection (~%d requests/s) measures "
                 "`GET /hub/api/user` with the admin token, from before the first POST "
                 "until the last spawn ended; the same wrk ran %d s before the burst "
                 "(idle)."
                 % (n, n, CFG["spawn_limit"], CFG["wrk_threads"], CFG["wrk_conns"],
                    CFG["wrk_delay_ms"], CFG["wrk_conns"] * 1000 // CFG["wrk_delay_ms"],
                    CFG["idle_s"]))
        L.append("")
        L.append("| metric | value | target |")
        L.append("| --- | --- | --- |")
        L.append("| POST answers | %s | |" % ", ".join(
            "%d × %s" % (v, k if k else "no answer") for k, v in sorted(
                codes.items(), key=lambda kv: str(kv[0]))))
        L.append("| reached ready | %d of %d | all: %s |" % (len(ready), n,
                                                           verdict(len(ready) == n)))
        L.append("| time to all ready (first POST → last ready event) | %s | |" % (
            "—" if last is None or len(ready) < n else "%.2f s" % (last - t0)))
        P = [phases(r, R.get("hubev", {})) for r in ready]
        for label, key in (("per spawn: total (POST → ready)", "total"),
                           ("per spawn: Docker create → running", "docker_c2r"),
                           ("per spawn: hub before Docker (POST → service CreatedAt)",
                            "pre_create"),
                           ("per spawn: task running → ready event", "running_to_ready"),
                           ("per spawn: task running → hub sees running", "task_poll_lag")):
            md, p90, mx, _ = stat([p.get(key) for p in P])
            L.append("| %s: median / p90 / max | %s / %s / %s | |" % (label, f(md), f(p90),
                                                                      f(mx)))
        L.append("| GET /hub/api/user idle: p50 / p99 (%s requests) | %s / %s | |" % (
            wi.get("requests", "?"), f(wi.get("p50"), 2), f(wi.get("p99"), 2)))
        ok = None if wb.get("p99") is None else wb["p99"] <= tgt
        L.append("| **GET /hub/api/user during the burst: p50 / p99** (%s requests in "
                 "%.1f s) | %s / %s | p99 ≤ %.0f ms: %s |" % (
                     wb.get("requests", "?"), wb.get("seconds", 0), f(wb.get("p50"), 2),
                     f(wb.get("p99"), 2), tgt, verdict(ok)))
        L.append("|   during the burst: p90 / max | %s / %s | |" % (
            f(wb.get("p90"), 2), f(wb.get("max"), 2)))
        L.append("| stop all (%d DELETEs at once → hub says stopped) | %s | |" % (
            n, "—" if R.get("burst_hub_stopped_s") is None else
            "%.1f s" % R["burst_hub_stopped_s"]))
        L.append("| stop all → every service and container gone | %s | |" % (
            "—" if R.get("burst_gone_s") is None else "%.1f s" % R["burst_gone_s"]))
        L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- date: %s" % m["date"])
    L.append("- CPU: %s, `nproc` = %s" % (m["cpu"], m["nproc"]))
    L.append("- memory: %s; kernel %s; %s" % (m["mem"], m["kernel"], m["os"]))
    L.append("- swarmhub: git %s, `%s`" % (m["git"], os.path.relpath(m["swarmhub_bin"], ROOT)))
    L.append("- Docker Engine %s, one-node swarm, overlay network `%s`; image %s"
             % (m.get("docker", "?"), os.environ.get("BENCH_NETWORK", "?"),
                m.get("image", IMAGE)))
    L.append("- PostgreSQL %s (throwaway cluster, fsync=off), wrk Debian %s, Python %s"
             % (m["postgres"], m["wrk_deb"], m["python"]))
    L.append("")
    L.append("## Method (short)")
    L.append("")
    L.append("swarmhub runs on the host with SWARMHUB_NETWORK=<test overlay>, "
             "SWARMHUB_CONNECT=gwbridge, local homes (SWARMHUB_HOME=<temp dir>, bind "
             "mounts), SWARMHUB_HUB_ID=%s, CONCURRENT_SPAWN_LIMIT=%d, a profile with the "
             "tiny image (cpu %.2f, mem_gb %.2f, cpu_reservation_ratio %.1f) and an admin "
             "token. Timestamps: the client's clock at POST and at the ready event of "
             "`GET …/server/progress`; the hub's log (`ts=` of spawn.requested, "
             "spawn.progress 20 = service created, 70 = task seen running, spawn.ready; "
             "millisecond resolution); Docker's own (service CreatedAt, task CreatedAt and "
             "Status.Timestamp of the running state, container Created and "
             "State.StartedAt); and our own probe of `api/status` on the task's "
             "docker_gwbridge address, started by Docker's container start event and "
             "repeated every %.0f ms. Percentiles are nearest-rank."
             % (R.get("hub_id", "?"), CFG["spawn_limit"], CFG["cpu"], CFG["mem_gb"],
                CFG["cpu_reservation_ratio"], CFG["probe_every_s"] * 1e3))
    L.append("")
    notes = list(R.get("errors", []))
    for r in (R.get("seq") or []) + (R.get("burst") or []):
        if "failed" in r:
            notes.append("%s: failed: %s" % (r["user"], r["failed"]))
        if r.get("probe_error") and "t_ready" in r:
            notes.append("%s: our probe: %s" % (r["user"], r["probe_error"]))
        if r.get("docker_error"):
            notes.append("%s: %s" % (r["user"], r["docker_error"]))
        if "t_ready" in r and r.get("d_running") is None:
            notes.append("%s: Docker's task was no longer 'running' when inspected (%s)"
                         % (r["user"], r.get("d_task_state")))
    if R.get("burst_delete_codes"):
        notes.append("burst: DELETE answers: %s" % ", ".join(
            "%d × %s" % (v, k) for k, v in sorted(R["burst_delete_codes"].items())))
    for k in ("wrk_idle", "wrk_burst"):
        w = R.get(k)
        if w and (w.get("non2xx") or w.get("sockerr")):
            notes.append("%s: %d non-2xx; socket errors: %s" % (
                k, w["non2xx"], w["sockerr"] or "none"))
    if R.get("events_error"):
        notes.append("Docker event stream: %s" % R["events_error"])
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
        print("spawn.py: BENCH_WORK, BENCH_DB, BENCH_NETWORK and BENCH_HUB_ID must be "
              "set; run tests/bench/spawn.sh", file=sys.stderr)
        return 2
    if CFG["burst_n"] > CFG["spawn_limit"] or CFG["seq_n"] < 1 or CFG["burst_n"] < 1:
        print("spawn.py: need 1 ≤ SWARMHUB_BENCH_BURST ≤ %d and SWARMHUB_BENCH_SPAWNS ≥ 1"
              % CFG["spawn_limit"], file=sys.stderr)
        return 2
    hub_id = env["BENCH_HUB_ID"]
    R = {"errors": [], "hub_id": hub_id}
    failed = None
    hub = events = None
    try:
        docker = Docker()
        st, _ = docker.call("GET", "/_ping")
        if st != 200:
            raise DockerError("Docker GET /_ping: HTTP %d" % st)
    except DockerError as e:
        print("spawn.py: %s" % e, file=sys.stderr)
        return 1
    binary = H.swarmhub_bin()
    try:
        if not os.access(binary, os.X_OK):
            raise H.StartError("%s not found or not executable (run make)" % binary)
        profiles = os.path.join(work, "profiles.json")
        T.write_notebook_profiles(
            profiles, cpu=(0.01, 1, CFG["cpu"]), mem_gb=(0.03, 1, CFG["mem_gb"]),
            real=False, ratio=CFG["cpu_reservation_ratio"], cmd=T.NB_CMD,
            tiny_description="the fake notebook of images/test-notebook")
        homes = os.path.join(work, "homes")
        os.makedirs(homes, exist_ok=True)
        events = Events(docker)
        events.start()
        events.ready.wait(10)
        if events.error:
            raise DockerError("Docker's event stream: %s" % events.error)
        hub = SpawnHub(work, env["BENCH_DB"], secrets.token_hex(24), binary,
                       env["BENCH_NETWORK"], hub_id, profiles, homes)
        log("swarmhub: log %s, hub id %s" % (hub.log, hub_id))
        hub.start()
        c = H.Client(hub.api_port, hub.token)
        st, body, _ = c.request("GET", "/hub/api/user")
        H.expect(st, 200, "GET /hub/api/user with the admin token", body)
        c.close()
        log("sequential: %d spawns" % CFG["seq_n"])
        try:
            sequential(hub, docker, events, R)
        except (RuntimeError, DockerError, OSError, http.client.HTTPException) as e:
            R["errors"].append("sequential: %s" % e)
            log("sequential FAILED: %s" % e)
        log("burst: %d spawns at once" % CFG["burst_n"])
        try:
            burst(hub, docker, events, R)
        except (RuntimeError, DockerError, OSError, http.client.HTTPException) as e:
            R["errors"].append("burst: %s" % e)
            log("burst FAILED: %s" % e)
        if hub.proc is None or hub.proc.poll() is not None:
            R["errors"].append("the hub exited during the measurements")
    except H.StartError as e:
        failed = str(e)
        log(failed)
    except DockerError as e:
        failed = str(e)
        log(failed)
    finally:
        if events:
            events.stop()
            R["events_error"] = events.error if events.error and \
                "shut" not in events.error.lower() else None
        if hub is not None:
            H.cleanup()
            try:
                R["hubev"] = hub_events(hub.log)
            except OSError:
                R["hubev"] = {}
        remove_services(docker, hub_id, "jupyter-%s-" % hub_id)

    text = report(R, machine(docker), failed)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write(text + "\n")
    print(text)
    print("\n(written to %s)" % os.path.relpath(RESULTS, os.getcwd()), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

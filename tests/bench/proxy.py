#!/usr/bin/python3
"""proxy.py - the proxy benchmark on the real path: bin/swarmhub vs nginx.

Started by tests/bench/proxy.sh (which builds the helpers and starts
PostgreSQL and the Docker swarm). One run, side by side, the same upstreams:

  hub      bin/swarmhub (PostgreSQL, local auth, spawner on the local swarm,
           CONNECT=gwbridge) in front of its users' servers: caller
           identification (API token or session cookie), authorization,
           route lookup, token injection, header rewriting, activity
  nginx    nginx proxy_pass to the same containers (as many workers as the
           hub has edge threads, upstream keepalive, proxy_request_buffering
           off, the server's token set as the hub sets it)
  direct   straight to the container's docker_gwbridge address

The users' servers, spawned by the hub:
  alice  swarmhub/bench-upstream:latest (swarmhub/nginx without its
         HEALTHCHECK) running a static nginx (2 workers): 1 KiB and
         1 MiB files, and
         api/status for the hub's readiness check
  bob    wsbench echo (C, epoll) in swarmhub/test-notebook:latest: WebSocket
         echo, and uploads (it answers 204 once it has read the whole body)
  carol  Jupyter Notebook 6 (swarmhub/notebook:latest) with a kernel

Writes tests/bench/results/proxy.md (also printed). Method: README.md here.

Environment (set by proxy.sh): BENCH_WORK, BENCH_WSBENCH, BENCH_MTRIM,
BENCH_DB, BENCH_NETWORK, BENCH_HUB_ID, BENCH_PG_VERSION.
Knobs: SWARMHUB_BENCH_QUICK=1 (3 s wrk runs, 1,000 WebSockets, one round),
SWARMHUB_BENCH_WS=N (idle WebSockets), SWARMHUB_BIN, SWARMHUB_BENCH_HOLD=1
(once everything is up, write BENCH_WORK/hold with the hub's pid, URLs and
headers, and wait until that file is removed: for profiling by hand).
Exit status: 0 when everything could be measured (misses are MISS), 1 when a
proxy, an upstream or the hub could not be started.
"""
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import hub_api as H  # noqa: E402
import hubtest as T  # noqa: E402  (the tests' profiles writer)
import spawn as S    # noqa: E402

RESULTS = os.path.join(HERE, "results", "proxy.md")
QUICK = os.environ.get("SWARMHUB_BENCH_QUICK", "") not in ("", "0")
HOLD = os.environ.get("SWARMHUB_BENCH_HOLD", "") not in ("", "0")
CFG = {
    "secs": 3 if QUICK else 8,           # each wrk run
    "warm_secs": 1,                      # unreported warm-up before each
    "rounds": 1 if QUICK else 3,         # 1 KiB runs: best of the rounds
    "edge_threads": 2,                   # the hub's default EDGE_THREADS
    "ws_n": int(os.environ.get("SWARMHUB_BENCH_WS") or (1000 if QUICK else 9000)),
    "ws_sources": 20,                    # loopback addresses for the idle ones
    "upload_bytes": 100 * 1000 * 1000, "upload_rounds": 1 if QUICK else 3,
    "rtt_n": 2000, "rtt_size": 64, "rtt_rounds": 3 if QUICK else 9,
    "kernel_n": 200 if QUICK else 500, "kernel_rounds": 3 if QUICK else 5,
    # open loop: 16 connections at a fixed rate under every target's
    # saturation (direct ~35,000/s, nginx and the hub ~23,000/s here)
    "open_conns": 16, "open_rate": 8000, "open_secs": 3 if QUICK else 6,
    "open_rounds": 1 if QUICK else 3,
    "targets": {"rps_vs_nginx": 0.9, "add_p50": 0.2, "mib_vs_nginx": 1.0,
                "rss_flat_kib": 4096, "ws_kib": 2.0, "heap_back_kib": 256},
}
PATH1K, PATH1M = "/user/alice/static-1k", "/user/alice/static-1m"
UPLOAD = "/user/bob/upload"
PROCS = []  # (label, Popen) started here, stopped by cleanup()
PASSWORD = "bench-" + secrets.token_hex(8)


def log(msg):
    print("bench: proxy: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def spawn(label, cmd, logname, env=None, stdin=subprocess.DEVNULL, stdout=None):
    logf = open(os.path.join(WORK, logname), "a")
    p = subprocess.Popen(cmd, env=env, stdin=stdin,
                         stdout=stdout if stdout is not None else logf,
                         stderr=logf, text=True, start_new_session=True)
    logf.close()
    PROCS.append((label, p))
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
            p.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
    for i, (_, q) in enumerate(PROCS):
        if q is p:
            del PROCS[i]
            break


def cleanup():
    for _, p in reversed(list(PROCS)):
        stop(p)


def wait_port(port, p, what, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if H.port_open(port):
            return
        if p.poll() is not None:
            raise H.StartError("%s exited (status %s) at start; logs in %s"
                               % (what, p.returncode, WORK))
        time.sleep(0.05)
    raise H.StartError("%s does not listen on %d after %d s" % (what, port, timeout))


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def nofile():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


class RssWatch(threading.Thread):
    """Samples a process's VmRSS every 50 ms: before, max, after."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop_ev = pid, threading.Event()
        self.before = H.rss_kib(pid)
        self.max = self.before

    def run(self):
        while not self.stop_ev.wait(0.05):
            self.max = max(self.max, H.rss_kib(self.pid))

    def done(self):
        self.stop_ev.set()
        self.join()
        self.after = H.rss_kib(self.pid)
        return {"before": self.before, "max": self.max, "after": self.after}


# ---------------------------------------------------------------- the upstreams

# alice's server: nginx in swarmhub/bench-upstream:latest as uid 1000 (the
# hub runs every server as HOME_UID:HOME_GID), files in her home
# (bind-mounted at /home/jovyan/work). Port 80 too, as swarmhub/nginx's
# HEALTHCHECK expects (bench-upstream drops the check: under load it failed
# and Swarm stopped the server mid-run).
ALICE_NGINX = """worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path /tmp/body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  server {
    listen 8888 backlog=4096;
    listen 80;
    root /home/jovyan/work/www;
    location = /user/alice/api/status {
      default_type application/json;
      return 200 '{"connections": 0, "kernels": 0}';
    }
    location = /user/alice/api/kernels {
      default_type application/json;
      return 200 '[]';
    }
  }
}
"""

NGINX_PROXY = """worker_processes %(workers)d;
worker_rlimit_nofile %(nofile)d;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections %(nofile)d; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_max_body_size 0;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
%(upstreams)s
  server {
    listen 127.0.0.1:%(port)d backlog=4096;
%(locations)s
  }
}
"""
NGINX_UPSTREAM = """  upstream %(name)s {
    server %(ip)s:%(port)d;
    keepalive 128;
    keepalive_requests 1000000;
  }"""
NGINX_LOCATION = """    location /user/%(name)s/ {
      proxy_pass http://%(name)s;
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_set_header Host $host;
      proxy_set_header Authorization "token %(token)s";
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }"""


def start_nginx_proxy(servers):
    """servers: {user: (ip, port, token)}; returns (Popen, port)."""
    d = os.path.join(WORK, "nginx-proxy")
    os.makedirs(d, exist_ok=True)
    port = H.free_port()
    conf = os.path.join(d, "nginx.conf")
    ups = "\n".join(NGINX_UPSTREAM % {"name": u, "ip": ip, "port": p}
                    for u, (ip, p, _) in servers.items())
    locs = "\n".join(NGINX_LOCATION % {"name": u, "token": tok}
                     for u, (_, _, tok) in servers.items())
    with open(conf, "w") as f:
        f.write(NGINX_PROXY % {"dir": d, "nofile": nofile(), "port": port,
                               "workers": CFG["edge_threads"], "upstreams": ups,
                               "locations": locs})
    p = spawn("nginx", ["nginx", "-c", conf, "-p", d, "-g", "daemon off;"], "nginx.log")
    wait_port(port, p, "nginx")
    time.sleep(0.3)  # workers forked
    return p, port


def write_profiles(path, homes):
    wsb = "/home/jovyan/work/wsbench"
    images = {
        "static": {"image": "swarmhub/bench-upstream:latest", "port": 8888,
                   "description": "static nginx (the benchmark's upstream)",
                   "cmd": ["nginx", "-e", "stderr", "-c", "/home/jovyan/work/nginx.conf",
                           "-g", "daemon off;"]},
        "echo": {"image": "swarmhub/test-notebook:latest", "port": 8888,
                 "description": "wsbench echo", "cmd": [wsb, "echo", "8888", "0.0.0.0"]},
        "real": {"image": T.REAL, "port": 8888, "description": "Jupyter Notebook 6",
                 "cmd": T.NB_CMD + ["--no-browser"]},
    }
    T.write_profiles(path, images, {"default": {
        "images": list(images), **T.limits((0.01, 2, 2), (0.03, 2, 1))}}, 0.1)
    # alice's files
    a = os.path.join(homes, "alice")
    www = os.path.join(a, "www", "user", "alice")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(a, "nginx.conf"), "w") as f:
        f.write(ALICE_NGINX)
    with open(os.path.join(www, "static-1k"), "wb") as f:
        f.write((b"swarmhub static-1k " * 64)[:1023] + b"\n")
    with open(os.path.join(www, "static-1m"), "wb") as f:
        f.write(os.urandom(1 << 20))
    b = os.path.join(homes, "bob")
    os.makedirs(b, exist_ok=True)
    shutil.copy(os.environ["BENCH_WSBENCH"], os.path.join(b, "wsbench"))
    for root, dirs, files in os.walk(homes):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
        for x in files:
            os.chmod(os.path.join(root, x), 0o755 if x == "wsbench" else 0o644)
    os.chmod(homes, 0o755)


class BenchHub(S.SpawnHub):
    def environ(self):
        env = super().environ()
        env.update(SWARMHUB_EDGE_THREADS=str(CFG["edge_threads"]),
                   LD_PRELOAD=os.environ["BENCH_MTRIM"],
                   MTRIM_OUT=os.path.join(WORK, "hub.mallinfo"))
        return env


def spawn_server(hub, docker, c, user, image):
    st, body, _ = c.request("POST", "/hub/api/users/%s/server" % user, {"image": image})
    if st not in (201, 202):
        raise RuntimeError("POST %s's server: HTTP %d %s" % (user, st, body[:300]))
    rec = {"user": user}
    S.read_progress(hub, rec)
    if "failed" in rec:
        raise RuntimeError("spawn %s: %s" % (user, rec["failed"]))
    svc = docker.service(hub.service(user)) or {}
    envl = (((svc.get("Spec") or {}).get("TaskTemplate") or {})
            .get("ContainerSpec") or {}).get("Env") or []
    jtok = next((e.split("=", 1)[1] for e in envl if e.startswith("JUPYTER_TOKEN=")), "")
    cid = None
    for t in docker.tasks(hub.service(user)):
        if (t.get("Status") or {}).get("State") == "running":
            cid = t["Status"]["ContainerStatus"]["ContainerID"]
    ip = docker.gwbridge_ip(cid) if cid else None
    if not ip or ip.startswith("10.") or not jtok:
        raise RuntimeError("no gwbridge address or token for %s's server (%s)" % (user, ip))
    return ip, 8888, jtok


def login(port, user):
    """A browser's login: GET /hub/login, POST the form; the session cookie."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/hub/login")
    r = c.getresponse()
    html = r.read().decode()
    jar = {}
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            n, _, val = v.split(";")[0].partition("=")
            jar[n] = val
    xsrf = T.form_xsrf(html)
    form = "username=%s&password=%s&_xsrf=%s" % (user, PASSWORD, xsrf)
    c.request("POST", "/hub/login", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join("%s=%s" % kv for kv in jar.items())})
    r = c.getresponse()
    r.read()
    c.close()
    for k, v in r.getheaders():
        if k.lower() == "set-cookie" and v.startswith("swarmhub-session="):
            return v.split(";")[0].split("=", 1)[1]
    raise RuntimeError("login as %s: HTTP %d, no session cookie" % (user, r.status))


# ---------------------------------------------------------------- measuring

def wrk(url, conns, secs, headers=()):
    cmd = ["wrk", "-t%d" % min(2, conns), "-c%d" % conns, "-d%ds" % secs, "--latency"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout
    r = S.parse_wrk(out)
    if r["rps"] is None:
        raise RuntimeError("wrk printed no Requests/sec for %s:\n%s" % (url, out))
    m = re.search(r"Transfer/sec:\s*([\d.]+)(\w+)", out)
    if m:
        mult = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}.get(m.group(2), 0)
        r["xfer"] = float(m.group(1)) * mult
    return r  # non-2xx answers and socket errors: run_wrk reports them


def run_wrk(R, key, who, url, conns, headers):
    wrk(url, conns, CFG["warm_secs"], headers)
    r = wrk(url, conns, CFG["secs"], headers)
    R.setdefault("raw", []).append(("%s %s" % (key, who), r["raw"]))
    if r["sockerr"]:
        R["errors"].append("wrk %s %s: socket errors: %s" % (key, who, r["sockerr"]))
    if r["non2xx"]:
        R["errors"].append("wrk %s %s: %s non-2xx answers" % (key, who, r["non2xx"]))
        if r["non2xx"] > 0.01 * r["rps"] * CFG["secs"]:
            return r  # errors are fast: such a run does not count
    old = R.setdefault(key, {}).get(who)
    if old is None or r["rps"] > old["rps"]:
        R[key][who] = r
    log("%-10s %-12s %9.0f req/s  p50 %.3f ms  p99 %.3f ms"
        % (key, who, r["rps"], r.get("p50") or -1, r.get("p99") or -1))
    return r


def http_check(host, port, path, want_len, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200 or len(body) != want_len:
        raise RuntimeError("GET %s on %s:%d: HTTP %d, %d bytes (wanted 200, %d)"
                           % (path, host, port, r.status, len(body), want_len))


def upload(host, port, path, nbytes, header):
    """POST nbytes (Content-Length) on a fresh connection; seconds to the answer."""
    chunk = b"u" * (256 << 10)
    s = socket.create_connection((host, port), timeout=60)
    try:
        t0 = time.perf_counter()
        s.sendall(("POST %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\nContent-Type: "
                   "application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                   % (path, host, port, header, nbytes)).encode())
        left = nbytes
        while left:
            n = min(left, len(chunk))
            s.sendall(chunk[:n] if n < len(chunk) else chunk)
            left -= n
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                break
            head += d
        dt = time.perf_counter() - t0
    finally:
        s.close()
    if not head.startswith(b"HTTP/1.1 204"):
        raise RuntimeError("upload to %s:%d%s: %r" % (host, port, path, head[:80]))
    return dt


def run_open(R, who, hostport, headers):
    """wsbench http: open-loop GETs of PATH1K at CFG's rate; R["open"][who]
    gets each round's figures (µs)."""
    env = dict(os.environ, WSBENCH_HEADER="\r\n".join(headers))
    out = subprocess.run([os.environ["BENCH_WSBENCH"], "http", hostport, PATH1K,
                          str(CFG["open_conns"]), str(CFG["open_rate"]),
                          str(CFG["open_secs"])], capture_output=True, text=True,
                         timeout=CFG["open_secs"] + 60, env=env)
    m = re.search(r"http n=(\d+) p50=([\d.]+) p90=([\d.]+) p99=([\d.]+) max=([\d.]+) "
                  r"mean=([\d.]+) rate=([\d.]+)", out.stdout)
    if not m:
        R["errors"].append("wsbench http %s %s: %s" % (who, hostport,
                                                     out.stderr.strip()[-300:]))
        return None
    r = {k: float(v) for k, v in zip(("n", "p50", "p90", "p99", "max", "mean", "rate"),
                                     m.groups())}
    R.setdefault("open", {}).setdefault(who, []).append(r)
    log("open loop %-10s %6.0f req/s  p50 %.3f ms  p99 %.3f ms"
        % (who, r["rate"], r["p50"] / 1e3, r["p99"] / 1e3))
    return r


def wsbench_rtt(hostport, path, n, header=None):
    env = dict(os.environ)
    if header:
        env["WSBENCH_HEADER"] = header
    out = subprocess.run([os.environ["BENCH_WSBENCH"], "rtt", hostport, path, str(n),
                          str(CFG["rtt_size"])], capture_output=True, text=True,
                         timeout=300, env=env)
    m = re.search(r"rtt n=(\d+) p50=([\d.]+) p90=([\d.]+) p99=([\d.]+) max=([\d.]+) "
                  r"mean=([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError("wsbench rtt %s%s failed: %s" % (hostport, path,
                                                           out.stderr.strip()[-300:]))
    return {k: float(v) for k, v in zip(("n", "p50", "p90", "p99", "max", "mean"),
                                        m.groups())}


def kernel_rtt(targets, user, kid, n):
    """n sequential kernel_info_request -> kernel_info_reply round trips on
    the kernel's channels WebSocket through each target, interleaved: one
    WebSocket per target ({name: (hostport, token)}), and each message goes
    to the targets in turn (the first target of a turn rotating), so every
    target sees the same kernel over the same seconds. {name: [µs]}."""
    import websocket  # Debian's python3-websocket (bench group)
    names = list(targets)
    ws = {w: websocket.create_connection(
        "ws://%s/user/%s/api/kernels/%s/channels" % (targets[w][0], user, kid),
        header=["Authorization: token " + targets[w][1]], timeout=30)
        for w in names}
    sess = uuid.uuid4().hex
    out = {w: [] for w in names}
    try:
        for i in range(n + 20):
            k = i % len(names)
            for w in names[k:] + names[:k]:
                mid = uuid.uuid4().hex
                msg = {"header": {"msg_id": mid, "username": "bench",
                                  "session": sess,
                                  "msg_type": "kernel_info_request",
                                  "version": "5.3"},
                       "parent_header": {}, "metadata": {}, "content": {},
                       "channel": "shell", "buffers": []}
                t0 = time.perf_counter()
                ws[w].send(json.dumps(msg))
                while True:
                    m = json.loads(ws[w].recv())
                    if (m.get("msg_type") == "kernel_info_reply" and
                            (m.get("parent_header") or {}).get("msg_id") == mid):
                        break
                if i >= 20:
                    out[w].append((time.perf_counter() - t0) * 1e6)
    finally:
        for c in ws.values():
            c.close()
    return out


def mallinfo(pid, trim=False):
    """Heap figures of the hub through the mtrim.c shim: {inuse, free, mmap}."""
    path = os.path.join(WORK, "hub.mallinfo")
    try:
        n0 = len(open(path).readlines())
    except OSError:
        n0 = 0
    os.kill(pid, signal.SIGUSR2 if trim else signal.SIGUSR1)
    want = n0 + (2 if trim else 1)
    end = time.time() + 5
    lines = []
    while time.time() < end:
        try:
            lines = open(path).readlines()
        except OSError:
            lines = []
        if len(lines) >= want:
            break
        time.sleep(0.05)
    return [{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
            for line in lines[n0:want]]


def idle_ws(pid, port, path, cookie, n):
    """n idle cookie-authenticated WebSockets through the hub from
    CFG['ws_sources'] loopback addresses: RSS, heap, fds before/open/after."""
    out = {"n_wanted": n}
    time.sleep(1.0)
    out["rss0"], out["fds0"] = H.rss_kib(pid), nfds(pid)
    out["heap0"] = mallinfo(pid)[0]
    env = dict(os.environ, WSBENCH_HEADER="Cookie: swarmhub-session=" + cookie,
               WSBENCH_SOURCES=str(CFG["ws_sources"]))
    c = spawn("wsbench idle", [os.environ["BENCH_WSBENCH"], "idle", "127.0.0.1:%d" % port,
                               path, str(n)], "wsbench-idle.log", env=env,
              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = c.stdout.readline().split()
        if len(line) != 3 or line[0] != "open":
            raise RuntimeError("wsbench idle printed %r (see wsbench-idle.log)" % line)
        out["n"], out["open_s"] = int(line[1]), float(line[2])
        time.sleep(1.0)
        out["rss1"], out["fds1"] = H.rss_kib(pid), nfds(pid)
        out["heap1"] = mallinfo(pid)[0]
        c.stdin.write("close\n")
        c.stdin.flush()
        c.stdout.readline()
        t0 = time.time()
        # the hub's other fds (PostgreSQL, Docker, its pools) come and go on
        # their own: "back" is the count first seen at or below the level
        # before, within 30 s
        while time.time() < t0 + 30 and nfds(pid) > out["fds0"]:
            time.sleep(0.1)
        out["close_s"] = time.time() - t0
        out["fds2"] = nfds(pid)
        time.sleep(1.0)
        out["rss2"] = H.rss_kib(pid)
    finally:
        try:
            c.stdin.close()
        except OSError:
            pass
        stop(c)
    h = mallinfo(pid, trim=True)
    if len(h) == 2:
        out["heap2"], out["heap3"] = h
        time.sleep(0.3)
        out["rss3"] = H.rss_kib(pid)
    out["kib_each"] = (out["rss1"] - out["rss0"]) / out["n"] if out["n"] else None
    log("idle WebSockets: %d open in %.1f s: RSS %d -> %d KiB (%.2f KiB each), after "
        "close %d KiB; fds %d -> %d -> %d" % (out["n"], out["open_s"], out["rss0"],
                                              out["rss1"], out["kib_each"] or 0,
                                              out["rss2"], out["fds0"], out["fds1"],
                                              out["fds2"]))
    return out


def ws_count():
    """Idle WebSockets the hub can hold: 2 fds each, within the fd hard limit."""
    lim = nofile()
    fit = (lim - 400) // 2
    n = CFG["ws_n"]
    return (min(n, (fit // 100) * 100), lim)


# ---------------------------------------------------------------- the run

def run(R):
    docker = S.Docker()
    hub_id = os.environ["BENCH_HUB_ID"]
    profiles = os.path.join(WORK, "profiles.json")
    homes = os.path.join(WORK, "homes")
    write_profiles(profiles, homes)
    hub = BenchHub(WORK, os.environ["BENCH_DB"], secrets.token_hex(24), H.swarmhub_bin(),
                   os.environ["BENCH_NETWORK"], hub_id, profiles, homes)
    R["load"] = [open("/proc/loadavg").read().split()[:3]]
    try:
        log("swarmhub (log %s)" % hub.log)
        hub.start()
        pid = hub.proc.pid
        c = H.Client(hub.api_port, hub.token)
        for u in ("alice", "bob", "carol"):
            st, body, _ = c.request("POST", "/hub/api/users/" + u)
            H.expect(st, 201, "POST /hub/api/users/" + u, body)
            st, body, _ = c.request("PATCH", "/hub/api/users/" + u, {"password": PASSWORD})
            H.expect(st, 200, "PATCH /hub/api/users/%s (password)" % u, body)
        st, body, _ = c.request("POST", "/hub/api/users/alice/tokens", {"note": "bench"})
        H.expect(st, 201, "POST /hub/api/users/alice/tokens", body)
        atok = json.loads(body)["token"]
        st, body, _ = c.request("POST", "/hub/api/users/carol/tokens", {"note": "bench"})
        H.expect(st, 201, "POST /hub/api/users/carol/tokens", body)
        ctok = json.loads(body)["token"]
        srv = {"alice": spawn_server(hub, docker, c, "alice", "static"),
               "bob": spawn_server(hub, docker, c, "bob", "echo")}
        try:
            srv["carol"] = spawn_server(hub, docker, c, "carol", "real")
        except (RuntimeError, S.DockerError) as e:
            R["errors"].append("Jupyter server for carol: %s" % e)
        R["servers"] = {u: s[0] for u, s in srv.items()}
        acookie, bcookie = login(hub.api_port, "alice"), login(hub.api_port, "bob")
        ng, ngport = start_nginx_proxy(srv)
        aip, aport, ajt = srv["alice"]
        hp = "127.0.0.1:%d" % hub.api_port
        urls = {"direct": "http://%s:%d" % (aip, aport),
                "nginx": "http://127.0.0.1:%d" % ngport,
                "hub token": "http://" + hp, "hub cookie": "http://" + hp}
        hdrs = {"direct": ("Authorization: token " + ajt,),
                "nginx": ("Authorization: token " + atok,),
                "hub token": ("Authorization: token " + atok,),
                "hub cookie": ("Cookie: _xsrf=x; swarmhub-session=" + acookie,)}
        for who in urls:
            host, port = urls[who][7:].rsplit(":", 1)
            h = dict(x.split(": ", 1) for x in hdrs[who])
            http_check(host, int(port), PATH1K, 1024, h)
            http_check(host, int(port), PATH1M, 1 << 20, h)
        if HOLD:
            hold(pid, urls, hdrs, {"bob_ws": "ws://%s/user/bob/ws" % hp,
                                   "bob_cookie": "swarmhub-session=" + bcookie,
                                   "bob_direct": "%s:%d" % srv["bob"][:2],
                                   "bob_token": srv["bob"][2]})
        for rnd in range(CFG["rounds"]):
            for conns in (16, 128):
                for who in urls:
                    run_wrk(R, "1k_c%d" % conns, who, urls[who] + PATH1K, conns, hdrs[who])
        # one connection: what each request costs without queueing (at 16
        # the 2 cores are saturated, so p50 is mostly the queue: 16/rate)
        for who in urls:
            run_wrk(R, "1k_c1", who, urls[who] + PATH1K, 1, hdrs[who])
        # 16 connections again, open loop at a fixed rate under saturation:
        # the p50 is then what a request costs, not the length of a queue
        for rnd in range(CFG["open_rounds"]):
            for who in urls:
                run_open(R, who, urls[who][7:], hdrs[who])
        watch = RssWatch(pid)
        watch.start()
        for who in ("direct", "nginx", "hub token"):
            run_wrk(R, "1m_c16", who, urls[who] + PATH1M, 16, hdrs[who])
        R["rss_1m"] = watch.done()
        # 100 MB uploads to bob's C server (it answers once it has read
        # the whole body), alternating, best of the rounds
        bip, bport, bjt = srv["bob"]
        btok = ("Cookie: swarmhub-session=" + bcookie)
        up_t = {"direct": (bip, bport, "Authorization: token " + bjt),
                "nginx": ("127.0.0.1", ngport, btok),
                "hub token": ("127.0.0.1", hub.api_port, btok)}
        watch = RssWatch(pid)
        watch.start()
        R["upload"] = {}
        for rnd in range(CFG["upload_rounds"]):
            for who, (host, port, h) in up_t.items():
                dt = upload(host, port, UPLOAD, CFG["upload_bytes"], h)
                R["upload"].setdefault(who, []).append(CFG["upload_bytes"] / dt)
        R["rss_upload"] = watch.done()
        log("uploads (MB/s): %s" % ", ".join(
            "%s %s" % (w, "/".join("%.0f" % (x / 1e6) for x in v))
            for w, v in R["upload"].items()))
        # WebSocket echo round trips to bob's C echo server
        bip, bport, bjt = srv["bob"]
        wst = {"direct": ("%s:%d" % (bip, bport), "Authorization: token " + bjt),
               "nginx": ("127.0.0.1:%d" % ngport, None),
               "hub": (hp, "Cookie: swarmhub-session=" + bcookie)}
        R["rtt_rounds"] = {}
        for rnd in range(CFG["rtt_rounds"]):
            for who, (addr, h) in wst.items():
                R["rtt_rounds"].setdefault(who, []).append(
                    wsbench_rtt(addr, "/user/bob/ws", CFG["rtt_n"], h))
        R["rtt"] = {w: {q: statistics.median(r[q] for r in rs) for q in ("p50", "p99")}
                    for w, rs in R["rtt_rounds"].items()}
        log("echo p50/p99 us: " + ", ".join("%s %.0f/%.0f" % (w, r["p50"], r["p99"])
                                             for w, r in R["rtt"].items()))
        # a real Jupyter kernel
        if "carol" in srv:
            try:
                kernel_rounds(R, srv["carol"], hp, ngport, ctok)
            except (RuntimeError, OSError, ImportError, ValueError) as e:
                R["errors"].append("kernel round trips: %s" % e)
                log("kernel round trips FAILED: %s" % e)
        stop(ng)
        # idle WebSockets through the hub, cookie-authenticated, activity on
        n, lim = ws_count()
        R["ws_n"], R["nofile"] = n, lim
        R["ws"] = idle_ws(pid, hub.api_port, "/user/bob/ws", bcookie, n)
        R["hub_rss_end"] = H.rss_kib(pid)
        R["load"].append(open("/proc/loadavg").read().split()[:3])
        for u in srv:
            c.request("DELETE", "/hub/api/users/%s/server" % u)
        c.close()
    finally:
        H.cleanup()
        S.remove_services(docker, hub_id, "jupyter-%s-" % hub_id)


def kernel_rounds(R, carol, hp, ngport, ctok):
    cip, cport, cjt = carol
    c = http.client.HTTPConnection("127.0.0.1", int(hp.split(":")[1]), timeout=60)
    c.request("POST", "/user/carol/api/kernels", body="{}",
              headers={"Authorization": "token " + ctok,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 201:
        raise RuntimeError("POST /user/carol/api/kernels: HTTP %d %s" % (r.status, body[:200]))
    kid = json.loads(body)["id"]
    tg = {"direct": ("%s:%d" % (cip, cport), cjt), "nginx": ("127.0.0.1:%d" % ngport, ctok),
          "hub": (hp, ctok)}
    pooled = {w: [] for w in tg}
    for rnd in range(CFG["kernel_rounds"]):
        for w, v in kernel_rtt(tg, "carol", kid, CFG["kernel_n"]).items():
            pooled[w].extend(v)
    R["kernel"] = {w: {"p50": H.pct(v, 50), "p99": H.pct(v, 99), "n": len(v)}
                   for w, v in pooled.items()}
    log("kernel p50/p99 us: " + ", ".join("%s %.0f/%.0f" % (w, r["p50"], r["p99"])
                                           for w, r in R["kernel"].items()))


# ---------------------------------------------------------------- report

def hold(pid, urls, hdrs, more):
    """SWARMHUB_BENCH_HOLD=1: everything is up; say how to reach it and
    wait until the file is removed (for perf/strace by hand)."""
    f = os.path.join(WORK, "hold")
    with open(f, "w") as fh:
        fh.write("hub_pid=%d\n" % pid)
        for who in urls:
            fh.write("%s %s %s\n" % (who, urls[who] + PATH1K, " | ".join(hdrs[who])))
        for k, v in more.items():
            fh.write("%s=%s\n" % (k, v))
    log("holding: everything is up, see %s; remove it to go on" % f)
    while os.path.exists(f):
        time.sleep(1)


def ms(x, nd=2):
    return "—" if x is None else "%.*f ms" % (nd, x)


def rps(x):
    return "—" if x is None else "{:,.0f}/s".format(x)


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "MISS")


def get(R, key, who, field):
    return ((R.get(key) or {}).get(who) or {}).get(field)


def mbs(x):
    return "—" if x is None else "%.0f MB/s" % (x / 1e6)


def rows(R):
    Tg = CFG["targets"]
    out = []
    for conns in (16, 128):
        key = "1k_c%d" % conns
        n, d = get(R, key, "nginx", "rps"), get(R, key, "direct", "rps")
        for who in ("hub token", "hub cookie"):
            h = get(R, key, who, "rps")
            ok = h / n >= Tg["rps_vs_nginx"] if h and n else None
            out.append(("1 KiB, %d conns, %s: req/s" % (conns, who.replace("hub ", "")),
                        rps(h), rps(n), rps(d), "%.2f× nginx" % (h / n) if h and n else "—",
                        "≥ %.1f× nginx: %s" % (Tg["rps_vs_nginx"], verdict(ok))))
        for q in ("p50", "p99"):
            out.append(("1 KiB, %d conns: %s (token / cookie)" % (conns, q),
                        "%s / %s" % (ms(get(R, key, "hub token", q)),
                                     ms(get(R, key, "hub cookie", q))),
                        ms(get(R, key, "nginx", q)), ms(get(R, key, "direct", q)), "",
                        "(information)"))
    d = get(R, "1k_c16", "direct", "p50")
    for who in ("hub token", "hub cookie"):
        h, n = get(R, "1k_c16", who, "p50"), get(R, "1k_c16", "nginx", "p50")
        add = h - d if h is not None and d is not None else None
        out.append(("added p50 over direct, 16 conns, %s (wrk, closed loop: at "
                    "saturation, so mostly the queue, 16 / rate)" % who.replace("hub ", ""),
                    ms(add), ms(n - d if n is not None and d is not None else None), "0", "",
                    "≤ %.1f ms: %s" % (Tg["add_p50"], verdict(add <= Tg["add_p50"]
                                                              if add is not None else None))))
    O = {w: statistics.median(r["p50"] for r in v) / 1e3
         for w, v in (R.get("open") or {}).items() if v}
    d = O.get("direct")
    for who in ("hub token", "hub cookie"):
        h, n = O.get(who), O.get("nginx")
        add = h - d if h is not None and d is not None else None
        out.append(("added p50 over direct, 16 conns, %s, open loop at %s req/s "
                    "(under saturation; median of %d rounds)"
                    % (who.replace("hub ", ""), "{:,}".format(CFG["open_rate"]),
                       CFG["open_rounds"]),
                    ms(add, 3), ms(n - d if n is not None and d is not None else None, 3),
                    "0 (p50 %s)" % ms(d, 3), "",
                    "≤ %.1f ms: %s" % (Tg["add_p50"], verdict(add <= Tg["add_p50"]
                                                              if add is not None else None))))
    d = get(R, "1k_c1", "direct", "p50")
    h = [get(R, "1k_c1", w, "p50") for w in ("hub token", "hub cookie")]
    n = get(R, "1k_c1", "nginx", "p50")
    if d is not None and None not in h:
        out.append(("added p50 over direct, 1 connection (no queueing), token / cookie",
                    "%s / %s" % (ms(h[0] - d, 3), ms(h[1] - d, 3)),
                    ms(n - d, 3) if n is not None else "—", "0 (p50 %s)" % ms(d, 3), "",
                    "(information)"))
    h, n, d = (get(R, "1m_c16", w, "xfer") for w in ("hub token", "nginx", "direct"))
    ok = h / n >= Tg["mib_vs_nginx"] if h and n else None
    out.append(("1 MiB responses, 16 conns: throughput", mbs(h), mbs(n), mbs(d),
                "%.2f× nginx" % (h / n) if h and n else "—",
                "≥ %.1f× nginx: %s" % (Tg["mib_vs_nginx"], verdict(ok))))
    U = R.get("upload") or {}
    h, n, d = (max(U[w]) if U.get(w) else None for w in ("hub token", "nginx", "direct"))
    ok = h / n >= Tg["mib_vs_nginx"] if h and n else None
    out.append(("100 MB upload to a C server (cookie; best of %d)" % CFG["upload_rounds"],
                mbs(h), mbs(n), mbs(d),
                "%.2f× nginx" % (h / n) if h and n else "—",
                "≥ %.1f× nginx: %s" % (Tg["mib_vs_nginx"], verdict(ok))))
    for key, label in (("rss_1m", "1 MiB runs"), ("rss_upload", "uploads")):
        w = R.get(key)
        if w:
            grow = w["max"] - w["before"]
            out.append(("hub RSS during the %s: before / max / after" % label,
                        "{:,} / {:,} / {:,} KiB".format(w["before"], w["max"], w["after"]),
                        "", "", "%+d KiB at most" % grow,
                        "flat (≤ +%d KiB): %s" % (Tg["rss_flat_kib"],
                                                  verdict(grow <= Tg["rss_flat_kib"]))))
    for key, label in (("rtt", "WebSocket echo (C, in a container)"),
                       ("kernel", "Jupyter kernel_info round trip")):
        RT = R.get(key) or {}
        for q in ("p50", "p99"):
            h, n, d = ((RT.get(w) or {}).get(q) for w in ("hub", "nginx", "direct"))
            tgt = "(information)"
            if q == "p99":
                tgt = "≤ nginx's p99: %s" % verdict(h <= n if h and n else None)
            out.append(("%s %s" % (label, q),) +
                       tuple("—" if v is None else "%.0f µs" % v for v in (h, n, d)) +
                       ("%.2f× nginx" % (h / n) if h and n else "—", tgt))
    W = R.get("ws") or {}
    if W.get("n") is not None:
        ke = W["kib_each"]
        out.append(("idle WebSockets (cookie, %d source addresses): opened" % CFG["ws_sources"],
                    "{:,} of {:,} in {:.1f} s".format(W["n"], W["n_wanted"], W["open_s"]),
                    "", "", "", "all open: %s" % verdict(W["n"] == W["n_wanted"])))
        out.append(("hub RSS before / open / after close",
                    "{:,} / {:,} / {:,} KiB".format(W["rss0"], W["rss1"], W["rss2"]),
                    "", "", "", "(information)"))
        out.append(("hub RSS per idle WebSocket", "%.2f KiB" % ke if ke is not None else "—",
                    "", "", "", "≤ %.0f KiB: %s" % (Tg["ws_kib"],
                                                   verdict(ke <= Tg["ws_kib"]
                                                           if ke is not None else None))))
        if W.get("heap2"):
            h0, h1, h2 = (W[k]["inuse"] + W[k]["mmap"] for k in ("heap0", "heap1", "heap2"))
            back = (h2 - h0) / 1024
            out.append(("hub malloc in use: before / open / after close",
                        "{:,} / {:,} / {:,} KiB".format(h0 // 1024, h1 // 1024, h2 // 1024),
                        "", "", "%+.0f KiB after close" % back,
                        "memory back (≤ +%d KiB): %s" % (Tg["heap_back_kib"],
                                                        verdict(back <= Tg["heap_back_kib"]))))
        if W.get("rss3") is not None:
            out.append(("hub RSS after malloc_trim(0), vs before",
                        "%+d KiB" % (W["rss3"] - W["rss0"]), "", "", "", "(information)"))
        out.append(("hub fds before / open / after close",
                    "%d / %d / %d" % (W["fds0"], W["fds1"], W["fds2"]), "", "",
                    "back %.1f s after close" % W["close_s"],
                    "fds back: %s" % verdict(W["fds2"] <= W["fds0"])))
    return out


def table(header, rs):
    t = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    t += ["| " + " | ".join(r) + " |" for r in rs]
    return "\n".join(t)


def report(R, m, failed):
    L = ["# Proxy benchmark: the real path (bin/swarmhub) vs nginx", ""]
    L.append("Generated by `tests/bench/proxy.sh`%s on %s. Method and caveats: "
             "`tests/bench/README.md` (\"Proxy benchmark\")."
             % (" (SWARMHUB_BENCH_QUICK=1: indicative only)" if QUICK else "", m["date"]))
    load = R.get("load") or []
    L += ["", "## Machine", "",
          "- %s × %s, %s RAM, Linux %s, %s" % (m["nproc"], m["cpu"], m["mem"], m["kernel"],
                                               m["os"]),
          "- swarmhub %s (`%s`), EDGE_THREADS=%d" % (m["git"], m["swarmhub_bin"],
                                                   CFG["edge_threads"]),
          "- nginx %s (Debian), wrk %s (Debian), docker %s, PostgreSQL %s"
          % (m.get("nginx", "?"), m["wrk_deb"], m.get("docker", "?"), m["postgres"]),
          "- fd limit %s (hard); wrk, the hub or nginx, and the upstream containers share the "
          "%s cores" % (R.get("nofile", "?"), m["nproc"]),
          "- load average (1/5/15 min) at the start: %s; at the end: %s (the machine is "
          "shared; other work shows up mostly in the p99 columns)"
          % (" ".join(load[0]) if load else "?",
             " ".join(load[1]) if len(load) > 1 else "?"), ""]
    if failed:
        L += ["**Run failed:** %s" % failed, ""]
    for e in R["errors"]:
        L.append("- error: %s" % e)
    if R["errors"]:
        L.append("")
    L += ["## Method (short)", "",
          "`bin/swarmhub` (PostgreSQL, `AUTH=local`, spawner on the local swarm, "
          "`CONNECT=gwbridge`, %d edge threads, activity on) in front of three users' "
          "servers it spawned: alice's is a static nginx in a container (2 workers, "
          "`sendfile`; 1 KiB and 1 MiB files), bob's `wsbench echo` (C, epoll) in a "
          "container (WebSocket echo; `POST %s` answered 204 once it has read the whole "
          "body), carol's "
          "Jupyter Notebook 6 with a kernel. Through the hub with alice's API token "
          "(`Authorization: token`) or her browser session cookie (from the login form). "
          "nginx: %d workers, `proxy_pass` to an `upstream` per server with `keepalive "
          "128`, HTTP/1.1, `proxy_request_buffering off`, the server's token set as "
          "`Authorization` (as the hub does), X-Forwarded-* and the WebSocket upgrade set, "
          "access log off. direct: the container's `docker_gwbridge` address. `wrk -t2 -cN "
          "-d%ds --latency` after a 1 s warm-up, targets one after the other; 1 KiB rows "
          "best of %d rounds. Uploads: one connection, `Content-Length` 100,000,000, best "
          "of %d. Echo: `wsbench rtt`, 2,000 sequential 64-byte messages, median of %d "
          "rounds. Open loop: `wsbench http`, %d keep-alive connections, GET of the 1 KiB "
          "file at %d requests a second in all, each request's latency from the time it "
          "was due, %d s after a 1 s warm-up, %d rounds alternating the targets, median "
          "p50. Kernel: `kernel_info_request` → reply on the kernel's channels "
          "WebSocket (Python websocket-client, the same for every target), one WebSocket "
          "per target to the same kernel, each message to the targets in turn, %d per "
          "target and round, %d rounds pooled (percentiles over all). Idle WebSockets: "
          "bob's session cookie, from %d loopback addresses (127.0.1.x), RSS and fds of the hub 1 s after the last open; heap "
          "from glibc's `mallinfo2()` through the `mtrim.c` shim."
          % (CFG["edge_threads"], UPLOAD, CFG["edge_threads"], CFG["secs"], CFG["rounds"],
             CFG["upload_rounds"], CFG["rtt_rounds"], CFG["open_conns"], CFG["open_rate"],
             CFG["open_secs"], CFG["open_rounds"], CFG["kernel_n"], CFG["kernel_rounds"],
             CFG["ws_sources"]), ""]
    L += ["## Results", ""]
    L.append(table(("metric", "hub", "nginx", "direct", "ratio", "target"), rows(R)))
    n = R.get("ws_n")
    if n is not None and n < CFG["ws_n"]:
        L += ["", "Idle WebSockets: %s instead of %s: the fd hard limit is %s."
              % ("{:,}".format(n), "{:,}".format(CFG["ws_n"]), R.get("nofile"))]
    if R.get("hub_rss_end"):
        L += ["", "Hub RSS at the end: %s KiB." % "{:,}".format(R["hub_rss_end"])]
    L += ["", "## Raw wrk output", "", "<details><summary>all runs</summary>", "", "```"]
    for label, raw in R.get("raw") or []:
        L += ["== " + label, raw.strip(), ""]
    L += ["```", "", "</details>"]
    return "\n".join(L)


def machine():
    m = H.machine()
    m["nginx"] = H.sh("dpkg-query -W -f='${Version}' nginx 2>/dev/null") or "?"
    m["docker"] = H.sh("docker version -f '{{.Server.Version}}' 2>/dev/null") or "?"
    return m


def main():
    global WORK
    for sg in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sg, H.on_signal)
    WORK = os.environ.get("BENCH_WORK")
    need = ("BENCH_WORK", "BENCH_WSBENCH", "BENCH_MTRIM", "BENCH_DB", "BENCH_NETWORK",
            "BENCH_HUB_ID")
    if "--help" in sys.argv[1:]:
        print(__doc__)
        return 0
    if not all(os.environ.get(k) for k in need):
        print("proxy.py: %s must be set; run tests/bench/proxy.sh" % ", ".join(need),
              file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by all
    R = {"errors": []}
    failed = None
    try:
        run(R)
    except (H.StartError, RuntimeError, OSError, S.DockerError,
            http.client.HTTPException, ValueError, KeyError) as e:
        failed = str(e)
        log("FAILED: %s" % e)
    finally:
        cleanup()
    text = report(R, machine(), failed)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write(text + "\n")
    print(text)
    print("\n(written to %s)" % os.path.relpath(RESULTS, os.getcwd()), file=sys.stderr)
    return 1 if failed else 0


WORK = None

if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
        H.cleanup()

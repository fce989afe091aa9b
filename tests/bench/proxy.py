#!/usr/bin/python3
"""proxy.py - the proxy benchmark: the edge vs nginx vs configurable-http-proxy.

Started by tests/bench/proxy.sh (which builds the helpers, installs
configurable-http-proxy 5.3.0 from npm, and starts PostgreSQL and the Docker
swarm for the end-to-end part). Everything listens on 127.0.0.1.

Part 1, the proxy path with a fast upstream, side by side in one run:
  upstream   nginx serving two static files (1 KiB, 1 MiB) and `wsbench echo`
             (a C epoll WebSocket echo server)
  direct     wrk / wsbench straight to the upstream
  edge       build/tests/test_edge in bench mode (edge/edge.c with a router
             that proxies everything to one upstream), EDGE_THREADS=2 (and 1)
  nginx      proxy_pass to a keepalive upstream, WebSocket upgrade passed
  CHP        configurable-http-proxy 5.3.0 with the route /user/alice
Part 2, the real hub end to end: bin/swarmhub spawning the tiny test image in
  the local swarm, GET /user/alice/static-1k through the hub (token auth,
  routing, header rewriting) vs straight to the container's gwbridge address.

Writes tests/bench/results/proxy.md (also printed). Method: README.md here.

Environment (set by proxy.sh): BENCH_WORK, BENCH_WSBENCH, BENCH_EDGE,
BENCH_CHP, and for part 2 BENCH_DB, BENCH_NETWORK, BENCH_HUB_ID,
BENCH_PG_VERSION (BENCH_HUB_SKIP=reason when Docker/PostgreSQL are missing).
Knobs: SWARMHUB_BENCH_QUICK=1 (3 s wrk runs, 1,000 WebSockets),
SWARMHUB_BENCH_WS=N (idle WebSockets), SWARMHUB_BIN.
Exit status: 0 when everything could be measured (misses are MISS), 1 when a
proxy, an upstream or the hub could not be started. Standard library and
tests/integration/hubtest.py only.
"""
import http.client
import json
import os
import re
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import hub_api as H  # noqa: E402
import hubtest as T  # noqa: E402  (the tests' profiles writer)
import spawn as S    # noqa: E402

RESULTS = os.path.join(HERE, "results", "proxy.md")
QUICK = os.environ.get("SWARMHUB_BENCH_QUICK", "") not in ("", "0")
CFG = {
    "secs": 3 if QUICK else 10,          # each wrk run
    "warm_secs": 1,                      # unreported warm-up before each
    "ws_n": int(os.environ.get("SWARMHUB_BENCH_WS") or (1000 if QUICK else 10000)),
    "rtt_n": 2000, "rtt_size": 64, "rtt_rounds": 5,
    "hub_rtt_n": 1000,
    "targets": {"rps_vs_nginx": 0.8, "add_p50": 0.3, "add_p99": 2.0,
                "ws_kib": 8.0, "rtt_p99_vs_direct": 1.5},
}
PATH1K, PATH1M, PATHWS = "/user/alice/static-1k", "/user/alice/static-1m", "/user/alice/ws"
PROCS = []  # (label, Popen) started here, stopped by cleanup()


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


def pids_of(p):
    return [p.pid] + H.descendants(p.pid)


def rss(p):
    return sum(H.rss_kib(x) for x in pids_of(p))


def nfds(p):
    n = 0
    for x in pids_of(p):
        try:
            n += len(os.listdir("/proc/%d/fd" % x))
        except OSError:
            pass
    return n


# ---------------------------------------------------------------- servers

NGINX_COMMON = """worker_processes 2;
worker_rlimit_nofile %(nofile)d;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections %(wconn)d; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
%(body)s
}
"""
NGINX_UPSTREAM = """  default_type text/plain;
  sendfile on;
  tcp_nopush on;
  server {
    listen 127.0.0.1:%(port)d backlog=4096;
    root %(www)s;
  }"""
NGINX_PROXY = """  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream up {
    server 127.0.0.1:%(up)d;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:%(port)d backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }"""


def nofile():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def start_nginx(name, body, port):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_COMMON % {"dir": d, "nofile": nofile(),
                                "wconn": nofile(), "body": body})
    p = spawn(name, ["nginx", "-c", conf, "-p", d, "-g", "daemon off;"], name + ".log")
    wait_port(port, p, name)
    time.sleep(0.3)  # workers forked
    return p


def start_upstream_nginx(port):
    www = os.path.join(WORK, "www")
    os.makedirs(os.path.join(www, "user", "alice"), exist_ok=True)
    with open(os.path.join(www, PATH1K.lstrip("/")), "wb") as f:
        f.write((b"swarmhub static-1k " * 64)[:1023] + b"\n")
    with open(os.path.join(www, PATH1M.lstrip("/")), "wb") as f:
        f.write(os.urandom(1 << 20))
    return start_nginx("nginx-upstream", NGINX_UPSTREAM % {"port": port, "www": www}, port)


def start_nginx_proxy(name, port, up):
    return start_nginx(name, NGINX_PROXY % {"port": port, "up": up}, port)


def start_edge(name, port, up, threads):
    env = dict(os.environ, EDGE_BENCH_UPSTREAM="127.0.0.1:%d" % up,
               EDGE_BENCH_PORT=str(port), EDGE_THREADS=str(threads),
               LD_PRELOAD=os.environ["BENCH_MTRIM"],
               MTRIM_OUT=os.path.join(WORK, name + ".mallinfo"))
    p = spawn(name, [os.environ["BENCH_EDGE"]], name + ".log", env=env)
    wait_port(port, p, name)
    return p


def start_chp(name, port, up):
    api = H.free_port()
    tok = secrets.token_hex(16)
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=tok)
    p = spawn(name, [os.environ["BENCH_CHP"], "--ip", "127.0.0.1", "--port", str(port),
                     "--api-ip", "127.0.0.1", "--api-port", str(api)], name + ".log", env=env)
    wait_port(api, p, name + " API")
    wait_port(port, p, name)
    c = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
    c.request("POST", "/api/routes/user/alice",
              body=json.dumps({"target": "http://127.0.0.1:%d" % up}),
              headers={"Authorization": "token " + tok})
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 201:
        raise H.StartError("%s: POST /api/routes/user/alice: HTTP %d" % (name, r.status))
    return p


def start_ws_echo(port):
    p = spawn("ws-echo", [os.environ["BENCH_WSBENCH"], "echo", str(port)], "ws-echo.log")
    wait_port(port, p, "wsbench echo")
    return p


# ---------------------------------------------------------------- measuring

def wrk(url, conns, secs, threads=2, headers=()):
    cmd = ["wrk", "-t%d" % min(threads, conns), "-c%d" % conns, "-d%ds" % secs, "--latency"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout
    r = S.parse_wrk(out)
    if r["rps"] is None:
        raise RuntimeError("wrk printed no Requests/sec for %s:\n%s" % (url, out))
    m = re.search(r"Transfer/sec:\s*([\d.]+)(\w+)", out)
    if m:
        r["xfer"] = m.group(1) + " " + m.group(2)
    return r


def http_check(port, path, want_len):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200 or len(body) != want_len:
        raise RuntimeError("GET %s on %d: HTTP %d, %d bytes (wanted 200, %d)"
                           % (path, port, r.status, len(body), want_len))


def run_wrk(R, key, who, port, path, conns, secs, threads=2, headers=(), host="127.0.0.1"):
    url = "http://%s:%d%s" % (host, port, path)
    wrk(url, conns, CFG["warm_secs"], threads, headers)
    r = wrk(url, conns, secs, threads, headers)
    R.setdefault(key, {})[who] = r
    log("%-22s %-8s %9.0f req/s  p50 %.3f ms  p99 %.3f ms%s"
        % (key, who, r["rps"], r.get("p50") or -1, r.get("p99") or -1,
           ("  non-2xx %d" % r["non2xx"]) if r["non2xx"] else "") +
        ("  errors: " + r["sockerr"] if r["sockerr"] else ""))
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


def mallinfo(p, name, trim=False):
    """Heap figures of an edge process through the mtrim.c shim: {inuse, free, mmap}
    (bytes, all arenas); with trim also the same after malloc_trim(0)."""
    path = os.path.join(WORK, name + ".mallinfo")
    try:
        n0 = len(open(path).readlines())
    except OSError:
        n0 = 0
    os.kill(p.pid, signal.SIGUSR2 if trim else signal.SIGUSR1)
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
    out = []
    for line in lines[n0:want]:
        out.append({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)})
    return out


def idle_ws(who, p, port, n):
    """Open n idle WebSockets through the proxy p (fresh); RSS/fds before, open,
    after close."""
    out = {"n_wanted": n}
    time.sleep(0.5)
    out["rss0"], out["fds0"] = rss(p), nfds(p)
    if who == "edge":
        out["heap0"] = mallinfo(p, "edge-ws")[0]
    c = spawn("wsbench idle", [os.environ["BENCH_WSBENCH"], "idle", "127.0.0.1:%d" % port,
                               PATHWS, str(n)], "wsbench-idle.log",
              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = c.stdout.readline().split()
        if len(line) != 3 or line[0] != "open":
            raise RuntimeError("wsbench idle through %s printed %r" % (who, line))
        out["n"], out["open_s"] = int(line[1]), float(line[2])
        time.sleep(1.0)
        out["rss1"], out["fds1"] = rss(p), nfds(p)
        if who == "edge":
            out["heap1"] = mallinfo(p, "edge-ws")[0]
        c.stdin.write("close\n")
        c.stdin.flush()
        c.stdout.readline()
        t0 = time.time()
        while time.time() < t0 + 30 and nfds(p) > out["fds0"]:
            time.sleep(0.1)
        out["close_s"] = time.time() - t0
        time.sleep(1.0)
        out["rss2"], out["fds2"] = rss(p), nfds(p)
    finally:
        try:
            c.stdin.close()
        except OSError:
            pass
        stop(c)
    if who == "edge":
        h = mallinfo(p, "edge-ws", trim=True)
        if len(h) == 2:
            out["heap2"], out["heap3"] = h
            time.sleep(0.3)
            out["rss3"] = rss(p)
    per = (out["rss1"] - out["rss0"]) / out["n"] if out["n"] else None
    out["kib_each"] = per
    log("idle WebSockets via %-6s %d open in %.1f s: RSS %d -> %d KiB (%.2f KiB each), "
        "after close %d KiB%s; fds %d -> %d -> %d"
        % (who, out["n"], out["open_s"], out["rss0"], out["rss1"], per or 0, out["rss2"],
           (", after malloc_trim %d KiB" % out["rss3"]) if "rss3" in out else "",
           out["fds0"], out["fds1"], out["fds2"]))
    return out


def ws_count():
    """Largest number of idle WebSockets one proxy process can hold (2 fds each)."""
    lim = nofile()
    fit = (lim - 100) // 2
    n = CFG["ws_n"]
    if n > fit:
        return (fit // 100) * 100, lim
    return n, lim


def part1(R):
    up, wsup = H.free_port(), H.free_port()
    start_upstream_nginx(up)
    http_check(up, PATH1K, 1024)
    http_check(up, PATH1M, 1 << 20)
    ports = {"direct": up}
    ports["nginx"] = H.free_port()
    start_nginx_proxy("nginx-proxy", ports["nginx"], up)
    ports["chp"] = H.free_port()
    start_chp("chp", ports["chp"], up)
    ports["edge"] = H.free_port()
    start_edge("edge", ports["edge"], up, 2)
    ports["edge1"] = H.free_port()
    start_edge("edge-1thread", ports["edge1"], up, 1)
    for who in ("nginx", "chp", "edge", "edge1"):
        http_check(ports[who], PATH1K, 1024)
        http_check(ports[who], PATH1M, 1 << 20)
    order = ("direct", "nginx", "chp", "edge")
    s = CFG["secs"]
    for who in order:
        run_wrk(R, "1k_c16", who, ports[who], PATH1K, 16, s)
    run_wrk(R, "1k_c16", "edge1", ports["edge1"], PATH1K, 16, s)
    for who in order + ("edge1",):
        run_wrk(R, "1k_c128", who, ports[who], PATH1K, 128, s)
    for who in order:
        run_wrk(R, "1m_c16", who, ports[who], PATH1M, 16, s)
    for who in order:
        run_wrk(R, "1k_c1", who, ports[who], PATH1K, 1, s, threads=1)

    # WebSockets: a fresh proxy of each kind in front of the echo server
    start_ws_echo(wsup)
    n, lim = ws_count()
    R["ws_n"], R["nofile"] = n, lim
    R["ws"], R["rtt"], R["rtt_rounds"] = {}, {}, {}
    wsports = {"direct": wsup}
    starters = (("edge", lambda port: start_edge("edge-ws", port, wsup, 2)),
                ("nginx", lambda port: start_nginx_proxy("nginx-ws", port, wsup)),
                ("chp", lambda port: start_chp("chp-ws", port, wsup)))
    for who, fn in starters:
        port = H.free_port()
        try:
            p = fn(port)
            R["ws"][who] = idle_ws(who, p, port, n)
            wsports[who] = port
        except (RuntimeError, OSError, H.StartError) as e:
            R["errors"].append("WebSockets via %s: %s" % (who, e))
            log("WebSockets via %s FAILED: %s" % (who, e))
    # Echo round trips: rounds alternating between the targets (the numbers
    # move with where the scheduler puts client, proxy and echo server);
    # each percentile is the median over the rounds.
    for rnd in range(CFG["rtt_rounds"]):
        for who, port in wsports.items():
            try:
                r = wsbench_rtt("127.0.0.1:%d" % port, PATHWS, CFG["rtt_n"])
            except RuntimeError as e:
                R["errors"].append("echo via %s: %s" % (who, e))
                continue
            R["rtt_rounds"].setdefault(who, []).append(r)
    for who, rs in R["rtt_rounds"].items():
        R["rtt"][who] = {q: statistics.median(r[q] for r in rs)
                         for q in ("p50", "p90", "p99", "max", "mean")}
        log("WebSocket echo via %-6s p50 %.1f us p99 %.1f us (rounds: %s)"
            % (who, R["rtt"][who]["p50"], R["rtt"][who]["p99"],
               ", ".join("%.0f/%.0f" % (r["p50"], r["p99"]) for r in rs)))
    R["ports"] = ports


# ---------------------------------------------------------------- part 2

def part2(R):
    E = R["e2e"] = {}
    skip = os.environ.get("BENCH_HUB_SKIP")
    if skip:
        E["skipped"] = skip
        return
    docker = S.Docker()
    hub_id = os.environ["BENCH_HUB_ID"]
    profiles = os.path.join(WORK, "profiles.json")
    T.write_notebook_profiles(
        profiles, cpu=(0.01, 2, 2), mem_gb=(0.03, 1, 0.25), real=False,
        cmd=T.NB_CMD, tiny_description="the fake notebook of images/test-notebook")
    homes = os.path.join(WORK, "homes")
    os.makedirs(homes, exist_ok=True)
    hub = S.SpawnHub(WORK, os.environ["BENCH_DB"], secrets.token_hex(24), H.swarmhub_bin(),
                     os.environ["BENCH_NETWORK"], hub_id, profiles, homes)
    try:
        log("end to end: swarmhub (log %s)" % hub.log)
        hub.start()
        c = H.Client(hub.api_port, hub.token)
        st, body, _ = c.request("POST", "/hub/api/users/alice")
        H.expect(st, 201, "POST /hub/api/users/alice", body)
        st, body, _ = c.request("POST", "/hub/api/users/alice/tokens", {"note": "bench"})
        H.expect(st, 201, "POST /hub/api/users/alice/tokens", body)
        utok = json.loads(body)["token"]
        st, body, _ = c.request("POST", "/hub/api/users/alice/server", {})
        if st not in (201, 202):
            raise RuntimeError("POST server: HTTP %d %s" % (st, body[:200]))
        rec = {"user": "alice"}
        S.read_progress(hub, rec)
        if "failed" in rec:
            raise RuntimeError("spawn: %s" % rec["failed"])
        svc = docker.service(hub.service("alice")) or {}
        envl = (((svc.get("Spec") or {}).get("TaskTemplate") or {})
                .get("ContainerSpec") or {}).get("Env") or []
        jtok = next((e.split("=", 1)[1] for e in envl if e.startswith("JUPYTER_TOKEN=")), "")
        cid = None
        for t in docker.tasks(hub.service("alice")):
            if (t.get("Status") or {}).get("State") == "running":
                cid = t["Status"]["ContainerStatus"]["ContainerID"]
        ip = docker.gwbridge_ip(cid) if cid else None
        if not ip or ip.startswith("10.") or not jtok:
            raise RuntimeError("no gwbridge address or token for the server (%s)" % ip)
        E["ip"] = ip
        s = CFG["secs"]
        hub_h = ("Authorization: token " + utok,)
        dir_h = ("Authorization: token " + jtok,)
        for conns, key in ((16, "c16"), (1, "c1")):
            thr = 2 if conns > 1 else 1
            E[key] = {}
            run_wrk(E, key, "direct", 8888, PATH1K, conns, s, thr, dir_h, host=ip)
            run_wrk(E, key, "hub", hub.api_port, PATH1K, conns, s, thr, hub_h)
        E["rtt"] = {
            "direct": wsbench_rtt("%s:8888" % ip, "/user/alice/ws-echo", CFG["hub_rtt_n"],
                                  "Authorization: token " + jtok),
            "hub": wsbench_rtt("127.0.0.1:%d" % hub.api_port, "/user/alice/ws-echo",
                               CFG["hub_rtt_n"], "Authorization: token " + utok)}
        log("end to end WebSocket echo: hub p50 %.0f us p99 %.0f us, direct p50 %.0f p99 %.0f"
            % (E["rtt"]["hub"]["p50"], E["rtt"]["hub"]["p99"],
               E["rtt"]["direct"]["p50"], E["rtt"]["direct"]["p99"]))
        E["hub_rss"] = H.rss_kib(hub.proc.pid)
        c.request("DELETE", "/hub/api/users/alice/server")
        c.close()
    finally:
        H.cleanup()
        S.remove_services(docker, hub_id, "jupyter-%s-" % hub_id)


# ---------------------------------------------------------------- report

def ms(x, nd=2):
    return "—" if x is None else "%.*f ms" % (nd, x)


def rps(x):
    return "—" if x is None else "{:,.0f}/s".format(x)


def kib(x):
    return "—" if x is None else "%.2f KiB" % x


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "MISS")


def get(R, key, who, field):
    return ((R.get(key) or {}).get(who) or {}).get(field)


def rows(R):
    T = CFG["targets"]
    out = []

    def rps_row(label, key):
        e, n, c, d = (get(R, key, w, "rps") for w in ("edge", "nginx", "chp", "direct"))
        ok = (e / n >= T["rps_vs_nginx"]) if e and n else None
        out.append((label + " req/s", rps(e), rps(n), rps(c), rps(d),
                    "%.2f× nginx, %.1f× CHP" % (e / n, e / c) if e and n and c else "—",
                    "≥ %.1f× nginx: %s" % (T["rps_vs_nginx"], verdict(ok))))
        for q in ("p50", "p99"):
            vals = [get(R, key, w, q) for w in ("edge", "nginx", "chp", "direct")]
            out.append((label + " " + q,) + tuple(ms(v) for v in vals) + ("", ""))

    rps_row("1 KiB, 16 conns", "1k_c16")
    for q, tk in (("p50", "add_p50"), ("p99", "add_p99")):
        d = get(R, "1k_c16", "direct", q)
        vals = [(get(R, "1k_c16", w, q) - d) if get(R, "1k_c16", w, q) is not None and
                d is not None else None for w in ("edge", "nginx", "chp")]
        ok = vals[0] <= T[tk] if vals[0] is not None else None
        out.append(("added latency over direct, 16 conns, " + q,) +
                    tuple(ms(v) for v in vals) + ("0", "",
                                                  "≤ %.1f ms: %s" % (T[tk], verdict(ok))))
    rps_row("1 KiB, 128 conns", "1k_c128")
    e1, e2 = get(R, "1k_c128", "edge1", "rps"), get(R, "1k_c128", "edge", "rps")
    n = get(R, "1k_c128", "nginx", "rps")
    out.append(("1 KiB, 128 conns, edge with 1 thread", rps(e1), "", "", "",
                "%.2f× nginx, %.2f× 2 threads" % (e1 / n, e1 / e2) if e1 and n and e2 else "—",
                "(information)"))
    e1, e2 = get(R, "1k_c16", "edge1", "rps"), get(R, "1k_c16", "edge", "rps")
    n = get(R, "1k_c16", "nginx", "rps")
    out.append(("1 KiB, 16 conns, edge with 1 thread", rps(e1), "", "", "",
                "%.2f× nginx, %.2f× 2 threads" % (e1 / n, e1 / e2) if e1 and n and e2 else "—",
                "(information)"))
    rps_row("1 MiB, 16 conns", "1m_c16")
    out.append(("1 MiB, 16 conns transfer",) + tuple(
        (get(R, "1m_c16", w, "xfer") or "—") + "/s" for w in ("edge", "nginx", "chp", "direct"))
        + ("", ""))
    for q in ("p50", "p99"):
        vals = [get(R, "1k_c1", w, q) for w in ("edge", "nginx", "chp", "direct")]
        d = vals[3]
        out.append(("1 KiB, 1 conn (unloaded) " + q,) + tuple(ms(v, 3) for v in vals) +
                   ("edge +%.3f ms, nginx +%.3f ms" % (vals[0] - d, vals[1] - d)
                    if None not in vals[:2] and d is not None else "—", "(information)"))
    W = R.get("ws") or {}
    n = R.get("ws_n")

    def wsv(who, f):
        return (W.get(who) or {}).get(f)
    ke = wsv("edge", "kib_each")
    leak_e = None
    if W.get("edge"):
        leak_e = W["edge"]["fds2"] <= W["edge"]["fds0"]
    out.append(("idle WebSockets open (%s)" % ("{:,}".format(n) if n else "?"),
                *("{:,} in {:.1f} s".format(wsv(w, "n"), wsv(w, "open_s"))
                  if wsv(w, "n") is not None else "—" for w in ("edge", "nginx", "chp")),
                "", "", ""))
    out.append(("RSS before the first WebSocket",
                *("{:,} KiB".format(wsv(w, "rss0")) if wsv(w, "rss0") is not None else "—"
                  for w in ("edge", "nginx", "chp")), "", "", ""))
    out.append(("RSS per idle WebSocket",) + tuple(kib(wsv(w, "kib_each"))
                                                  for w in ("edge", "nginx", "chp")) +
               ("", "%.1f× less than nginx" % (wsv("nginx", "kib_each") / ke)
                if ke and wsv("nginx", "kib_each") else "—",
                "≤ %.0f KiB: %s" % (T["ws_kib"], verdict(ke <= T["ws_kib"]
                                                         if ke is not None else None))))
    out.append(("RSS after all closed, vs before",
                *("%+d KiB" % (wsv(w, "rss2") - wsv(w, "rss0")) if wsv(w, "rss2") is not None
                  else "—" for w in ("edge", "nginx", "chp")), "", "", ""))
    if wsv("edge", "heap2") is not None:
        h0, h1, h2 = wsv("edge", "heap0"), wsv("edge", "heap1"), wsv("edge", "heap2")
        out.append(("edge malloc in use: before / open / after close",
                    "%s / %s / %s KiB" % tuple("{:,}".format((h["inuse"] + h["mmap"]) // 1024)
                                               for h in (h0, h1, h2)),
                    "", "", "", "%+d bytes after close" % (
                        h2["inuse"] + h2["mmap"] - h0["inuse"] - h0["mmap"]),
                    "(information)"))
        out.append(("edge malloc free but kept after close",
                    "{:,} KiB".format(h2["free"] // 1024), "", "", "", "", "(information)"))
    if wsv("edge", "rss3") is not None:
        out.append(("edge RSS after malloc_trim(0), vs before",
                    "%+d KiB" % (wsv("edge", "rss3") - wsv("edge", "rss0")),
                    "", "", "", "", "(information)"))
    out.append(("fds before / open / after close",
                *("%d / %d / %d" % (wsv(w, "fds0"), wsv(w, "fds1"), wsv(w, "fds2"))
                  if wsv(w, "fds2") is not None else "—" for w in ("edge", "nginx", "chp")),
                "", "", "fds back: %s" % verdict(leak_e)))
    RT = R.get("rtt") or {}
    for q in ("p50", "p99"):
        vals = [(RT.get(w) or {}).get(q) for w in ("edge", "nginx", "chp", "direct")]
        ratio = "%.2f× direct" % (vals[0] / vals[3]) if vals[0] and vals[3] else "—"
        tgt = ""
        if q == "p99":
            ok = vals[0] / vals[3] <= T["rtt_p99_vs_direct"] if vals[0] and vals[3] else None
            tgt = "≤ %.1f× direct: %s" % (T["rtt_p99_vs_direct"], verdict(ok))
        out.append(("WebSocket echo round trip " + q,) +
                   tuple("—" if v is None else "%.0f µs" % v for v in vals) + (ratio, tgt))
    return out


def e2e_rows(E):
    out = []
    for key, label in (("c16", "16 conns"), ("c1", "1 conn")):
        h, d = (E.get(key) or {}).get("hub") or {}, (E.get(key) or {}).get("direct") or {}
        out.append(("GET static-1k, %s, req/s" % label, rps(h.get("rps")), rps(d.get("rps")),
                    "%.2f×" % (h["rps"] / d["rps"]) if h.get("rps") and d.get("rps") else "—"))
        for q in ("p50", "p99"):
            out.append(("GET static-1k, %s, %s" % (label, q), ms(h.get(q)), ms(d.get(q)),
                        "+%.2f ms" % (h[q] - d[q]) if h.get(q) is not None and
                        d.get(q) is not None else "—"))
    rt = E.get("rtt") or {}
    for q in ("p50", "p99"):
        h, d = (rt.get("hub") or {}).get(q), (rt.get("direct") or {}).get(q)
        out.append(("WebSocket echo round trip " + q, "—" if h is None else "%.0f µs" % h,
                    "—" if d is None else "%.0f µs" % d,
                    "%.2f×" % (h / d) if h and d else "—"))
    return out


def table(header, rs):
    t = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    t += ["| " + " | ".join(r) + " |" for r in rs]
    return "\n".join(t)


def report(R, m, failed):
    s = CFG["secs"]
    L = ["# Proxy benchmark: the edge vs nginx vs configurable-http-proxy", ""]
    L.append("Generated by `tests/bench/proxy.sh`%s on %s. Method and caveats: "
             "`tests/bench/README.md` (\"Proxy benchmark\")."
             % (" (SWARMHUB_BENCH_QUICK=1: indicative only)" if QUICK else "", m["date"]))
    L += ["", "## Machine", "",
          "- %s × %s, %s RAM, Linux %s, %s" % (m["nproc"], m["cpu"], m["mem"], m["kernel"],
                                               m["os"]),
          "- swarmhub %s; edge: `build/tests/test_edge` bench mode (edge/edge.c, 2 epoll "
          "threads unless noted)" % m["git"],
          "- nginx %s (Debian), configurable-http-proxy 5.3.0 (npm) on node %s, wrk %s "
          "(Debian), docker %s" % (m.get("nginx", "?"), m["node"], m["wrk_deb"],
                                   m.get("docker", "?")),
          "- fd limit %s (hard); load generator, upstream and proxy share the %s cores"
          % (R.get("nofile", "?"), m["nproc"]), ""]
    if failed:
        L += ["**Run failed:** %s" % failed, ""]
    for e in R["errors"]:
        L.append("- error: %s" % e)
    L += ["## Method (short)", "",
          "Same upstream for everyone: nginx (2 workers) serving `%s` (1,024 bytes) and "
          "`%s` (1 MiB) from files, and `wsbench echo` (C, epoll) for WebSockets. "
          "`wrk -t2 -cN -d%ds --latency` (`-t1 -c1` for one connection) after a 1 s "
          "unreported warm-up, one target after the other in this order: direct, nginx, "
          "CHP, edge. nginx proxy: `proxy_pass` to an `upstream` with `keepalive 128`, "
          "HTTP/1.1, X-Forwarded-* and the WebSocket upgrade set, access log off, "
          "`keepalive_requests` raised for every hop. CHP: route `/user/alice` added through "
          "its API as JupyterHub does. Edge: `EDGE_BENCH_UPSTREAM=127.0.0.1:U "
          "build/tests/test_edge` (the edge code of the hub with a router that sends "
          "everything to U; no auth, no activity tracking). Added latency = proxy − "
          "direct at the same percentile in the 16-connection runs (saturated, as the issue's "
          "reference numbers). Idle WebSockets: a fresh proxy per kind, `wsbench idle` opens "
          "N one after the other; RSS = VmRSS summed over the proxy's processes (nginx "
          "master + workers), 1 s after the last open and 1 s after the fds are back; "
          "the edge runs with the `mtrim.c` shim (LD_PRELOAD) that reports glibc's "
          "`mallinfo2()` and calls `malloc_trim(0)` on a signal. Echo: `wsbench rtt`, one "
          "connection, 200 warm-up then %d sequential %d-byte messages; %d rounds "
          "alternating direct, edge, nginx, CHP; each percentile is the median over the "
          "rounds." % (PATH1K, PATH1M, s, CFG["rtt_n"], CFG["rtt_size"], CFG["rtt_rounds"]),
          ""]
    L += ["## Results", ""]
    L.append(table(("metric", "edge", "nginx", "CHP", "direct", "ratio", "target"), rows(R)))
    n = R.get("ws_n")
    if n is not None and n < CFG["ws_n"]:
        L += ["", "Idle WebSockets: %s instead of %s: the fd hard limit is %s and cannot "
              "be raised here (each proxied WebSocket costs the proxy 2 fds)."
              % ("{:,}".format(n), "{:,}".format(CFG["ws_n"]), R.get("nofile"))]
    L += ["", "## The real hub end to end", ""]
    E = R.get("e2e") or {}
    if E.get("skipped"):
        L.append("Not measured: %s." % E["skipped"])
    elif E.get("error"):
        L.append("Failed: %s" % E["error"])
    if E.get("c16") or E.get("rtt"):
        L += ["`bin/swarmhub` (PostgreSQL, spawner on the local swarm, CONNECT=gwbridge) "
              "with one server of `swarmhub/test-notebook:latest` (the fake notebook: "
              "Python's threaded http.server, cpu limit 2). Through the hub: "
              "`Authorization: token <alice's API token>` on `/user/alice/static-1k` "
              "(auth, routing, header rewriting, activity). Direct: the container's gwbridge "
              "address %s:8888 with the server's own token. WebSocket: `/user/alice/ws-echo`, "
              "%d round trips. The Python upstream is the bottleneck here."
              % (E.get("ip", "?"), CFG["hub_rtt_n"]), ""]
        L.append(table(("metric", "through the hub", "direct", "hub ÷ direct"), e2e_rows(E)))
        if E.get("hub_rss"):
            L += ["", "Hub RSS after the runs: %s KiB." % "{:,}".format(E["hub_rss"])]
    L += ["", "## Raw wrk output", "", "<details><summary>all runs</summary>", "", "```"]
    for key in ("1k_c16", "1k_c128", "1m_c16", "1k_c1"):
        for who, r in (R.get(key) or {}).items():
            L += ["== %s %s" % (key, who), r["raw"].strip(), ""]
    for key in ("c16", "c1"):
        for who, r in (E.get(key) or {}).items():
            L += ["== end-to-end %s %s" % (key, who), r["raw"].strip(), ""]
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
    need = ("BENCH_WORK", "BENCH_WSBENCH", "BENCH_EDGE", "BENCH_CHP", "BENCH_MTRIM")
    if not all(os.environ.get(k) for k in need):
        print("proxy.py: %s must be set; run tests/bench/proxy.sh" % ", ".join(need),
              file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by all
    R = {"errors": []}
    failed = None
    try:
        part1(R)
    except (H.StartError, RuntimeError, OSError) as e:
        failed = str(e)
        log("FAILED: %s" % e)
    finally:
        cleanup()
    if not failed:
        try:
            part2(R)
        except (H.StartError, RuntimeError, OSError, S.DockerError,
                http.client.HTTPException, ValueError, KeyError) as e:
            R["e2e"]["error"] = str(e)
            failed = "end to end: %s" % e
            log("end to end FAILED: %s" % e)
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

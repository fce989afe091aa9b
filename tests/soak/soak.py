#!/usr/bin/python3
"""soak.py - the soak test: many users with real Jupyter servers working
through the hub for a long time while the hub, PostgreSQL and dockerd are
restarted under them.

Started by tests/soak/run.sh (make soak), which starts a throwaway
PostgreSQL cluster and the Docker swarm, builds the images and the hub, and
removes this run's services afterwards. What it does:

 1. starts bin/swarmhub (spawning on, CONNECT=gwbridge, local homes, the
    real notebook image swarmhub/notebook), creates SOAK_USERS users with a
    password and an API token, and starts their servers a few at a time;
 2. one thread per user works like a browser through /user/<name>/: lists
    and saves files with the contents API, runs code on a kernel over the
    channels WebSocket (execute_request -> execute_reply), uploads a file of
    SOAK_FILE_KB and downloads it again (checked byte for byte). Even users
    authenticate with their API token, odd ones with the session cookie of a
    form login;
 3. restarts, spread over the run: the hub (SIGTERM), PostgreSQL (stop,
    start on the same data directory), dockerd (SIGTERM, then started the
    way tests/services/docker.sh starts it), the hub again (SIGKILL);
 4. checks and reports (printed and written to tests/soak/results/soak.md).

Every request is recorded with its send and finish times. A failure is
"in a window" when it overlaps [restart begins, service healthy again +
SOAK_GRACE]. Around each restart half of the users (the witnesses, a
different half each time) stop working just before it and resume only
after the activity check, so that new traffic cannot hide a lost activity
record: their last_activity from GET /hub/api/users/<name> must be no older
than the last request the soak sent for them minus the flush interval (5 s)
minus the hub's one-second activity resolution.

Environment (run.sh sets the first group):
  SWARMHUB_TEST_DB, SOAK_PG_DIR, SWARMHUB_TEST_DOCKER_NETWORK, SOAK_HUB_ID,
  SOAK_WORK (scratch dir), SOAK_OUT (logs), SOAK_HUB_BIN
  SOAK_MINUTES=30 SOAK_USERS=50 SOAK_RESTART_DOCKERD=1 SOAK_THINK=3
  SOAK_FILE_KB=300 SOAK_CPU=0.2 SOAK_MEM_GB=0.25 SOAK_SPAWN_PARALLEL=6
  SOAK_GRACE=5 SOAK_RECONCILE=20 SOAK_PG_OUTAGE=10
  SOAK_RESTART_DOCKERD=containers  kill only this run's task containers
  SOAK_DOCKERD_NOT_BEFORE=HH:MM    (UTC) hold the dockerd restart until then
  SOAK_RESULTS=tests/soak/results/soak.md

Exit status: 0 when every check passes, 1 when one fails, 2 when the soak
could not be set up. Needs python3-requests and python3-websocket.
"""
import base64
import collections
import concurrent.futures
import datetime
import hashlib
import html
import http.client
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import requests
import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def env_num(name, default, kind=float):
    v = os.environ.get(name, "")
    return kind(v) if v.strip() else default


MINUTES = env_num("SOAK_MINUTES", 30.0)
NUSERS = env_num("SOAK_USERS", 50, int)
# 1: restart dockerd; 0: skip it; containers: only kill this run's task
# containers (docker kill), a stand-in that leaves other work alone
RESTART_DOCKERD = os.environ.get("SOAK_RESTART_DOCKERD", "1")
# HH:MM UTC: the dockerd restart waits until then (other people's
# containers on this machine die with it)
DOCKERD_NOT_BEFORE = os.environ.get("SOAK_DOCKERD_NOT_BEFORE", "")
THINK_S = env_num("SOAK_THINK", 3.0)
FILE_KB = env_num("SOAK_FILE_KB", 300, int)
CPU = env_num("SOAK_CPU", 0.2)
MEM_GB = env_num("SOAK_MEM_GB", 0.25)
SPAWN_PARALLEL = env_num("SOAK_SPAWN_PARALLEL", 6, int)
GRACE_S = env_num("SOAK_GRACE", 5.0)
RECONCILE_S = env_num("SOAK_RECONCILE", 20, int)
PG_OUTAGE_S = env_num("SOAK_PG_OUTAGE", 10.0)
FLUSH_S = 5.0               # the hub flushes activity every 5 s (main.c)
RESOLUTION_S = 1.0          # and records it with 1 s resolution (state.c)
LOOP_S = 1.0                # the flush loop's own work between flushes
# activity older than this before a restart must survive it
ACT_WINDOW_S = FLUSH_S + LOOP_S
SPAWN_LIMIT = 20            # CONCURRENT_SPAWN_LIMIT given to the hub
READY_TIMEOUT_S = 420.0
REQ_TIMEOUT_S = 90.0
# RSS and fd thresholds (see the report's "Checks"): growth beyond these,
# between the quiet samples at the start and at the end, fails
RSS_SLACK_KB = 8 * 1024
RSS_SLACK_RATIO = 0.25
FD_SLACK = 8

RESULTS = os.environ.get("SOAK_RESULTS") or os.path.join(HERE, "results",
                                                         "soak.md")
WORK = os.environ.get("SOAK_WORK", "")
OUT = os.environ.get("SOAK_OUT", "")
HUB_ID = os.environ.get("SOAK_HUB_ID", "")
NETWORK = os.environ.get("SWARMHUB_TEST_DOCKER_NETWORK", "")
DB = os.environ.get("SWARMHUB_TEST_DB", "")
PG_DIR = os.environ.get("SOAK_PG_DIR", "")
HUB_BIN = os.environ.get("SOAK_HUB_BIN") or os.path.join(ROOT, "bin",
                                                         "swarmhub")
IMAGE = "swarmhub/notebook:latest"
NB_CMD = ["python3", "-m", "notebook", "--NotebookApp.base_url={base_url}",
          "--ip=0.0.0.0", "--port={port}"]
DOCKER_SOCK = "/var/run/docker.sock"
STOP = threading.Event()
T0 = time.time()


def log(msg):
    print("[soak %7.1fs] %s" % (time.time() - T0, msg), flush=True)


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc) \
        .strftime("%H:%M:%S.%f")[:-3]


def parse_iso(s):
    if not s:
        return 0.0
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")) \
        .timestamp()


def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    return r.stdout.strip()


# ---- the record of every request -------------------------------------------

class Record:
    """Every request: (sent, done, user, kind, ok, error)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = []

    def add(self, t0, t1, user, kind, ok, err=""):
        with self.lock:
            self.rows.append((t0, t1, user, kind, ok, err))

    def snapshot(self):
        with self.lock:
            return list(self.rows)


REC = Record()


# ---- the Docker Engine API over its unix socket ------------------------------

class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def docker(method, path, timeout=30):
    """(status, parsed JSON) of one Engine API call; (0, None) when dockerd
    does not answer."""
    c = UnixConn(DOCKER_SOCK, timeout)
    try:
        c.request(method, "/v1.41" + path)
        r = c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    except (OSError, ValueError, http.client.HTTPException):
        return 0, None
    finally:
        c.close()


def running_containers():
    """{user: container id} of the running task containers of this run."""
    f = urllib.parse.quote(json.dumps({
        "label": [f"swarmhub.hub={HUB_ID}"], "status": ["running"]}))
    st, v = docker("GET", "/containers/json?filters=" + f)
    if st != 200:
        return {}
    out = {}
    for c in v:
        svc = c.get("Labels", {}).get("com.docker.swarm.service.name", "")
        out[svc] = c["Id"]
    return out


def service_name(user):
    return "jupyter-" + "".join(
        c if ("a" <= c <= "z" or "0" <= c <= "9") else "-%02x" % ord(c)
        for c in user)


# ---- the hub -------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """bin/swarmhub as a child process; restarted with the same settings."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(32)
        self.logpath = os.path.join(OUT, "hub.log")
        self.proc = None
        self.starts = 0
        profiles = os.path.join(WORK, "profiles.json")
        with open(profiles, "w") as f:
            json.dump({
                "cpu_reservation_ratio": 0.1,
                "images": {"nb": {"image": IMAGE, "cmd": NB_CMD,
                                  "port": 8888,
                                  "description": "Jupyter Notebook 6"}},
                "profiles": {"default": {
                    "images": ["nb"],
                    "cpu": {"min": 0.05, "max": 1, "default": CPU},
                    "mem_gb": {"min": 0.1, "max": 2, "default": MEM_GB}}},
            }, f, indent=1)
        homes = os.path.join(WORK, "homes")
        os.makedirs(homes, exist_ok=True)
        os.chmod(homes, 0o755)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SWARMHUB_")}
        self.env.update({
            "SWARMHUB_LISTEN": f"127.0.0.1:{self.port}",
            "SWARMHUB_DB": DB,
            "SWARMHUB_SECRET": secrets.token_hex(32),
            "SWARMHUB_ADMIN_TOKEN": self.admin_token,
            "SWARMHUB_AUTH": "local",
            "SWARMHUB_DB_WAIT": "60",
            "SWARMHUB_NETWORK": NETWORK,
            "SWARMHUB_CONNECT": "gwbridge",
            "SWARMHUB_HUB_ID": HUB_ID,
            "SWARMHUB_PROFILES": profiles,
            "SWARMHUB_HOME": homes,
            "SWARMHUB_HOME_MOUNT": "bind",
            "SWARMHUB_START_TIMEOUT": "300",
            "SWARMHUB_HTTP_TIMEOUT": "300",
            "SWARMHUB_CONCURRENT_SPAWN_LIMIT": str(SPAWN_LIMIT),
            "SWARMHUB_RECONCILE_EVERY": str(RECONCILE_S),
            "SWARMHUB_CULL_TIMEOUT": "0",
            "SWARMHUB_LOGIN_MAX_FAILURES": "1000",
        })
        self.settings = {k: v for k, v in self.env.items()
                         if k.startswith("SWARMHUB_") and
                         k not in ("SWARMHUB_SECRET", "SWARMHUB_ADMIN_TOKEN",
                                   "SWARMHUB_DB")}
        self.http = requests.Session()
        self.http.trust_env = False

    def start(self, timeout=120):
        self.starts += 1
        logf = open(self.logpath, "ab")
        logf.write(f"---- soak: hub start {self.starts} at "
                   f"{iso(time.time())} ----\n".encode())
        logf.flush()
        self.proc = subprocess.Popen([HUB_BIN], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf)
        logf.close()
        return self.wait_healthy(timeout)

    def health(self):
        try:
            return self.http.get(self.url + "/hub/health",
                                 timeout=5).status_code
        except requests.RequestException:
            return 0

    def wait_healthy(self, timeout=120):
        """Time when /hub/health answered 200, or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return None
            if self.health() == 200:
                return time.time()
            time.sleep(0.1)
        return None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Exit status (None when it had to be killed after SIGTERM)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def api(self, method, path, user="-", kind="api", ok=(200,), **kw):
        """A recorded admin request to /hub/api<path>: (ok, response)."""
        kw.setdefault("timeout", 30)
        headers = {"Authorization": f"token {self.admin_token}"}
        t0 = time.time()
        resp, err = None, ""
        try:
            resp = self.http.request(method, self.url + "/hub/api" + path,
                                     headers=headers, allow_redirects=False,
                                     **kw)
            good = resp.status_code in ok
            if not good:
                err = f"{resp.status_code} {resp.text[:150]}"
        except requests.RequestException as e:
            good, err = False, short_err(e)
        REC.add(t0, time.time(), user, kind, good, err)
        return good, resp

    def model(self, name):
        ok, r = self.api("GET", f"/users/{name}", user=name,
                         kind="api_user")
        return r.json() if ok else None

    def proc_stats(self):
        """(RSS kB, open fds, {kind: fds}) of the hub process. Kinds:
        upstream (TCP to a server's port 8888: the edge's keep-alive
        pool), internal (the edge's connections to the hub's own HTTP
        server on its unix socket, both ends), curl (connections to
        docker.sock, and unix socket pairs within the process: libcurl
        gives each pooled easy handle a wakeup pair), client (TCP on the
        hub's port), other."""
        pid = self.proc.pid
        rss = 0
        kinds = {"upstream": 0, "internal": 0, "curl": 0, "client": 0,
                 "other": 0}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
            links = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    pass
        except OSError:
            return 0, 0, kinds
        tcp, unix = tcp_sockets(), unix_sockets()
        mine = {m.group(1) for m in (re.match(r"socket:\[(\d+)\]", ln)
                                     for ln in links) if m}
        for ln in links:
            m = re.match(r"socket:\[(\d+)\]", ln)
            ino = m.group(1) if m else ""
            lport, rport = tcp.get(ino, (0, 0))
            path, peer = unix.get(ino, ("", ""))
            ppath = unix.get(peer, ("", ""))[0]
            if rport == 8888:
                kinds["upstream"] += 1
            elif lport == self.port:
                kinds["client"] += 1
            elif path.endswith("hub.sock") or ppath.endswith("hub.sock"):
                kinds["internal"] += 1
            elif ppath.endswith("docker.sock") or (ino in unix and
                                                   peer in mine):
                kinds["curl"] += 1
            else:
                kinds["other"] += 1
        return rss, len(links), kinds


def tcp_sockets():
    """{inode: (local port, remote port)} of this machine's TCP sockets."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    v = line.split()
                    out[v[9]] = (int(v[1].rsplit(":", 1)[1], 16),
                                 int(v[2].rsplit(":", 1)[1], 16))
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    return out


def unix_sockets():
    """{inode: (path or "*", peer inode)} of this machine's connected unix
    sockets (ss -x)."""
    out = {}
    r = subprocess.run(["ss", "-xn"], capture_output=True, text=True)
    for line in r.stdout.splitlines()[1:]:
        v = line.split()
        if len(v) >= 8:
            out[v[5]] = (v[4], v[7])
    return out


def short_err(e):
    s = str(e)
    s = re.sub(r"object at 0x[0-9a-f]+", "object", s)
    return f"{type(e).__name__}: {s[:150]}"


# ---- one user --------------------------------------------------------------------

class User:
    def __init__(self, hub, i):
        self.hub = hub
        self.i = i
        self.name = f"{HUB_ID}u{i:02d}"
        self.by_cookie = i % 2 == 1
        self.password = "pw-" + secrets.token_hex(8)
        self.token = None
        self.http = requests.Session()
        self.http.trust_env = False
        self.page = requests.Session()      # form login, for /hub/home
        self.page.trust_env = False
        self.go = threading.Event()
        self.go.set()
        self.busy = False
        self.gen = 0            # bumped when the server was started anew
        self.kid = None
        self.kid_gen = -1
        self.last_ok_send = 0.0     # send time of the last good /user/ req
        self.ok_sends = collections.deque(maxlen=1000)   # and earlier ones
        self.blob_sha = None
        self.blob_gen = -1
        self.dir_gen = -1
        self.seq = 0
        self.thread = None

    # -- setup --
    def create(self):
        h = self.hub
        ok, r = h.api("POST", f"/users/{self.name}", user=self.name,
                      kind="setup", ok=(201,), json={"admin": False})
        ok = ok and h.api("PATCH", f"/users/{self.name}", user=self.name,
                          kind="setup", json={"password": self.password})[0]
        ok2, r = h.api("POST", f"/users/{self.name}/tokens", user=self.name,
                       kind="setup", ok=(201,), json={"note": "soak"})
        if not (ok and ok2):
            raise RuntimeError(f"could not create {self.name}")
        self.token = r.json()["token"]
        self.login(self.page)
        if self.by_cookie:
            self.login(self.http)
            self.http.headers["Origin"] = h.url
        else:
            self.http.headers["Authorization"] = f"token {self.token}"

    def login(self, s):
        h = self.hub
        r = s.get(h.url + "/hub/login", timeout=30)
        m = re.search(r'name="_xsrf" value="([^"]*)"', r.text)
        if r.status_code != 200 or not m:
            raise RuntimeError(f"login page: {r.status_code}")
        r = s.post(h.url + "/hub/login", data={
            "username": self.name, "password": self.password,
            "_xsrf": m.group(1)}, allow_redirects=False, timeout=30)
        if r.status_code != 302:
            raise RuntimeError(f"login of {self.name}: {r.status_code} "
                               f"{r.text[:200]}")

    # -- requests through the hub's proxy --
    def req(self, kind, method, path, ok=(200,), check=None, **kw):
        """One recorded request to /user/<name>/<path>: response or None."""
        url = f"{self.hub.url}/user/{self.name}/{path}"
        kw.setdefault("timeout", REQ_TIMEOUT_S)
        t0 = time.time()
        resp, err = None, ""
        try:
            resp = self.http.request(method, url, allow_redirects=False,
                                     **kw)
            good = resp.status_code in ok
            if good and check:
                err = check(resp) or ""
                good = not err
            elif not good:
                err = f"{resp.status_code} {resp.text[:150]!r}"
        except requests.RequestException as e:
            good, err = False, short_err(e)
        t1 = time.time()
        REC.add(t0, t1, self.name, kind, good, err)
        if good:
            self.last_ok_send = max(self.last_ok_send, t0)
            self.ok_sends.append(t0)
        return resp if good else None

    def ensure_dir(self):
        if self.dir_gen == self.gen:
            return True
        g = self.gen
        r = self.req("mkdir", "PUT", "api/contents/soak", ok=(200, 201),
                     json={"type": "directory"})
        if r is not None:
            self.dir_gen = g
        return r is not None

    def op_list(self):
        def check(r):
            j = r.json()
            if j.get("type") != "directory":
                return f"listing is not a directory: {str(j)[:100]}"
            return None
        self.req("list", "GET", "api/contents/soak", check=check)

    def op_save(self):
        self.seq += 1
        src = f"# soak {self.name} {self.seq}\nx = {self.seq}\n"
        nb = {"type": "notebook", "content": {
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3",
                                        "display_name": "Python 3",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{self.seq}",
                       "metadata": {}, "execution_count": None,
                       "outputs": [], "source": src}]}}
        path = f"api/contents/soak/work-{self.seq % 3}.ipynb"
        if self.req("save", "PUT", path, ok=(200, 201), json=nb) is None:
            return

        def check(r):
            cells = r.json()["content"]["cells"]
            got = cells[0]["source"] if cells else None
            return None if got == src else f"saved cell differs: {got!r}"
        self.req("open", "GET", path + "?content=1", check=check)

    def op_upload(self):
        blob = os.urandom(FILE_KB * 1024)
        body = {"type": "file", "format": "base64",
                "content": base64.b64encode(blob).decode()}
        g = self.gen
        if self.req("upload", "PUT", "api/contents/soak/blob.bin",
                    ok=(200, 201), json=body) is not None:
            self.blob_sha = hashlib.sha256(blob).hexdigest()
            self.blob_gen = g

    def op_download(self):
        if self.blob_sha is None or self.blob_gen != self.gen:
            return self.op_upload()
        want = self.blob_sha

        def check(r):
            got = hashlib.sha256(r.content).hexdigest()
            return None if got == want else \
                f"download differs ({len(r.content)} bytes)"
        self.req("download", "GET", "files/soak/blob.bin", check=check)

    def ensure_kernel(self):
        if self.kid is not None and self.kid_gen == self.gen:
            return True
        g = self.gen
        r = self.req("kernel_start", "POST", "api/kernels", ok=(201,),
                     json={"name": "python3"})
        if r is None:
            return False
        self.kid, self.kid_gen = r.json()["id"], g
        return True

    def op_execute(self):
        if not self.ensure_kernel():
            return
        a, b = random.randint(2, 999), random.randint(2, 999)
        session = uuid.uuid4().hex
        hub = self.hub
        headers = []
        if self.by_cookie:
            ck = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
            headers.append(f"Cookie: {ck}")
        else:
            headers.append(f"Authorization: token {self.token}")
        t0 = time.time()
        err = ""
        ws = None
        try:
            ws = websocket.create_connection(
                f"ws://127.0.0.1:{hub.port}/user/{self.name}/api/kernels/"
                f"{self.kid}/channels?session_id={session}",
                header=headers, origin=hub.url, timeout=REQ_TIMEOUT_S,
                http_proxy_host=None, http_no_proxy=["127.0.0.1"])
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": self.name,
                           "session": session, "msg_type": "execute_request",
                           "version": "5.3",
                           "date": datetime.datetime.now(
                               datetime.timezone.utc).isoformat()},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": f"print({a}*{b})", "silent": False,
                            "store_history": True, "user_expressions": {},
                            "allow_stdin": False}}))
            # the reply (shell) and the output (iopub) may come in either
            # order; the output may come in pieces; iopub's "idle" ends it
            out, reply, idle = "", None, False
            deadline = time.time() + REQ_TIMEOUT_S
            while time.time() < deadline and (reply is None or not idle):
                m = json.loads(ws.recv())
                if m.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                t = m.get("msg_type")
                if t == "stream":
                    out += m["content"].get("text", "")
                elif t == "execute_reply":
                    reply = m["content"]
                elif t == "status" and \
                        m["content"].get("execution_state") == "idle":
                    idle = True
            if reply is None or not idle:
                err = "no execute_reply and idle status in time"
            elif reply.get("status") != "ok":
                err = f"execute_reply status {reply.get('status')}"
            elif out != f"{a * b}\n":
                err = f"stream output {out!r}, expected {a * b}"
        except websocket.WebSocketBadStatusException as e:
            err = short_err(e)
            if getattr(e, "status_code", 0) == 404:
                self.kid = None         # the kernel is gone: start another
        except (websocket.WebSocketException, OSError, ValueError) as e:
            err = short_err(e)
        finally:
            if ws is not None:
                try:
                    ws.close()
                except Exception:
                    pass
        t1 = time.time()
        REC.add(t0, t1, self.name, "ws_execute", not err, err)
        if not err:
            self.last_ok_send = max(self.last_ok_send, t0)
            self.ok_sends.append(t0)

    # -- the loop --
    def run(self):
        ops = [self.op_list, self.op_save, self.op_execute, self.op_upload,
               self.op_download, self.op_execute]
        k = self.i % len(ops)
        time.sleep(random.uniform(0, THINK_S))
        while not STOP.is_set():
            if not self.go.is_set():
                self.go.wait(1)
                continue
            self.busy = True
            try:
                if self.ensure_dir():
                    ops[k % len(ops)]()
                    k += 1
            except Exception as e:     # a bug of ours: count it, go on
                REC.add(time.time(), time.time(), self.name, "driver",
                        False, short_err(e))
            finally:
                self.busy = False
            STOP.wait(random.uniform(0.5, 1.5) * THINK_S)

    def start_thread(self):
        self.thread = threading.Thread(target=self.run, daemon=True,
                                       name=self.name)
        self.thread.start()


def pause(users, timeout=180):
    """Stops users after their current request; returns when all are idle."""
    for u in users:
        u.go.clear()
    deadline = time.time() + timeout
    while time.time() < deadline and any(u.busy for u in users):
        time.sleep(0.05)


def resume(users):
    for u in users:
        u.go.set()


# ---- servers ------------------------------------------------------------------------

def start_server(hub, u, why="start", tries=3):
    """POSTs the server and waits until the model says ready: (ok, secs);
    a start that fails is tried again (tries in all)."""
    t0 = time.time()
    for _ in range(tries):
        ok = start_once(hub, u, why)
        if ok:
            break
    return ok, time.time() - t0


def start_once(hub, u, why):
    t0 = time.time()
    for attempt in range(60):
        ok, r = hub.api("POST", f"/users/{u.name}/server", user=u.name,
                        kind="spawn", ok=(201, 202, 400),
                        json={"image": "nb", "cpu": CPU, "mem_gb": MEM_GB})
        if ok and r.status_code in (201, 202):
            break
        if ok and "already" in r.text:     # 400: already running/pending
            break
        wait = 2.0
        if r is not None and r.status_code == 429:
            wait = float(r.headers.get("Retry-After", "2") or 2)
        time.sleep(min(wait, 10))
    deadline = t0 + READY_TIMEOUT_S
    while time.time() < deadline:
        m = hub.model(u.name)
        srv = (m or {}).get("servers", {}).get("")
        if srv and srv.get("ready"):
            u.gen += 1
            return True
        if m is not None and not srv and time.time() - t0 > 10:
            log(f"{u.name}: {why} failed (no server in the model)")
            return False
        time.sleep(1)
    return False


def start_servers(hub, users, why):
    res = {}
    with concurrent.futures.ThreadPoolExecutor(SPAWN_PARALLEL) as ex:
        futs = {ex.submit(start_server, hub, u, why): u for u in users}
        for f in concurrent.futures.as_completed(futs):
            res[futs[f].name] = f.result()
    return res


def server_facts(hub, users):
    """{user: (ready, started)} from the user models."""
    out = {}
    for u in users:
        m = hub.model(u.name)
        srv = (m or {}).get("servers", {}).get("") or {}
        out[u.name] = (bool(srv.get("ready")), srv.get("started"))
    return out


# ---- restarts ------------------------------------------------------------------------

class Window:
    def __init__(self, kind):
        self.kind = kind
        self.start = time.time()
        self.healthy = None     # service back (hub healthy / all ready)
        self.notes = []
        self.lost = []          # servers lost
        self.act_checked = 0
        self.act_lost = []      # (user, hub value, soak's mark)
        self.witnesses = 0

    def end(self):
        return (self.healthy or time.time()) + GRACE_S


def activity_marks(users, at):
    """{user: send time of the last good request through /user/ sent at
    least ACT_WINDOW_S before at (0 when none)}: what the hub must still
    know after a restart at that time."""
    out = {}
    for u in users:
        old = [t for t in list(u.ok_sends) if t <= at - ACT_WINDOW_S]
        out[u.name] = max(old) if old else 0.0
    return out


def check_activity(hub, w, users, marks, witnesses, server_new=False):
    """API check: the user's and the server's last_activity >= mark -
    RESOLUTION_S (server_new: servers started anew since)."""
    for u in users:
        mark = marks[u.name]
        if mark <= 0:
            continue
        m = hub.model(u.name)
        if m is None:
            w.act_lost.append((u.name, "no user model", iso(mark)))
            continue
        got = parse_iso(m.get("last_activity"))
        w.act_checked += 1
        if got < mark - RESOLUTION_S:
            w.act_lost.append((u.name, m.get("last_activity"), iso(mark)))
        srv = m.get("servers", {}).get("")
        if srv and not server_new:
            w.act_checked += 1
            if parse_iso(srv.get("last_activity")) < \
                    mark - RESOLUTION_S:
                w.act_lost.append((u.name + " (server)",
                                   srv.get("last_activity"), iso(mark)))
    w.witnesses = len(witnesses)


def check_activity_db(w, users, marks):
    """After the PostgreSQL restart: the database itself caught up."""
    out = subprocess.run(
        ["psql", DB, "-XAtc",
         "SELECT name, extract(epoch FROM last_activity) FROM users"],
        capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        w.notes.append("database check failed: " + out.stderr.strip()[:200])
        w.act_lost.append(("(database)", "query failed", ""))
        return
    db = {}
    for line in out.stdout.splitlines():
        name, _, ep = line.partition("|")
        db[name] = float(ep) if ep else 0.0
    for u in users:
        mark = marks[u.name]
        if mark <= 0:
            continue
        w.act_checked += 1
        if db.get(u.name, 0.0) < mark - RESOLUTION_S:
            w.act_lost.append((u.name, "db " + iso(db.get(u.name, 0.0)),
                               iso(mark)))


def check_kept(hub, w, users, before, containers):
    """Servers lost: not ready, started anew, or another container."""
    after = server_facts(hub, users)
    now_c = running_containers()
    for u in users:
        ready, started = after[u.name]
        svc = service_name(u.name)
        if not ready:
            w.lost.append(f"{u.name}: not ready after the restart")
        elif started != before[u.name][1]:
            w.lost.append(f"{u.name}: started {before[u.name][1]} -> "
                          f"{started}")
        elif containers.get(svc) and now_c.get(svc) != containers.get(svc):
            w.lost.append(f"{u.name}: container changed or gone")


def restart_hub(hub, users, k, sig, samples):
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGKILL"
    witnesses = [u for u in users if u.i % 2 == k % 2]
    pause(witnesses)
    before = server_facts(hub, users)
    containers = running_containers()
    samples.append((f"before hub restart ({name}), under load",) +
                   hub.proc_stats())
    w = Window(f"hub restart ({name})")
    marks = activity_marks(users, time.time())
    rc = hub.stop(sig)
    w.notes.append(f"old hub exit status {rc}" if sig == signal.SIGTERM
                   else "old hub killed")
    if sig == signal.SIGTERM and rc != 0:
        w.lost.append(f"the hub exited {rc} on SIGTERM (expected 0)")
    w.healthy = hub.start()
    if w.healthy is None:
        w.lost.append("the hub did not come back healthy")
        return w
    w.notes.append(f"down {w.healthy - w.start:.1f} s")
    check_kept(hub, w, users, before, containers)
    check_activity(hub, w, users, marks, witnesses)
    resume(witnesses)
    return w


def pg(cmd):
    r = subprocess.run([os.path.join(ROOT, "tests/services/postgres.sh"),
                        cmd, PG_DIR], capture_output=True, text=True,
                       timeout=120)
    return r.returncode == 0, r.stderr.strip()[-300:]


def restart_pg(hub, users, k):
    """The witnesses keep working through the first half of the outage
    (the hub records their activity in memory; its flushes fail), then go
    quiet: once PostgreSQL is back, the next flush must write what the
    failed ones could not."""
    witnesses = [u for u in users if u.i % 2 == k % 2]
    before = server_facts(hub, users)
    containers = running_containers()
    w = Window("PostgreSQL restart")
    ok, err = pg("stop")
    if not ok:
        w.notes.append("postgres.sh stop failed: " + err)
    time.sleep(PG_OUTAGE_S / 2)
    pause(witnesses)
    during = sum(1 for u in witnesses if u.last_ok_send > w.start)
    time.sleep(max(0.0, w.start + PG_OUTAGE_S - time.time()))
    t_up = time.time()
    ok, err = pg("start")
    if not ok:
        w.lost.append("PostgreSQL did not start again: " + err)
        return w
    w.notes.append(f"PostgreSQL down {t_up - w.start:.1f} s; {during} "
                   f"witnesses active during the outage")
    deadline = time.time() + 120
    while time.time() < deadline and hub.health() != 200:
        time.sleep(0.1)
    if hub.health() != 200:
        w.lost.append("the hub's health did not recover")
        return w
    w.healthy = time.time()
    w.notes.append(f"hub healthy {w.healthy - t_up:.1f} s after "
                   f"PostgreSQL started")
    check_kept(hub, w, users, before, containers)
    check_activity(hub, w, users, activity_marks(users, time.time()),
                   witnesses)
    # the next flush (every 5 s) must write what failed during the outage
    time.sleep(FLUSH_S + 2)
    check_activity_db(w, witnesses, activity_marks(witnesses, time.time()))
    resume(witnesses)
    return w


def dockerd_pid():
    try:
        with open("/var/run/docker.pid") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        out = sh("pgrep -x dockerd")
        return int(out.split()[0]) if out else None


def home_reason(u):
    """The 'Why it stopped' text on the user's home page, or ''."""
    try:
        r = u.page.get(u.hub.url + "/hub/home", timeout=30)
    except requests.RequestException:
        return ""
    m = re.search(r'id="last-error">(.*?)</p>', r.text, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip() \
        if m else ""


def restart_dockerd_itself(w):
    """SIGTERM to dockerd, then started as tests/services/docker.sh does;
    the time it answers again, or None."""
    pid = dockerd_pid()
    if pid is None:
        w.lost.append("dockerd is not running")
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    t_down = time.time()
    r = subprocess.run([os.path.join(ROOT, "tests/services/docker.sh"),
                        "start", NETWORK], capture_output=True, text=True,
                       timeout=180)
    t_up = time.time()
    if r.returncode != 0:
        w.lost.append("dockerd did not start again: " + r.stderr[-300:])
        return None
    w.notes.append(f"dockerd stopped in {t_down - w.start:.1f} s, "
                   f"answering again {t_up - t_down:.1f} s later")
    return t_up


def restart_dockerd(hub, users, k):
    witnesses = [u for u in users if u.i % 2 == k % 2]
    pause(witnesses)
    if RESTART_DOCKERD == "containers":
        w = Window("task containers killed (stand-in for dockerd)")
        ids = list(running_containers().values())
        subprocess.run(["docker", "kill"] + ids, capture_output=True,
                       timeout=120)
        t_up = time.time()
        w.notes.append(f"{len(ids)} containers killed in "
                       f"{t_up - w.start:.1f} s")
    else:
        w = Window("dockerd restart")
        t_up = restart_dockerd_itself(w)
        if t_up is None:
            return w
    # every server whose container died must be reported stopped, with the
    # reason, within one reconcile period
    limit = t_up + RECONCILE_S + 10
    reported, survived, late = {}, [], []
    pending = list(users)
    while pending and time.time() < limit + 60:
        alive = running_containers()
        still = []
        for u in pending:
            m = hub.model(u.name)
            srv = (m or {}).get("servers", {}).get("")
            if m is not None and not srv:
                reported[u.name] = time.time()
            elif srv and srv.get("ready") and service_name(u.name) in alive \
                    and time.time() > t_up + RECONCILE_S + 5:
                survived.append(u.name)
            else:
                still.append(u)
        pending = still
        if pending:
            time.sleep(0.5)
    for u in pending:
        w.lost.append(f"{u.name}: not reported stopped "
                      f"{time.time() - t_up:.0f} s after Docker was back")
    slow = {n: t - t_up for n, t in reported.items() if t > limit}
    for n, d in slow.items():
        late.append(n)
        w.lost.append(f"{n}: reported stopped only {d:.1f} s after Docker "
                      f"was back (limit: one reconcile, {RECONCILE_S} s + "
                      f"10 s)")
    noreason = []
    reasons = set()
    for u in users:
        if u.name in reported:
            why = home_reason(u)
            if not why:
                noreason.append(u.name)
            else:
                reasons.add(re.sub(r"[0-9a-f]{12,}", "…", why)[:160])
    for n in noreason:
        w.lost.append(f"{n}: stopped without a reason on its home page")
    if reported:
        ds = sorted(t - t_up for t in reported.values())
        w.notes.append(f"{len(reported)} reported stopped {ds[0]:.1f}–"
                       f"{ds[-1]:.1f} s after Docker was back")
    if survived:
        w.notes.append(f"{len(survived)} servers survived the restart")
    for r_ in sorted(reasons)[:3]:
        w.notes.append(f"reason shown: \"{r_}\"")
    # the soak starts them again and carries on
    again = [u for u in users if u.name in reported]
    res = start_servers(hub, again, "restart after dockerd")
    bad = [n for n, (ok, _) in res.items() if not ok]
    for n in bad:
        w.lost.append(f"{n}: did not start again")
    if res:
        secs = sorted(s for _, s in res.values())
        w.notes.append(f"{len(res) - len(bad)}/{len(res)} started again in "
                       f"{secs[-1]:.0f} s ({SPAWN_PARALLEL} at a time)")
    w.healthy = time.time()
    w.dockerd = {"reported": len(reported), "survived": len(survived),
                 "late": len(late), "noreason": len(noreason),
                 "restarted": len(res) - len(bad), "failed": len(bad),
                 "pending": len(pending)}
    check_activity(hub, w, users, activity_marks(users, time.time()),
                   witnesses, server_new=True)
    resume(witnesses)
    return w


# ---- how far the database's activity lags behind the hub's memory ----------------

class FlushWatch:
    """Every 3 s: every user's last_activity in memory (GET /hub/api/users)
    and in the database. What memory held ACT_WINDOW_S earlier must be
    in the database by now; anything missing is what a SIGKILL at that
    moment would lose beyond the flush window."""

    def __init__(self, hub):
        self.hub = hub
        self.hist = []              # (time read, {user: memory value})
        self.samples = 0
        self.late = []              # (time, user, how far behind, s)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def once(self):
        ok, r = self.hub.api("GET", "/users?limit=1000", kind="api_users")
        if ok:
            self.hist.append((time.time(), {
                m["name"]: parse_iso(m.get("last_activity"))
                for m in r.json()}))
        t_db = time.time()
        out = subprocess.run(
            ["psql", DB, "-XAtc", "SELECT name, extract(epoch FROM "
             "last_activity) FROM users"], capture_output=True, text=True,
            timeout=30)
        old = [h for h in self.hist if h[0] <= t_db - FLUSH_S - LOOP_S]
        if out.returncode != 0 or not old:
            return
        self.hist = self.hist[self.hist.index(old[-1]):]
        mem = old[-1][1]
        self.samples += 1
        for line in out.stdout.splitlines():
            name, _, ep = line.partition("|")
            db = float(ep) if ep else 0.0
            if mem.get(name, 0.0) - db > 0.001:
                self.late.append((t_db, name, mem[name] - db))
                log(f"flush watch: {name} was {iso(mem[name])} in memory "
                    f"at {iso(old[-1][0])}, database still "
                    f"{iso(db)} at {iso(t_db)}")

    def run(self):
        while not STOP.wait(3):
            try:
                self.once()
            except Exception as e:
                log("flush watch: " + short_err(e))


# ---- quiet samples of the hub's RSS and fds ----------------------------------------

def quiet_sample(hub, users, label):
    """Pauses everyone, drops the clients' idle connections, waits, and
    reads /proc/<pid>: (label, rss_kb, fds)."""
    pause(users)
    for u in users:
        u.http.close()
        u.page.close()
    hub.http.close()
    time.sleep(3)
    s = (label,) + hub.proc_stats()
    resume(users)
    log(f"sample {label}: RSS {s[1] / 1024:.1f} MB, {s[2]} fds {s[3]}")
    return s


# ---- the report -------------------------------------------------------------------------

def machine():
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        ("nproc", sh("nproc")), ("CPU", cpu), ("memory", mem),
        ("kernel", platform.release()),
        ("OS", sh(". /etc/os-release && echo \"$PRETTY_NAME\"")),
        ("Docker", sh("docker version --format '{{.Server.Version}}'")),
        ("PostgreSQL", sh("/usr/lib/postgresql/15/bin/postgres --version")),
        ("notebook image", IMAGE + " (Notebook " + sh(
            "docker run --rm --entrypoint python3 " + IMAGE +
            " -c 'import notebook; print(notebook.__version__)' "
            "2>/dev/null") + ")"),
        ("swarmhub", os.environ.get("SOAK_HUB_SOURCE") or sh(
            f"git -C {ROOT} rev-parse --short HEAD") + (
            " + uncommitted changes" if sh(
                f"git -C {ROOT} status --porcelain -uno -- hub spawner "
                f"common culler") else "")),
        ("load average at the end", sh("cut -d' ' -f1-3 /proc/loadavg")),
    ]


def hub_log_events(path):
    """{event: count} of the hub log's warn and error lines."""
    out = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.search(r"level=(warn|error) event=(\S+)", line)
                if m:
                    k = f"{m.group(1)} {m.group(2)}"
                    out[k] = out.get(k, 0) + 1
    except OSError:
        pass
    return out


def in_window(row, windows):
    t0, t1 = row[0], row[1]
    for w in windows:
        if t1 >= w.start and t0 <= w.end():
            return w
    return None


def nonup(sample):
    """Open fds of a sample without the connection caches."""
    d = sample[3]
    return sample[2] - d["upstream"] - d["internal"] - d["curl"]


def report(ctx):
    rows = REC.snapshot()
    windows = ctx["windows"]
    soak_rows = [r for r in rows if r[0] >= ctx["t_start"]]
    fails = [r for r in soak_rows if not r[4]]
    outside = [r for r in fails if in_window(r, windows) is None]
    per_window = {}
    for r in fails:
        w = in_window(r, windows)
        if w is not None:
            per_window.setdefault(id(w), []).append(r)
    kinds = {}
    for r in soak_rows:
        k = kinds.setdefault(r[3], [0, 0, 0])
        k[0] += 1
        if not r[4]:
            k[1 if in_window(r, windows) else 2] += 1
    setup_rows = [r for r in rows if r[0] < ctx["t_start"]]
    setup_fail = [r for r in setup_rows if not r[4]]

    lost_hub_pg = sum(len(w.lost) for w in windows
                      if not w.kind.startswith(("dockerd", "task containers")))
    dockerd_ws = [w for w in windows if w.kind.startswith(("dockerd", "task containers"))]
    act_lost = sum(len(w.act_lost) for w in windows)
    act_checked = sum(w.act_checked for w in windows)
    s0, s1 = ctx["sample_start"], ctx["sample_end"]
    rss_limit = s0[1] + max(RSS_SLACK_KB, s0[1] * RSS_SLACK_RATIO)
    checks = [
        ("requests failed outside the restart windows", len(outside), "0",
         len(outside) == 0),
        ("servers lost across hub and PostgreSQL restarts", lost_hub_pg,
         "0", lost_hub_pg == 0),
    ]
    for w in dockerd_ws:
        d = getattr(w, "dockerd", None)
        if d is None:
            checks.append(("dockerd restart", "; ".join(w.lost)[:200],
                           "done", False))
            continue
        problems = len(w.lost)
        checks.append((
            "dockerd restart: killed servers reported stopped with a reason "
            f"within one reconcile ({RECONCILE_S} s + 10 s), then started "
            "again", f"{d['reported']} reported, {d['late']} late, "
            f"{d['noreason']} without reason, {d['pending']} never; "
            f"{d['restarted']} restarted, {d['failed']} failed",
            "all, 0 late/failed", problems == 0))
    if not dockerd_ws:
        checks.append(("dockerd restart", "skipped (SOAK_RESTART_DOCKERD=0)",
                       "-", True))
    watch = ctx["watch"]
    gaps = [g for g in watch.late if not any(
        w.start <= g[0] <= w.end() for w in windows)]
    checks += [
        ("activity records lost outside the last flush window",
         f"{act_lost} of {act_checked} checked", "0", act_lost == 0),
        ("activity in the hub's memory not in the database "
         f"{ACT_WINDOW_S:g} s later (watcher, every 3 s, outside the "
         "windows)", f"{len(gaps)} in {watch.samples} samples of all "
         "users", "0", len(gaps) == 0),
        ("hub RSS growth, quiet start -> quiet end",
         f"{s0[1] / 1024:.1f} -> {s1[1] / 1024:.1f} MB",
         f"<= {rss_limit / 1024:.1f} MB", 0 < s1[1] <= rss_limit),
        ("hub open fds growth, quiet start -> quiet end (without the "
         "connection caches)", f"{nonup(s0)} -> {nonup(s1)}",
         f"<= {nonup(s0) + FD_SLACK}", 0 < nonup(s1) <= nonup(s0) + FD_SLACK),
        ("the edge's idle upstream connections at the quiet end",
         s1[3]["upstream"], f"<= {2 * NUSERS} (2 a user)",
         s1[3]["upstream"] <= 2 * NUSERS),
        ("hub exit status on the final SIGTERM", ctx["final_rc"], "0",
         ctx["final_rc"] == 0),
    ]
    for name, a, b in ctx["pairs"]:
        lim = a[1] + max(RSS_SLACK_KB, a[1] * RSS_SLACK_RATIO)
        checks.append((f"{name}: RSS growth over its life (quiet samples "
                       "after its start and before its end)",
                       f"{a[1] / 1024:.1f} -> {b[1] / 1024:.1f} MB",
                       f"<= {lim / 1024:.1f} MB", 0 < b[1] <= lim))
        checks.append((f"{name}: open fds growth, same samples (without "
                       "the connection caches)",
                       f"{nonup(a)} -> {nonup(b)}",
                       f"<= {nonup(a) + FD_SLACK}",
                       0 < nonup(b) <= nonup(a) + FD_SLACK))
    ok_all = all(c[3] for c in checks)

    L = []
    add = L.append
    now = datetime.datetime.now(datetime.timezone.utc)
    add("# Soak test: swarmhub under restarts")
    add("")
    add(f"Generated by `tests/soak/run.sh` (`make soak`) on "
        f"{now:%Y-%m-%d %H:%M} UTC. Result: **{'PASS' if ok_all else 'FAIL'}**.")
    add("")
    add("## Machine")
    add("")
    add("| | |")
    add("| --- | --- |")
    for k, v in machine():
        add(f"| {k} | {v} |")
    add("")
    add("## Method")
    add("")
    soak_min = (ctx["t_end"] - ctx["t_start"]) / 60
    add(f"- {NUSERS} users, each with a real Jupyter Notebook 6 server "
        f"(`{IMAGE}`, cpu limit {CPU}, memory {MEM_GB} GiB) as a Swarm "
        f"service on this one-node swarm, started {SPAWN_PARALLEL} at a "
        f"time through `POST /hub/api/users/<name>/server` "
        f"({ctx['spawn_s']:.0f} s for all). The hub runs on the host "
        f"(`CONNECT=gwbridge`), restarted with the same settings each time.")
    add(f"- Soak: {soak_min:.1f} min (SOAK_MINUTES={MINUTES:g}) after "
        f"{ctx['warm_s']:.0f} s of warm-up. One thread per user works "
        f"through `/user/<name>/` with a pause of {THINK_S:g} s ± 50 % "
        "between steps, in turn: list `api/contents/soak`; save a notebook "
        "and read it back (checked); execute code on a kernel "
        "(`POST api/kernels` once per server, then each time the channels "
        "WebSocket through the hub, `execute_request`, wait for "
        "`execute_reply` and the printed product, checked); upload "
        f"{FILE_KB} KB (contents API, base64) and download it "
        "(`files/`, sha256 checked). Even users send their API token, odd "
        "users the session cookie of a form login (plus `Origin`).")
    add("- Restarts, spread over the run: " + "; ".join(
        f"{w.kind} at {w.start - ctx['t_start']:.0f} s" for w in windows) +
        ". The hub is stopped with the signal named and started again by "
        "the soak; PostgreSQL with `tests/services/postgres.sh stop`, "
        f"{PG_OUTAGE_S:g} s down, `start` on the same data directory; "
        "dockerd with SIGTERM, then `tests/services/docker.sh start` "
        "(`setsid dockerd`, as the tests start it).")
    add(f"- A request counts as failed on a transport error, an unexpected "
        "status, or wrong content. Its window: it overlaps [restart begins, "
        f"service healthy again + {GRACE_S:g} s], where healthy is "
        "`/hub/health` 200 for the hub and PostgreSQL, and every killed "
        "server ready again for dockerd.")
    add("- Servers lost (hub and PostgreSQL restarts): a server not ready "
        "afterwards, with another `started`, or with another task container "
        "than before. dockerd: every server whose container died must leave "
        "the user model (stopped) within one reconcile period "
        f"(`RECONCILE_EVERY={RECONCILE_S}` s, + 10 s) after dockerd answers "
        "again, with the reason on the user's home page (`Why it stopped`); "
        "the soak then starts them again through the API.")
    add("- Activity: before each restart half of the users (the witnesses, "
        "the other half next time) finish their step and stay quiet until "
        "checked, so that new traffic cannot hide a loss. After the "
        "restart every user's `last_activity` from `GET "
        "/hub/api/users/<name>` (and the server's, unless it was started "
        "anew) must be at least the send time of the last request the "
        f"soak completed for that user {ACT_WINDOW_S:g} s or more before "
        f"the restart (the flush interval, {FLUSH_S:g} s, plus {LOOP_S:g} s "
        f"for the flush itself), minus the hub's {RESOLUTION_S:g} s "
        "activity resolution. For the PostgreSQL restart the witnesses "
        "work through the first half of the outage (their activity is "
        "then only in the hub's memory, its flushes failing) and go quiet "
        "before PostgreSQL starts again; one flush after the hub is "
        "healthy the database's `users.last_activity` must hold all of "
        "it. Meanwhile a watcher reads every user's `last_activity` "
        "from `GET /hub/api/users` and from the database every 3 s: what "
        f"memory held {ACT_WINDOW_S:g} s earlier must be in the database "
        "(else a SIGKILL then would lose more than the flush window), "
        "outside the restart windows.")
    add(f"- RSS and fds from `/proc/<pid>/status` (VmRSS) and "
        "`/proc/<pid>/fd` of the hub, in quiet moments (every user paused, "
        "the clients' idle connections closed, 3 s wait) after the warm-up "
        "and at the end (a different process, after the restarts: the "
        "last one has served the last part of the soak), and before and 20 "
        "s after each hub restart, so that each hub process is also "
        "compared with itself over its life (the middle one spans the "
        "PostgreSQL and dockerd restarts and the servers started again). "
        "Thresholds: RSS "
        f"may grow by max({RSS_SLACK_KB // 1024} MB, "
        f"{RSS_SLACK_RATIO:.0%}), fds by {FD_SLACK}, not counting three "
        "caches whose size follows how many requests ran at once (listed "
        "apart in the table): *upstream*, the edge's idle keep-alive "
        "connections to users' servers (TCP to port 8888, told apart with "
        "`/proc/net/tcp`; at most 2 a user at the end); *internal*, the "
        "edge's connections to the hub's own HTTP server on its unix "
        "socket (both ends); *curl*, the pooled libcurl handles of the "
        "Docker client (at most 8), each keeping a wakeup socket pair and "
        "its idle connections to docker.sock (told apart with `ss -x`). "
        "Other samples are listed for information.")
    add("")
    add("## Results")
    add("")
    add(f"Requests made during the soak: **{len(soak_rows)}**, failed: "
        f"**{len(fails)}** ({len(fails) - len(outside)} within restart "
        f"windows, {len(outside)} outside). Setup (users, logins, spawns "
        f"before the soak): {len(setup_rows)} requests, {len(setup_fail)} "
        "failed.")
    add("")
    add("| kind | requests | failed in a window | failed outside |")
    add("| --- | --- | --- | --- |")
    for k in sorted(kinds):
        n, fi, fo = kinds[k]
        add(f"| {k} | {n} | {fi} | {fo} |")
    add("")
    add("### Restarts")
    add("")
    add("| restart | at | window | failed requests in it | servers lost / "
        "problems | activity checked / lost | notes |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for w in windows:
        wf = per_window.get(id(w), [])
        add(f"| {w.kind} | {w.start - ctx['t_start']:.0f} s | "
            f"{w.end() - w.start:.1f} s | {len(wf)} | "
            f"{len(w.lost)} | {w.act_checked} / {len(w.act_lost)} "
            f"({w.witnesses} witnesses) | {'; '.join(w.notes)} |")
    add("")
    for w in windows:
        for line in w.lost[:20]:
            add(f"- {w.kind}: {line}")
        for a in w.act_lost[:20]:
            add(f"- {w.kind}: activity of {a[0]}: hub says {a[1]}, soak's "
                f"last request {ACT_WINDOW_S:g} s or more before the "
                f"restart {a[2]}")
    errs = {}
    for r in fails:
        w = in_window(r, windows)
        key = (w.kind if w else "OUTSIDE", r[3],
               re.sub(r"\d+(\.\d+)?", "N", r[5])[:110])
        errs[key] = errs.get(key, 0) + 1
    if errs:
        add("")
        add("Failures by window, kind and message (numbers replaced by N):")
        add("")
        add("| window | kind | error | count |")
        add("| --- | --- | --- | --- |")
        for (wk, k, e), n in sorted(errs.items(),
                                    key=lambda x: (x[0][0], -x[1]))[:40]:
            e = e.replace("|", "/").replace("\n", " ")
            add(f"| {wk} | {k} | {e} | {n} |")
    if setup_fail:
        add("")
        add("Failed setup requests (first 10):")
        add("")
        for r in setup_fail[:10]:
            add(f"- {iso(r[0])}–{iso(r[1])} {r[2]} {r[3]}: {r[5]}")
    if gaps:
        add("")
        add(f"Activity not in the database {ACT_WINDOW_S:g} s after "
            "the hub had it (first 20):")
        add("")
        for t, n, g in gaps[:20]:
            add(f"- {iso(t)} {n}: database {g:.1f} s behind")
    if outside:
        add("")
        add("Failures outside the windows (first 20):")
        add("")
        for r in outside[:20]:
            add(f"- {iso(r[0])}–{iso(r[1])} {r[2]} {r[3]}: {r[5]}")
    add("")
    add("### Hub process")
    add("")
    add("| sample | RSS | open fds | upstream / internal / curl / client "
        "/ other |")
    add("| --- | --- | --- | --- |")
    for s in ctx["samples"]:
        d = s[3]
        add(f"| {s[0]} | {s[1] / 1024:.1f} MB | {s[2]} | {d['upstream']} / "
            f"{d['internal']} / {d['curl']} / {d['client']} / "
            f"{d['other']} |")
    add("")
    add("Warnings and errors in the hub's log (all its runs): " +
        (", ".join(f"`{k}` {n}" for k, n in sorted(hub_log_events(
            ctx["hub"].logpath).items())) or "none") + ".")
    add("")
    add("## Checks")
    add("")
    add("| check | measured | required | result |")
    add("| --- | --- | --- | --- |")
    for c in checks:
        add(f"| {c[0]} | {c[1]} | {c[2]} | {'PASS' if c[3] else 'FAIL'} |")
    add("")
    add("Hub settings (secret, admin token and database URI left out): " +
        ", ".join(f"`{k[9:]}={v}`" for k, v in
                  sorted(ctx["hub"].settings.items())) + ".")
    add("")
    text = "\n".join(L)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)
    for c in checks:
        print(f"{'PASS' if c[3] else 'FAIL'}: {c[0]}: {c[1]}")
    return ok_all


# ---- main ---------------------------------------------------------------------------------

def main():
    for name, v in (("SWARMHUB_TEST_DB", DB), ("SOAK_PG_DIR", PG_DIR),
                    ("SWARMHUB_TEST_DOCKER_NETWORK", NETWORK),
                    ("SOAK_HUB_ID", HUB_ID), ("SOAK_WORK", WORK),
                    ("SOAK_OUT", OUT)):
        if not v:
            print(f"soak.py: {name} is not set; run tests/soak/run.sh",
                  file=sys.stderr)
            return 2
    if not os.access(HUB_BIN, os.X_OK):
        print(f"soak.py: {HUB_BIN} is not built (make)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    hub = Hub()
    if hub.start() is None:
        print("soak.py: the hub did not start; see " + hub.logpath,
              file=sys.stderr)
        return 2
    log(f"hub on {hub.url}, pid {hub.proc.pid}, log {hub.logpath}")
    try:
        users = [User(hub, i) for i in range(NUSERS)]
        for u in users:
            u.create()
        log(f"{len(users)} users created; starting their servers "
            f"{SPAWN_PARALLEL} at a time")
        t = time.time()
        res = start_servers(hub, users, "start")
        spawn_s = time.time() - t
        bad = [n for n, (ok, _) in res.items() if not ok]
        if bad:
            log(f"{len(bad)} servers did not start: {bad[:5]}")
            if len(bad) == len(users):
                return 2
            users = [u for u in users if u.name not in bad]
        log(f"{len(users)} servers ready in {spawn_s:.0f} s")
        return soak(hub, users, spawn_s)
    finally:
        STOP.set()
        hub.stop()


def wait_until_utc(hhmm):
    """Sleeps until HH:MM UTC today (at once when past)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    h, m = (int(x) for x in hhmm.split(":"))
    at = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if at > now:
        log(f"waiting until {hhmm} UTC to restart dockerd "
            f"(SOAK_DOCKERD_NOT_BEFORE)")
        time.sleep((at - now).total_seconds())


def soak(hub, users, spawn_s):
    samples = []
    for u in users:
        u.start_thread()
    warm_s = min(60.0, max(20.0, MINUTES * 60 * 0.1))
    log(f"warm-up {warm_s:.0f} s")
    time.sleep(warm_s)
    watch = FlushWatch(hub)
    watch.thread.start()
    s_start = quiet_sample(hub, users, "quiet, after the warm-up (start)")
    samples.append(s_start)
    first, pairs = s_start, []
    t_start = time.time()
    duration = MINUTES * 60
    plan = [(0.2, "hub", signal.SIGTERM), (0.4, "pg", None)]
    if RESTART_DOCKERD != "0":
        plan.append((0.6, "dockerd", None))
    plan.append((0.8, "hub", signal.SIGKILL))
    windows = []
    for k, (frac, what, sig) in enumerate(plan):
        at = t_start + frac * duration
        while time.time() < at:
            time.sleep(0.5)
        if what == "dockerd" and DOCKERD_NOT_BEFORE:
            wait_until_utc(DOCKERD_NOT_BEFORE)
        if what == "hub":
            s_before = quiet_sample(hub, users, f"quiet, before the hub "
                                    f"restart ({sig.name})")
            samples.append(s_before)
            pairs.append((f"hub process {len(pairs) + 1}", first, s_before))
            time.sleep(5)
        log(f"restart {k + 1}: {what} {sig.name if sig else ''}")
        if what == "hub":
            w = restart_hub(hub, users, k, sig, samples)
        elif what == "pg":
            w = restart_pg(hub, users, k)
        else:
            w = restart_dockerd(hub, users, k)
        windows.append(w)
        log(f"  {w.kind}: window {w.end() - w.start:.1f} s, "
            f"{len(w.lost)} problems, activity {w.act_checked} checked "
            f"{len(w.act_lost)} lost; {'; '.join(w.notes)}")
        for p in (w.lost + [str(a) for a in w.act_lost])[:10]:
            log("    " + p)
        samples.append((f"after {w.kind}, under load",) + hub.proc_stats())
        if what == "hub":
            time.sleep(20)
            first = quiet_sample(hub, users, f"quiet, 20 s after the "
                                 f"{w.kind}")
            samples.append(first)
    end = max(t_start + duration, windows[-1].end() + 30)
    while time.time() < end:
        time.sleep(0.5)
        if int(time.time()) % 60 == 0:
            samples.append((f"{(time.time() - t_start) / 60:.0f} min, "
                            f"under load",) + hub.proc_stats())
            time.sleep(1)
    s_end = quiet_sample(hub, users, "quiet, at the end")
    samples.append(s_end)
    pairs.append((f"hub process {len(pairs) + 1}", first, s_end))
    t_end = time.time()
    STOP.set()
    for u in users:
        u.thread.join(REQ_TIMEOUT_S + 10)
    final_rc = hub.stop()
    log(f"hub stopped, exit status {final_rc}")
    ctx = {"windows": windows, "t_start": t_start, "t_end": t_end,
           "pairs": pairs, "watch": watch,
           "samples": samples, "sample_start": s_start, "sample_end": s_end,
           "final_rc": final_rc, "hub": hub, "spawn_s": spawn_s,
           "warm_s": warm_s}
    return 0 if report(ctx) else 1


if __name__ == "__main__":
    sys.exit(main())

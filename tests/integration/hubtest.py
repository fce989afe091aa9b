"""
hubtest.py - the one home of the Python test helpers. Every pytest module
under tests/integration/ imports from here (conftest.py keeps only the
fixtures, which pytest must find there); tests/bench/*.py and
tests/e2e/test_e2e.py put this directory on sys.path and import it too.
No test module defines a helper of its own that is also here.

  services a test needs   skipped, need_postgres, need_ldap, need_docker,
                          need_spawn_services, need_proxy_services
  PostgreSQL              psql_super, new_database, drop_database, db_uri,
                          pg_service (postgres.sh start|stop), own_postgres
  hubs                    Hub, new_hub, stop_hub, fixed_credentials, ldap_env,
                          swarm_env, spawn_env, proxy_env, free_port
  HTTP                    login, login_ok, form_xsrf, xsrf_of, cookie_api,
                          tok, user_model, DIRECT (never a proxy), uniq
  waiting                 wait_for, parallel
  Docker (unix socket)    docker, docker_call, UnixConn, filters, service,
                          tasks, containers, our_services, remove_services,
                          running_container, gw_ip, server_token
  profiles                write_profiles, limits, write_notebook_profiles,
                          write_spawn_profiles
  users' servers          post_server, start, progress, wait_ready,
                          start_ready, stop_server, ws_connect, jmsg
  relays                  Relay (TCP or unix; stop/start, or a black hole)
  the browser             chromium, driver_log, shot, sign_in, submit, wait,
                          by, all_by, loaded, gone, click_and_load

Each hub runs as a subprocess on a free 127.0.0.1 port with its own fresh
PostgreSQL database (hub_t<pid>_<n>, created as the postgres superuser over
the test cluster's Unix socket and owned by role hub), a random
SWARMHUB_SECRET and SWARMHUB_ADMIN_TOKEN, and its stderr captured in
$SWARMHUB_TEST_OUT/hub-<label>-<n>.log.

Environment (exported by tests/run.sh):
  SWARMHUB_TEST_DB        postgresql://hub:hubpw@127.0.0.1:PORT/hubdb
  SWARMHUB_TEST_PG_DIR    the cluster's directory (sockdir, port)
  SWARMHUB_TEST_LDAP_URI, SWARMHUB_TEST_LDAPS_URI, SWARMHUB_TEST_LDAP_CA
  SWARMHUB_TEST_DOCKER_NETWORK, SWARMHUB_TEST_NFS_URL, SWARMHUB_TEST_NFS_DIR
  SWARMHUB_BIN_DIR        where bin/swarmhub is (default: <repo>/bin)
  SWARMHUB_TEST_OUT       where logs and screenshots go
  SWARMHUB_TEST_SKIP      comma list: postgres, ldap, docker, nfs (skip
                          instead of fail)
"""
import concurrent.futures
import contextlib
import datetime
import hashlib
import hmac
import http.client
import importlib.util
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PID = os.getpid()
HUBADMIN = "hubadmin"
HUBADMIN_PW = "hubadmin-pw-" + secrets.token_hex(4)
PEOPLE = "ou=People,dc=example,dc=com"
GROUPS = "ou=Groups,dc=example,dc=com"
_seq = itertools.count(1)


def skipped(service):
    return service in re.split(r"[,\s]+",
                               os.environ.get("SWARMHUB_TEST_SKIP", ""))


def need_env(service, how, *names, skip=None):
    """Goes on when every variable in names is set; else skips when
    SWARMHUB_TEST_SKIP names service (or one of skip), fails saying how
    to set them otherwise."""
    if all(os.environ.get(n) for n in names):
        return
    skip = skip or (service,)
    if any(skipped(s) for s in skip):
        pytest.skip("SWARMHUB_TEST_SKIP=" + "/".join(skip))
    pytest.fail(f"{' / '.join(names)} not set: {how} (tests/run.sh does "
                f"this), or set SWARMHUB_TEST_SKIP={service}", pytrace=False)


def need_postgres():
    need_env("postgres", "start PostgreSQL with 'tests/services/postgres.sh "
             "start DIR' and export what it prints plus "
             "SWARMHUB_TEST_PG_DIR=DIR", "SWARMHUB_TEST_DB")
    pgdir = os.environ.get("SWARMHUB_TEST_PG_DIR", "")
    if not pgdir or not Path(pgdir, "sockdir").is_file():
        pytest.fail("SWARMHUB_TEST_PG_DIR must name the directory given to "
                    "'tests/services/postgres.sh start DIR' (its sockdir "
                    "file is used to create databases as postgres)",
                    pytrace=False)


def need_ldap():
    need_env("ldap", "start slapd with 'tests/services/slapd.sh start DIR' "
             "and export what it prints", "SWARMHUB_TEST_LDAP_URI")


def out_dir():
    d = Path(os.environ.get("SWARMHUB_TEST_OUT") or
             ROOT / "tests" / "out" / f"pytest-{PID}")
    d.mkdir(parents=True, exist_ok=True)
    return d


def hub_binary():
    b = Path(os.environ.get("SWARMHUB_BIN_DIR") or ROOT / "bin", "swarmhub")
    if not os.access(b, os.X_OK):
        pytest.fail(f"{b} is not built: run 'make'", pytrace=False)
    return str(b)


# ---- PostgreSQL -----------------------------------------------------------

def pg_port():
    return urlsplit(os.environ["SWARMHUB_TEST_DB"]).port


def psql_super(sql, db="postgres"):
    """Runs sql as postgres over the cluster's Unix socket; returns stdout."""
    sockdir = Path(os.environ["SWARMHUB_TEST_PG_DIR"], "sockdir") \
        .read_text().strip()
    r = subprocess.run(["psql", "-h", sockdir, "-p", str(pg_port()), "-U",
                        "postgres", "-d", db, "-v", "ON_ERROR_STOP=1",
                        "-Atc", sql], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
    return r.stdout


def db_uri(dbname):
    u = urlsplit(os.environ["SWARMHUB_TEST_DB"])
    return u._replace(path="/" + dbname).geturl()


def new_database():
    name = f"hub_t{PID}_{next(_seq)}"
    psql_super(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql_super(f"CREATE DATABASE {name} OWNER hub")
    return name


def drop_database(name):
    try:
        psql_super(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except Exception:  # a test may have left the server down
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the hub --------------------------------------------------------------

class Hub:
    """One swarmhub subprocess and its database."""

    def __init__(self, label, env=None, db=None, wait=True, argv=()):
        need_postgres()
        self.label = label
        self.n = next(_seq)
        self.own_db = db is None
        self.db = db or new_database()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(32)
        self.admin_token = secrets.token_hex(32)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SWARMHUB_")}
        self.env.update({
            "SWARMHUB_LISTEN": f"127.0.0.1:{self.port}",
            "SWARMHUB_DB": db_uri(self.db),
            "SWARMHUB_SECRET": self.secret,
            "SWARMHUB_ADMIN_TOKEN": self.admin_token,
            "SWARMHUB_AUTH": "local",
            "SWARMHUB_DB_WAIT": "10",
        })
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = v
        self.log = out_dir() / f"hub-{label}-{PID}-{self.n}.log"
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen([hub_binary(), *argv], env=self.env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf)
        self.stopped_rc = None
        if wait:
            self.wait_ready()

    def stderr(self):
        self._logf.flush()
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"swarmhub ({self.label}) exited with "
                            f"{self.proc.returncode} at start:\n"
                            f"{self.stderr()[-3000:]}", pytrace=False)
            try:
                requests.get(self.url + "/hub/health", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.kill()
        pytest.fail(f"swarmhub ({self.label}) did not answer /hub/health in "
                    f"{timeout} s:\n{self.stderr()[-3000:]}", pytrace=False)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status (None after a KILL)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.stopped_rc = None
                return None
        if self.stopped_rc is None:
            self.stopped_rc = self.proc.returncode
        self._logf.close()
        return self.stopped_rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self):
        rc = self.stop()
        if self.own_db:
            drop_database(self.db)
        return rc

    # -- HTTP helpers --
    def api(self, method, path, token=None, **kw):
        """A request to /hub/api<path> with the admin token by default."""
        headers = dict(kw.pop("headers", {}) or {})
        tok = self.admin_token if token is None else token
        if tok:
            headers.setdefault("Authorization", f"token {tok}")
        kw.setdefault("timeout", 15)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.url + "/hub/api" + path,
                                headers=headers, **kw)

    def get(self, path, **kw):
        kw.setdefault("timeout", 15)
        kw.setdefault("allow_redirects", False)
        return requests.get(self.url + path, **kw)

    def make_user(self, name, admin=False, password=None):
        r = self.api("POST", f"/users/{name}", json={"admin": admin})
        assert r.status_code == 201, (r.status_code, r.text)
        if password is not None:
            r = self.api("PATCH", f"/users/{name}",
                         json={"password": password})
            assert r.status_code == 200, (r.status_code, r.text)
        return name

    def make_token(self, name, **body):
        r = self.api("POST", f"/users/{name}/tokens", json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["token"]

    def sql(self, query):
        """Rows of query on this hub's database, '|'-separated text."""
        out = psql_super(query, db=self.db)
        return [line.split("|") for line in out.splitlines()]


def ldap_env(**over):
    env = {
        "SWARMHUB_AUTH": "ldap",
        "SWARMHUB_LDAP_URI": os.environ.get("SWARMHUB_TEST_LDAP_URI", ""),
        "SWARMHUB_LDAP_BIND_DN_TEMPLATE": "uid={username}," + PEOPLE,
        "SWARMHUB_LDAP_GROUP_BASE": GROUPS,
        "SWARMHUB_LDAP_ALLOWED_GROUPS": "datascience,hub-admins,analysts",
        "SWARMHUB_LDAP_ADMIN_GROUPS": "hub-admins",
    }
    env.update(over)
    return env


# Many tests log in with wrong passwords from 127.0.0.1 on the shared hubs;
# the failed-login limiter (which also counts per client address) is
# exercised on dedicated hubs instead.
SHARED_ENV = {"SWARMHUB_LOGIN_MAX_FAILURES": "1000"}


# ---- logging in through the form ------------------------------------------

XSRF_INPUT = re.compile(r'<input type="hidden" name="_xsrf" value="([^"]*)"')


def form_xsrf(html):
    m = XSRF_INPUT.search(html)
    assert m, "the login page has no hidden _xsrf input:\n" + html[:2000]
    return m.group(1)


def login(hub, username, password, next=None, session=None, headers=None):
    """GET /hub/login, then POST the form with its _xsrf; returns
    (session, POST response). Redirects are not followed."""
    s = session or requests.Session()
    if headers:
        s.headers.update(headers)
    q = {"next": next} if next is not None else None
    r = s.get(hub.url + "/hub/login", params=q, timeout=15)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    xsrf = form_xsrf(r.text)
    r = s.post(hub.url + "/hub/login", params=q,
               data={"username": username, "password": password,
                     "_xsrf": xsrf}, allow_redirects=False, timeout=30)
    return s, r


def login_ok(hub, username, password):
    s, r = login(hub, username, password)
    assert r.status_code == 302, (r.status_code, r.text[:1000])
    return s


def xsrf_of(session):
    """The XSRF token a page's script would send: the _xsrf cookie (as in
    JupyterHub), which the hub sets at login."""
    tok = session.cookies.get("_xsrf")
    assert tok, ("after login the hub set no readable _xsrf cookie: a "
                 "browser client cannot learn the X-XSRFToken value")
    return tok


def cookie_api(hub, session, method, path, xsrf=True, **kw):
    headers = dict(kw.pop("headers", {}) or {})
    if xsrf:
        headers["X-XSRFToken"] = xsrf_of(session)
    kw.setdefault("timeout", 15)
    return session.request(method, hub.url + "/hub/api" + path,
                           headers=headers, allow_redirects=False, **kw)


def uniq(prefix="u"):
    """A fresh valid username."""
    return f"{prefix}{PID}x{next(_seq)}"


def tok(t):
    """The Authorization header of token t."""
    return {"Authorization": f"token {t}"}


def user_model(hub, name, token=None):
    r = hub.api("GET", f"/users/{name}", token=token)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def parallel(*calls):
    """Runs the zero-argument callables at once; returns their results."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as ex:
        futs = [ex.submit(c) for c in calls]
        return [f.result() for f in futs]


def wait_for(fn, timeout, what, interval=0.25, ok=bool):
    """Polls fn() until ok(its result); returns that result. Raises
    AssertionError naming what (and the last result) after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if ok(v):
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for "
                                 f"{what} (last: {v!r})")
        time.sleep(interval)


def fixed_credentials():
    """SECRET and ADMIN_TOKEN given explicitly, so a restarted hub (and the
    test computing server tokens) agree on them."""
    return {"SWARMHUB_SECRET": secrets.token_hex(32),
            "SWARMHUB_ADMIN_TOKEN": secrets.token_hex(32)}


def new_hub(label, env, db=None):
    """A Hub whose secret and admin token are env's when it sets them."""
    hub = Hub(label, env=env, db=db)
    hub.secret = env.get("SWARMHUB_SECRET", hub.secret)
    hub.admin_token = env.get("SWARMHUB_ADMIN_TOKEN", hub.admin_token)
    return hub


def stop_hub(hub, keep_db=True):
    """SIGTERM, exit 0 asserted; keep_db=False also drops its own database."""
    rc = hub.stop() if keep_db else hub.cleanup()
    assert rc == 0, (f"swarmhub ({hub.label}) exited {rc} on SIGTERM; log "
                     f"{hub.log}:\n{hub.stderr()[-2000:]}")


def pg_service(cmd, pg_dir=None):
    """tests/services/postgres.sh start|stop on the test cluster (or pg_dir);
    returns what it printed."""
    r = subprocess.run([str(ROOT / "tests" / "services" / "postgres.sh"), cmd,
                        str(pg_dir or os.environ["SWARMHUB_TEST_PG_DIR"])],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    return r.stdout


@contextlib.contextmanager
def own_postgres():
    """A PostgreSQL cluster of one's own (tests/services/postgres.sh start on
    a fresh directory under /tmp, which user postgres can reach): inside,
    SWARMHUB_TEST_DB and _PG_DIR name it, so Hub and psql_super use it; at
    the end it is stopped, removed, and the test cluster's variables are
    back. Yields the directory."""
    need_postgres()
    saved = {k: os.environ[k]
             for k in ("SWARMHUB_TEST_DB", "SWARMHUB_TEST_PG_DIR")}
    pg_dir = Path(tempfile.mkdtemp(prefix="swarmhub-pg.", dir="/tmp"))
    try:
        pg_dir.chmod(0o755)
        out = pg_service("start", pg_dir).strip().splitlines()[-1]
        key, _, value = out.partition("=")
        assert key == "SWARMHUB_TEST_DB" and value, out
        os.environ["SWARMHUB_TEST_DB"] = value
        os.environ["SWARMHUB_TEST_PG_DIR"] = str(pg_dir)
        yield pg_dir
    finally:
        os.environ.update(saved)
        sockdir = pg_dir / "sockdir"
        sock = sockdir.read_text().strip() if sockdir.is_file() else ""
        try:
            pg_service("stop", pg_dir)
        finally:
            if sock.startswith("/tmp/shpg."):
                shutil.rmtree(sock, ignore_errors=True)
            shutil.rmtree(pg_dir, ignore_errors=True)


# ---- Docker Engine API over its unix socket -------------------------------

DOCKER_SOCK = "/var/run/docker.sock"
TINY = "swarmhub/test-notebook:latest"
REAL = "swarmhub/notebook:latest"
SHINY = "swarmhub/test-shiny:latest"
IMAGE_DIRS = {TINY: "images/test-notebook", REAL: "images/notebook",
              SHINY: "images/test-shiny"}
# the notebook servers' command line (the fake one takes the same arguments)
NB_CMD = ["python3", "-m", "notebook", "--NotebookApp.base_url={base_url}",
          "--ip=0.0.0.0", "--port={port}"]
SESSION_COOKIE = "swarmhub-session"

# A plain HTTP client that never goes through the machine's proxy (the
# servers' gwbridge addresses, the hubs' ports).
DIRECT = requests.Session()
DIRECT.trust_env = False


class UnixConn(http.client.HTTPConnection):
    """An HTTP connection over a unix socket."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def docker_call(method, path, body=None, timeout=30, sock=DOCKER_SOCK):
    """(status, raw body bytes) of one Engine API request; path is sent as
    given (callers add a version prefix). OSError when unreachable."""
    c = UnixConn(sock, timeout)
    try:
        c.request(method, path, body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def docker(method, path, body=None, timeout=30):
    """(status, parsed JSON or None) of one Engine API call (v1.41)."""
    data = json.dumps(body) if body is not None else None
    st, raw = docker_call(method, "/v1.41" + path, data, timeout)
    try:
        return st, json.loads(raw) if raw else None
    except ValueError:
        return st, raw.decode(errors="replace")


def filters(**f):
    return urllib.parse.quote(json.dumps(f))


def our_services(hub_id):
    """The services labelled swarmhub.hub=hub_id."""
    st, v = docker("GET", "/services?filters=" +
                   filters(label=[f"swarmhub.hub={hub_id}"]))
    assert st == 200, (st, v)
    return v


def remove_services(hub_id, wait=False):
    """Removes the services labelled swarmhub.hub=hub_id (with wait, until
    their containers are gone, 30 s at most); returns their names."""
    names = []
    for s in our_services(hub_id):
        names.append(s["Spec"]["Name"])
        docker("DELETE", f"/services/{s['ID']}")
    if wait:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st, v = docker("GET", "/containers/json?all=1&filters=" +
                           filters(label=[f"swarmhub.hub={hub_id}"]))
            if st == 200 and not v:
                break
            time.sleep(0.5)
    return names


def service(name):
    st, v = docker("GET", f"/services/{name}")
    return v if st == 200 else None


def tasks(name):
    st, v = docker("GET", "/tasks?filters=" + filters(service=[name]))
    return v if st == 200 else []


def containers(name, running_only=False):
    f = {"label": [f"com.docker.swarm.service.name={name}"]}
    if running_only:
        f["status"] = ["running"]
    st, v = docker("GET", "/containers/json?all=1&filters=" +
                   filters(**f))
    assert st == 200, (st, v)
    return v


def esc(s):
    return "".join(c if ("a" <= c <= "z" or "0" <= c <= "9") else
                   "-%02x" % ord(c) for c in s)


def service_name(user):
    return "jupyter-" + esc(user)


def running_container(user, timeout=10, service=None):
    """The container id of the user's running task (or of service's)."""
    name = service or service_name(user)
    deadline = time.monotonic() + timeout
    while True:
        for t in tasks(name):
            cid = t.get("Status", {}).get("ContainerStatus", {}) \
                .get("ContainerID")
            if t["Status"]["State"] == "running" and cid:
                return cid
        assert time.monotonic() < deadline, \
            f"{name} has no running task: {tasks(name)}"
        time.sleep(0.2)


def gw_ip(user, service=None):
    """The docker_gwbridge IPv4 of the user's running task container (or of
    the service's, for a named server)."""
    cid = running_container(user, service=service)
    for _ in range(50):
        st, net = docker("GET", "/networks/docker_gwbridge")
        c = (net.get("Containers") or {}).get(cid)
        if c and c.get("IPv4Address"):
            return c["IPv4Address"].split("/")[0]
        time.sleep(0.1)
    raise AssertionError(f"container {cid} has no docker_gwbridge address")


def token_nonce(user):
    """The nonce of user's current start, from the hub's database (a
    server's token changes at every start). Usernames are unique per run,
    so the run's databases are searched for the user."""
    dbs = psql_super("SELECT datname FROM pg_database WHERE datname LIKE "
                     f"'hub_t{os.getpid()}%'").split()
    for db in dbs:
        try:
            out = psql_super("SELECT coalesce(s.token_nonce, '') FROM servers s"
                             " JOIN users u ON u.id = s.user_id WHERE u.name ="
                             f" '{user}' AND s.name = ''", db=db).strip()
        except RuntimeError:
            continue
        if out:
            return out
    return ""


def server_token(secret, user, hub_id):
    """The token a hub labelled hub_id gives user's server."""
    return hmac.new(secret.encode(),
                    f"server:{hub_id}:{user}:{token_nonce(user)}".encode(),
                    hashlib.sha256).hexdigest()


# ---- the swarm, the homes, the images a module needs ----------------------

def NET():
    return os.environ["SWARMHUB_TEST_DOCKER_NETWORK"]


def NFS_URL():
    return os.environ["SWARMHUB_TEST_NFS_URL"]


def NFS_DIR():
    return Path(os.environ["SWARMHUB_TEST_NFS_DIR"])


def need_docker(nfs=False, images=(), websocket=False):
    """PostgreSQL and the swarm (SWARMHUB_TEST_DOCKER_NETWORK), with nfs the
    test export, with websocket python3-websocket, and the images; fails
    saying how to get what is missing (skips on SWARMHUB_TEST_SKIP)."""
    need_postgres()
    need_env("docker", "run 'tests/services/docker.sh start' and export what "
             "it prints", "SWARMHUB_TEST_DOCKER_NETWORK")
    if nfs:
        need_env("nfs", "run 'tests/services/nfs.sh start DIR' and export "
                 "what it prints", "SWARMHUB_TEST_NFS_URL",
                 "SWARMHUB_TEST_NFS_DIR", skip=("docker", "nfs"))
    if not os.access(DOCKER_SOCK, os.W_OK):
        pytest.fail(f"{DOCKER_SOCK} is not usable: run "
                    "'tests/services/docker.sh start'", pytrace=False)
    if websocket and importlib.util.find_spec("websocket") is None:
        pytest.fail("the WebSocket client is missing: apt-get install "
                    "python3-websocket (scripts/deps.sh)", pytrace=False)
    for image in images:
        st, _ = docker("GET", f"/images/{image}/json")
        if st != 200:
            pytest.fail(f"image {image} is missing: images/build-base.sh && "
                        f"docker build -t {image} {IMAGE_DIRS[image]}",
                        pytrace=False)


def limits(cpu, mem_gb):
    """A profile's cpu and mem_gb from (min, max, default) triples."""
    return {"cpu": dict(zip(("min", "max", "default"), cpu)),
            "mem_gb": dict(zip(("min", "max", "default"), mem_gb))}


def write_profiles(path, images, profiles, ratio=0.1):
    """Writes a profiles file (SWARMHUB_PROFILES); returns its path."""
    doc = {"cpu_reservation_ratio": ratio, "images": images,
           "profiles": profiles}
    Path(path).write_text(json.dumps(doc, indent=1))
    return str(path)


def write_notebook_profiles(path, cpu=(0.1, 2, 0.5), mem_gb=(0.1, 4, 0.25),
                            real=True, ratio=0.1, cmd=None,
                            tiny_description="fake notebook"):
    """One default profile with the fake notebook ("tiny") and, with real,
    Jupyter Notebook 6 ("real")."""
    cmd = cmd or NB_CMD + ["--no-browser"]
    images = {"tiny": {"image": TINY, "description": tiny_description,
                       "cmd": cmd, "port": 8888}}
    if real:
        images["real"] = {"image": REAL, "description": "Jupyter Notebook 6",
                          "cmd": cmd, "port": 8888}
    return write_profiles(path, images, {"default": {
        "images": list(images), **limits(cpu, mem_gb)}}, ratio)


def swarm_env(hub_id, profiles, start_timeout=30, http_timeout=60, **over):
    """A hub on the test swarm (gwbridge), homes on the test export (bind)."""
    env = {
        "SWARMHUB_NETWORK": NET(),
        "SWARMHUB_CONNECT": "gwbridge",
        "SWARMHUB_HUB_ID": hub_id,
        "SWARMHUB_PROFILES": str(profiles),
        "SWARMHUB_HOME": NFS_URL(),
        "SWARMHUB_HOME_MOUNT": "bind",
        "SWARMHUB_HOME_BIND_ROOT": str(NFS_DIR()),
        "SWARMHUB_START_TIMEOUT": str(start_timeout),
        "SWARMHUB_HTTP_TIMEOUT": str(http_timeout),
    }
    env.update(over)
    return env


def remove_homes(pattern):
    """Removes the test export's entries matching pattern (a glob)."""
    for p in NFS_DIR().glob(pattern):
        shutil.rmtree(p, ignore_errors=True)


# ---- users' servers through the REST API ----------------------------------

def post_server(hub, name, options=None, token=None):
    kw = {"json": options} if options is not None else {}
    return hub.api("POST", f"/users/{name}/server", token=token, **kw)


def progress(hub, name, timeout=60, token=None, read_timeout=20):
    """Every event of the progress stream until ready/failed (or its end)."""
    r = hub.api("GET", f"/users/{name}/server/progress", token=token,
                stream=True, timeout=read_timeout)
    assert r.status_code == 200, (r.status_code, r.text)
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/event-stream"), ctype
    events = []
    deadline = time.monotonic() + timeout
    try:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                ev = json.loads(line[5:])
                events.append(ev)
                if ev.get("ready") or ev.get("failed"):
                    break
            assert time.monotonic() < deadline, \
                f"progress of {name} did not end in {timeout} s: {events}"
    finally:
        r.close()
    return events


def wait_ready(hub, name, timeout=90, read_timeout=None):
    """Follows the progress stream until the server is ready (fails on
    failed); returns the events."""
    ev = progress(hub, name, timeout, read_timeout=read_timeout or timeout)
    assert ev and ev[-1].get("ready") is True, \
        f"{name} did not become ready: {ev}\n{hub.stderr()[-3000:]}"
    return ev


def ws_connect(hub, path, headers=(), origin=None, timeout=20):
    """A websocket-client connection through the hub; origin None sends the
    hub's own origin."""
    import websocket  # python3-websocket (websocket-client)
    return websocket.create_connection(
        "ws://127.0.0.1:%d%s" % (hub.port, path), header=list(headers),
        origin=origin or hub.url, timeout=timeout,
        http_proxy_host=None, http_no_proxy=["127.0.0.1"])


def jmsg(msg_type, content, session, channel="shell", username="test"):
    """A Jupyter kernel message (protocol 5.3) for the WebSocket channel."""
    return {"header": {"msg_id": uuid.uuid4().hex, "username": username,
                       "session": session, "msg_type": msg_type,
                       "version": "5.3",
                       "date": datetime.datetime.now(
                           datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content,
            "channel": channel}


# ---- a relay that can stop or go silent -----------------------------------

class Relay:
    """Relays connections accepted on the unix socket path (or, path None,
    on 127.0.0.1:.port) to target, a unix socket path or (host, port).
    With .hole set, new connections are accepted and held unanswered (in
    .held); stop() closes the listener and every connection, start()
    listens again."""

    def __init__(self, target, path=None):
        self.target = target
        self.path = str(path) if path is not None else None
        self.port = None
        self.hole = False
        self.held = []
        self.lock = threading.Lock()
        self.socks = []
        self.srv = None

    def start(self):
        if self.path is not None:
            if os.path.exists(self.path):
                os.unlink(self.path)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(self.path)
        else:
            srv = socket.socket()
            srv.bind(("127.0.0.1", self.port or 0))
            self.port = srv.getsockname()[1]
        srv.listen(64)
        srv.settimeout(0.2)
        self.srv = srv
        threading.Thread(target=self._accept, args=(srv,),
                         daemon=True).start()
        return self

    def _connect(self):
        if isinstance(self.target, str):
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(self.target)
            except OSError:
                u.close()
                raise
            return u
        return socket.create_connection(self.target, timeout=5)

    def _accept(self, srv):
        while self.srv is srv:
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            if self.hole:
                with self.lock:
                    self.held.append(c)
                continue
            try:
                u = self._connect()
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        srv, self.srv = self.srv, None
        if srv:
            srv.close()
        if self.path is not None and os.path.exists(self.path):
            os.unlink(self.path)
        with self.lock:
            socks, self.socks = self.socks + self.held, []
            self.held = []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


# ---- the browser: headless Chromium driven by Selenium --------------------

APT = ("apt-get install -y chromium chromium-driver python3-selenium "
       "(and run the tests with /usr/bin/python3)")


@contextlib.contextmanager
def chromium(log_path, window="1280,900", args=(), page_load_timeout=20,
             browser_log=False):
    """A headless Chromium (chromedriver's log at log_path) on a fresh
    profile, quit and removed at the end; with browser_log the console is
    kept for get_log("browser")."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: " + APT, pytrace=False)
    for f in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.access(f, os.X_OK):
            pytest.fail(f"{f} is missing: " + APT, pytrace=False)
    profile = tempfile.mkdtemp(prefix="swarmhub-chromium-")
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--disable-background-networking",
              "--disable-extensions", "--disable-sync", "--no-first-run",
              "--disable-default-apps", "--disable-component-update",
              f"--window-size={window}", "--no-proxy-server", *args,
              f"--user-data-dir={profile}"]:
        o.add_argument(a)
    if browser_log:
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = None
    try:
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver",
                                             log_path=str(log_path)),
                             options=o)
        d.set_page_load_timeout(page_load_timeout)
        yield d
    finally:
        if d is not None:
            d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def driver_log(prefix, request):
    """out_dir()/<prefix>-<pid>-<test name>.log"""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return out_dir() / f"{prefix}-{PID}-{safe}.log"


def shot(d, name, prefix, directory=None):
    """A screenshot, <directory or out_dir()>/<prefix>-<name>.png."""
    d.save_screenshot(str(Path(directory or out_dir()) /
                          f"{prefix}-{name}.png"))


def wait(d, cond, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(d, timeout).until(cond)


def by(d, css):
    from selenium.webdriver.common.by import By
    return d.find_element(By.CSS_SELECTOR, css)


def all_by(d, css):
    from selenium.webdriver.common.by import By
    return d.find_elements(By.CSS_SELECTOR, css)


def loaded(d):
    wait(d, lambda x: x.execute_script("return document.readyState")
         == "complete")


def gone(el):
    """The element left the page. Chromedriver sometimes reports a replaced
    page as a generic error ("Node with given id does not belong to the
    document") instead of a stale element: both mean the page changed."""
    from selenium.common.exceptions import WebDriverException

    def check(_):
        try:
            el.is_enabled()
            return False
        except WebDriverException:
            return True
    return check


def click_and_load(d, css, timeout=15):
    """Clicks the element and waits for the next page to load."""
    el = by(d, css)
    el.click()
    wait(d, gone(el), timeout)
    loaded(d)


def submit(d, timeout=15):
    """Clicks the form's button and waits for the next page to load."""
    click_and_load(d, "button[type=submit]", timeout)


def sign_in(d, hub, user, password, next=None, timeout=15,
            expect_path=None):
    """The login form of hub, filled in and sent; the next page loaded (and
    its path asserted to be expect_path when given)."""
    url = hub.url + "/hub/login"
    if next is not None:
        url += "?next=" + urllib.parse.quote(next, safe="")
    d.get(url)
    by(d, "#username").send_keys(user)
    by(d, "#password").send_keys(password)
    submit(d, timeout)
    if expect_path is not None:
        assert urlsplit(d.current_url).path == expect_path, d.current_url


# ---- the spawn suite's hub (test_isolation, test_rename, test_ctl_admin) --

SPAWN_HUB_ID = f"t{PID}"
MISSING_IMAGE = "swarmhub/no-such-image:404"
SPAWN_RATIO = 0.1           # cpu_reservation_ratio of the spawn profiles
SPAWN_HOME_TARGET = "/home/jovyan/work"
SPAWN_START_TIMEOUT = 15
SPAWN_HTTP_TIMEOUT = 20


def write_spawn_profiles(path, **extra_profiles):
    """tiny, missing (no such image), sleepy (never answers HTTP), crashy
    (exits at once); profiles default, labq (quota of one server), nopegrp
    (no node fits), other, and extra_profiles."""
    common = limits(cpu=(0.1, 1, 0.5), mem_gb=(0.1, 200, 0.25))
    images = {
        "tiny": {"image": TINY, "description": "fake notebook",
                 "cmd": NB_CMD, "port": 8888},
        "missing": {"image": MISSING_IMAGE, "cmd": NB_CMD},
        "sleepy": {"image": TINY, "cmd": ["sleep", "3600"]},
        "crashy": {"image": TINY, "cmd": ["sh", "-c", "exit 3"]},
    }
    return write_profiles(path, images, {
        "default": {"images": ["tiny", "missing", "sleepy", "crashy"],
                    **common},
        "labq": {"images": ["tiny"], **common, "quota": {"servers": 1}},
        "nopegrp": {"images": ["tiny"], **common,
                    "constraints": ["node.labels.nope==1"]},
        "other": {"images": ["tiny"], **common},
        **extra_profiles,
    }, SPAWN_RATIO)


def spawn_env(profiles, **over):
    """The spawn suite's hub: SWARMHUB_HUB_ID t<pid>, short timeouts."""
    return swarm_env(SPAWN_HUB_ID, profiles, SPAWN_START_TIMEOUT,
                     SPAWN_HTTP_TIMEOUT,
                     **{"SWARMHUB_RECONCILE_EVERY": "2", **over})


def need_spawn_services():
    """What the spawn suite's hub needs: the swarm, the export, tiny."""
    need_docker(nfs=True, images=(TINY,))


def start(hub, name, options=None, token=None, ok=(202,)):
    """POST /users/<name>/server; its status asserted to be in ok."""
    r = post_server(hub, name, options, token)
    assert r.status_code in ok, (r.status_code, r.text)
    return r


def start_ready(hub, name, options=None):
    """start, then the progress stream until ready (60 s)."""
    start(hub, name, options)
    return wait_ready(hub, name, 60, read_timeout=20)


# ---- the proxy suite's hub (test_proxy, test_smuggling) ---------------------

PROXY_HUB_ID = f"t{PID}x"


def proxy_env(profiles, **over):
    """The proxy suite's hub: SWARMHUB_HUB_ID t<pid>x, the 502 re-check
    instead of the periodic reconcile, no admin access to servers."""
    return swarm_env(PROXY_HUB_ID, profiles, 30, 60, **{
        # the 502 must trigger the re-check, not the periodic reconcile
        "SWARMHUB_RECONCILE_EVERY": "3600",
        "SWARMHUB_LOGIN_MAX_FAILURES": "1000",
        "SWARMHUB_ADMIN_ACCESS": None,
        **over})


def need_proxy_services():
    """The swarm, the export, python3-websocket, the tiny and real images."""
    need_docker(nfs=True, images=(TINY, REAL), websocket=True)


def rss_kb(pid):
    """VmRSS of a process in KiB (0 once it is gone)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop_server(hub, name, timeout=60):
    """DELETE /users/<name>/server (202 or 204), then until it is gone."""
    r = hub.api("DELETE", f"/users/{name}/server")
    assert r.status_code in (202, 204), (r.status_code, r.text)
    wait_for(lambda: user_model(hub, name)["servers"] == {}, timeout,
             f"{name}'s server to stop")

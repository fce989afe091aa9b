"""
conftest.py - starts real swarmhub daemons for the pytest integration tests.

Each hub runs as a subprocess on a free 127.0.0.1 port with its own fresh
PostgreSQL database (hub_t<pid>_<n>, created as the postgres superuser over
the test cluster's Unix socket and owned by role hub), a random
SWARMHUB_SECRET and SWARMHUB_ADMIN_TOKEN, and its stderr captured in
$SWARMHUB_TEST_OUT/hub-<label>-<n>.log. At teardown it gets SIGTERM and must
exit 0 (KILL after 10 s, which fails the test).

Environment (exported by tests/run.sh):
  SWARMHUB_TEST_DB        postgresql://hub:hubpw@127.0.0.1:PORT/hubdb
  SWARMHUB_TEST_PG_DIR    the cluster's directory (sockdir, port)
  SWARMHUB_TEST_LDAP_URI, SWARMHUB_TEST_LDAPS_URI, SWARMHUB_TEST_LDAP_CA
  SWARMHUB_BIN_DIR        where bin/swarmhub is (default: <repo>/bin)
  SWARMHUB_TEST_OUT       where logs and screenshots go
  SWARMHUB_TEST_SKIP      comma list: postgres, ldap (skip instead of fail)

Fixtures:
  local_hub    session: AUTH=local; an admin "hubadmin"/HUBADMIN_PW exists
  ldap_hub     session: AUTH=ldap against the test slapd
  start_hub    factory: start_hub(label, env={...}, db=None, wait=True)
               -> Hub, stopped (exit 0 asserted) at the end of the test
Helpers: login(hub, user, password, next=None) -> (requests.Session,
  response of the POST); xsrf_of(session); api(...) on Hub.
"""
import itertools
import os
import re
import secrets
import signal
import socket
import subprocess
import time
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


def need_postgres():
    if not os.environ.get("SWARMHUB_TEST_DB"):
        if skipped("postgres"):
            pytest.skip("SWARMHUB_TEST_SKIP=postgres")
        pytest.fail("SWARMHUB_TEST_DB is not set: start PostgreSQL with "
                    "'tests/services/postgres.sh start DIR' and export what "
                    "it prints plus SWARMHUB_TEST_PG_DIR=DIR (tests/run.sh "
                    "does this), or set SWARMHUB_TEST_SKIP=postgres",
                    pytrace=False)
    pgdir = os.environ.get("SWARMHUB_TEST_PG_DIR", "")
    if not pgdir or not Path(pgdir, "sockdir").is_file():
        pytest.fail("SWARMHUB_TEST_PG_DIR must name the directory given to "
                    "'tests/services/postgres.sh start DIR' (its sockdir "
                    "file is used to create databases as postgres)",
                    pytrace=False)


def need_ldap():
    if not os.environ.get("SWARMHUB_TEST_LDAP_URI"):
        if skipped("ldap"):
            pytest.skip("SWARMHUB_TEST_SKIP=ldap")
        pytest.fail("SWARMHUB_TEST_LDAP_URI is not set: start slapd with "
                    "'tests/services/slapd.sh start DIR' and export what "
                    "it prints (tests/run.sh does this), or set "
                    "SWARMHUB_TEST_SKIP=ldap", pytrace=False)


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


# ---- PostgreSQL ---------------------------------------------------------

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
    except Exception:  # the outage test may have left the server down
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the hub ------------------------------------------------------------

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


def _finish(hub):
    rc = hub.cleanup()
    assert rc == 0, (f"swarmhub ({hub.label}) exited {rc} on SIGTERM "
                     f"(None: had to be killed); log {hub.log}:\n"
                     f"{hub.stderr()[-2000:] if hub.log.exists() else ''}")


@pytest.fixture(scope="session")
def local_hub():
    hub = Hub("local", env=dict(SHARED_ENV))
    hub.make_user(HUBADMIN, admin=True, password=HUBADMIN_PW)
    yield hub
    _finish(hub)


@pytest.fixture(scope="session")
def ldap_hub():
    need_ldap()
    hub = Hub("ldap", env=ldap_env(**SHARED_ENV))
    yield hub
    _finish(hub)


@pytest.fixture
def start_hub():
    """start_hub(label, env=None, db=None, wait=True, argv=()) -> Hub."""
    hubs = []

    def start(label, env=None, db=None, wait=True, argv=()):
        hubs.append(Hub(label, env=env, db=db, wait=wait, argv=argv))
        return hubs[-1]

    yield start
    bad = []
    for h in hubs:
        running = h.alive()  # hubs that already exited were checked by the test
        rc = h.cleanup()
        if running and rc != 0:
            bad.append(f"{h.label}: exit {rc} on SIGTERM ({h.log})")
    assert not bad, "; ".join(bad)


@pytest.fixture(autouse=True, scope="module")
def _hub_for_ctl(request):
    """test_ctl.py expects SWARMHUB_TEST_HUB_URL/_ADMIN_TOKEN: point them at
    the shared local hub (unless the caller gave a hub of its own)."""
    if not request.module.__name__.endswith("test_ctl"):
        yield
        return
    if os.environ.get("SWARMHUB_TEST_HUB_URL") or (
            not os.environ.get("SWARMHUB_TEST_DB") and skipped("postgres")):
        yield
        return
    hub = request.getfixturevalue("local_hub")
    os.environ["SWARMHUB_TEST_HUB_URL"] = hub.url
    os.environ["SWARMHUB_TEST_ADMIN_TOKEN"] = hub.admin_token
    yield
    os.environ.pop("SWARMHUB_TEST_HUB_URL", None)
    os.environ.pop("SWARMHUB_TEST_ADMIN_TOKEN", None)


# ---- logging in through the form -----------------------------------------

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

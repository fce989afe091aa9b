"""
test_hub_ops.py - starting and stopping the daemon: bad settings, database
waits, migrations (concurrent, newer schema), the set-password bootstrap,
and state kept across restarts. (The PostgreSQL outage is in
test_zz_outage.py, which runs last because it stops the shared cluster.)
"""
import os
import secrets
import subprocess
import time
from datetime import datetime, timezone

import pytest
import requests

from hubtest import (Hub, db_uri, drop_database, free_port, hub_binary,
                     login, login_ok, need_postgres, new_database, uniq)


def run_hub(env, args=(), stdin=None, timeout=30):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("SWARMHUB_")}
    base.update(env)
    t0 = time.monotonic()
    r = subprocess.run([hub_binary(), *args], env=base, input=stdin,
                       capture_output=True, text=True, timeout=timeout)
    r.elapsed = time.monotonic() - t0
    return r


@pytest.fixture
def fresh_db():
    need_postgres()
    name = new_database()
    yield name
    drop_database(name)


def good_env(db):
    return {"SWARMHUB_DB": db_uri(db), "SWARMHUB_SECRET": secrets.token_hex(32),
            "SWARMHUB_LISTEN": f"127.0.0.1:{free_port()}",
            "SWARMHUB_DB_WAIT": "5"}


# ---- command line ------------------------------------------------------

def test_help_exits_0():
    r = run_hub({}, ["--help"])
    assert r.returncode == 0
    assert r.stdout.startswith("usage: swarmhub")
    assert "SWARMHUB_SECRET" in r.stdout and "set-password" in r.stdout


@pytest.mark.parametrize("args", [["--frobnicate"], ["-x"],
                                  ["serve", "now"]])
def test_bad_arguments_exit_2(args):
    r = run_hub({"SWARMHUB_SECRET": "x" * 40}, args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "usage" in r.stderr


# ---- refusing to start ---------------------------------------------------

def test_refuses_without_secret(fresh_db):
    env = good_env(fresh_db)
    del env["SWARMHUB_SECRET"]
    r = run_hub(env)
    assert r.returncode == 1
    assert "SWARMHUB_SECRET" in r.stderr
    r = run_hub({**env, "SWARMHUB_SECRET": "short"})
    assert r.returncode == 1 and "SWARMHUB_SECRET" in r.stderr


def test_secret_from_file(fresh_db, tmp_path):
    env = good_env(fresh_db)
    f = tmp_path / "secret"
    f.write_text(env.pop("SWARMHUB_SECRET") + "\n")
    hub = Hub("secret-file", db=fresh_db,
              env={"SWARMHUB_SECRET": None, "SWARMHUB_SECRET_FILE": str(f)})
    try:
        assert hub.get("/hub/health").status_code == 200
    finally:
        assert hub.stop() == 0


@pytest.mark.parametrize("env,words", [
    ({"SWARMHUB_AUTH": "kerberos"}, ["SWARMHUB_AUTH", "kerberos"]),
    ({"SWARMHUB_AUTH": "ldap"}, ["SWARMHUB_LDAP_URI"]),
    ({"SWARMHUB_LOG_LEVEL": "loud"}, ["SWARMHUB_LOG_LEVEL"]),
    ({"SWARMHUB_ADMIN_TOKEN": "short"}, ["SWARMHUB_ADMIN_TOKEN"]),
    ({"SWARMHUB_ADMIN_USERS": "ok,bad name"}, ["SWARMHUB_ADMIN_USERS"]),
    ({"SWARMHUB_LISTEN": "nonsense"}, ["SWARMHUB_LISTEN"]),
    ({"SWARMHUB_DB_WAIT": "soon"}, ["SWARMHUB_DB_WAIT"]),
    ({"SWARMHUB_HUB_CONNECT_URL": "hub:8000"},
     ["SWARMHUB_HUB_CONNECT_URL", "http(s)://host[:port]"]),
    ({"SWARMHUB_HUB_CONNECT_URL": "http://hub:8000/hub/api"},
     ["SWARMHUB_HUB_CONNECT_URL", "no path"]),
    ({"SWARMHUB_HUB_CONNECT_URL": "http://"}, ["SWARMHUB_HUB_CONNECT_URL"]),
    ({"SWARMHUB_OAUTH_CODE_TTL": "0"}, ["SWARMHUB_OAUTH_CODE_TTL"]),
])
def test_refuses_bad_settings(fresh_db, env, words):
    r = run_hub({**good_env(fresh_db), **env})
    assert r.returncode == 1, (r.returncode, r.stderr)
    for w in words:
        assert w in r.stderr, r.stderr


def test_listen_port_in_use(local_hub, fresh_db):
    r = run_hub({**good_env(fresh_db),
                 "SWARMHUB_LISTEN": f"127.0.0.1:{local_hub.port}"})
    assert r.returncode == 1
    assert str(local_hub.port) in r.stderr or "in use" in r.stderr


def test_refuses_unreachable_database_quickly():
    port = free_port()
    env = {"SWARMHUB_DB": f"postgresql://hub:hubpw@127.0.0.1:{port}/x",
           "SWARMHUB_SECRET": secrets.token_hex(32), "SWARMHUB_DB_WAIT": "2",
           "SWARMHUB_LISTEN": f"127.0.0.1:{free_port()}"}
    r = run_hub(env, timeout=20)
    assert r.returncode != 0
    assert r.elapsed < 6, r.elapsed
    err = r.stderr.lower()
    assert str(port) in err or "connect" in err or "database" in err, err
    assert "hubpw" not in r.stderr, "the password leaks into the log"


def test_refuses_wrong_database_password(fresh_db):
    env = good_env(fresh_db)
    env["SWARMHUB_DB"] = env["SWARMHUB_DB"].replace("hubpw", "wrongpw")
    env["SWARMHUB_DB_WAIT"] = "2"
    r = run_hub(env)
    assert r.returncode == 1
    assert "wrongpw" not in r.stderr
    assert "password" in r.stderr.lower() or "auth" in r.stderr.lower()


def test_refuses_newer_schema(fresh_db):
    hub = Hub("migrate", db=fresh_db)
    assert hub.stop() == 0
    hub.sql("INSERT INTO schema_version (version, applied) "
            "VALUES (999, now())")
    r = run_hub(good_env(fresh_db))
    assert r.returncode == 1
    assert "newer" in r.stderr and "999" in r.stderr


def test_first_start_says_how_to_make_an_admin(fresh_db):
    hub = Hub("noadmin", db=fresh_db)
    try:
        assert "set-password" in hub.stderr()
    finally:
        assert hub.stop() == 0


def test_admin_users_setting(fresh_db):
    hub = Hub("adminusers", db=fresh_db,
              env={"SWARMHUB_ADMIN_USERS": "Boss1, boss2"})
    try:
        for n in ("boss1", "boss2"):
            r = hub.api("GET", f"/users/{n}")
            assert r.status_code == 200 and r.json()["admin"] is True
    finally:
        assert hub.stop() == 0


# ---- set-password --------------------------------------------------------

def test_set_password_creates_admin_who_can_log_in(fresh_db):
    env = good_env(fresh_db)
    r = run_hub(env, ["set-password", "Root1", "--admin"],
                stdin="first-pw\n")
    assert r.returncode == 0, r.stderr
    assert "first-pw" not in r.stderr + r.stdout
    hub = Hub("setpw", db=fresh_db)
    try:
        s, resp = login(hub, "root1", "first-pw")
        assert resp.status_code == 302, resp.text[:300]
        u = s.get(hub.url + "/hub/api/user", timeout=10).json()
        assert u["name"] == "root1" and u["admin"] is True
        assert "no admin user yet" not in hub.stderr()
    finally:
        assert hub.stop() == 0
    # again: changes the password of the existing user
    r = run_hub(env, ["set-password", "root1"], stdin="second-pw\n")
    assert r.returncode == 0, r.stderr
    hub = Hub("setpw2", db=fresh_db)
    try:
        assert login(hub, "root1", "first-pw")[1].status_code == 403
        assert login(hub, "root1", "second-pw")[1].status_code == 302
    finally:
        assert hub.stop() == 0


@pytest.mark.parametrize("args,stdin", [
    (["set-password", "bad name"], "pw\n"),
    (["set-password", "ok"], ""),
    (["set-password"], "pw\n"),
])
def test_set_password_errors(fresh_db, args, stdin):
    r = run_hub(good_env(fresh_db), args, stdin=stdin)
    assert r.returncode in (1, 2), r.stderr
    assert r.stderr.startswith("swarmhub:") or "usage" in r.stderr


def test_set_password_refused_with_ldap(fresh_db):
    r = run_hub({**good_env(fresh_db), "SWARMHUB_AUTH": "ldap",
                 "SWARMHUB_LDAP_URI": "ldap://127.0.0.1:9",
                 "SWARMHUB_LDAP_BIND_DN_TEMPLATE": "uid={username},o=x"},
                ["set-password", "x"], stdin="pw\n")
    assert r.returncode == 1 and "ldap" in r.stderr.lower()


# ---- migrations and restarts ---------------------------------------------

def test_two_hubs_start_at_once_on_empty_database(fresh_db):
    a = Hub("twin-a", db=fresh_db, wait=False)
    b = Hub("twin-b", db=fresh_db, wait=False)
    try:
        a.wait_ready()
        b.wait_ready()
        assert a.get("/hub/health").status_code == 200
        assert b.get("/hub/health").status_code == 200
        rows = a.sql("SELECT version, count(*) FROM schema_version "
                     "GROUP BY version ORDER BY version")
        assert rows and all(c == "1" for _, c in rows), rows
        assert b.stop() == 0
        r = a.api("POST", "/users", json={"usernames": ["twin"]})
        assert r.status_code == 201
    finally:
        assert a.stop() == 0
        b.stop()


def test_restart_keeps_users_tokens_sessions_activity(fresh_db):
    secret = secrets.token_hex(32)
    hub = Hub("restart-1", db=fresh_db, env={"SWARMHUB_SECRET": secret})
    name = hub.make_user("keeper", password="keep-pw")
    tok = hub.make_token(name, note="survives")
    s = login_ok(hub, name, "keep-pw")
    stamp = datetime.now(timezone.utc).replace(microsecond=0)
    r = hub.api("POST", f"/users/{name}/activity",
                json={"last_activity": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert r.status_code in (200, 204)
    before = hub.api("GET", f"/users/{name}").json()
    time.sleep(6)  # let the background flush write it
    assert hub.stop() == 0

    hub = Hub("restart-2", db=fresh_db, env={"SWARMHUB_SECRET": secret})
    try:
        r = hub.api("GET", "/user", token=tok)
        assert r.status_code == 200 and r.json()["name"] == name
        r = s.get(hub.url.replace(str(hub.port), str(hub.port)) +
                  "/hub/api/user", timeout=10)
        # the session cookie was set for 127.0.0.1 (any port)
        assert r.status_code == 200, r.text
        after = hub.api("GET", f"/users/{name}").json()
        assert after["created"] == before["created"]
        assert after["last_activity"] is not None
        assert after["last_activity"] >= before["last_activity"]
        # XSRF values stay valid with the same secret
        r = s.post(hub.url + f"/hub/api/users/{name}/tokens", json={},
                   headers={"X-XSRFToken": s.cookies.get("_xsrf")},
                   timeout=10)
        assert r.status_code == 201, r.text
        toks = hub.api("GET", f"/users/{name}/tokens").json()["api_tokens"]
        assert "survives" in [t["note"] for t in toks]
    finally:
        assert hub.stop() == 0


def test_activity_flushed_on_sigterm(fresh_db):
    hub = Hub("flush-on-stop", db=fresh_db)
    name = hub.make_user("flusher")
    tok = hub.make_token(name)
    hub.api("GET", "/user", token=tok)
    assert hub.stop() == 0  # immediately: the shutdown flush must write it
    row = hub.sql("SELECT last_activity IS NOT NULL FROM users "
                  "WHERE name='flusher'")
    assert row == [["t"]]


def test_sigint_also_stops_cleanly(fresh_db):
    import signal
    hub = Hub("sigint", db=fresh_db)
    hub.proc.send_signal(signal.SIGINT)
    assert hub.proc.wait(10) == 0
    assert hub.stop() == 0


def test_many_concurrent_requests(local_hub):
    from concurrent.futures import ThreadPoolExecutor
    tok = local_hub.make_token(local_hub.make_user(uniq("conc")))

    def one(i):
        with requests.Session() as s:
            return [s.get(local_hub.url + "/hub/api/user", timeout=10,
                          headers={"Authorization": f"token {tok}"})
                    .status_code for _ in range(25)]

    with ThreadPoolExecutor(16) as ex:
        codes = [c for lst in ex.map(one, range(32)) for c in lst]
    assert codes.count(200) == len(codes)
    assert local_hub.alive()

"""
test_ctl_admin.py - swarmhubctl cleanup, orphans and doctor against real
hubs: the spawner on the local swarm (servers from the tiny image), homes on
the nfs-ganesha export, PostgreSQL, and for LDAP the test slapd.

Needs what test_spawn.py needs (tests/run.sh exports it):
SWARMHUB_TEST_DB/_PG_DIR, SWARMHUB_TEST_DOCKER_NETWORK,
SWARMHUB_TEST_NFS_URL/_DIR, SWARMHUB_TEST_LDAP_URI, the image
swarmhub/test-notebook:latest, and bin/swarmhubctl.

Homes are checked on the export with os.path (SWARMHUB_TEST_NFS_DIR is the
directory ganesha exports). The hubs here use SWARMHUB_HUB_ID=c<pid>; every
service with that label is removed after each test, and every home or
archive named after this run's users at the end. The doctor test that
stops PostgreSQL runs last and always starts it again.
"""
import datetime
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hubtest import (DOCKER_SOCK, MISSING_IMAGE, NFS_DIR, PID, ROOT, TINY,
                     Hub, Relay, docker,
                     free_port, ldap_env, need_ldap, need_spawn_services,
                     our_services, pg_service, remove_homes, remove_services,
                     spawn_env, start_ready, stop_hub, uniq, wait_for,
                     write_spawn_profiles)

CTL = os.environ.get("SWARMHUB_CTL", str(ROOT / "bin" / "swarmhubctl"))
HUB_ID = f"c{PID}"
SERVICES_SH = ROOT / "tests" / "services"
DATE_RE = r"\d{8}-\d{6}"


# ---- running the CLI -------------------------------------------------------

def ctl(hub, *args, token=None, stdin=None, timeout=180):
    """Runs swarmhubctl against hub (admin token by default)."""
    if not os.access(CTL, os.X_OK):
        pytest.fail(f"{CTL} is not built: run 'make'", pytrace=False)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    env["SWARMHUB_URL"] = hub.url
    env["SWARMHUB_TOKEN"] = token or hub.admin_token
    return subprocess.run([CTL, *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def ctl_json(hub, *args, rc=0):
    r = ctl(hub, "--json", *args)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def one_line_errors(r):
    """Every stderr line starts with 'swarmhubctl: '."""
    for line in r.stderr.splitlines():
        assert line.startswith("swarmhubctl: "), r.stderr


# ---- Docker and the hub ----------------------------------------------------

def service_exists(name):
    return docker("GET", f"/services/{name}")[0] == 200


def user_status(hub, name):
    return hub.api("GET", f"/users/{name}").status_code


def hub_env(tmp, **over):
    profiles = write_spawn_profiles(Path(tmp) / "profiles.json")
    env = spawn_env(profiles, SWARMHUB_HUB_ID=HUB_ID)
    env.update(over)
    return env


@pytest.fixture(scope="module")
def admin_dir(tmp_path_factory):
    need_spawn_services()
    d = tmp_path_factory.mktemp("ctladmin")
    yield d
    remove_services(HUB_ID)
    remove_homes(f"*{PID}x*")
    remove_homes(f".archive/*{PID}x*")


@pytest.fixture(scope="module")
def hub(admin_dir):
    h = Hub("ctl-admin", env=hub_env(admin_dir))
    yield h
    stop_hub(h, keep_db=False)


@pytest.fixture(autouse=True)
def _remove_services(request):
    yield
    if "admin_dir" in request.fixturenames:
        remove_services(HUB_ID)


def started_user(hub, prefix, token=False):
    """A user with a running server (so a home on the export), a file in
    the home, and optionally an API token (returned)."""
    name = hub.make_user(uniq(prefix))
    start_ready(hub, name)
    (NFS_DIR() / name / "notes.txt").write_text("keep me\n")
    return name, (hub.make_token(name, note="cleanup test") if token
                  else None)


def archives_of(name):
    return sorted(p.name for p in (NFS_DIR() / ".archive").glob(
        f"{name}-*") if re.fullmatch(re.escape(name) + "-" + DATE_RE +
                                     r"(-\d+)?", p.name))


# ---- help and usage --------------------------------------------------------

@pytest.mark.parametrize("cmd", ["cleanup", "orphans", "doctor"])
def test_help(cmd):
    r = subprocess.run([CTL, cmd, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith(f"usage: swarmhubctl {cmd}")
    assert "Exit status" in r.stdout
    top = subprocess.run([CTL, "--help"], capture_output=True, text=True)
    assert f"\n  {cmd} " in top.stdout


def test_orphans_help_says_homes_are_kept():
    out = subprocess.run([CTL, "orphans", "--help"], capture_output=True,
                         text=True).stdout
    assert "never homes" in out and "cleanup" in out and "archive" in out


@pytest.mark.parametrize("args,words", [
    (["cleanup"], "exactly one of"),
    (["cleanup", "x", "--not-in-ldap"], "exactly one of"),
    (["cleanup", "--inactive-since", "1d", "--not-in-ldap"], "exactly one"),
    (["cleanup", "x", "--home", "burn"], "keep, archive or delete"),
    (["cleanup", "--inactive-since", "soon"], "--inactive-since"),
    (["cleanup", "x", "--home", "delete"], "--yes"),
    (["orphans", "extra"], "unexpected argument"),
    (["doctor", "--remove"], "unknown option"),
])
def test_usage_errors_exit_2(args, words):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    env.update(SWARMHUB_TOKEN="t" * 40, SWARMHUB_URL="http://127.0.0.1:9")
    r = subprocess.run([CTL, *args], env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert words in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


# ---- cleanup ---------------------------------------------------------------

def test_cleanup_dry_run_then_real_keeps_home(hub):
    alice, tok = started_user(hub, "keep", token=True)
    idle = hub.make_user(uniq("idle"))
    svc = our_services(HUB_ID)
    assert any(s["Spec"]["Labels"].get("swarmhub.user") == alice
               for s in svc), svc

    r = ctl(hub, "cleanup", alice, idle, "--dry-run")
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["USER", "SERVER", "TOKENS", "HOME"], r.stdout
    row = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert row[alice][1:] == ["ready", "1", "keep"], r.stdout
    assert row[idle][1:] == ["no", "0", "keep"], r.stdout
    # nothing happened
    assert user_status(hub, alice) == 200 and user_status(hub, idle) == 200
    assert hub.api("GET", f"/users/{alice}").json()["servers"][""]["ready"]
    assert hub.api("GET", "/user", token=tok).status_code == 200

    plan = ctl_json(hub, "cleanup", alice, "--dry-run")
    assert plan["dry_run"] is True and "results" not in plan
    assert plan["plan"] == [{"user": alice, "user_exists": True,
                             "server": "ready", "tokens": 1,
                             "home": "keep"}]

    r = ctl(hub, "cleanup", alice, idle)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stderr == ""
    out = r.stdout
    assert f"{alice}: server stopped" in out
    assert f"{alice}: user deleted" in out
    assert f"{alice}: home kept" in out
    assert f"{idle}: no server running" in out
    assert "cleaned up 2 of 2" in out
    # the order of the steps
    assert out.index(f"{alice}: server stopped") < \
        out.index(f"{alice}: user deleted") < out.index(f"{alice}: home kept")

    assert user_status(hub, alice) == 404 and user_status(hub, idle) == 404
    assert not any(s["Spec"]["Labels"].get("swarmhub.user") == alice
                   for s in our_services(HUB_ID))
    r = hub.api("GET", "/user", token=tok)
    assert r.status_code == 403, (r.status_code, r.text)   # token revoked
    assert (NFS_DIR() / alice / "notes.txt").read_text() == "keep me\n"

    acts = [(e["action"], e["target"]) for e in hub.api(
        "GET", "/swarmhub/audit?limit=50").json()["entries"]]
    assert any(t == alice and "delete" in a for a, t in acts), acts


def test_cleanup_archive_moves_the_home(hub):
    bob, _ = started_user(hub, "arch")
    before = time.time()
    res = ctl_json(hub, "cleanup", bob, "--home", "archive")
    assert [r["user"] for r in res["results"]] == [bob]
    done = res["results"][0]["done"]
    assert res["results"][0]["not_done"] == [] and \
        res["results"][0]["error"] is None, res
    assert done[0] == "server stopped" and done[1].startswith("user deleted")
    m = re.fullmatch(r"home archived to (\.archive/(\S+))", done[2])
    assert m, done
    assert not os.path.exists(NFS_DIR() / bob), "the home is still there"
    moved = NFS_DIR() / m.group(1)
    assert os.path.isdir(moved), (moved, os.listdir(NFS_DIR() / ".archive"))
    assert (moved / "notes.txt").read_text() == "keep me\n"
    assert re.fullmatch(re.escape(bob) + "-" + DATE_RE, m.group(2))
    stamp = datetime.datetime.strptime(m.group(2)[-15:], "%Y%m%d-%H%M%S") \
        .replace(tzinfo=datetime.timezone.utc).timestamp()
    assert before - 2 <= stamp <= time.time() + 2, "archive date not UTC now"
    assert user_status(hub, bob) == 404


def test_cleanup_archive_reports_the_real_path_on_collision(hub):
    """Two archives of one name in the same second: the hub renames the
    second to <name>-<date>-2; the answer must say where it went."""
    carol, _ = started_user(hub, "coll")
    arch = NFS_DIR() / ".archive"
    arch.mkdir(exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    for s in range(-1, 30):   # taken: every date the archive could get
        d = (now + datetime.timedelta(seconds=s)).strftime("%Y%m%d-%H%M%S")
        (arch / f"{carol}-{d}").mkdir(exist_ok=True)
    res = ctl_json(hub, "cleanup", carol, "--home", "archive")
    m = re.fullmatch(r"home archived to (\.archive/\S+)",
                     res["results"][0]["done"][2])
    assert m, res
    moved = NFS_DIR() / m.group(1)
    real = [p for p in archives_of(carol) if (arch / p / "notes.txt").exists()]
    assert (moved / "notes.txt").is_file(), \
        f"the hub said {m.group(1)} but the home went to {real}"


def test_cleanup_delete_needs_yes(hub):
    dan, _ = started_user(hub, "del")
    r = ctl(hub, "cleanup", dan, "--home", "delete", stdin="yes\n")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "--yes" in r.stderr and len(r.stderr.splitlines()) == 1
    assert user_status(hub, dan) == 200
    assert os.path.isdir(NFS_DIR() / dan)

    r = ctl(hub, "cleanup", dan, "--home", "delete", "--dry-run")
    assert r.returncode == 0 and "delete" in r.stdout, r.stderr
    assert os.path.isdir(NFS_DIR() / dan)

    r = ctl(hub, "cleanup", dan, "--home", "delete", "--yes")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"{dan}: home deleted" in r.stdout
    assert user_status(hub, dan) == 404
    assert not os.path.exists(NFS_DIR() / dan)
    assert archives_of(dan) == []


def test_cleanup_failure_midway_goes_on_with_the_others(hub):
    a, _ = started_user(hub, "fa")
    b = hub.make_user(uniq("fb"))
    ghost = uniq("ghost")
    r = ctl(hub, "cleanup", a, ghost, b, "--home", "archive")
    assert r.returncode == 1, (r.stdout, r.stderr)
    one_line_errors(r)
    assert ghost in r.stderr and "no such user" in r.stderr, r.stderr
    assert a not in r.stderr and b not in r.stderr, r.stderr
    assert user_status(hub, a) == 404 and user_status(hub, b) == 404
    assert archives_of(a) and f"{b}: no home to archive" in r.stdout
    assert "cleaned up 2 of 3" in r.stdout


def test_cleanup_step_failure_says_what_was_done(hub):
    """The archive step fails (.archive is a file on the export): the
    server was stopped and the user deleted, the home is where it was,
    the next user is cleaned up, exit 1."""
    a, _ = started_user(hub, "sf")
    b = hub.make_user(uniq("sg"))
    arch = NFS_DIR() / ".archive"
    aside = NFS_DIR() / f".archive-aside{PID}"
    if arch.exists():
        arch.rename(aside)
    try:
        arch.write_text("not a directory\n")
        r = ctl(hub, "cleanup", a, b, "--home", "archive")
    finally:
        arch.unlink()
        if aside.exists():
            aside.rename(arch)
    assert r.returncode == 1, (r.stdout, r.stderr)
    one_line_errors(r)
    err = [ln for ln in r.stderr.splitlines() if a in ln]
    assert len(err) == 1, r.stderr
    assert "done: stop server, delete user" in err[0], err
    assert "not done: archive home" in err[0], err
    assert f"{a}: server stopped" in r.stdout and \
        f"{a}: user deleted" in r.stdout
    assert user_status(hub, a) == 404
    assert (NFS_DIR() / a / "notes.txt").is_file()     # left in place
    assert user_status(hub, b) == 404                  # the next went on
    assert "cleaned up 1 of 2" in r.stdout


def test_cleanup_inactive_since(hub):
    old = hub.make_user(uniq("old"))
    active = hub.make_user(uniq("act"))
    year_ago = (datetime.datetime.now(datetime.timezone.utc) -
                datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = hub.api("POST", f"/users/{old}/activity",
                json={"last_activity": year_ago})
    assert r.status_code == 204, r.text
    assert hub.api("GET", f"/users/{old}").json()["last_activity"]
    time.sleep(2.2)
    now = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    hub.api("POST", f"/users/{active}/activity", json={"last_activity": now})
    fresh = hub.make_user(uniq("new"))          # created now, never active

    plan = ctl_json(hub, "cleanup", "--inactive-since", "90d", "--dry-run")
    names = [p["user"] for p in plan["plan"]]
    assert old in names and active not in names and fresh not in names
    plan = ctl_json(hub, "cleanup", "--inactive-since", "2s", "--dry-run")
    names = [p["user"] for p in plan["plan"]]
    assert old in names and active not in names and fresh not in names
    time.sleep(2.2)
    plan = ctl_json(hub, "cleanup", "--inactive-since", "2s", "--dry-run")
    names = [p["user"] for p in plan["plan"]]
    assert fresh in names, "a never-active user created 2 s ago"
    assert user_status(hub, old) == 200                      # dry run
    for n in (old, active, fresh):
        hub.api("DELETE", f"/users/{n}")


def test_cleanup_not_in_ldap(start_hub, admin_dir):
    need_ldap()
    h = start_hub("ctl-admin-ldap", env=hub_env(
        admin_dir, **ldap_env(
            SWARMHUB_LDAP_SEARCH_BASE="ou=People,dc=example,dc=com")))
    gone = h.make_user(f"gone{PID}x1")   # not in the directory
    for n in ("alice", "dave"):
        h.make_user(n)                   # dave: in no allowed group
    plan = ctl_json(h, "cleanup", "--not-in-ldap", "--dry-run")
    names = sorted(p["user"] for p in plan["plan"])
    assert names == sorted([gone, "dave"]), plan
    r = ctl(h, "cleanup", "--not-in-ldap")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert user_status(h, gone) == 404 and user_status(h, "dave") == 404
    assert user_status(h, "alice") == 200

    r = ctl(h, "cleanup", "--not-in-ldap", "--dry-run")
    assert r.returncode == 0 and "nothing to clean up" in r.stdout, r.stdout


def test_cleanup_not_in_ldap_on_a_local_hub_fails(hub):
    r = ctl(hub, "cleanup", "--not-in-ldap", "--dry-run")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "ldap" in r.stderr.lower() and len(r.stderr.splitlines()) == 1


# ---- orphans ---------------------------------------------------------------

def make_orphan_service(name, user):
    r = subprocess.run(
        ["docker", "service", "create", "--detach", "--name", name,
         "--label", f"swarmhub.hub={HUB_ID}", "--label",
         f"swarmhub.user={user}", "--endpoint-mode", "dnsrr",
         "--restart-condition", "none", TINY, "sleep", "600"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_orphans_list_and_remove(hub):
    ghost = uniq("ghost")
    svc = f"orphan-{PID}x{int(time.time()) % 100000}"
    make_orphan_service(svc, ghost)
    home = uniq("lost")
    (NFS_DIR() / home).mkdir()
    (NFS_DIR() / home / "work.py").write_text("print(1)\n")
    owned, _ = started_user(hub, "own")     # neither is an orphan

    r = ctl(hub, "orphans")
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()]
    assert rows[0] == ["KIND", "NAME", "USER", "SERVER", "RUNNING"], r.stdout
    assert ["service", svc, ghost] == rows_of(rows, svc)[:3], r.stdout
    assert ["home", home] == rows_of(rows, home)[:2], r.stdout
    assert owned not in r.stdout
    assert "cleanup" in r.stdout and "--home archive" in r.stdout

    j = ctl_json(hub, "orphans")
    assert any(s["name"] == svc and s["user"] == ghost and
               isinstance(s["running"], bool) for s in j["services"]), j
    assert home in j["homes"] and owned not in j["homes"]

    r = ctl(hub, "orphans", "--remove")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"removed service {svc}" in r.stdout
    assert not service_exists(svc)
    assert (NFS_DIR() / home / "work.py").is_file(), "a home was removed"
    assert hub.api("GET", f"/users/{owned}").json()["servers"][""]["ready"]
    j = ctl_json(hub, "orphans")
    assert svc not in [s["name"] for s in j["services"]]

    # the way the listing suggests: archive the orphan home with cleanup
    r = ctl(hub, "cleanup", home, "--home", "archive")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "(no user)" in r.stdout and f"{home}: home archived" in r.stdout
    assert not os.path.exists(NFS_DIR() / home)
    assert [a for a in archives_of(home)
            if (NFS_DIR() / ".archive" / a / "work.py").is_file()]


def rows_of(rows, name):
    for r in rows:
        if len(r) > 1 and r[1] == name:
            return r
    return []


# ---- doctor ----------------------------------------------------------------

def doctor(hub, token=None):
    r = ctl(hub, "doctor", token=token, timeout=120)
    checks = {}
    for ln in r.stdout.splitlines():
        m = re.match(r"^([\u2713\u2717]) (\S+(?: checks)?)\s+(.*)$", ln)
        if m:
            checks[m.group(2)] = [m.group(1) == "\u2713", m.group(3), ""]
            last = m.group(2)
        elif ln.strip().startswith("fix: "):
            checks[last][2] = ln.strip()[5:]
    return r, checks


def test_doctor_all_green(hub):
    r, checks = doctor(hub)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert set(checks) == {"hub", "token", "database", "docker", "network",
                           "profiles", "homes", "images"}, r.stdout
    assert all(ok for ok, _, _ in checks.values()), r.stdout
    assert "fix:" not in r.stdout
    # the spawn profiles name an image that exists nowhere: not checked,
    # and said so
    detail = checks["images"][1]
    assert "not checked: " + MISSING_IMAGE in detail, detail
    assert TINY not in detail, detail
    j = ctl_json(hub, "doctor")
    assert j["ok"] is True and len(j["checks"]) == 8


def test_doctor_bad_token(hub):
    r, checks = doctor(hub, token="0" * 64)
    assert r.returncode == 1, r.stdout
    assert checks["hub"][0] and not checks["token"][0], r.stdout
    assert "SWARMHUB_TOKEN" in checks["token"][2]


def test_doctor_hub_unreachable(hub):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    env.update(SWARMHUB_TOKEN="t" * 40,
               SWARMHUB_URL=f"http://127.0.0.1:{free_port()}")
    r = subprocess.run([CTL, "doctor"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert r.stdout.startswith("\u2717 hub") and "--url" in r.stdout


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]          # closed once the socket is


def test_doctor_ldap_down(start_hub, admin_dir):
    need_ldap()
    h = start_hub("ctl-doctor-ldap", env=hub_env(admin_dir, **ldap_env(
        SWARMHUB_LDAP_URI=f"ldap://127.0.0.1:{closed_port()}",
        SWARMHUB_LDAP_TIMEOUT="2")))
    r, checks = doctor(h)
    assert r.returncode == 1, r.stdout
    assert not checks["ldap"][0], r.stdout
    assert "SWARMHUB_LDAP_URI" in checks["ldap"][2], r.stdout
    assert all(checks[k][0] for k in ("hub", "token", "database", "docker",
                                      "homes")), r.stdout


def test_doctor_nfs_down(start_hub, admin_dir, tmp_path):
    nfs = tmp_path / "nfs2"
    out = subprocess.run([str(SERVICES_SH / "nfs.sh"), "start", str(nfs)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    v = dict(ln.split("=", 1) for ln in out.stdout.split())
    stopped = False
    try:
        h = start_hub("ctl-doctor-nfs", env=hub_env(
            admin_dir, SWARMHUB_HOME=v["SWARMHUB_TEST_NFS_URL"],
            SWARMHUB_HOME_BIND_ROOT=v["SWARMHUB_TEST_NFS_DIR"]))
        r, checks = doctor(h)
        assert r.returncode == 0 and checks["homes"][0], r.stdout
        subprocess.run([str(SERVICES_SH / "nfs.sh"), "stop", str(nfs)],
                       capture_output=True, timeout=60, check=True)
        stopped = True
        r, checks = doctor(h)
        assert r.returncode == 1, r.stdout
        assert not checks["homes"][0], r.stdout
        assert "NFS" in checks["homes"][2], r.stdout
        assert checks["database"][0] and checks["docker"][0], r.stdout
    finally:
        if not stopped:
            subprocess.run([str(SERVICES_SH / "nfs.sh"), "stop", str(nfs)],
                           capture_output=True, timeout=60)


def test_doctor_docker_down(start_hub, admin_dir, tmp_path):
    fwd = Relay(DOCKER_SOCK, tmp_path / "docker.sock").start()
    try:
        h = start_hub("ctl-doctor-docker", env=hub_env(
            admin_dir, SWARMHUB_DOCKER_HOST=f"unix://{fwd.path}"))
        r, checks = doctor(h)
        assert r.returncode == 0 and checks["docker"][0], r.stdout
        fwd.stop()
        r, checks = doctor(h)
        assert r.returncode == 1, r.stdout
        assert not checks["docker"][0], r.stdout
        assert "dockerd" in checks["docker"][2] or \
            "DOCKER_HOST" in checks["docker"][2], r.stdout
        assert checks["database"][0] and checks["homes"][0], r.stdout
    finally:
        fwd.stop()


def test_zz_doctor_postgres_down(hub):
    """Last: PostgreSQL is stopped and always started again."""
    try:
        pg_service("stop")
        r, checks = doctor(hub)
        assert r.returncode == 1, r.stdout
        assert "database" in checks and not checks["database"][0], \
            r.stdout
        assert "SWARMHUB_DB" in checks["database"][2], r.stdout
        assert checks["docker"][0] and checks["homes"][0], r.stdout
    finally:
        pg_service("start")
    wait_for(lambda: ctl(hub, "doctor").returncode == 0, 30,
             "doctor green again after PostgreSQL came back", interval=1)

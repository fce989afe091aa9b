"""
test_isolation.py - user isolation on shared homes (SWARMHUB_HOME_UID=ldap):
the real hub with LDAP (slapd seed: dave has uidNumber 1004 and gidNumber
1004, grace has neither), a one-node swarm and nfs-ganesha (homes bind
mounted from the exported directory, as in test_spawn.py).

Checks the service spec (User, Groups, HOME), the owner of the home on
disk, the uid given from LOCAL_UID_RANGE to a user without one and to local
accounts (unique even when logins race, never reused), the admin model's
"swarmhub" key, and 'swarmhubctl homes chown' (dry run, then for real, and
SHARED_DIR's group and setgid bit).
"""
import concurrent.futures
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hubtest import (NFS_DIR, PID, SPAWN_HUB_ID, fixed_credentials, ldap_env,
                     login_ok, need_ldap, need_spawn_services, new_hub,
                     remove_homes, remove_services, service, service_name,
                     spawn_env, start_ready, stop_hub, stop_server, uniq,
                     user_model, write_spawn_profiles)

SHARED = f"shared{PID}"
LDAP_USERS = {"dave": "davepw", "grace": "gracepw"}


def ctl_binary():
    d = os.environ.get("SWARMHUB_BIN_DIR") or str(
        Path(__file__).resolve().parents[2] / "bin")
    return os.path.join(d, "swarmhubctl")


def ctl(hub, *args):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    env["SWARMHUB_URL"] = hub.url
    env["SWARMHUB_ADMIN_TOKEN"] = hub.admin_token
    return subprocess.run([ctl_binary(), *args], env=env, text=True,
                          capture_output=True, timeout=60)


def owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def remove_iso_homes():
    for name in list(LDAP_USERS) + [SHARED]:
        shutil.rmtree(NFS_DIR() / name, ignore_errors=True)
    remove_homes(f"*{PID}x*")


@pytest.fixture(scope="module")
def iso_hub(tmp_path_factory):
    need_spawn_services()
    need_ldap()
    remove_iso_homes()
    d = tmp_path_factory.mktemp("iso")
    profiles = write_spawn_profiles(d / "profiles.json")
    env = spawn_env(profiles, **fixed_credentials())
    env.update(ldap_env(SWARMHUB_LDAP_ALLOWED_GROUPS="",
                        SWARMHUB_LOGIN_MAX_FAILURES="1000"))
    env.update({"SWARMHUB_HOME_UID": "ldap", "SWARMHUB_HOME_GID": "ldap",
                "SWARMHUB_SHARED_DIR": SHARED,
                "SWARMHUB_LOCAL_UID_RANGE": "21000-21999"})
    hub = new_hub("isolation", env)
    yield hub
    try:
        remove_services(SPAWN_HUB_ID, wait=True)
        stop_hub(hub)
    finally:
        remove_iso_homes()


def container_spec(user):
    svc = service(service_name(user))
    assert svc, f"no service for {user}"
    return svc["Spec"]["TaskTemplate"]["ContainerSpec"]


def test_ldap_uid_gid_run_the_server_and_own_the_home(iso_hub):
    hub = iso_hub
    login_ok(hub, "dave", LDAP_USERS["dave"])
    m = user_model(hub, "dave")
    assert m["swarmhub"] == {"uid": 1004, "gid": 1004,
                             "uid_source": "ldap"}, m
    start_ready(hub, "dave")
    cs = container_spec("dave")
    assert cs["User"] == "1004:1004", cs
    assert cs.get("Groups") == ["100"], cs
    assert "HOME=/home/jovyan/work" in cs["Env"], cs["Env"]
    assert owner(NFS_DIR() / "dave") == (1004, 1004, 0o700)
    # the shared dir: the common group, setgid
    uid, gid, mode = owner(NFS_DIR() / SHARED)
    assert (gid, mode) == (100, 0o2775), (uid, gid, mode)
    stop_server(hub, "dave")


def test_user_without_uidnumber_gets_a_local_uid(iso_hub):
    hub = iso_hub
    login_ok(hub, "grace", LDAP_USERS["grace"])
    m = user_model(hub, "grace")["swarmhub"]
    assert m["uid_source"] == "local" and 21000 <= m["uid"] <= 21999, m
    assert m["gid"] is None, m
    uid = m["uid"]
    start_ready(hub, "grace")
    cs = container_spec("grace")
    # no gidNumber: the common group HOME_GID stands in (100)
    assert cs["User"] == f"{uid}:100", cs
    assert cs.get("Groups") == ["100"], cs
    assert owner(NFS_DIR() / "grace") == (uid, 100, 0o700)
    # the next login keeps the uid
    login_ok(hub, "grace", LDAP_USERS["grace"])
    assert user_model(hub, "grace")["swarmhub"]["uid"] == uid
    stop_server(hub, "grace")
    # nobody else has it (the database's constraint, not only memory)
    rows = hub.sql(f"SELECT count(*) FROM local_uids WHERE uid = {uid}")
    assert rows == [["1"]], rows


def test_homes_chown_dry_run_then_real(iso_hub):
    hub = iso_hub
    name = hub.make_user(uniq("ho"))
    home = NFS_DIR() / name
    (home / "sub").mkdir(parents=True)
    (home / "sub" / "f.txt").write_text("x\n")
    for p in (home, home / "sub", home / "sub" / "f.txt"):
        os.chown(p, 1000, 100)

    r = ctl(hub, "homes", "chown", "--dry-run", name)
    assert r.returncode == 0, r.stderr
    assert f"[1/1] {name}: 3 entries would go to" in r.stdout, r.stdout
    assert owner(home)[:2] == (1000, 100), "a dry run changed the owner"

    r = ctl(hub, "homes", "chown", name)
    assert r.returncode == 0, (r.stdout, r.stderr)
    uid = user_model(hub, name)["swarmhub"]["uid"]
    assert 21000 <= uid <= 21999, uid
    assert f"[1/1] {name}: 3 entries -> {uid}:100" in r.stdout, r.stdout
    for p in (home, home / "sub", home / "sub" / "f.txt"):
        assert owner(p)[:2] == (uid, 100), p
    # (made 2775 group 100 at the first start: "already"; a change made
    # behind nfs-ganesha's back would not be seen through its cache, so
    # test_home.c checks the change itself)
    assert f"shared {SHARED}: already group 100, mode 2775" in r.stdout, \
        r.stdout
    assert owner(NFS_DIR() / SHARED)[1:] == (100, 0o2775)

    # a second run has nothing to do; a user without a home is skipped
    other = hub.make_user(uniq("nohome"))
    r = ctl(hub, "homes", "chown", name, other)
    assert r.returncode == 0, r.stderr
    assert f"{name}: 0 entries ->" in r.stdout, r.stdout
    assert f"{other}: no home, skipped" in r.stdout, r.stdout
    r = ctl(hub, "--json", "homes", "chown", "--dry-run", name)
    assert r.returncode == 0, r.stderr
    assert '"changed": 0' in r.stdout and f'"uid": {uid}' in r.stdout, \
        r.stdout


def test_homes_chown_skips_a_running_server(iso_hub):
    hub = iso_hub
    login_ok(hub, "dave", LDAP_USERS["dave"])
    start_ready(hub, "dave")
    r = ctl(hub, "homes", "chown", "dave")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "dave: skipped" in r.stdout and "stop it first" in r.stderr, \
        (r.stdout, r.stderr)
    stop_server(hub, "dave")


def test_homes_chown_help():
    r = subprocess.run([ctl_binary(), "homes", "chown", "--help"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--dry-run" in r.stdout, r


# ---- local accounts (no Docker needed) -------------------------------------

def test_local_accounts_get_unique_uids(start_hub):
    hub = start_hub("iso-local", {"SWARMHUB_HOME_UID": "ldap",
                                  "SWARMHUB_LOCAL_UID_RANGE": "23000-23002",
                                  "SWARMHUB_LOGIN_MAX_FAILURES": "1000"})
    names = [hub.make_user(uniq("lu"), password="pw-" + str(i))
             for i in range(4)]
    # a fresh user has none until a login (or a start) needs it
    assert user_model(hub, names[0])["swarmhub"]["uid"] is None
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda i: login_ok(hub, names[i], "pw-" + str(i)),
                    range(4)))
    got = [user_model(hub, n)["swarmhub"] for n in names]
    uids = [g["uid"] for g in got if g["uid"] is not None]
    # three uids in the range for four users racing: all distinct, one left
    # without (logged, and its start would fail saying so)
    assert sorted(uids) == [23000, 23001, 23002], got
    assert all(g["uid_source"] == "local" for g in got
               if g["uid"] is not None), got
    # deleting a user does not free its uid for someone else
    gone = next(n for n, g in zip(names, got) if g["uid"] is not None)
    assert hub.api("DELETE", f"/users/{gone}").status_code == 204
    rows = hub.sql("SELECT count(*) FROM local_uids WHERE user_id IS NULL")
    assert rows == [["1"]], rows


def test_default_mode_has_no_ids(start_hub):
    hub = start_hub("iso-default", {})
    name = hub.make_user(uniq("dm"), password="pw")
    login_ok(hub, name, "pw")
    assert user_model(hub, name)["swarmhub"] == {
        "uid": None, "gid": None, "uid_source": None}


def test_bad_settings_refused(start_hub):
    for env, words in (({"SWARMHUB_HOME_UID": "ldapx"}, "HOME_UID"),
                       ({"SWARMHUB_LOCAL_UID_RANGE": "5-3"},
                        "LOCAL_UID_RANGE"),
                       ({"SWARMHUB_CULL_PROBE_RATE": "-1"},
                        "CULL_PROBE_RATE"),
                       ({"SWARMHUB_CULL_PROBE_RATE": "fast"},
                        "CULL_PROBE_RATE")):
        hub = start_hub("iso-bad", env, wait=False)
        try:
            hub.proc.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the hub started with {env}")
        assert hub.proc.returncode != 0
        assert words in hub.stderr(), hub.stderr()[-1000:]

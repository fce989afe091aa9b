"""
test_rename.py - renaming users (PATCH /hub/api/users/<name> {"name": new})
and the names no user may take.

A rename is refused (409, with the reason) while the user's server runs or
is starting; otherwise the home moves with the user (NFS home backend, the
real hub, a one-node swarm), and a home of the new name already there is a
409 that changes nothing. The shared directory's name (SHARED_DIR) and
"admin-token" (how the audit log names ADMIN_TOKEN requests) are refused
with 400 naming the reason: on create (both POST forms), on rename and on
the login that would create the user (LDAP).
"""
import shutil

import pytest

from hubtest import (NFS_DIR, PID, SPAWN_HUB_ID, fixed_credentials, ldap_env,
                     login, need_ldap, need_spawn_services, new_hub,
                     remove_homes, remove_services, spawn_env, start,
                     start_ready, stop_hub, stop_server, uniq, user_model,
                     write_spawn_profiles)

SHARED = f"shr{PID}"


@pytest.fixture(scope="module")
def rn_hub(tmp_path_factory):
    need_spawn_services()
    d = tmp_path_factory.mktemp("rename")
    profiles = write_spawn_profiles(d / "profiles.json")
    env = spawn_env(profiles, **fixed_credentials())
    env["SWARMHUB_SHARED_DIR"] = SHARED
    hub = new_hub("rename", env)
    yield hub
    try:
        remove_services(SPAWN_HUB_ID, wait=True)
        stop_hub(hub)
    finally:
        shutil.rmtree(NFS_DIR() / SHARED, ignore_errors=True)
        remove_homes(f"*{PID}x*")


def rename(hub, old, new):
    return hub.api("PATCH", f"/users/{old}", json={"name": new})


def test_rename_refused_while_running_then_home_moves(rn_hub):
    hub = rn_hub
    old, new = hub.make_user(uniq("ra")), uniq("rb")
    start_ready(hub, old)
    (NFS_DIR() / old / "notes.txt").write_text("mine\n")
    r = rename(hub, old, new)
    assert r.status_code == 409, (r.status_code, r.text)
    assert "running" in r.json()["message"] and \
        "stop it first" in r.json()["message"], r.text
    assert user_model(hub, old)["name"] == old
    stop_server(hub, old)

    r = rename(hub, old, new)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json()["name"] == new
    assert hub.api("GET", f"/users/{old}").status_code == 404
    assert not (NFS_DIR() / old).exists()
    assert (NFS_DIR() / new / "notes.txt").read_text() == "mine\n"
    # the renamed user starts again on the moved home
    start_ready(hub, new)
    assert (NFS_DIR() / new / "notes.txt").exists()
    assert not (NFS_DIR() / old).exists()
    stop_server(hub, new)


def test_rename_refused_while_starting(rn_hub):
    hub = rn_hub
    old = hub.make_user(uniq("rs"))
    start(hub, old, {"image": "sleepy"})    # runs, never answers HTTP
    r = rename(hub, old, uniq("rt"))
    assert r.status_code == 409, (r.status_code, r.text)
    assert "starting" in r.json()["message"], r.text
    stop_server(hub, old)


def test_rename_onto_an_existing_home_is_409(rn_hub):
    hub = rn_hub
    old, new = hub.make_user(uniq("rc")), uniq("rd")
    (NFS_DIR() / old).mkdir()
    (NFS_DIR() / old / "a.txt").write_text("a\n")
    (NFS_DIR() / new).mkdir()
    (NFS_DIR() / new / "b.txt").write_text("b\n")
    r = rename(hub, old, new)
    assert r.status_code == 409, (r.status_code, r.text)
    assert new in r.json()["message"] and "exists" in r.json()["message"], \
        r.text
    assert user_model(hub, old)["name"] == old
    assert (NFS_DIR() / old / "a.txt").exists()
    assert (NFS_DIR() / new / "b.txt").exists()
    assert not (NFS_DIR() / new / "a.txt").exists()


def test_rename_without_a_home(rn_hub):
    hub = rn_hub
    old, new = hub.make_user(uniq("re")), uniq("rf")
    r = rename(hub, old, new)
    assert r.status_code == 200, (r.status_code, r.text)
    assert not (NFS_DIR() / new).exists()
    assert user_model(hub, new)["name"] == new


# ---- reserved names (no Docker needed) -------------------------------------

@pytest.mark.parametrize("reserved, words", [
    (SHARED, "shared directory"),
    ("admin-token", "ADMIN_TOKEN"),
])
def test_reserved_names_refused(start_hub, reserved, words):
    hub = start_hub("reserved", {"SWARMHUB_SHARED_DIR": SHARED})
    r = hub.api("POST", f"/users/{reserved}", json={})
    assert r.status_code == 400, (r.status_code, r.text)
    assert words in r.json()["message"] and reserved in \
        r.json()["message"], r.text
    r = hub.api("POST", "/users", json={"usernames": [uniq("ok"),
                                                      reserved]})
    assert r.status_code == 400 and words in r.json()["message"], r.text
    assert hub.api("GET", f"/users/{reserved}").status_code == 404
    # upper case is the same name once normalized
    r = hub.api("POST", f"/users/{reserved.upper()}", json={})
    assert r.status_code == 400, (r.status_code, r.text)
    name = hub.make_user(uniq("rn"))
    r = rename(hub, name, reserved)
    assert r.status_code == 400 and words in r.json()["message"], r.text
    assert user_model(hub, name)["name"] == name


def test_shared_dir_name_refused_when_a_path(start_hub):
    hub = start_hub("reserved-path",
                    {"SWARMHUB_SHARED_DIR": f"/{SHARED}/data"})
    r = hub.api("POST", f"/users/{SHARED}", json={})
    assert r.status_code == 400, (r.status_code, r.text)
    assert hub.api("POST", "/users/data", json={}).status_code == 201


def test_login_does_not_create_a_reserved_user(start_hub):
    need_ldap()
    # grace exists in the directory; here her name is the shared dir's
    hub = start_hub("reserved-ldap", ldap_env(
        SWARMHUB_LDAP_ALLOWED_GROUPS="", SWARMHUB_SHARED_DIR="grace"))
    _, r = login(hub, "grace", "gracepw")
    assert r.status_code == 400, (r.status_code, r.text[:500])
    assert "reserved" in r.text and "shared directory" in r.text, \
        r.text[:2000]
    assert hub.api("GET", "/users/grace").status_code == 404
    # others log in as before
    _, r = login(hub, "dave", "davepw")
    assert r.status_code == 302, (r.status_code, r.text[:500])

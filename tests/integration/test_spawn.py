"""
test_spawn.py - the spawner against real services: the real hub on the
host (SWARMHUB_CONNECT=gwbridge), a one-node Docker swarm, nfs-ganesha for
the homes (containers bind-mount the exported directory: this kernel has no
NFS client) and PostgreSQL.

Needs (tests/run.sh exports them):
  SWARMHUB_TEST_DOCKER_NETWORK  from 'tests/services/docker.sh start'
  SWARMHUB_TEST_NFS_URL, SWARMHUB_TEST_NFS_DIR
                                from 'tests/services/nfs.sh start DIR'
  the image swarmhub/test-notebook:latest (images/test-notebook)
SWARMHUB_TEST_SKIP=docker or nfs skips instead of failing.

Every hub here runs with SWARMHUB_HUB_ID=t<pid>, every username is unique,
and every service labelled swarmhub.hub=t<pid> is removed after each test
(and waited for at the end of the module), whatever happened.

Servers are reached the way INFRA.md says: through the task container's
docker_gwbridge address, never the overlay address (the machine's proxy
answers those with a fake 404).
"""
import json
import os
import re
import secrets
import subprocess
import threading
import time

import pytest

from hubtest import (DIRECT, DOCKER_SOCK, MISSING_IMAGE, NET, NFS_DIR, PID,
                     SPAWN_HOME_TARGET as HOME_TARGET,
                     SPAWN_HTTP_TIMEOUT as HTTP_TIMEOUT,
                     SPAWN_HUB_ID as HUB_ID,
                     SPAWN_RATIO as RATIO,
                     SPAWN_START_TIMEOUT as START_TIMEOUT, TINY, Relay,
                     containers, db_uri, docker, drop_database, filters,
                     fixed_credentials, free_port, gw_ip, hub_binary, limits,
                     need_spawn_services, new_database, new_hub,
                     our_services, parallel, post_server, progress,
                     remove_homes, remove_services, running_container,
                     server_token, service, service_name, spawn_env, start,
                     start_ready,
                     stop_hub, tasks, uniq, user_model, wait_for,
                     write_spawn_profiles)


# ---- what only these tests use ---------------------------------------------

def direct(user, path, token, ip=None, **kw):
    """GET http://<gwbridge ip>:8888/user/<user>/<path> straight to the
    container (token None: no Authorization header)."""
    ip = ip or gw_ip(user)
    headers = {"Authorization": f"token {token}"} if token else {}
    kw.setdefault("timeout", 10)
    return DIRECT.get(f"http://{ip}:8888/user/{user}/{path}",
                      headers=headers, **kw)


def set_groups(hub, members):
    """members: {group: [user, ...]} written straight into the database
    (local accounts have no groups otherwise); a hub reads them at start."""
    for g, users in members.items():
        names = ",".join(f"'{u}'" for u in users)
        hub.sql(f"INSERT INTO groups (name) VALUES ('{g}') "
                f"ON CONFLICT (name) DO NOTHING")
        hub.sql(f"INSERT INTO user_groups (user_id, group_id) "
                f"SELECT u.id, g.id FROM users u, groups g "
                f"WHERE g.name = '{g}' AND u.name IN ({names})")


# ---- the REST side ---------------------------------------------------------

def server_gone(hub, name):
    return user_model(hub, name)["servers"] == {}


def metric(hub, name):
    r = hub.get("/hub/metrics",
                headers={"Authorization": f"token {hub.admin_token}"})
    assert r.status_code == 200, r.status_code
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", r.text, re.M)
    return float(m.group(1)) if m else None


# ---- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def spawn_dir(tmp_path_factory):
    need_spawn_services()
    d = tmp_path_factory.mktemp("spawn")
    yield d
    remove_services(HUB_ID, wait=True)
    remove_homes(f"*{PID}x*")


@pytest.fixture(scope="module")
def main_hub(spawn_dir):
    """A hub shared by most tests, with users in the groups labq (q1, q2)
    and nopegrp (c1, c2). Setting groups takes a first hub (it creates the
    schema and the users), SQL, and a second hub on the same database."""
    profiles = write_spawn_profiles(spawn_dir / "profiles.json")
    env = spawn_env(profiles, **fixed_credentials())
    db = new_database()
    setup = new_hub("spawn-setup", env, db=db)
    groups = {"labq": [uniq("q1"), uniq("q2")],
              "nopegrp": [uniq("c1"), uniq("c2")]}
    for users in groups.values():
        for u in users:
            setup.make_user(u)
    set_groups(setup, groups)
    stop_hub(setup)
    hub = new_hub("spawn", env, db=db)
    hub.groups = groups
    hub.profiles = profiles
    yield hub
    try:
        stop_hub(hub)
    finally:
        drop_database(db)


@pytest.fixture(autouse=True)
def _remove_services(request):
    yield
    if "spawn_dir" in request.fixturenames:
        remove_services(HUB_ID)


@pytest.fixture
def scratch_db(spawn_dir):
    name = new_database()
    yield name
    drop_database(name)


# ---- spawn, progress, the service, the home, stop --------------------------

def test_spawn_ready_service_home_and_stop(main_hub):
    hub = main_hub
    alice = hub.make_user(uniq("alice"))
    # a name that needs escaping in the service name
    bob = hub.make_user(f"bob.{PID}x_{secrets.token_hex(2)}@lab-x")
    t0 = time.monotonic()
    start(hub, alice, {"cpu": 0.5, "mem_gb": 0.25})
    start(hub, bob, {"cpu": 0.2, "mem_gb": 0.3, "image": "tiny"})
    ev_a, ev_b = parallel(lambda: progress(hub, alice),
                          lambda: progress(hub, bob))
    took = time.monotonic() - t0
    for name, ev in ((alice, ev_a), (bob, ev_b)):
        assert ev[0] == {"progress": 0, "message": "Server requested"}, ev
        assert ev[-1] == {"progress": 100, "message": ev[-1]["message"],
                          "ready": True, "url": f"/user/{name}/"}, ev
        middle = ev[1:-1]
        assert middle and all(0 < e["progress"] < 100 for e in middle), ev
        assert any("running" in e["message"].lower() for e in middle), \
            f"no task state among the events: {ev}"
        pct = [e["progress"] for e in ev]
        assert pct == sorted(pct), f"progress went backwards: {ev}"
    assert took < START_TIMEOUT, f"two tiny servers took {took:.1f} s"

    # a late listener gets every past event replayed
    assert progress(hub, alice) == ev_a

    # the user model
    m = user_model(hub, alice)
    srv = m["servers"][""]
    assert srv["ready"] is True and srv["pending"] is None, m
    assert srv["url"] == f"/user/{alice}/" and m["server"] == srv["url"], m
    assert srv["progress_url"] == \
        f"/hub/api/users/{alice}/server/progress", m
    assert srv["user_options"] == {"profile": "default", "image": "tiny",
                                   "cpu": 0.5, "mem_gb": 0.25, "gpus": 0}, m
    assert srv["started"] and srv["started"].endswith("Z"), m
    assert user_model(hub, bob)["servers"][""]["user_options"] == {
        "profile": "default", "image": "tiny", "cpu": 0.2, "mem_gb": 0.3,
        "gpus": 0}
    r = hub.api("GET", "/users", params={"state": "ready"})
    assert r.status_code == 200, r.text
    ready = {u["name"] for u in r.json()}
    assert {alice, bob} <= ready, ready

    # api/status answers with the server token only
    tok = server_token(hub.secret, alice, HUB_ID)
    ip = gw_ip(alice)
    r = direct(alice, "api/status", tok, ip=ip)
    assert r.status_code == 200 and "last_activity" in r.json(), r.text
    assert direct(alice, "api/status", None, ip=ip).status_code == 403
    assert direct(alice, "api/status", server_token(hub.secret, bob, HUB_ID),
                  ip=ip).status_code == 403

    # the service
    net_id = docker("GET", f"/networks/{NET()}")[1]["Id"]
    for name, cpu, mem in ((alice, 0.5, 0.25), (bob, 0.2, 0.3)):
        svc = service(service_name(name))
        assert svc, f"no service {service_name(name)}: " \
                    f"{[s['Spec']['Name'] for s in our_services(HUB_ID)]}"
        spec = svc["Spec"]
        assert spec["Labels"] == {"swarmhub.hub": HUB_ID,
                                  "swarmhub.user": name,
                                  "swarmhub.server": ""}, spec["Labels"]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr", spec["EndpointSpec"]
        tt = spec["TaskTemplate"]
        assert tt["RestartPolicy"]["Condition"] == "none", tt
        res = tt["Resources"]
        # mem_gb is GiB: 2^30 bytes
        assert res["Limits"] == {"NanoCPUs": round(cpu * 1e9),
                                 "MemoryBytes": round(mem * 2**30)}, res
        assert res["Reservations"]["NanoCPUs"] == round(cpu * 1e9 * RATIO)
        assert res["Reservations"]["MemoryBytes"] == round(mem * 2**30), res
        # and the container Docker ran has that memory limit
        st, cs = docker("GET", "/containers/json?filters=" + filters(
            label=[f"com.docker.swarm.service.name={service_name(name)}"],
            status=["running"]))
        assert st == 200 and len(cs) == 1, (st, cs)
        st, c = docker("GET", f"/containers/{cs[0]['Id']}/json")
        assert st == 200 and \
            c["HostConfig"]["Memory"] == round(mem * 2**30), \
            (mem, c["HostConfig"]["Memory"])
        assert [n["Target"] for n in tt["Networks"]] in ([net_id],
                                                        [NET()]), tt
        cs = tt["ContainerSpec"]
        assert cs["Image"].split("@")[0] == TINY, cs
        assert cs["User"] == "1000:100", cs
        mounts = [(mt["Type"], mt["Source"], mt["Target"])
                  for mt in cs["Mounts"]]
        assert ("bind", str(NFS_DIR() / name), HOME_TARGET) in mounts, mounts
        envs = dict(e.split("=", 1) for e in cs["Env"])
        assert envs["JUPYTER_TOKEN"] == server_token(hub.secret, name, HUB_ID)
        assert envs["JUPYTERHUB_SERVICE_PREFIX"] == f"/user/{name}/", envs
        argv = cs.get("Command", []) + cs.get("Args", [])
        assert f"--NotebookApp.base_url=/user/{name}/" in argv, argv
        assert "--port=8888" in argv, argv

        # the home, made over NFS on the export
        st = os.stat(NFS_DIR() / name)
        assert (st.st_uid, st.st_gid) == (1000, 100), st
        assert st.st_mode & 0o7777 == 0o700, oct(st.st_mode)

    # a file written in the container appears in the export
    r = direct(alice, "write", tok, ip=ip, params={"name": "from-alice.txt"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == f"{HOME_TARGET}/from-alice.txt", r.json()
    f = NFS_DIR() / alice / "from-alice.txt"
    assert f.is_file(), sorted(os.listdir(NFS_DIR() / alice))
    assert (f.stat().st_uid, f.stat().st_gid) == (1000, 100)
    assert f.read_text().startswith("written by fake_notebook")

    # bob does not see alice's files
    bob_cid = running_container(bob)
    r = subprocess.run(["docker", "exec", bob_cid, "ls", "-a", HOME_TARGET],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "from-alice.txt" not in r.stdout, r.stdout
    r = subprocess.run(["docker", "exec", bob_cid, "sh", "-c",
                        "find / -name from-alice.txt 2>/dev/null; true"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "", r.stdout

    # a second start while running
    r = post_server(hub, alice)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["status"] == 400 and "running" in r.json()["message"]

    # stop: 202, then stopped, the service and its container gone
    svc_a = service_name(alice)
    r = hub.api("DELETE", f"/users/{alice}/server")
    assert r.status_code == 202, (r.status_code, r.text)
    wait_for(lambda: server_gone(hub, alice), 30, f"{alice} stopped")
    seen_running = containers(svc_a, running_only=True)
    assert service(svc_a) is None
    assert hub.api("DELETE", f"/users/{alice}/server").status_code == 204
    assert alice not in {u["name"] for u in hub.api(
        "GET", "/users", params={"state": "ready"}).json()}
    # the file outlives the server
    assert f.is_file()
    assert not seen_running, (
        "the hub reported the server stopped while its container was still "
        f"running: {[c['Id'][:12] + ' ' + c['Status'] for c in seen_running]}"
        " (issue 3: 'remove the service and wait until its tasks are gone')")
    wait_for(lambda: not containers(svc_a), 30, f"{svc_a}'s container gone")


def test_start_with_own_token_and_permissions(main_hub):
    hub = main_hub
    me, other = hub.make_user(uniq("own")), hub.make_user(uniq("oth"))
    tok = hub.make_token(me)
    r = post_server(hub, other, token=tok)
    assert r.status_code == 403, (r.status_code, r.text)
    r = hub.api("DELETE", f"/users/{other}/server", token=tok)
    assert r.status_code == 403, (r.status_code, r.text)
    r = hub.api("GET", f"/users/{other}/server/progress", token=tok)
    assert r.status_code == 403, (r.status_code, r.text)
    start(hub, me, token=tok)
    ev = progress(hub, me, token=tok)
    assert ev[-1].get("ready") is True, ev
    m = user_model(hub, me, token=tok)
    assert m["servers"][""]["ready"] is True, m
    assert m["servers"][""]["user_options"]["profile"] == "default"


# ---- failures --------------------------------------------------------------

def test_bad_image_and_crashing_server_fail_fast(main_hub):
    hub = main_hub
    u = hub.make_user(uniq("badimg"))
    crash = hub.make_user(uniq("crash"))
    t0 = time.monotonic()
    start(hub, u, {"image": "missing"})
    start(hub, crash, {"image": "crashy"})
    ev, ev_crash = parallel(lambda: progress(hub, u, timeout=30),
                            lambda: progress(hub, crash, timeout=30))
    took = time.monotonic() - t0
    last = ev[-1]
    assert last.get("failed") is True and last["progress"] == 100, ev
    assert "not found" in last["message"], ev
    assert MISSING_IMAGE in last["message"], ev
    assert ev_crash[-1].get("failed") is True, ev_crash
    assert "3" in ev_crash[-1]["message"] and \
        "exit" in ev_crash[-1]["message"], ev_crash
    assert took < START_TIMEOUT, f"the failures took {took:.1f} s"
    for name in (u, crash):
        assert service(service_name(name)) is None
        m = user_model(hub, name)
        assert m["servers"] == {} and m["server"] is None, m
    # a late listener learns the failure too
    late = progress(hub, u, timeout=10)
    assert late[-1].get("failed") is True, late


def test_constraint_memory_and_silent_server_fail_with_reasons(main_hub):
    """Three starts at once that can only time out: a constraint no node
    has, more memory than the node has (both START_TIMEOUT), and a server
    that runs but never answers HTTP (HTTP_TIMEOUT)."""
    hub = main_hub
    c1 = hub.groups["nopegrp"][0]
    big = hub.make_user(uniq("bigmem"))
    mute = hub.make_user(uniq("mute"))
    t0 = time.monotonic()
    start(hub, c1)                                   # profile nopegrp
    start(hub, big, {"mem_gb": 150, "cpu": 0.1})     # the node has ~25 GB
    start(hub, mute, {"image": "sleepy"})
    # while they wait, the model says pending
    for name in (c1, big, mute):
        srv = user_model(hub, name)["servers"][""]
        assert srv["ready"] is False and srv["pending"] == "spawn", srv
    # a second start while pending
    r = post_server(hub, c1)
    assert r.status_code == 400, (r.status_code, r.text)
    ev_c, ev_m, ev_s = parallel(lambda: progress(hub, c1, timeout=60),
                                lambda: progress(hub, big, timeout=60),
                                lambda: progress(hub, mute, timeout=60))
    took = time.monotonic() - t0
    for ev in (ev_c, ev_m):
        assert ev[-1].get("failed") is True, ev
        assert any(e["progress"] not in (0, 100) and "node" in
                   e["message"].lower() for e in ev), \
            f"no 'waiting for a node' event: {ev}"
    assert "constraint" in ev_c[-1]["message"], ev_c
    assert "no node" in ev_m[-1]["message"] and \
        "150 GiB" in ev_m[-1]["message"], ev_m
    assert ev_s[-1].get("failed") is True, ev_s
    assert f"{HTTP_TIMEOUT} s" in ev_s[-1]["message"], ev_s
    assert START_TIMEOUT - 1 <= took < HTTP_TIMEOUT + 15, took
    for name in (c1, big, mute):
        assert service(service_name(name)) is None
        assert user_model(hub, name)["servers"] == {}


def test_stop_while_pending_cancels_the_start(main_hub):
    hub = main_hub
    c2 = hub.groups["nopegrp"][1]                    # stays pending
    start(hub, c2)
    wait_for(lambda: service(service_name(c2)), 10, "the pending service")
    t0 = time.monotonic()
    r = hub.api("DELETE", f"/users/{c2}/server")
    assert r.status_code == 202, (r.status_code, r.text)
    ev = progress(hub, c2, timeout=30)
    assert ev[-1].get("failed") is True, ev
    assert time.monotonic() - t0 < 10, "the cancel waited for START_TIMEOUT"
    wait_for(lambda: server_gone(hub, c2), 10, f"{c2} stopped")
    wait_for(lambda: service(service_name(c2)) is None, 10,
             "the cancelled service removed")


# ---- options, profiles, quotas, limits -------------------------------------

@pytest.mark.parametrize("options, status, words", [
    ({"cpu": 5}, 400, ["cpu", "0.1", "1"]),
    ({"cpu": 0.01}, 400, ["cpu"]),
    ({"mem_gb": 500}, 400, ["mem_gb", "200"]),
    ({"gpus": 1}, 400, ["gpus"]),
    ({"cpu": "lots"}, 400, ["cpu"]),
    ({"image": "nope"}, 400, ["image", "tiny"]),
    ({"colour": "red"}, 400, ["colour"]),
    ({"profile": "nosuch"}, 400, ["nosuch"]),
    ({"profile": "other"}, 403, ["other"]),
    ({"profile": "labq"}, 403, ["labq"]),
])
def test_bad_options_refused(main_hub, options, status, words):
    hub = main_hub
    u = hub.make_user(uniq("opt"))
    r = post_server(hub, u, options)
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status, body
    for w in words:
        assert w.lower() in body["message"].lower(), body
    assert user_model(hub, u)["servers"] == {}
    assert service(service_name(u)) is None


def test_body_not_json_refused(main_hub):
    u = main_hub.make_user(uniq("nojs"))
    r = main_hub.api("POST", f"/users/{u}/server", data=b"{cpu: 1",
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text)
    assert user_model(main_hub, u)["servers"] == {}


def test_group_quota(main_hub):
    hub = main_hub
    q1, q2 = hub.groups["labq"]
    start_ready(hub, q1)                 # no profile named: the group's
    m = user_model(hub, q1)
    assert m["servers"][""]["user_options"]["profile"] == "labq", m
    r = post_server(hub, q2)
    assert r.status_code == 403, (r.status_code, r.text)
    assert "quota" in r.json()["message"], r.json()
    assert user_model(hub, q2)["servers"] == {}
    # the default profile is not under labq's quota
    r = post_server(hub, q2, {"profile": "default"})
    assert r.status_code == 202, (r.status_code, r.text)
    assert progress(hub, q2)[-1].get("ready") is True
    r = hub.api("DELETE", f"/users/{q2}/server")
    assert r.status_code == 202, r.text
    wait_for(lambda: server_gone(hub, q2), 30, f"{q2} stopped")
    # once q1 stops, q2 may use labq
    assert hub.api("DELETE", f"/users/{q1}/server").status_code == 202
    wait_for(lambda: server_gone(hub, q1), 30, f"{q1} stopped")
    start_ready(hub, q2, {"profile": "labq"})


def test_concurrent_spawn_limit(start_hub, spawn_dir):
    profiles = write_spawn_profiles(spawn_dir / "limit.json")
    hub = start_hub("spawn-limit", spawn_env(
        profiles, SWARMHUB_CONCURRENT_SPAWN_LIMIT="1"))
    a, b = hub.make_user(uniq("lima")), hub.make_user(uniq("limb"))
    barrier = threading.Barrier(2)

    def go(name):
        barrier.wait()
        return post_server(hub, name)
    ra, rb = parallel(lambda: go(a), lambda: go(b))
    codes = sorted([ra.status_code, rb.status_code])
    assert codes == [202, 429], (ra.status_code, ra.text, rb.status_code,
                                 rb.text)
    won, lost = (a, b) if ra.status_code == 202 else (b, a)
    refused = rb if ra.status_code == 202 else ra
    assert refused.headers.get("Retry-After", "").isdigit(), refused.headers
    assert refused.json()["status"] == 429, refused.text
    assert user_model(hub, lost)["servers"] == {}
    assert progress(hub, won)[-1].get("ready") is True
    # the slot is free again once the start finished
    start_ready(hub, lost)


# ---- restart, reconcile, orphans, deleting users ---------------------------

def test_hub_restart_adopts_running_server(start_hub, spawn_dir):
    profiles = write_spawn_profiles(spawn_dir / "restart.json")
    env = spawn_env(profiles, **fixed_credentials())
    db = new_database()
    try:
        first = new_hub("spawn-restart-1", env, db=db)
        try:
            u = first.make_user(uniq("adopt"))
            start_ready(first, u, {"cpu": 0.3})
            ip = gw_ip(u)
            started = user_model(first, u)["servers"][""]["started"]
        finally:
            stop_hub(first)
        # the hub's exit leaves the server alone
        assert service(service_name(u)) is not None
        tok = server_token(env["SWARMHUB_SECRET"], u, HUB_ID)
        assert direct(u, "api/status", tok, ip=ip).status_code == 200

        second = new_hub("spawn-restart-2", env, db=db)
        try:
            m = user_model(second, u)
            srv = m["servers"].get("")
            assert srv and srv["ready"] is True, m
            assert srv["user_options"]["cpu"] == 0.3, m
            assert srv["started"] == started, (srv["started"], started)
            r = second.api("GET", "/users", params={"state": "ready"})
            assert u in {x["name"] for x in r.json()}, r.text
            ev = progress(second, u)
            assert ev[-1].get("ready") is True, ev
            r = direct(u, "api/status", tok)
            assert r.status_code == 200 and "started" in r.json(), r.text
            # and it can still stop it
            assert second.api("DELETE",
                              f"/users/{u}/server").status_code == 202
            wait_for(lambda: server_gone(second, u), 30, f"{u} stopped")
            wait_for(lambda: service(service_name(u)) is None, 10,
                     "the adopted service removed")
        finally:
            stop_hub(second)
    finally:
        drop_database(db)


def old_unit_limit(name, mem_gb):
    """Makes the service look started before mem_gb meant GiB: its memory
    limit and reservation become mem_gb x 10^9 bytes (Docker replaces the
    task); returns the id of the running container with that limit."""
    st, svc = docker("GET", f"/services/{service_name(name)}")
    assert st == 200, (st, svc)
    spec = svc["Spec"]
    res = spec["TaskTemplate"]["Resources"]
    res["Limits"]["MemoryBytes"] = round(mem_gb * 1e9)
    res["Reservations"]["MemoryBytes"] = round(mem_gb * 1e9)
    st, v = docker("POST", f"/services/{svc['ID']}/update?version="
                   f"{svc['Version']['Index']}", spec)
    assert st == 200, (st, v)

    def replaced():
        st, cs = docker("GET", "/containers/json?filters=" + filters(
            label=[f"com.docker.swarm.service.name={service_name(name)}"],
            status=["running"]))
        for c in cs if st == 200 else []:
            st, c = docker("GET", f"/containers/{c['Id']}/json")
            if st == 200 and \
                    c["HostConfig"]["Memory"] == round(mem_gb * 1e9):
                return c["Id"]
        return None
    return wait_for(replaced, 60, f"{name}'s task with the old limit")


def test_server_from_before_gib_keeps_its_limit(start_hub, spawn_dir):
    """A server started when mem_gb meant 10^9 bytes keeps that limit when
    a hub of today adopts it, and the quota counts it by its bytes: 0.5
    "GB" is 0.465661 GiB of the default profile's 1 GiB quota."""
    profiles = write_spawn_profiles(
        spawn_dir / "gib.json", default={
            "images": ["tiny"],
            **limits(cpu=(0.1, 1, 0.2), mem_gb=(0.1, 2, 0.5)),
            "quota": {"mem_gb": 1}})
    env = spawn_env(profiles, **fixed_credentials())
    db = new_database()
    try:
        first = new_hub("spawn-gib-1", env, db=db)
        try:
            u = first.make_user(uniq("oldgb"))
            v = first.make_user(uniq("newgib"))
            start_ready(first, u, {"mem_gb": 0.5})
        finally:
            stop_hub(first)
        container = old_unit_limit(u, 0.5)
        second = new_hub("spawn-gib-2", env, db=db)
        try:
            m = user_model(second, u)
            assert m["servers"][""]["ready"] is True, m
            r = post_server(second, v, {"mem_gb": 0.6})
            assert r.status_code == 403, (r.status_code, r.text)
            assert r.json()["message"] == (
                "your group's quota of 1 GiB of memory is in use "
                "(0.465661 used, 0.6 asked)"), r.json()
            st, c = docker("GET", f"/containers/{container}/json")
            assert st == 200 and c["State"]["Running"] and \
                c["HostConfig"]["Memory"] == 500000000, c["HostConfig"]
            assert second.api("DELETE",
                              f"/users/{u}/server").status_code == 202
            wait_for(lambda: server_gone(second, u), 30, f"{u} stopped")
        finally:
            stop_hub(second)
    finally:
        drop_database(db)


def test_service_removed_behind_the_hubs_back(main_hub):
    hub = main_hub
    u = hub.make_user(uniq("gone"))
    start_ready(hub, u)
    st, _ = docker("DELETE", f"/services/{service_name(u)}")
    assert st == 200, st
    wait_for(lambda: server_gone(hub, u), 20,
             f"{u}'s server reported stopped after RECONCILE_EVERY=2")
    r = hub.api("GET", "/users", params={"state": "ready"})
    assert u not in {x["name"] for x in r.json()}
    # and the user can start again
    start_ready(hub, u)


def test_orphan_service_is_counted_not_deleted(main_hub):
    """One running server of the hub's own user and one service with the
    hub's labels for a user the hub does not know: exactly one orphan."""
    hub = main_hub
    remove_services(HUB_ID, wait=False)
    mine = hub.make_user(uniq("notorphan"))
    start_ready(hub, mine)
    ghost = f"ghost{PID}x{secrets.token_hex(3)}"
    name = f"sxorphan-{ghost}"
    labels = {"swarmhub.hub": HUB_ID, "swarmhub.user": ghost,
              "swarmhub.server": ""}
    st, v = docker("POST", "/services/create", {
        "Name": name, "Labels": labels,
        "TaskTemplate": {"ContainerSpec": {
            "Image": TINY, "Labels": labels,
            "Command": ["python3", "-m", "notebook", "--port=8888"]},
            "RestartPolicy": {"Condition": "none"}},
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr"}})
    assert st == 201, (st, v)
    n0 = len(hub.stderr().splitlines())

    def passes():
        """reconcile.orphan lines logged since the service was made"""
        return [ln for ln in hub.stderr().splitlines()[n0:]
                if "event=reconcile.orphan" in ln]

    wait_for(lambda: (metric(hub, "swarmhub_orphan_services") or 0) >= 1,
             20, "swarmhub_orphan_services >= 1")
    wait_for(lambda: len([ln for ln in passes() if name in ln]) >= 2, 20,
             "two reconcile passes logging the orphan")
    assert service(name) is not None, "the hub deleted an orphan service"
    ghost_lines = [ln for ln in passes() if name in ln]
    assert f"user={ghost}" in ghost_lines[-1], ghost_lines[-1]
    wrong = [ln for ln in passes() if service_name(mine) in ln]
    assert not wrong, f"a running server of the hub counted as an orphan: " \
                      f"{wrong[-1]}"
    assert user_model(hub, mine)["servers"][""]["ready"] is True
    assert metric(hub, "swarmhub_orphan_services") == 1, \
        [ln for ln in hub.get("/hub/metrics", headers={
            "Authorization": f"token {hub.admin_token}"}).text.splitlines()
         if "orphan" in ln]


def test_delete_user_with_running_server(main_hub):
    hub = main_hub
    u = hub.make_user(uniq("del"))
    start_ready(hub, u)
    svc = service_name(u)
    r = hub.api("DELETE", f"/users/{u}")
    assert r.status_code == 204, (r.status_code, r.text)
    assert hub.api("GET", f"/users/{u}").status_code == 404
    wait_for(lambda: service(svc) is None, 15,
             f"{svc} removed after its user was deleted")
    wait_for(lambda: not containers(svc, running_only=True), 30,
             f"{svc}'s container stopped")
    # the name is free again, and a new user of that name starts cleanly
    hub.make_user(u)
    assert user_model(hub, u)["servers"] == {}
    start_ready(hub, u)


# ---- Docker going away -----------------------------------------------------

def test_docker_unreachable_then_back(start_hub, spawn_dir, tmp_path):
    fwd = Relay(DOCKER_SOCK, tmp_path / "docker.sock").start()
    try:
        profiles = write_spawn_profiles(spawn_dir / "nodocker.json")
        hub = start_hub("spawn-nodocker", spawn_env(
            profiles, SWARMHUB_DOCKER_HOST=f"unix://{fwd.path}"))
        u = hub.make_user(uniq("nodock"))
        tok = hub.make_token(u)
        start_ready(hub, u)                          # works through it
        assert hub.api("DELETE", f"/users/{u}/server").status_code == 202
        wait_for(lambda: server_gone(hub, u), 30, f"{u} stopped")

        fwd.stop()
        t0 = time.monotonic()
        down = post_server(hub, u)
        took = time.monotonic() - t0
        down_events = None
        if down.status_code == 202:                  # let it fail, look why
            down_events = progress(hub, u, timeout=60)
        # the hub keeps serving
        assert hub.get("/hub/health").status_code == 200
        r = hub.api("GET", "/user", token=tok)
        assert r.status_code == 200 and r.json()["name"] == u, r.text
        assert hub.api("GET", "/users").status_code == 200
        wait_for(lambda: server_gone(hub, u), 60,
                 f"{u}'s failed start settled")

        fwd.start()
        start_ready(hub, u)                          # recovers
        assert direct(u, "api/status",
                      server_token(hub.secret, u, HUB_ID)).status_code == 200

        assert took < 10, f"POST server took {took:.1f} s with Docker down"
        assert down.status_code == 503, (
            f"with Docker unreachable POST server answered "
            f"{down.status_code} {down.text!r}; progress: {down_events}")
        msg = down.json()["message"]
        assert "docker" in msg.lower(), msg
    finally:
        fwd.stop()


def test_hanging_docker_holds_up_no_other_request(start_hub, spawn_dir,
                                                   tmp_path):
    """With one libmicrohttpd thread (HTTP_THREADS=1), a start waiting on a
    Docker that does not answer must not stall requests that need only
    the hub's memory: slow requests run on their own workers."""
    fwd = Relay(DOCKER_SOCK, tmp_path / "docker.sock").start()
    try:
        profiles = write_spawn_profiles(spawn_dir / "hang.json")
        hub = start_hub("spawn-hang", spawn_env(
            profiles, SWARMHUB_DOCKER_HOST=f"unix://{fwd.path}",
            SWARMHUB_HTTP_THREADS="1"))
        u = hub.make_user(uniq("hang"))
        tok = hub.make_token(u)
        fwd.stop()                       # and every pooled connection
        fwd.hole = True                  # accepted, never answered: a
        fwd.start()                      # Docker that hangs
        slow = {}

        def post():
            t0 = time.monotonic()
            slow["r"] = post_server(hub, u, token=tok)
            slow["s"] = time.monotonic() - t0
        t = threading.Thread(target=post, daemon=True)
        t.start()
        time.sleep(0.5)                  # the POST now waits on Docker
        assert "r" not in slow, "the POST did not wait on the black hole"
        worst = 0
        for _ in range(20):
            t0 = time.monotonic()
            r = hub.api("GET", "/user", token=tok, timeout=10)
            assert r.status_code == 200 and r.json()["name"] == u, r.text
            r = hub.get("/hub/login", timeout=10)
            assert r.status_code == 200, r.status_code
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.1)
        assert "r" not in slow, "the POST is no longer waiting"
        # generous: these take a millisecond; stuck behind the POST they
        # would wait for Docker's 30 s timeout
        assert worst < 2, f"GETs took up to {worst:.2f} s meanwhile"
        fwd.stop()                       # Docker "answers": EOF
        t.join(35)
        assert slow.get("r") is not None, "the POST never came back"
        assert slow["r"].status_code == 503, (slow["r"].status_code,
                                              slow["r"].text)
        assert "docker" in slow["r"].json()["message"].lower()
    finally:
        fwd.stop()


# ---- the hub refuses to start ----------------------------------------------

def run_hub_once(env, timeout=40):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("SWARMHUB_")}
    base.update(env)
    return subprocess.run([hub_binary()], env=base, capture_output=True,
                          text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def not_attachable():
    name = f"sxnoattach{PID}"
    subprocess.run(["docker", "network", "rm", name], capture_output=True)
    r = subprocess.run(["docker", "network", "create", "-d", "overlay",
                        name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    yield name
    subprocess.run(["docker", "network", "rm", name], capture_output=True,
                   timeout=60)


def refused(scratch_db, profiles, **over):
    env = spawn_env(profiles, SWARMHUB_DB=db_uri(scratch_db),
                    SWARMHUB_SECRET=secrets.token_hex(32),
                    SWARMHUB_LISTEN=f"127.0.0.1:{free_port()}",
                    SWARMHUB_DB_WAIT="5", **over)
    r = run_hub_once(env)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    return r.stderr


def test_refuses_missing_network(scratch_db, spawn_dir):
    p = write_spawn_profiles(spawn_dir / "ok.json")
    net = f"sxnonet{PID}"
    err = refused(scratch_db, p, SWARMHUB_NETWORK=net)
    assert f"'{net}'" in err and "does not exist" in err, err


def test_refuses_non_attachable_network(scratch_db, spawn_dir,
                                        not_attachable):
    p = write_spawn_profiles(spawn_dir / "ok.json")
    err = refused(scratch_db, p, SWARMHUB_NETWORK=not_attachable)
    assert not_attachable in err and "attachable" in err, err


def test_refuses_invalid_profiles(scratch_db, spawn_dir):
    p = spawn_dir / "bad.json"
    write_spawn_profiles(p)
    doc = json.loads(p.read_text())
    doc["profiles"]["labq"]["colour"] = "red"
    p.write_text(json.dumps(doc))
    err = refused(scratch_db, p)
    assert "profiles.labq.colour" in err and "unknown key" in err, err
    # and a file that is not there
    err = refused(scratch_db, spawn_dir / "missing.json")
    assert "missing.json" in err, err


# ---- more that a demanding user does ---------------------------------------

def test_crashed_server_is_reported_not_restarted(main_hub):
    hub = main_hub
    u = hub.make_user(uniq("crashed"))
    start_ready(hub, u)
    cid = running_container(u)
    st, _ = docker("POST", f"/containers/{cid}/kill")
    assert st == 204, st
    # Docker itself can take over 10 s to record the task as failed on a
    # loaded machine (seen in CI); the hub can only report it after that
    wait_for(lambda: server_gone(hub, u), 40,
             f"{u}'s crashed server reported stopped")
    assert len(tasks(service_name(u))) <= 1, \
        f"the crashed server was restarted: {tasks(service_name(u))}"
    assert u not in {x["name"] for x in hub.api(
        "GET", "/users", params={"state": "ready"}).json()}
    # starting again works (the dead service is replaced)
    start_ready(hub, u)
    r = direct(u, "api/status", server_token(hub.secret, u, HUB_ID))
    assert r.status_code == 200, r.text


def test_shared_dir_is_shared(start_hub, spawn_dir):
    shared = f"shared-{PID}x"
    profiles = write_spawn_profiles(spawn_dir / "shared.json")
    hub = start_hub("spawn-shared", spawn_env(profiles,
                                              SWARMHUB_SHARED_DIR=shared))
    a, b = hub.make_user(uniq("sha")), hub.make_user(uniq("shb"))
    start(hub, a)
    start(hub, b)
    for ev in parallel(lambda: progress(hub, a), lambda: progress(hub, b)):
        assert ev[-1].get("ready") is True, ev
    assert (NFS_DIR() / shared).is_dir()
    target = f"{HOME_TARGET}/shared"
    r = subprocess.run(["docker", "exec", running_container(a), "sh", "-c",
                        f"echo from-a > {target}/note-{a}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{a} cannot write in {target}: {r.stderr}"
    r = subprocess.run(["docker", "exec", running_container(b), "cat",
                        f"{target}/note-{a}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "from-a\n", (r.stdout, r.stderr)
    assert (NFS_DIR() / shared / f"note-{a}").read_text() == "from-a\n"


def test_sigterm_during_a_pending_start(spawn_dir):
    """A hub stopped while a start waits for a node (Docker's default stop
    grace period is 10 s), then started again: the server must not stay
    pending forever, and no service may be left waiting behind it."""
    profiles = write_spawn_profiles(spawn_dir / "pending.json")
    env = spawn_env(profiles, SWARMHUB_START_TIMEOUT="120",
                    **fixed_credentials())
    db = new_database()
    try:
        first = new_hub("spawn-pending-1", env, db=db)
        u = first.make_user(uniq("pend"))
        start(first, u, {"mem_gb": 150})
        wait_for(lambda: service(service_name(u)), 10, "the service")
        time.sleep(1)
        t0 = time.monotonic()
        first.proc.terminate()
        try:
            rc = first.proc.wait(40)
        except subprocess.TimeoutExpired:
            first.kill()
            rc = None
        took = time.monotonic() - t0
        first.stop()
        second = new_hub("spawn-pending-2", env, db=db)
        try:
            srv = user_model(second, u)["servers"].get("")
            settled = wait_for(lambda: server_gone(second, u) or
                               None, 15, f"{u} no longer pending after the "
                               f"restart (model: {srv})")
            assert settled
            left = service(service_name(u))
            r = post_server(second, u, {"mem_gb": 0.25})
            assert r.status_code == 202, (r.status_code, r.text)
            assert progress(second, u)[-1].get("ready") is True
        finally:
            stop_hub(second)
        assert rc == 0, f"exit status {rc} on SIGTERM"
        assert took < 10, (f"SIGTERM with a start pending took {took:.1f} s "
                           "(Docker kills after 10 s):\n" +
                           first.log.read_text()[-1500:])
        assert left is None, ("after the restart the interrupted start's "
                              "service was still there (pending, it will "
                              "start later unseen): " +
                              left["Spec"]["Name"])
    finally:
        drop_database(db)


def test_server_stopped_while_hub_down(spawn_dir):
    profiles = write_spawn_profiles(spawn_dir / "down.json")
    env = spawn_env(profiles, **fixed_credentials())
    db = new_database()
    try:
        first = new_hub("spawn-down-1", env, db=db)
        try:
            keep = first.make_user(uniq("keep"))
            lost = first.make_user(uniq("lost"))
            start(first, keep)
            start(first, lost)
            for ev in parallel(lambda: progress(first, keep),
                               lambda: progress(first, lost)):
                assert ev[-1].get("ready") is True, ev
        finally:
            stop_hub(first)
        docker("DELETE", f"/services/{service_name(lost)}")
        second = new_hub("spawn-down-2", env, db=db)
        try:
            # at start, before any reconcile tick
            assert user_model(second, lost)["servers"] == {}
            assert user_model(second, keep)["servers"][""]["ready"] is True
            r = second.api("GET", "/users", params={"state": "ready"})
            names = {x["name"] for x in r.json()}
            assert keep in names and lost not in names, names
            start_ready(second, lost)
        finally:
            stop_hub(second)
    finally:
        drop_database(db)


def test_two_hubs_on_one_swarm_keep_their_servers(start_hub, spawn_dir):
    """docs/settings.md: 'two hubs on one swarm need different ids'. With different
    HUB_IDs (and the default service name template) a user of the same
    name on the second hub must not take the first hub's server away."""
    other_id = f"{HUB_ID}b"
    profiles = write_spawn_profiles(spawn_dir / "two.json")
    x = start_hub("spawn-two-x", spawn_env(profiles))
    y = start_hub("spawn-two-y", spawn_env(profiles,
                                           SWARMHUB_HUB_ID=other_id))
    u = uniq("twin")
    x.make_user(u)
    y.make_user(u)
    try:
        start_ready(x, u)
        svc_before = service(service_name(u))
        tok_x = server_token(x.secret, u, HUB_ID)
        r = post_server(y, u)
        y_events = progress(y, u) if r.status_code == 202 else None
        time.sleep(1)
        svc_after = service(service_name(u))
        assert svc_after is not None and \
            svc_after["ID"] == svc_before["ID"], (
            f"hub {other_id} replaced hub {HUB_ID}'s service "
            f"{service_name(u)} (POST answered {r.status_code}; its "
            f"progress: {y_events})")
        assert direct(u, "api/status", tok_x).status_code == 200
        assert user_model(x, u)["servers"][""]["ready"] is True
    finally:
        for s in docker("GET", "/services?filters=" + filters(
                label=[f"swarmhub.hub={other_id}"]))[1]:
            docker("DELETE", f"/services/{s['ID']}")

"""
test_cluster.py - swarmhub on a real 3-node swarm (tests/services/cluster.sh):
the hub runs as users run it, as a service on the cluster's overlay network
(CONNECT=dns) pinned to the manager, its port published in host mode and
reached at SWARMHUB_TEST_MANAGER_ADDR; PostgreSQL is the test cluster on the
host, reached from the hub's container through a relay on the host's bridge
address (SWARMHUB_CLUSTER_NET.1). The hub container runs this tree's
bin/swarmhub (bind-mounted over the one in swarmhub/hub:latest, which gives
the runtime libraries), so the code under test is the code just built.

Checks: constraints place servers (node.labels.pool==gpu -> the last
worker, node.role==worker -> a worker); servers on workers start, are
reached over the overlay, stop (the task ends on its node), are adopted by
a restarted hub, are marked stopped with a reason when their container
dies on the worker or their node's daemon dies (cluster.sh kill-node;
revive-node puts it back at the end); an orphan service on a worker is
listed as running and removed; a hub with CONNECT=gwbridge refuses, at
once and saying why, a server placed on another node.
"""
import json
import time
import uuid

import pytest

from clusterhub import Engine, api, cluster, hub_service, node_socket, \
    urllib_quote
from hubtest import DIRECT, NB_CMD, TINY, esc, psql_super, uniq, wait_for


@pytest.fixture(scope="session")
def cluster_hub(swarm, tmp_path_factory):
    gpu_users = [uniq("gpu") for _ in range(3)]
    with hub_service(swarm, tmp_path_factory.mktemp("cluster"),
                     groups={"gpu": gpu_users}) as hub:
        hub["gpu_users"] = gpu_users
        yield hub


def start_server(hub, user, profile):
    if user not in hub["gpu_users"]:
        r = api(hub, "POST", f"/users/{user}", json={})
        assert r.status_code == 201, (r.status_code, r.text)
    r = api(hub, "POST", f"/users/{user}/server",
            json={"profile": profile, "image": "tiny"})
    assert r.status_code in (201, 202), (r.status_code, r.text)
    wait_for(lambda: api(hub, "GET", f"/users/{user}").json()
             .get("server"), 90, f"{user}'s server ready")


def server_state(hub, user):
    u = api(hub, "GET", f"/users/{user}").json()
    return u


def reach(hub, user):
    """GET /user/<user>/api/status through the hub's proxy (over the
    overlay to whichever node the server is on)."""
    r = api(hub, "POST", f"/users/{user}/tokens", json={})
    assert r.status_code == 201, (r.status_code, r.text)
    r = DIRECT.get(f"{hub['url']}/user/{user}/api/status",
                   headers={"Authorization": f"token {r.json()['token']}"},
                   timeout=20, allow_redirects=False)
    return r


def test_constraints_place_servers_and_stop_on_workers(swarm, cluster_hub):
    eng, hub = swarm["engine"], cluster_hub
    nodes = swarm["nodes"]
    st, gpu_node = eng.call("GET", f"/nodes/{nodes[-1]}")
    a, b = uniq("cpu"), hub["gpu_users"][0]
    start_server(hub, a, "default")
    start_server(hub, b, "gpu")
    host_a, _ = eng.node_of(f"{hub['run']}-{esc(a)}")
    host_b, _ = eng.node_of(f"{hub['run']}-{esc(b)}")
    assert host_a and host_a.startswith("shc-worker"), host_a
    assert host_b == gpu_node["Description"]["Hostname"], host_b
    for u in (a, b):
        r = reach(hub, u)
        assert r.status_code == 200, (u, r.status_code, r.text[:300])
    # stop: the server is gone once the task on the worker has ended
    svc = eng.call("GET", f"/services/{hub['run']}-{esc(a)}")[1]
    r = api(hub, "DELETE", f"/users/{a}/server")
    assert r.status_code in (202, 204), (r.status_code, r.text)
    wait_for(lambda: server_state(hub, a).get("servers") == {}, 90,
             f"{a}'s server stopped")
    st, _ = eng.call("GET", f"/services/{svc['ID']}")
    assert st == 404, st
    st, v = eng.call("GET", "/tasks")
    live = [t for t in v if t["ServiceID"] == svc["ID"] and
            t["Status"]["State"] in ("running", "starting", "ready")]
    assert not live, live
    # b, on the GPU worker, is still there and reachable
    assert reach(hub, b).status_code == 200


def test_restarted_hub_adopts_servers_on_workers(swarm, cluster_hub):
    hub = cluster_hub
    u = hub["gpu_users"][1]
    start_server(hub, u, "gpu")
    hub["restart"]()
    wait_for(lambda: server_state(hub, u).get("server"), 30,
             f"{u}'s server adopted")
    r = reach(hub, u)
    assert r.status_code == 200, (r.status_code, r.text[:300])


def test_worker_dying_marks_its_servers_stopped(swarm, cluster_hub):
    eng, hub = swarm["engine"], cluster_hub
    u = hub["gpu_users"][2]
    start_server(hub, u, "gpu")
    last = len(swarm["nodes"]) - 1
    cluster("kill-node", str(last), timeout=60)
    try:
        wait_for(lambda: not server_state(hub, u).get("server"), 90,
                 f"{u}'s server marked stopped after its node died")
        # the reason is kept with the server (shown on /hub/home)
        why = psql_super(
            "SELECT s.last_error FROM servers s JOIN users u ON u.id = "
            f"s.user_id WHERE u.name = '{u}' AND s.name = ''",
            db=hub["db"]).strip()
        host = eng.call("GET", f"/nodes/{swarm['nodes'][last]}")[1][
            "Description"]["Hostname"]
        print("reason:", why)
        assert "stopped on its own" in why and f"node '{host}'" in why, why
    finally:
        cluster("revive-node", str(last), timeout=120)


def node_sock(swarm, hostname):
    """The Engine socket of the node with this hostname."""
    for i in range(len(swarm["nodes"])):
        c = Engine("unix://" + node_socket(swarm["engine"], i))
        st, info = c.call("GET", "/info")
        if st == 200 and info["Name"] == hostname:
            return c
    raise AssertionError(f"no node named {hostname}")


def test_reconcile_and_orphan_cleanup_on_workers(swarm, cluster_hub):
    eng, hub = swarm["engine"], cluster_hub
    # reconcile: the server's container dies on its worker; the hub,
    # which talks to the manager only, marks it stopped with the reason
    u = uniq("died")
    start_server(hub, u, "default")
    svc = f"{hub['run']}-{esc(u)}"
    host, task = eng.node_of(svc)
    assert host and host.startswith("shc-worker"), host
    node = node_sock(swarm, host)
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    st, v = node.call("POST", f"/containers/{cid}/kill")
    assert st == 204, (st, v)
    wait_for(lambda: server_state(hub, u).get("servers") == {}, 60,
             f"{u}'s server marked stopped after its container died")
    why = psql_super(
        "SELECT s.last_error FROM servers s JOIN users u ON u.id = "
        f"s.user_id WHERE u.name = '{u}' AND s.name = ''",
        db=hub["db"]).strip()
    assert "stopped on its own" in why, why
    # orphans: a service of this hub's with no server behind it, running on
    # a worker, is listed as running and removed on request
    ghost = hub["run"] + "-ghost"
    st, v = eng.call("POST", "/services/create", {
        "Name": ghost,
        "Labels": {"swarmhub.hub": hub["run"], "swarmhub.user": "ghost",
                   "swarmhub.server": ""},
        "TaskTemplate": {
            "ContainerSpec": {"Image": TINY, "Command": [
                "python3", "-c", "import time; time.sleep(600)"]},
            "Placement": {"Constraints": ["node.role==worker"]},
            "RestartPolicy": {"Condition": "none"}}})
    assert st == 201, v
    wait_for(lambda: eng.node_of(ghost)[0], 60, "the orphan running")

    def listed():
        r = api(hub, "GET", "/swarmhub/orphans")
        assert r.status_code == 200, (r.status_code, r.text)
        return [s for s in r.json()["services"] if s["name"] == ghost]

    o = wait_for(listed, 30, "the orphan listed")
    assert o[0]["running"] is True and o[0]["user"] == "ghost", o
    r = api(hub, "DELETE", f"/swarmhub/orphans/services/{ghost}")
    assert r.status_code in (200, 204), (r.status_code, r.text)
    assert eng.call("GET", f"/services/{ghost}")[0] == 404
    assert not listed()


def test_gwbridge_hub_refuses_servers_on_other_nodes(swarm, cluster_hub,
                                                     start_hub, tmp_path):
    """A hub on the host talking to the manager with CONNECT=gwbridge can
    reach no server on a worker: the spawn fails at once saying why."""
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({
        "cpu_reservation_ratio": 0.1,
        "images": {"tiny": {"image": TINY, "cmd": NB_CMD + ["--no-browser"],
                            "port": 8888}},
        "profiles": {"default": {
            "images": ["tiny"],
            "cpu": {"min": 0.1, "max": 1, "default": 0.1},
            "mem_gb": {"min": 0.1, "max": 1, "default": 0.1},
            "constraints": ["node.role==worker"]}}}))
    run = "shg" + uuid.uuid4().hex[:8]
    hub = start_hub("cluster-gwbridge", env={
        "SWARMHUB_DOCKER_HOST": swarm["lines"]["SWARMHUB_TEST_DOCKER_HOST"],
        "SWARMHUB_NETWORK": cluster_hub["net"],
        "SWARMHUB_CONNECT": "gwbridge",
        "SWARMHUB_HUB_ID": run,
        "SWARMHUB_SERVICE_NAME_TEMPLATE": run + "-{user}",
        "SWARMHUB_PROFILES": str(profiles),
        "SWARMHUB_START_TIMEOUT": "60"})
    u = hub.make_user(uniq("gw"))
    t0 = time.monotonic()
    r = hub.api("POST", f"/users/{u}/server", json={})
    assert r.status_code in (201, 202), (r.status_code, r.text)
    m = wait_for(lambda: hub.api("GET", f"/users/{u}").json(), 60,
                 "the spawn to fail", ok=lambda m: m["servers"] == {})
    why = psql_super(
        "SELECT s.last_error FROM servers s JOIN users u ON u.id = "
        f"s.user_id WHERE u.name = '{u}' AND s.name = ''",
        db=hub.db).strip()
    assert "runs on another node" in why and \
        "SWARMHUB_CONNECT=dns" in why, (why, m)
    assert time.monotonic() - t0 < 40
    # the failed spawn left no service behind
    st, v = swarm["engine"].call("GET", "/services?filters=" + urllib_quote(
        json.dumps({"label": [f"swarmhub.hub={run}"]})))
    assert st == 200 and v == [], v

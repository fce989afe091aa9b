"""
test_nodes.py - node pools, the nodes API, page and CLI, drain, GPUs, on the
multi-node test swarm (the session fixture `swarm`: a manager, worker 1 with
pool=cpu, worker 2 with pool=gpu and two fake GPUs, discrete `gpu=2`).

The hub runs as in test_cluster.py (hub_service: a service on the cluster's
overlay, this tree's bin/swarmhub). Checks: a profile's pools place servers
(pool gpu -> the GPU worker, pool cpu -> worker 1) with the profile's and the
pool's constraints combined in the spec; an unknown pool is refused with 400
naming the allowed ones; GET /hub/api/swarmhub/nodes has the nodes' totals as
the Engine reports them, 2 GPUs on the last worker, and what this hub's
servers reserve where they run; swarmhubctl nodes (table and --json);
/hub/admin/nodes with its bars; a GPU server sees DOCKER_RESOURCE_GPU; a GPU
request no node can take fails at once with the reason; GPU_RESOURCE
changes the kind; draining a node stops its servers with the reason.
"""
import json
import os
import re
import subprocess
import time

import pytest
import requests

from clusterhub import Engine, api, hub_service, node_socket
from hubtest import DIRECT, NB_CMD, TINY, esc, hub_binary, login, progress, \
    psql_super, uniq, wait_for

GIB = 1 << 30
RATIO = 0.1
PROFILES = {
    "cpu_reservation_ratio": RATIO,
    "images": {"tiny": {"image": TINY, "description": "fake notebook",
                        "cmd": NB_CMD + ["--no-browser"], "port": 8888}},
    "profiles": {"default": {
        "images": ["tiny"],
        "cpu": {"min": 0.1, "max": 1, "default": 0.1},
        "mem_gb": {"min": 0.1, "max": 1, "default": 0.25},
        "gpus": 3,
        "constraints": ["node.platform.os==linux"],
        "pools": {
            "cpu": ["node.labels.pool==cpu", "node.role==worker"],
            "gpu": {"constraints": ["node.labels.pool==gpu"],
                    "quota": {"servers": 3, "gpus": 3}}}}}}


class Api:
    """What hubtest.progress needs of a hub."""

    def __init__(self, hub):
        self.url = hub["url"]
        self.hub = hub

    def api(self, method, path, token=None, **kw):
        kw.setdefault("timeout", 30)
        return DIRECT.request(method, self.url + "/hub/api" + path,
                              headers={"Authorization": "token " +
                                       (token or self.hub["token"])}, **kw)


@pytest.fixture(scope="module")
def nodes_hub(swarm, tmp_path_factory):
    with hub_service(swarm, tmp_path_factory.mktemp("nodes"), PROFILES,
                     env=["SWARMHUB_RECONCILE_EVERY=2",
                          "SWARMHUB_GPU_RESOURCE=gpu"],
                     prefix="shn") as hub:
        yield hub


def hostname(swarm, i):
    st, n = swarm["engine"].call("GET", f"/nodes/{swarm['nodes'][i]}")
    return n["Description"]["Hostname"]


def request(hub, user, options):
    r = api(hub, "POST", f"/users/{user}", json={})
    assert r.status_code in (201, 409), (r.status_code, r.text)
    r = api(hub, "POST", f"/users/{user}/server", json=options)
    assert r.status_code in (201, 202), (r.status_code, r.text)


def start(hub, user, options, ready=True, requested=False):
    if not requested:
        request(hub, user, options)
    ev = progress(Api(hub), user, timeout=90, read_timeout=90)
    if ready:
        assert ev[-1].get("ready") is True, ev
    return ev


def nodes(hub):
    r = api(hub, "GET", "/swarmhub/nodes")
    assert r.status_code == 200, (r.status_code, r.text)
    return {n["hostname"]: n for n in r.json()["nodes"]}


def test_pools_place_servers_and_combine_constraints(swarm, nodes_hub):
    eng, hub = swarm["engine"], nodes_hub
    g, c = uniq("pg"), uniq("pc")
    request(hub, g, {"pool": "gpu"})
    request(hub, c, {"pool": "cpu"})
    start(hub, g, {}, requested=True)
    start(hub, c, {}, requested=True)
    host_g, _ = eng.node_of(f"{hub['run']}-{esc(g)}")
    host_c, _ = eng.node_of(f"{hub['run']}-{esc(c)}")
    assert host_g == hostname(swarm, -1), host_g
    assert host_c == hostname(swarm, 1), host_c
    st, svc = eng.call("GET", f"/services/{hub['run']}-{esc(g)}")
    assert svc["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.platform.os==linux", "node.labels.pool==gpu"], svc
    u = api(hub, "GET", f"/users/{g}").json()
    assert u["servers"][""]["user_options"]["pool"] == "gpu", u
    # what they reserve shows on their nodes
    ns = nodes(hub)
    for user, host in ((g, host_g), (c, host_c)):
        mine = [s for s in ns[host]["servers"] if s["user"] == user]
        assert len(mine) == 1, ns[host]
        assert mine[0]["service"] == f"{hub['run']}-{esc(user)}"
        assert mine[0]["state"] == "running", mine
        assert abs(mine[0]["cpus"] - 0.1 * RATIO) < 1e-9, mine
        assert mine[0]["mem_bytes"] == int(0.25 * GIB + 0.5), mine
    for host, n in ns.items():
        want = [s for s in n["servers"]]
        assert abs(n["reserved"]["cpus"] - sum(s["cpus"] for s in want)) \
            < 1e-9, n
        assert n["reserved"]["mem_bytes"] == sum(s["mem_bytes"]
                                                 for s in want), n
    for u in (g, c):
        assert api(hub, "DELETE", f"/users/{u}/server").status_code in \
            (202, 204)


@pytest.mark.parametrize("options, words", [
    ({"pool": "nope"}, ["pool 'nope'", "cpu, gpu"]),
    ({"pool": 3}, ["option 'pool' must be a string"]),
])
def test_bad_pool_is_refused_naming_the_allowed_ones(nodes_hub, options,
                                                     words):
    hub = nodes_hub
    u = uniq("bad")
    assert api(hub, "POST", f"/users/{u}", json={}).status_code == 201
    r = api(hub, "POST", f"/users/{u}/server", json=options)
    assert r.status_code == 400, (r.status_code, r.text)
    for w in words:
        assert w in r.json()["message"], r.json()


def test_nodes_api_matches_the_engine(swarm, nodes_hub):
    eng, hub = swarm["engine"], nodes_hub
    st, raw = eng.call("GET", "/nodes")
    ns = nodes(hub)
    assert len(ns) == len(raw) == 3, ns.keys()
    for n in raw:
        got = ns[n["Description"]["Hostname"]]
        res = n["Description"]["Resources"]
        assert got["id"] == n["ID"]
        assert got["role"] == n["Spec"]["Role"]
        assert got["availability"] == n["Spec"]["Availability"]
        assert got["labels"] == n["Spec"].get("Labels", {})
        assert got["cpus"] == res["NanoCPUs"] / 1e9, got
        assert got["mem_bytes"] == res["MemoryBytes"], got
        want_gpus = 2 if n["ID"] == swarm["nodes"][-1] else 0
        assert got["gpus"] == want_gpus, (got, res)
        assert set(got["reserved"]) == {"cpus", "mem_bytes", "gpus"}
    # admins only
    u = uniq("plain")
    assert api(hub, "POST", f"/users/{u}", json={}).status_code == 201
    tok = api(hub, "POST", f"/users/{u}/tokens", json={}).json()["token"]
    r = DIRECT.get(hub["url"] + "/hub/api/swarmhub/nodes",
                   headers={"Authorization": f"token {tok}"}, timeout=10)
    assert r.status_code == 403, (r.status_code, r.text)


def session_of(hub, admin):
    """A signed-in requests session of a new user (admin or not)."""
    name = uniq("adm" if admin else "plain")
    assert api(hub, "POST", f"/users/{name}", json={"admin": admin}) \
        .status_code == 201
    assert api(hub, "PATCH", f"/users/{name}",
               json={"password": "pw-" + name}).status_code == 200
    sess = requests.Session()
    sess.trust_env = False

    class H:
        url = hub["url"]
    _, r = login(H, name, "pw-" + name, session=sess)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    return sess


def ctl(hub, *args):
    env = dict(os.environ, SWARMHUB_URL=hub["url"],
               SWARMHUB_TOKEN=hub["token"], NO_PROXY="*", no_proxy="*")
    ctl_bin = os.path.join(os.path.dirname(hub_binary()), "swarmhubctl")
    return subprocess.run([ctl_bin, *args],
                          capture_output=True, text=True, timeout=30,
                          env=env)


def test_ctl_nodes_usage():
    r = subprocess.run([os.path.join(os.path.dirname(hub_binary()),
                                     "swarmhubctl"), "nodes", "--help"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(
        "usage: swarmhubctl nodes"), r
    r = subprocess.run([os.path.join(os.path.dirname(hub_binary()),
                                     "swarmhubctl"), "nodes", "extra"],
                       capture_output=True, text=True, timeout=10,
                       env={"SWARMHUB_TOKEN": "t"})
    assert r.returncode == 2, r


def test_ctl_nodes_and_page(swarm, nodes_hub):
    hub = nodes_hub
    g = uniq("pg")
    start(hub, g, {"pool": "gpu", "gpus": 1})
    gpu_host = hostname(swarm, -1)
    r = ctl(hub, "nodes")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:7] == ["HOSTNAME", "ROLE", "AVAILABILITY",
                                    "STATE", "CPUS", "MEM_GIB", "GPUS"], r
    row = [ln for ln in lines if ln.startswith(gpu_host + " ")]
    assert row, r.stdout
    cols = row[0].split()
    assert cols[1] == "worker" and cols[2] == "active", cols
    assert cols[6] == "1/2" and cols[9] == "1", cols  # GPUs and FREE_GPUS
    assert g in cols[10] and "pool=gpu" in cols[11], cols
    r = ctl(hub, "nodes", "--json")
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert {n["hostname"] for n in js["nodes"]} == set(nodes(hub))
    # the page, as an admin signed in with a password
    sess = session_of(hub, True)
    r = sess.get(hub["url"] + "/hub/admin", timeout=15)
    assert 'href="/hub/admin/nodes"' in r.text
    r = sess.get(hub["url"] + "/hub/admin/nodes", timeout=15)
    assert r.status_code == 200, r.text[:500]
    html = r.text
    for n in nodes(hub).values():
        assert f'data-node="{n["hostname"]}"' in html, n["hostname"]
    card = html.split(f'data-node="{gpu_host}"')[1].split("</section>")[0]
    assert card.count("<meter") == 3, card
    assert re.search(r'data-res="gpus"><th scope="row">GPUs</th><td '
                     r'class="total">2</td><td class="ours">1</td>', card), \
        card
    assert f'data-user="{g}"' in card, card
    assert 'id="node-actions"' in html
    # the registry's "pull images on every node" lives here, not on /hub/admin
    actions = html.split('id="node-actions"')[1].split('data-node=')[0]
    assert 'id="pull-images"' in actions, actions[:500]
    assert 'id="pull-images"' not in sess.get(hub["url"] + "/hub/admin",
                                              timeout=15).text
    # the spawn form offers the profile's pools; a bad one is marked
    r = sess.get(hub["url"] + "/hub/spawn", timeout=15)
    assert re.search(r'<select id="pool-0" name="pool"[^>]*><option value="">'
                     r'Any node of the profile</option><option value="cpu">'
                     r'cpu</option><option value="gpu">gpu</option>',
                     r.text), r.text[:3000]
    xsrf = re.search(r'name="_xsrf" value="([^"]*)"', r.text).group(1)
    r = sess.post(hub["url"] + "/hub/spawn", data={
        "_xsrf": xsrf, "profile": "default", "image": "tiny", "cpu": "0.1",
        "mem_gb": "0.25", "pool": "nope"}, allow_redirects=False,
        timeout=15)
    assert r.status_code == 400, (r.status_code, r.text[:500])
    err = re.search(r'id="pool-0-error">([^<]*)<', r.text)
    assert err and "nope" in err.group(1) and "is not available in " \
        "profile" in err.group(1) and "cpu, gpu" in err.group(1), \
        r.text[:3000]
    # not for others
    s2 = session_of(hub, False)
    assert s2.get(hub["url"] + "/hub/admin/nodes", timeout=15) \
        .status_code == 403
    assert api(hub, "DELETE", f"/users/{g}/server").status_code in (202, 204)
    # gone before the next test counts the group's GPUs
    wait_for(lambda: api(hub, "GET", f"/users/{g}").json().get("servers")
             == {}, 90, f"{g}'s GPU server stopped")


def test_gpus_env_and_fail_fast(swarm, nodes_hub):
    eng, hub = swarm["engine"], nodes_hub
    a, b = uniq("ga"), uniq("gb")
    start(hub, a, {"pool": "gpu", "gpus": 1})
    host, task = eng.node_of(f"{hub['run']}-{esc(a)}")
    assert host == hostname(swarm, -1), host
    st, svc = eng.call("GET", f"/services/{hub['run']}-{esc(a)}")
    gen = svc["Spec"]["TaskTemplate"]["Resources"]["Reservations"][
        "GenericResources"]
    assert gen == [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}], \
        gen
    # the container on the GPU worker sees what Swarm assigned it
    node = Engine("unix://" + node_socket(eng, len(swarm["nodes"]) - 1))
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    st, c = node.call("GET", f"/containers/{cid}/json")
    assert st == 200, c
    env = [e for e in c["Config"]["Env"] if e.startswith("DOCKER_RESOURCE_")]
    print("assigned:", env)
    assert env == ["DOCKER_RESOURCE_GPU=1"], env
    # the gpu pool's own quota for the group: 3 GPUs
    assert api(hub, "POST", f"/users/{b}", json={}).status_code == 201
    r = api(hub, "POST", f"/users/{b}/server", json={"pool": "gpu",
                                                     "gpus": 3})
    assert r.status_code == 403 and r.json()["message"] == (
        "your group's quota of 3 GPUs in pool 'gpu' is in use (1 used, 3 "
        "asked)"), (r.status_code, r.text)
    # 2 more GPUs: the GPU worker has 1 free; fails at once saying so
    t0 = time.monotonic()
    ev = start(hub, b, {"pool": "gpu", "gpus": 2}, ready=False)
    took = time.monotonic() - t0
    print(f"fail-fast took {took:.2f} s: {ev[-1]['message']}")
    assert ev[-1].get("failed") is True, ev
    assert f"no node has 2 free GPUs; node {host} has 1 free" in \
        ev[-1]["message"], ev
    assert took < 5, took
    st, _ = eng.call("GET", f"/services/{hub['run']}-{esc(b)}")
    assert st == 404, "the failed start left a service"
    # the cpu pool has no GPU at all
    ev = start(hub, b, {"pool": "cpu", "gpus": 1}, ready=False)
    assert "no node has 1 free GPU; node " in ev[-1]["message"], ev
    assert "has 0 free" in ev[-1]["message"], ev
    assert api(hub, "DELETE", f"/users/{a}/server").status_code in (202, 204)


def test_gpu_resource_names_the_kind(swarm, tmp_path):
    """GPU_RESOURCE=fpga: the nodes count no fpga, a GPU start asks for
    kind fpga and fails at once naming it."""
    with hub_service(swarm, tmp_path, PROFILES, prefix="shk",
                     env=["SWARMHUB_GPU_RESOURCE=fpga"]) as hub:
        ns = nodes(hub)
        assert all(n["gpus"] == 0 for n in ns.values()), ns
        u = uniq("fp")
        ev = start(hub, u, {"pool": "gpu", "gpus": 1}, ready=False)
        assert "no node has 1 free GPU (resource 'fpga'); node " in \
            ev[-1]["message"], ev


def test_drain_stops_servers_with_the_reason(swarm, nodes_hub):
    eng, hub = swarm["engine"], nodes_hub
    u = uniq("dr")
    start(hub, u, {"pool": "cpu"})
    host, _ = eng.node_of(f"{hub['run']}-{esc(u)}")
    nid = swarm["nodes"][1]
    assert host == hostname(swarm, 1)

    def set_availability(av):
        st, n = eng.call("GET", f"/nodes/{nid}")
        spec = dict(n["Spec"], Availability=av)
        st, v = eng.call("POST", f"/nodes/{nid}/update?version="
                         f"{n['Version']['Index']}", spec)
        assert st == 200, (st, v)

    set_availability("drain")
    try:
        assert nodes(hub)[host]["availability"] == "drain"
        wait_for(lambda: api(hub, "GET", f"/users/{u}").json()
                 .get("servers") == {}, 60,
                 f"{u}'s server reported stopped after the drain")
        why = psql_super("SELECT s.last_error FROM servers s JOIN users u "
                         f"ON u.id = s.user_id WHERE u.name = '{u}' AND "
                         "s.name = ''", db=hub["db"]).strip()
        print("reason:", why)
        assert f"node '{host}' was drained" in why, why
        # the page says the node is drained
        r = session_of(hub, True).get(hub["url"] + "/hub/admin/nodes",
                                      timeout=15)
        card = r.text.split(f'data-node="{host}"')[1].split("</section>")[0]
        assert "This node is drained" in card, card
        # a GPU-less start in the cpu pool now has no node: it waits
        # (no fail-fast without GPUs), a GPU start fails at once
        ev = start(hub, uniq("dg"), {"pool": "cpu", "gpus": 1}, ready=False)
        assert f"no node can take this server now ({host} is drain)" in \
            ev[-1]["message"], ev
    finally:
        set_availability("active")

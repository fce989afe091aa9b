"""
test_usage_nodes.py - CPU and memory used by servers on every node of the
3-node test swarm (the shared `swarm` fixture), through the usage agents.

The hub runs as in test_cluster.py (a service on the cluster's overlay,
clusterhub.hub_service) with USAGE_AGENTS=tasks.<agent service>:8001 and
USAGE_EVERY=2. The agent is this tree's bin/swarmhub run as `swarmhub
agent` in swarmhub/hub:latest, a global service (one task per node) on the
hub's overlay, as the stack runs it. The node daemons share the host's
filesystem, so "the node's own Docker socket" cannot be one path on every
node: clusterhub.usage_agent makes a directory of links, <node ID> -> that
node's socket, and gives the agent
SWARMHUB_DOCKER_HOST=unix:///run/agent-socks/{{.Node.ID}} (a Swarm service
template, expanded per task). The agent's
port is also published in host mode, so the host can ask each node's agent
directly at the node's bridge address.

Checks: one server on the manager and one on each worker show memory > 0
and a CPU figure (after two samples) on /hub/admin, on each owner's
/hub/home and in GET /hub/api/swarmhub/usage; a busy loop in the server on
a worker shows in its CPU figure; each node's agent answers, with the right key, exactly the
servers on its own node; without a key or with a wrong one (e.g. the
secret itself) it answers 401; with the agent gone from one worker, that
worker's server shows "no sample yet" while the others keep their figures.
"""
import hashlib
import hmac
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from clusterhub import AGENT_PORT, DEFAULT_PROFILES, Engine, agent_name, \
    free_host_port, hub_service, node_socket, usage_agent
from hubtest import esc, form_xsrf, uniq, wait_for

USED = r'<tr data-user="{}">.*?<td class="used">(.*?)</td>'
FIGURES = re.compile(r"^(\d+\.\d\d) CPU, (\d+(?:\.\d\d)?) (MiB|GiB)$")
HOME_FIGURES = re.compile(r'<dd id="used">(\d+\.\d\d) CPU, '
                          r'(\d+(?:\.\d\d)?) (MiB|GiB)</dd>')

def api(hub, method, path, **kw):
    """The hub's REST API over a fresh connection: a pooled one may have
    been closed by the edge's idle timeout while the test waited (a POST
    on it fails with RemoteDisconnected, and is not retried)."""
    with requests.Session() as s:
        s.trust_env = False
        return s.request(method, hub["url"] + "/hub/api" + path,
                         headers={"Authorization": f"token {hub['token']}"},
                         timeout=30, **kw)


def agent_key(secret):
    """What the hub sends: HMAC-SHA256 of a fixed context under SECRET."""
    return hmac.new(secret.encode(), b"swarmhub usage agent v1",
                    hashlib.sha256).hexdigest()


def profiles_per_node(nodes):
    tiny = DEFAULT_PROFILES["profiles"]["default"]
    p = {"cpu_reservation_ratio": 0.1,
         "images": DEFAULT_PROFILES["images"], "profiles": {}}
    for i, node in enumerate(nodes):
        p["profiles"]["default" if i == 0 else f"n{i}"] = dict(
            tiny, constraints=[f"node.id=={node}"])
    return p


@pytest.fixture(scope="module")
def usage_hub(swarm, tmp_path_factory):
    eng, nodes = swarm["engine"], swarm["nodes"]
    d = tmp_path_factory.mktemp("usage")
    agent = agent_name()
    users = [uniq("use") for _ in nodes]
    groups = {f"n{i}": [u] for i, u in enumerate(users) if i}
    env = [f"SWARMHUB_USAGE_AGENTS=tasks.{agent}:{AGENT_PORT}",
           "SWARMHUB_USAGE_EVERY=2"]
    (d / "hub").mkdir()
    with hub_service(swarm, d / "hub", profiles_per_node(nodes), env=env,
                     groups=groups) as hub:
        hub["eng"] = eng
        port = free_host_port()
        with usage_agent(swarm, hub, d, agent, port) as ag:
            addrs = {}
            for n in nodes:
                st, info = eng.call("GET", f"/nodes/{n}")
                addrs[n] = info["Status"]["Addr"]
            hub.update(secret=ag["secret"], agent=agent,
                       agent_spec=ag["spec"], agent_port=port, addrs=addrs,
                       users=users)
            yield hub


def agent_url(hub, node):
    return f"http://{hub['addrs'][node]}:{hub['agent_port']}/usage"


def ask_agent(hub, node, key):
    h = {"Authorization": f"token {key}"} if key else {}
    with requests.Session() as s:
        s.trust_env = False
        return s.get(agent_url(hub, node), headers=h, timeout=15)


def agent_status(hub, node):
    """The status of an unauthenticated request, None while unreachable."""
    try:
        return ask_agent(hub, node, None).status_code
    except requests.RequestException:
        return None


def agent_tasks(hub):
    return [(t["NodeID"], t["Status"]["State"], t["Status"].get("Err"))
            for t in hub["eng"].tasks(hub["agent"])]


def session(hub, user, password):
    s = requests.Session()
    s.trust_env = False
    r = s.get(hub["url"] + "/hub/login", timeout=15)
    assert r.status_code == 200, r.status_code
    r = s.post(hub["url"] + "/hub/login", allow_redirects=False, timeout=30,
               data={"username": user, "password": password,
                     "_xsrf": form_xsrf(r.text)})
    assert r.status_code == 302, (user, r.status_code, r.text[:500])
    return s


def set_password(hub, user, admin=False):
    pw = f"pw-{user}-{uuid.uuid4().hex[:8]}"
    body = {"password": pw, **({"admin": True} if admin else {})}
    r = api(hub, "PATCH", f"/users/{user}", json=body)
    assert r.status_code == 200, (r.status_code, r.text)
    return pw


def get_page(session, url):
    """GET with session's cookies over a fresh connection (see api)."""
    with requests.Session() as s:
        s.trust_env = False
        s.cookies.update(session.cookies)
        return s.get(url, timeout=15)


def used_cells(hub, admin):
    """{user: the text of the admin table's Used cell}."""
    r = get_page(admin, hub["url"] + "/hub/admin")
    assert r.status_code == 200, r.status_code
    out = {}
    for u in hub["users"]:
        m = re.search(USED.format(re.escape(u)), r.text, re.S)
        out[u] = m.group(1) if m else None
    return out


def spin(nodes, users, hub, i, seconds):
    """Keeps one CPU busy in users[i]'s container on node i for a while."""
    eng = hub["eng"]
    _, t = eng.node_of(f"{hub['run']}-{esc(users[i])}")
    node = Engine("unix://" + node_socket(eng, i))
    cid = t["Status"]["ContainerStatus"]["ContainerID"]
    st, v = node.call("POST", f"/containers/{cid}/exec", {
        "Cmd": ["timeout", str(seconds), "sh", "-c", "while :; do :; done"]})
    assert st == 201, (st, v)
    st, v = node.call("POST", f"/exec/{v['Id']}/start", {"Detach": True})
    assert st == 200, (st, v)


def api_usage(hub):
    """{user: (cpu, mem_bytes)} from GET /hub/api/swarmhub/usage."""
    r = api(hub, "GET", "/swarmhub/usage")
    assert r.status_code == 200, (r.status_code, r.text)
    v = r.json()
    assert v["source"] == "agents", v
    return {s["user"]: (s["cpu"], s["mem_bytes"]) for s in v["servers"]
            if s["user"] in hub["users"]}


def mib(m):
    return float(m.group(2)) * (1024 if m.group(3) == "GiB" else 1)


def test_usage_from_every_node(swarm, usage_hub):
    hub, eng, nodes = usage_hub, swarm["engine"], swarm["nodes"]
    users = hub["users"]
    # no key, a wrong key, the secret itself: refused by every node's agent
    try:
        wait_for(lambda: [agent_status(hub, n) for n in nodes], 60,
                 "every node's agent answering",
                 ok=lambda v: v == [401] * len(nodes))
    except AssertionError as e:
        raise AssertionError(f"{e}; agent tasks: {agent_tasks(hub)}")
    for n in nodes:
        for key in ("0" * 64, hub["secret"], agent_key(hub["secret"])[:-1]):
            r = ask_agent(hub, n, key)
            assert r.status_code == 401, (n, key[:8], r.status_code, r.text)
        with requests.Session() as s:
            s.trust_env = False
            r = s.post(agent_url(hub, n), timeout=15, headers={
                "Authorization": f"token {agent_key(hub['secret'])}"})
        assert r.status_code == 405, r.status_code
    # one server per node
    admin_name = uniq("useadm")
    assert api(hub, "POST", f"/users/{admin_name}", json={}).status_code \
        == 201
    admin = session(hub, admin_name, set_password(hub, admin_name, True))
    pws = {u: None for u in users}
    assert api(hub, "POST", f"/users/{users[0]}", json={}).status_code == 201
    for i, u in enumerate(users):
        pws[u] = set_password(hub, u)
        r = api(hub, "POST", f"/users/{u}/server", json={
            "profile": "default" if i == 0 else f"n{i}", "image": "tiny"})
        assert r.status_code in (201, 202), (r.status_code, r.text)
    for u in users:
        wait_for(lambda: api(hub, "GET", f"/users/{u}").json().get("server"),
                 90, f"{u}'s server ready")
    for i, u in enumerate(users):
        _, t = eng.node_of(f"{hub['run']}-{esc(u)}")
        assert t and t["NodeID"] == nodes[i], (u, t and t["NodeID"], i)
    # each agent reports exactly the servers on its own node
    key = agent_key(hub["secret"])
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(nodes)) as ex:
        answers = list(ex.map(lambda n: ask_agent(hub, n, key), nodes))
    print(f"{len(nodes)} agents asked at once: "
          f"{time.monotonic() - t0:.2f} s")
    for i, r in enumerate(answers):
        assert r.status_code == 200, (i, r.status_code, r.text)
        got = r.json()["containers"]
        assert [c["user"] for c in got] == [users[i]], (i, got)
        assert got[0]["mem_bytes"] > 0 and got[0]["cpu_ns"] > 0, got
    # the admin table: memory at once, CPU after the second sample
    cells = wait_for(lambda: (lambda c: c if all(
        v and FIGURES.match(v) for v in c.values()) else None)(
        used_cells(hub, admin)), 40, "CPU and memory for every server")
    print("admin Used cells:", cells)
    for u, v in cells.items():
        assert mib(FIGURES.match(v)) > 0, (u, v)
    figures = api_usage(hub)
    print("GET /hub/api/swarmhub/usage:", figures)
    assert sorted(figures) == sorted(users), figures
    for u, (cpu, mem) in figures.items():
        assert cpu is not None and cpu >= 0 and mem > 0, (u, cpu, mem)
    for u in users:
        s = session(hub, u, pws[u])
        home = get_page(s, hub["url"] + "/hub/home").text
        m = HOME_FIGURES.search(home)
        assert m and mib(m) > 0, (u, home[-1500:])
    # a busy loop in the server on worker 2 (limited to 0.1 CPU) shows
    assert all(float(FIGURES.match(v).group(1)) < 0.05
               for v in cells.values()), cells
    spin(nodes, users, hub, 2, 15)
    cells = wait_for(lambda: used_cells(hub, admin), 20,
                     f"{users[2]}'s busy loop in the table",
                     ok=lambda c: float(FIGURES.match(
                         c[users[2]]).group(1)) >= 0.05)
    print("admin Used cells, worker 2 busy:", cells)
    # the agent leaves worker 1: its server loses its figures, others not
    st, svc = eng.call("GET", f"/services/{hub['agent']}")
    spec = svc["Spec"]
    spec["TaskTemplate"]["Placement"] = {
        "Constraints": [f"node.id!={nodes[1]}"]}
    st, v = eng.call("POST", f"/services/{svc['ID']}/update?version="
                     f"{svc['Version']['Index']}", spec)
    assert st == 200, v
    cells = wait_for(lambda: (lambda c: c if c[users[1]] == "no sample yet"
                              else None)(used_cells(hub, admin)), 40,
                     f"no sample for {users[1]} once its agent is gone")
    print("admin Used cells, worker 1's agent gone:", cells)
    for u in (users[0], users[2]):
        assert FIGURES.match(cells[u]), (u, cells[u])
    figures = api_usage(hub)
    assert figures[users[1]] == (None, None), figures
    assert all(figures[u][1] > 0 for u in (users[0], users[2])), figures

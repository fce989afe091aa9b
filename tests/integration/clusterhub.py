"""
clusterhub.py - the multi-node test swarm (tests/services/cluster.sh) and
the hub run on it as users run it, for the cluster suites:

  with swarm_session(images) as swarm: ...      # {"engine", "nodes", ...}
  with hub_service(swarm, tmpdir, profiles, env=[...]) as hub: ...
  with usage_agent(swarm, hub, tmpdir, name) as agent: ...  # per-node agents

The hub runs as a service on the cluster's overlay network (CONNECT=dns),
pinned to the manager, its port published in host mode and reached at
SWARMHUB_TEST_MANAGER_ADDR; PostgreSQL is the test cluster on the host,
reached from the hub's container through a relay on the host's bridge
address. The hub container runs this tree's bin/swarmhub (bind-mounted over
the one in swarmhub/hub:latest, which gives the runtime libraries), so the
code under test is the code just built. SWARMHUB_CLUSTER_ID (cluster.sh)
selects a separate cluster.
"""
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from hubtest import DIRECT, hub_binary, NB_CMD, ROOT, TINY, Relay, UnixConn, \
    db_uri, drop_database, need_postgres, new_database, pg_port, psql_super, \
    wait_for

CLUSTER = str(ROOT / "tests" / "services" / "cluster.sh")
HUB_IMAGE = "swarmhub/hub:latest"
IMAGES = f"{HUB_IMAGE} {TINY}"


def cluster(*args, timeout=400, env=None):
    r = subprocess.run([CLUSTER, *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, f"cluster.sh {' '.join(args)}: {r.stderr}"
    return dict(line.split("=", 1) for line in r.stdout.split())


class Engine:
    """The manager's Engine API (v1.41) over its unix socket."""

    def __init__(self, host):
        assert host.startswith("unix://"), host
        self.sock = host[len("unix://"):]

    def call(self, method, path, body=None, timeout=30):
        c = UnixConn(self.sock, timeout)
        try:
            c.request(method, "/v1.41" + path,
                      body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw.decode(errors="replace")
        finally:
            c.close()

    def tasks(self, service):
        f = json.dumps({"service": [service]})
        st, v = self.call("GET", "/tasks?filters=" + urllib_quote(f))
        return v if st == 200 else []

    def node_of(self, service):
        """(hostname, task) of the service's running task, or (None, None)."""
        for t in self.tasks(service):
            if t["Status"]["State"] == "running" and \
                    t["DesiredState"] == "running":
                st, n = self.call("GET", f"/nodes/{t['NodeID']}")
                return n["Description"]["Hostname"], t
        return None, None


def urllib_quote(s):
    return urllib.parse.quote(s)


class BridgeRelay(Relay):
    """Relay listening on the host's bridge address (reachable from every
    node's containers through their default route)."""

    def __init__(self, target, host):
        super().__init__(target)
        self.host = host

    def start(self):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, 0))
        self.port = srv.getsockname()[1]
        srv.listen(64)
        srv.settimeout(0.2)
        self.srv = srv
        threading.Thread(target=self._accept, args=(srv,),
                         daemon=True).start()
        return self


@contextlib.contextmanager
def swarm_session(images=IMAGES, n=3):
    """A running n-node test swarm (cluster.sh start n; the images in
    `images` on every node), stopped at the end unless it was running
    before (or SWARMHUB_TEST_CLUSTER_KEEP=1: tests/run.sh owns it).
    SWARMHUB_CLUSTER_ID in the environment picks the cluster."""
    if os.geteuid() != 0:
        pytest.skip("cluster.sh needs root (network namespaces, dockerd)")
    need_postgres()
    was_running = subprocess.run([CLUSTER, "status"], capture_output=True,
                                 text=True).returncode == 0
    if subprocess.run(["docker", "image", "inspect", HUB_IMAGE],
                      capture_output=True).returncode != 0:
        r = subprocess.run(["docker", "build", "-q", "-f",
                            "images/hub/Dockerfile", "-t", HUB_IMAGE, "."],
                           cwd=ROOT, capture_output=True, text=True,
                           timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
    env = dict(os.environ, SWARMHUB_TEST_IMAGES=images)
    lines = cluster("start", str(n), env=env)
    eng = Engine(lines["SWARMHUB_TEST_DOCKER_HOST"])
    nodes = lines["SWARMHUB_TEST_NODES"].split(",")
    # a cluster that was running already may have a worker left dead by
    # an interrupted run, and may lack our images
    for i, node in enumerate(nodes[1:], 1):
        st, info = eng.call("GET", f"/nodes/{node}")
        if st == 200 and info["Status"]["State"] != "ready":
            cluster("revive-node", str(i), timeout=120)

    def load(more):
        """Copies these images (space-separated) from the main dockerd
        into every node that lacks them."""
        for i in range(n):
            sock = node_socket(eng, i)
            for img in more.split():
                r = subprocess.run(["docker", "-H", f"unix://{sock}",
                                    "image", "inspect", img],
                                   capture_output=True)
                if r.returncode != 0:
                    subprocess.run(f"docker save {img} | docker -H "
                                   f"unix://{sock} load -q", shell=True,
                                   check=True, timeout=300)

    load(images)
    try:
        yield {"engine": eng, "nodes": nodes, "lines": lines,
               "manager": lines["SWARMHUB_TEST_MANAGER_ADDR"], "load": load}
    finally:
        # tests/run.sh starts the cluster early and stops it itself
        if not was_running and \
                os.environ.get("SWARMHUB_TEST_CLUSTER_KEEP") != "1":
            cluster("stop", timeout=120)


DEFAULT_PROFILES = {
    "cpu_reservation_ratio": 0.1,
    "images": {"tiny": {"image": TINY, "description": "fake notebook",
                        "cmd": NB_CMD + ["--no-browser"], "port": 8888}},
    "profiles": {
        "default": {"images": ["tiny"],
                    "cpu": {"min": 0.1, "max": 1, "default": 0.1},
                    "mem_gb": {"min": 0.1, "max": 1, "default": 0.1},
                    "constraints": ["node.role==worker"]},
        "gpu": {"images": ["tiny"],
                "cpu": {"min": 0.1, "max": 1, "default": 0.1},
                "mem_gb": {"min": 0.1, "max": 1, "default": 0.1},
                "constraints": ["node.labels.pool==gpu"]}}}


@contextlib.contextmanager
def hub_service(swarm, d, profiles=None, env=(), mounts=(), groups=None,
                prefix="shc", subnet=None, container=None):
    """The hub as users run it: a service on the cluster's overlay, pinned
    to the manager, port published in host mode. d: a scratch directory;
    profiles: the profiles document (default DEFAULT_PROFILES); env: extra
    "SWARMHUB_X=v" strings; mounts: extra Engine API mounts; groups:
    {group: [user, ...]} local users created and put in the group (then the
    hub is restarted to read it); subnet: the users' network's subnet
    (default: Docker's, a /24 of about 250 addresses); container: more
    ContainerSpec fields (e.g. a Healthcheck). Yields a dict with url, token, run, net,
    service, spec, db, restart(), and users (all users made for groups)."""
    if b"__asan_init" in Path(hub_binary()).read_bytes():
        pytest.skip("the hub runs in swarmhub/hub:latest, which has no "
                    "AddressSanitizer runtime (make asan builds one)")
    eng = swarm["engine"]
    run = prefix + uuid.uuid4().hex[:8]
    net = run + "-users"
    st, v = eng.call("POST", "/networks/create", {
        "Name": net, "Driver": "overlay", "Attachable": True,
        "Labels": {"swarmhub.test": run},
        **({"IPAM": {"Config": [{"Subnet": subnet}]}} if subnet else {})})
    assert st == 201, v
    bridge = swarm["manager"].rsplit(".", 1)[0] + ".1"
    relay = BridgeRelay(("127.0.0.1", pg_port()), bridge).start()
    db = new_database()
    d = Path(d)
    d.chmod(0o755)
    profiles_file = d / "profiles.json"
    profiles_file.write_text(json.dumps(profiles or DEFAULT_PROFILES))
    profiles_file.chmod(0o644)
    token = uuid.uuid4().hex * 2
    port = free_host_port()
    spec = {
        "Name": run + "-hub",
        "Labels": {"swarmhub.test": run},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": HUB_IMAGE,
                "Env": env_merge([
                    "SWARMHUB_DB=" + db_uri(db).replace(
                        f"@127.0.0.1:{pg_port()}/",
                        f"@{bridge}:{relay.port}/"),
                    f"SWARMHUB_SECRET={uuid.uuid4().hex * 2}",
                    f"SWARMHUB_ADMIN_TOKEN={token}",
                    "SWARMHUB_AUTH=local",
                    "SWARMHUB_DB_WAIT=20",
                    f"SWARMHUB_NETWORK={net}",
                    "SWARMHUB_CONNECT=dns",
                    f"SWARMHUB_HUB_ID={run}",
                    f"SWARMHUB_SERVICE_NAME_TEMPLATE={run}-{{user}}",
                    "SWARMHUB_PROFILES=/etc/swarmhub/profiles.json",
                    "SWARMHUB_START_TIMEOUT=60",
                    "SWARMHUB_HTTP_TIMEOUT=60",
                ], env),
                "Mounts": [
                    {"Type": "bind", "Source": eng.sock,
                     "Target": "/var/run/docker.sock"},
                    {"Type": "bind", "Source": str(profiles_file),
                     "Target": "/etc/swarmhub/profiles.json",
                     "ReadOnly": True},
                    {"Type": "bind",
                     "Source": os.path.abspath(hub_binary()),
                     "Target": "/usr/local/bin/swarmhub", "ReadOnly": True},
                    *mounts,
                ],
                **(container or {})},
            "Placement": {"Constraints": ["node.role==manager"]},
            "RestartPolicy": {"Condition": "none"},
            "Networks": [{"Target": net}]},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [
            {"TargetPort": 8000, "PublishedPort": port, "Protocol": "tcp",
             "PublishMode": "host"}]},
    }
    st, v = eng.call("POST", "/services/create", spec)
    assert st == 201, v
    url = f"http://{swarm['manager']}:{port}"
    hub = {"url": url, "token": token, "run": run, "net": net,
           "service": run + "-hub", "spec": spec, "db": db}

    def healthy():
        try:
            return DIRECT.get(url + "/hub/health", timeout=2).status_code \
                == 200
        except Exception:
            return False

    def running_tasks():
        return {t["ID"] for t in eng.tasks(hub["service"])
                if t["Status"]["State"] == "running"}

    def restart():
        before = running_tasks()
        st, s = eng.call("GET", f"/services/{hub['service']}")
        st, v = eng.call(
            "POST", f"/services/{s['ID']}/update?version="
            f"{s['Version']['Index']}",
            dict(spec, TaskTemplate=dict(spec["TaskTemplate"],
                                         ForceUpdate=int(time.time()))))
        assert st == 200, v
        # the old task ends first (the port is published in host mode)
        wait_for(lambda: running_tasks() - before and healthy(), 90,
                 "the restarted hub's new task answering /hub/health")

    hub["restart"] = restart
    try:
        wait_for(healthy, 120, f"the hub service {hub['service']} at {url}"
                 f" (logs: docker -H unix://{eng.sock} service logs "
                 f"{hub['service']})")
        hub["users"] = []
        for group, users in (groups or {}).items():
            for u in users:
                r = api(hub, "POST", f"/users/{u}", json={})
                assert r.status_code == 201, (r.status_code, r.text)
                hub["users"].append(u)
            # local accounts get their groups from the database, which the
            # hub reads at start
            names = ",".join(f"'{u}'" for u in users)
            psql_super(f"INSERT INTO groups (name) VALUES ('{group}') ON "
                       "CONFLICT DO NOTHING", db=db)
            psql_super("INSERT INTO user_groups (user_id, group_id) SELECT "
                       f"u.id, g.id FROM users u, groups g WHERE g.name = "
                       f"'{group}' AND u.name IN ({names})", db=db)
        if groups:
            restart()
        yield hub
    finally:
        st, v = eng.call("GET", "/services?filters=" + urllib_quote(
            json.dumps({"label": [f"swarmhub.hub={run}"]})))
        for s in (v if st == 200 else []):
            eng.call("DELETE", f"/services/{s['ID']}")
        eng.call("DELETE", f"/services/{hub['service']}")
        for _ in range(60):
            if eng.call("DELETE", f"/networks/{net}")[0] in (204, 404):
                break
            time.sleep(1)
        relay.stop()
        drop_database(db)


def env_merge(base, more):
    """base's "K=v" strings with more's added; a key in more replaces
    base's (the container would otherwise see both)."""
    keys = {x.split("=", 1)[0] for x in more}
    return [x for x in base if x.split("=", 1)[0] not in keys] + list(more)


def free_host_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def api(hub, method, path, **kw):
    kw.setdefault("timeout", 30)
    return DIRECT.request(method, hub["url"] + "/hub/api" + path,
                          headers={"Authorization": f"token {hub['token']}"},
                          **kw)




def node_socket(eng, i):
    """Node i's Engine socket (0: the manager), beside the manager's."""
    return os.path.join(os.path.dirname(eng.sock), f"n{i}.sock")


# ---- the per-node usage agents (`swarmhub agent`, a global service) -------

AGENT_PORT = 8001


def agent_name(prefix="shcag"):
    """A fresh name for the agent service; the hub is told it before it
    starts: SWARMHUB_USAGE_AGENTS=tasks.<name>:AGENT_PORT."""
    return prefix + uuid.uuid4().hex[:8]


def hub_secret(hub):
    """SWARMHUB_SECRET of a hub_service (the agents' key derives from it)."""
    return next(e.split("=", 1)[1] for e in
                hub["spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
                if e.startswith("SWARMHUB_SECRET="))


def sock_links(eng, nodes, d):
    """d/<node ID> -> that node's Engine socket; the sockets' group. The
    node daemons share the host's filesystem, so "the node's own Docker
    socket" cannot be one path on every node: each agent task finds its
    own through this directory and the {{.Node.ID}} template."""
    d.mkdir()
    d.chmod(0o755)
    gid = None
    for i in range(len(nodes)):
        sock = node_socket(eng, i)
        st, info = Engine("unix://" + sock).call("GET", "/info")
        assert st == 200, (sock, info)
        os.symlink(sock, d / info["Swarm"]["NodeID"])
        gid = os.stat(sock).st_gid
    assert sorted(p.name for p in d.iterdir()) == sorted(nodes)
    return gid


def agent_spec(name, hub, secret, links, gid, port=None):
    """The agent as the stack runs it: this tree's bin/swarmhub as
    `swarmhub agent` in swarmhub/hub:latest, one task per node, on the
    hub's overlay. hub["eng"]: the manager's Engine; links: sock_links's
    directory; port: also published in host mode on every node (None:
    reached on the overlay only)."""
    sockdir = os.path.dirname(hub["eng"].sock)
    spec = {
        "Name": name,
        "Labels": {"swarmhub.test": hub["run"]},
        "Mode": {"Global": {}},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": HUB_IMAGE,
                "Args": ["swarmhub", "agent"],
                "Env": [
                    f"SWARMHUB_SECRET={secret}",
                    f"SWARMHUB_HUB_ID={hub['run']}",
                    f"SWARMHUB_AGENT_PORT={AGENT_PORT}",
                    "SWARMHUB_DOCKER_HOST=unix:///run/agent-socks/"
                    "{{.Node.ID}}",
                    # the entrypoint would stat the link, not the socket
                    f"SWARMHUB_DOCKER_GID={gid}",
                ],
                "HealthCheck": {"Test": ["NONE"]},
                "Mounts": [
                    {"Type": "bind", "Source": str(links),
                     "Target": "/run/agent-socks", "ReadOnly": True},
                    {"Type": "bind", "Source": sockdir, "Target": sockdir},
                    {"Type": "bind",
                     "Source": os.path.abspath(hub_binary()),
                     "Target": "/usr/local/bin/swarmhub", "ReadOnly": True},
                ]},
            "RestartPolicy": {"Condition": "any", "Delay": 1000000000},
            "Networks": [{"Target": hub["net"]}]},
        "EndpointSpec": {"Mode": "dnsrr"},
    }
    if port is not None:
        spec["EndpointSpec"]["Ports"] = [
            {"TargetPort": AGENT_PORT, "PublishedPort": port,
             "Protocol": "tcp", "PublishMode": "host"}]
    return spec


@contextlib.contextmanager
def usage_agent(swarm, hub, d, name, port=None):
    """Runs the agent service `name` (agent_spec) for a hub_service whose
    env had SWARMHUB_USAGE_AGENTS=tasks.<name>:AGENT_PORT; d: a scratch
    directory (the socket links go in d/socks). Yields {"name", "spec",
    "secret", "port"}; removes the service at the end."""
    eng = swarm["engine"]
    hub.setdefault("eng", eng)
    secret = hub_secret(hub)
    gid = sock_links(eng, swarm["nodes"], Path(d) / "socks")
    spec = agent_spec(name, hub, secret, Path(d) / "socks", gid, port)
    st, v = eng.call("POST", "/services/create", spec)
    assert st == 201, v
    try:
        yield {"name": name, "spec": spec, "secret": secret, "port": port}
    finally:
        eng.call("DELETE", f"/services/{name}")

"""
test_stack_cluster.py - `make up` on a manager of the 3-node test swarm
(the session `swarm` fixture, tests/services/cluster.sh), as an operator
runs it against a cluster: DOCKER_HOST and SWARMHUB_DOCKER_SOCKET name the
test manager's Engine API, the images are already on the nodes
(SWARMHUB_BUILD=0), the database is pinned to a worker by a node label
(SWARMHUB_DB_NODE_LABEL, a name of this run's own), homes are a directory
of the host (SWARMHUB_HOME; the node daemons share the host's filesystem,
as nodes share an NFS mount at one path) and SWARMHUB_SERVERS_ON_MANAGERS=
false keeps user servers off the manager.

Checks: up.sh comes back healthy through nginx (published in host mode on
the manager, reached at its bridge address); hub and nginx run on the
manager, the database on the labelled worker (its volume there); the
users' network has the stack's subnet; the printed admin logs in through
nginx, starts a server, which lands on a worker with node.role==worker in
its constraints, is reached through nginx and the hub's proxy over the
overlay, and writes into its home, which the hub made in the host
directory (owner 1000:100); scripts/down.sh --purge removes it all.

Test only: the hub service runs this tree's bin/swarmhub and image
entrypoint, bind-mounted over those of swarmhub/hub:latest by an extra
compose file (SWARMHUB_COMPOSE_EXTRA), so the code under test is the code
just built (as in clusterhub.hub_service).
"""
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from clusterhub import free_host_port, node_socket
from hubtest import NB_CMD, ROOT, TINY, form_xsrf, hub_binary, \
    wait_for

NGINX, POSTGRES = "swarmhub/nginx:latest", "swarmhub/postgres:15"


def ensure_image(tag, context):
    """Builds tag from images/<context> on the main dockerd when missing
    (tests/run.sh builds them in the background; up.sh would otherwise)."""
    if subprocess.run(["docker", "image", "inspect", tag],
                      capture_output=True).returncode != 0:
        r = subprocess.run(["docker", "build", "-q", "-t", tag,
                            f"images/{context}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]


def load_into(sock, images):
    """Copies images from the main dockerd into one node lacking them."""
    for img in images:
        if subprocess.run(["docker", "-H", f"unix://{sock}", "image",
                           "inspect", img], capture_output=True
                          ).returncode != 0:
            subprocess.run(f"docker save {img} | docker -H unix://{sock} "
                           "load -q", shell=True, check=True, timeout=300,
                           capture_output=True)


def docker(sock, *args, check=True):
    r = subprocess.run(["docker", "-H", f"unix://{sock}", *args],
                       capture_output=True, text=True, timeout=60)
    assert not check or r.returncode == 0, (args, r.stderr)
    return r.stdout.strip()


def node_of_task(sock, service):
    """Hostname of the node running the service's task, or ''."""
    return docker(sock, "service", "ps", "-f", "desired-state=running",
                  "--format", "{{.Node}} {{.CurrentState}}", service,
                  check=False).split(" ")[0] if service else ""


@pytest.fixture(scope="module")
def stack(swarm):
    if b"__asan_init" in Path(hub_binary()).read_bytes():
        pytest.skip("the hub runs in swarmhub/hub:latest, which has no "
                    "AddressSanitizer runtime")
    eng, nodes = swarm["engine"], swarm["nodes"]
    mgr = eng.sock
    run = "stk" + uuid.uuid4().hex[:8]
    label = f"swarmhub.db-{run}"
    work = Path(f"/var/tmp/swarmhub-{run}")
    homes = work / "homes"
    homes.mkdir(parents=True)
    work.chmod(0o755)
    homes.chmod(0o755)
    # nginx on the manager, PostgreSQL on the worker that keeps the data
    ensure_image(NGINX, "nginx")
    ensure_image(POSTGRES, "postgres")
    load_into(node_socket(eng, 0), [NGINX])
    load_into(node_socket(eng, 1), [POSTGRES])
    docker(mgr, "node", "update", "--label-add", f"{label}=true", nodes[1])
    db_host = docker(mgr, "node", "inspect", "-f",
                     "{{.Description.Hostname}}", nodes[1])
    (work / "swarmhub.env").write_text(f"""\
SWARMHUB_TRUSTED_PROXIES=*
SWARMHUB_DB_WAIT=120
SWARMHUB_AUTH=local
SWARMHUB_HUB_ID={run}
SWARMHUB_SERVICE_NAME_TEMPLATE={run}-{{user}}
SWARMHUB_HOME={homes}
SWARMHUB_SERVERS_ON_MANAGERS=false
SWARMHUB_START_TIMEOUT=60
SWARMHUB_HTTP_TIMEOUT=60
""")
    (work / "profiles.json").write_text(json.dumps({
        "cpu_reservation_ratio": 0.1,
        "images": {"tiny": {"image": TINY, "description": "fake notebook",
                            "cmd": NB_CMD + ["--no-browser"],
                            "port": 8888}},
        "profiles": {"default": {
            "images": ["tiny"], "cpu": {"min": 0.1, "max": 1, "default": 0.1},
            "mem_gb": {"min": 0.1, "max": 1, "default": 0.1}}}}))
    (work / "this-tree.yml").write_text(f"""\
version: "3.8"
services:
  hub:
    volumes:
      - {{type: bind, source: {hub_binary()}, target: /usr/local/bin/swarmhub, read_only: true}}
      - {{type: bind, source: {ROOT}/images/hub/entrypoint.sh, target: /usr/local/bin/swarmhub-entrypoint, read_only: true}}
""")
    https = free_host_port()
    env = dict(os.environ, DOCKER_HOST=f"unix://{mgr}",
               SWARMHUB_DOCKER_SOCKET=mgr, SWARMHUB_BUILD="0",
               SWARMHUB_STACK=run, SWARMHUB_NETWORK_NAME=run + "-users",
               SWARMHUB_ENV_FILE=str(work / "swarmhub.env"),
               SWARMHUB_PROFILES_FILE=str(work / "profiles.json"),
               SWARMHUB_SECRETS_DIR=str(work / "secrets"),
               SWARMHUB_COMPOSE_EXTRA=str(work / "this-tree.yml"),
               SWARMHUB_DB_NODE_LABEL=label,
               SWARMHUB_HTTPS_PORT=str(https),
               SWARMHUB_HTTP_PORT=str(free_host_port()),
               SWARMHUB_UP_TIMEOUT="300")
    for k in ("SWARMHUB_HUB_PORT", "SWARMHUB_PROXY_REPLICAS",
              "SWARMHUB_USERS_SUBNET", "SWARMHUB_UP_ADDR"):
        env.pop(k, None)
    st = {"run": run, "env": env, "work": work, "homes": homes,
          "mgr": mgr, "db_host": db_host, "label": label,
          "url": f"https://{swarm['manager']}:{https}", "down": None}
    try:
        t0 = time.monotonic()
        r = subprocess.run(["make", "--no-print-directory", "up"], cwd=ROOT,
                           env=env, capture_output=True, text=True,
                           timeout=400)
        st["up_s"] = time.monotonic() - t0
        st["up_log"] = r.stderr
        out = os.environ.get("SWARMHUB_TEST_OUT")
        if out:
            Path(out, f"stack-cluster-up-{run}.log").write_text(r.stderr)
        assert r.returncode == 0, r.stderr[-3000:]
        yield st
    finally:
        if st["down"] is None:
            subprocess.run([str(ROOT / "scripts" / "down.sh"), "--purge"],
                           cwd=ROOT, env=env, capture_output=True,
                           timeout=200)
        # the database's volume stays on its worker (down.sh says so)
        wsock = node_socket(eng, 1)
        for _ in range(30):
            if docker(wsock, "volume", "ls", "-q", "-f",
                      f"name={run}_db-data", check=False) == "" or \
                    subprocess.run(["docker", "-H", f"unix://{wsock}",
                                    "volume", "rm", f"{run}_db-data"],
                                   capture_output=True).returncode == 0:
                break
            time.sleep(1)
        docker(mgr, "node", "update", "--label-rm", label, nodes[1],
               check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_make_up_on_a_cluster(swarm, stack):
    mgr, run = stack["mgr"], stack["run"]
    manager_host = docker(mgr, "info", "-f", "{{.Name}}")
    # placement: hub and nginx on the manager, db on the labelled worker
    assert node_of_task(mgr, f"{run}_hub") == manager_host
    assert node_of_task(mgr, f"{run}_proxy") == manager_host
    assert node_of_task(mgr, f"{run}_db") == stack["db_host"]
    assert docker(mgr, "service", "inspect", "-f",
                  "{{json .Spec.TaskTemplate.Placement.Constraints}}",
                  f"{run}_db") == \
        json.dumps([f"node.labels.{stack['label']} == true"])
    wsock = node_socket(swarm["engine"], 1)
    assert docker(wsock, "volume", "ls", "-q", "-f",
                  f"name={run}_db-data") == f"{run}_db-data"
    # the hub got the manager's socket, and its users' network the
    # stack's subnet
    mounts = json.loads(docker(mgr, "service", "inspect", "-f",
                               "{{json .Spec.TaskTemplate.ContainerSpec"
                               ".Mounts}}", f"{run}_hub"))
    assert {"Type": "bind", "Source": mgr,
            "Target": "/var/run/docker.sock"} in mounts, mounts
    assert any(m["Source"] == str(stack["homes"]) ==
               m["Target"] for m in mounts), mounts
    assert docker(mgr, "network", "inspect", "-f",
                  "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                  f"{run}-users") == "10.250.0.0/20"

    # the printed admin logs in through nginx and starts a server
    m = re.search(r"created the local admin account: admin / (\S+)",
                  stack["up_log"])
    assert m, stack["up_log"][-2000:]
    url = stack["url"]
    assert f"{url}/hub/login" in stack["up_log"], stack["up_log"][-1000:]
    s = requests.Session()
    s.trust_env = False
    s.verify = False
    r = s.get(url + "/hub/login", timeout=15)
    assert r.status_code == 200, r.status_code
    r = s.post(url + "/hub/login", data={
        "username": "admin", "password": m.group(1),
        "_xsrf": form_xsrf(r.text)}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    r = s.post(url + "/hub/api/users/admin/server", json={"image": "tiny"},
               headers={"X-XSRFToken": s.cookies.get("_xsrf")}, timeout=30)
    assert r.status_code in (201, 202), (r.status_code, r.text)
    wait_for(lambda: s.get(url + "/hub/api/user", timeout=10).json()
             .get("server"), 90, "admin's server ready")

    # on a worker, kept off the manager by SERVERS_ON_MANAGERS=false
    svc = f"{run}-admin"
    host = node_of_task(mgr, svc)
    assert host.startswith("shc-worker"), host
    assert "node.role==worker" in docker(
        mgr, "service", "inspect", "-f",
        "{{json .Spec.TaskTemplate.Placement.Constraints}}", svc)
    # reached through nginx and the hub, over the overlay to the worker
    r = s.get(url + "/user/admin/api/status", timeout=20,
              allow_redirects=False)
    assert r.status_code == 200 and "kernels" in r.json(), \
        (r.status_code, r.text[:300])
    # its home: the directory the hub made in SWARMHUB_HOME, bind-mounted
    # from the same path on the worker
    r = s.get(url + "/user/admin/write?name=from-worker.txt", timeout=20)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    home = stack["homes"] / "admin"
    st = home.stat()
    assert (st.st_uid, st.st_gid) == (1000, 100), (st.st_uid, st.st_gid)
    assert (home / "from-worker.txt").read_text().startswith(
        "written by fake_notebook")

    # make down: the servers, the stack and its network go
    t0 = time.monotonic()
    r = subprocess.run([str(ROOT / "scripts" / "down.sh"), "--purge"],
                       cwd=ROOT, env=stack["env"], capture_output=True,
                       text=True, timeout=200)
    stack["down"] = r.returncode
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"is on node {stack['db_host']}" in r.stderr, r.stderr[-1000:]
    print(f"make up {stack['up_s']:.0f} s, down.sh "
          f"{time.monotonic() - t0:.0f} s")
    assert docker(mgr, "service", "ls", "-q", "-f",
                  f"label=com.docker.stack.namespace={run}") == ""
    assert docker(mgr, "service", "ls", "-q", "-f",
                  f"label=swarmhub.hub={run}") == ""
    assert docker(mgr, "network", "ls", "-q", "-f",
                  f"name={run}-users") == ""

"""
test_registry.py - images from a private registry on the multi-node test
swarm: Debian's docker-registry (swarmhub/test-registry) with htpasswd
(bcrypt) and TLS from a CA made here, trusted by every node daemon through
/etc/docker/certs.d/<host:port>/ca.crt (the node daemons share the host's
/etc; the directory is unique to this run and removed at the end). The
registry runs on the main dockerd, published on the host's address on the
cluster bridge, which every node reaches.

The image pushed is made here: FROM scratch, busybox (from the registry
image) serving a page with this run's marker, about 2 MB, pushed with the
credentials through the Engine API. No node has it before.

The test swarm's daemons run only images they have (cluster.sh starts them
with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1, as no public registry is
reachable here): this module restarts worker 1 as a node that pulls
(cluster.sh revive-node with SWARMHUB_CLUSTER_PULL=1), places the
registry profile's servers there, and puts it back at its end. The manager
and worker 2 keep not pulling, so "images pull" reports an error for them,
which the test checks too (the registry has the image: the node could not
pull it).

Checks: a hub without REGISTRY_AUTH fails the start saying "unauthorized"
and images pull reports it per node; a hub with REGISTRY_AUTH_FILE (the
config.json a secret would hold) starts the server on a worker that
pulls it (the page answers through the hub with the marker), a missing tag
says "not found", images pull reports every node ok, doctor names a node
that lacks the image; bad REGISTRY_AUTH stops the hub at start naming the
setting.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from clusterhub import DEFAULT_PROFILES, Engine, api, cluster, \
    hub_service, node_socket
from hubtest import DIRECT, ROOT, db_uri, drop_database, esc, \
    free_port, new_database, need_postgres, psql_super, uniq, wait_for

REG_IMAGE = "swarmhub/test-registry:latest"
USER, PASSWORD = "puller", "pull-" + uuid.uuid4().hex[:12]
CERTS_D = Path("/etc/docker/certs.d")


def sh(*args, timeout=120, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True,
                       timeout=timeout, **kw)
    assert r.returncode == 0, (args, r.stdout[-1000:], r.stderr[-1000:])
    return r.stdout


def registry_auth_header(host):
    raw = json.dumps({"username": USER, "password": PASSWORD,
                      "serveraddress": host}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def make_certs(d, ip):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
       "2", "-subj", "/CN=swarmhub test registry CA", "-keyout",
       str(d / "ca.key"), "-out", str(d / "ca.crt"))
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
       f"/CN={ip}", "-keyout", str(d / "certs" / "registry.key"), "-out",
       str(d / "reg.csr"))
    (d / "ext.cnf").write_text(f"subjectAltName=IP:{ip}\n")
    sh("openssl", "x509", "-req", "-in", str(d / "reg.csr"), "-CA",
       str(d / "ca.crt"), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
       "-days", "2", "-extfile", str(d / "ext.cnf"), "-out",
       str(d / "certs" / "registry.crt"))


def free_port_on(ip):
    s = socket.socket()
    s.bind((ip, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def build_web_image(d, ref, marker):
    ctx = d / "web"
    (ctx / "www").mkdir(parents=True)
    (ctx / "www" / "index.html").write_text(f"<p>{marker}</p>\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {REG_IMAGE} AS b\nFROM scratch\n"
        "COPY --from=b /bin/busybox /bin/busybox\nCOPY www /www\n")
    sh("docker", "build", "-q", "-t", ref, str(ctx), timeout=300)


def restart_worker1(env=None):
    cluster("kill-node", "1", timeout=60)
    try:
        cluster("revive-node", "1", timeout=150, env=env)
    except AssertionError:	# seen once: containerd slow to start again
        cluster("revive-node", "1", timeout=150, env=env)


@pytest.fixture(scope="module")
def pulling_worker(swarm):
    """Worker 1 restarted as a node that pulls (put back at the end)."""
    restart_worker1(dict(os.environ, SWARMHUB_CLUSTER_PULL="1"))
    try:
        yield "shc-worker1"
    finally:
        restart_worker1()


@pytest.fixture(scope="module")
def registry(swarm, pulling_worker, tmp_path_factory):
    """The registry with one pushed image; yields host, ref, marker."""
    if subprocess.run(["docker", "image", "inspect", REG_IMAGE],
                      capture_output=True).returncode != 0:
        sh("docker", "build", "-q", "-t", REG_IMAGE,
           str(ROOT / "images" / "test-registry"), timeout=900)
    d = tmp_path_factory.mktemp("registry")
    d.chmod(0o755)
    (d / "certs").mkdir()
    (d / "auth").mkdir()
    ip = swarm["manager"].rsplit(".", 1)[0] + ".1"
    make_certs(d, ip)
    (d / "auth" / "htpasswd").write_text(sh(
        "docker", "run", "--rm", "--entrypoint", "htpasswd", REG_IMAGE,
        "-Bbn", USER, PASSWORD))
    for f in list((d / "certs").iterdir()) + [d / "auth" / "htpasswd"]:
        f.chmod(0o644)
    port = free_port_on(ip)
    host = f"{ip}:{port}"
    run = "shr" + uuid.uuid4().hex[:8]
    trust = CERTS_D / host
    trust.mkdir(parents=True)
    shutil.copy(d / "ca.crt", trust / "ca.crt")
    name = run + "-registry"
    ref = f"{host}/{run}/web:1"
    try:
        sh("docker", "run", "-d", "--name", name, "--label",
           "swarmhub.test=" + run, "-p", f"{host}:5000", "-v",
           f"{d}/certs:/certs:ro", "-v", f"{d}/auth:/auth:ro", REG_IMAGE)
        wait_for(lambda: subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             "--noproxy", "*", "--cacert", str(d / "ca.crt"),
             f"https://{host}/v2/"], capture_output=True,
            text=True).stdout == "401", 30, "the registry answering 401")
        marker = "marker-" + uuid.uuid4().hex
        build_web_image(d, ref, marker)
        out = subprocess.run(
            ["curl", "-s", "--unix-socket", "/var/run/docker.sock", "-X",
             "POST", "-H", "X-Registry-Auth: " + registry_auth_header(host),
             f"http://localhost/v1.41/images/{host}/{run}/web/push?tag=1"],
            capture_output=True, text=True, timeout=120).stdout
        assert '"Digest"' in out, out[-800:]
        yield {"host": host, "ref": ref, "marker": marker, "run": run,
               "dir": d}
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)
        for i in range(len(swarm["nodes"])):
            sock = node_socket(swarm["engine"], i)
            subprocess.run(["docker", "-H", f"unix://{sock}", "rmi", "-f",
                            ref], capture_output=True)
        shutil.rmtree(trust, ignore_errors=True)


def profiles(reg):
    web = {"image": reg["ref"], "kind": "web", "trust_network": True,
           "prefix": "strip", "ready_path": "/", "port": 8888,
           "cmd": ["/bin/busybox", "httpd", "-f", "-p", "8888", "-h",
                   "/www"]}
    p = json.loads(json.dumps(DEFAULT_PROFILES))
    p["images"]["web"] = web
    p["images"]["web404"] = dict(web, image=reg["ref"].replace(":1",
                                                                ":404"))
    p["profiles"]["default"]["images"] = ["web", "web404"]
    p["profiles"]["default"]["constraints"] = ["node.hostname==shc-worker1"]
    p["profiles"].pop("gpu")
    return p


def node_has(swarm, ref):
    """{hostname: bool} for every node: an image tagged ref, or pulled as
    ref's repository @digest."""
    repo = ref.rsplit(":", 1)[0]
    out = {}
    for i in range(len(swarm["nodes"])):
        e = Engine("unix://" + node_socket(swarm["engine"], i))
        name = e.call("GET", "/info")[1]["Name"]
        imgs = e.call("GET", "/images/json?digests=1")[1]
        out[name] = any(ref in (im.get("RepoTags") or []) or any(
            d.startswith(repo + "@") for d in im.get("RepoDigests") or [])
            for im in imgs)
    return out


def start(hub, user, image):
    r = api(hub, "POST", f"/users/{user}", json={})
    assert r.status_code == 201, (r.status_code, r.text)
    r = api(hub, "POST", f"/users/{user}/server",
            json={"profile": "default", "image": image})
    assert r.status_code in (201, 202), (r.status_code, r.text)


def progress_messages(hub, user, timeout=90):
    """The messages of the start's progress stream (replayed from its
    beginning) until ready or failed."""
    r = api(hub, "GET", f"/users/{user}/server/progress", stream=True,
            timeout=timeout)
    assert r.status_code == 200, (r.status_code, r.text)
    out = []
    try:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                ev = json.loads(line[5:])
                out.append(ev.get("message", ""))
                if ev.get("ready") or ev.get("failed"):
                    break
    finally:
        r.close()
    return out


def outcome(hub, user, timeout=90):
    """Waits until the start ends: (ready, last_error)."""
    def done():
        u = api(hub, "GET", f"/users/{user}").json()
        s = u.get("servers", {}).get("")
        if s and s.get("ready"):
            return "ready"
        if not s or not s.get("pending"):
            return "failed"
        return None
    state = wait_for(done, timeout, f"{user}'s start to end")
    why = psql_super(
        "SELECT s.last_error FROM servers s JOIN users u ON u.id = "
        f"s.user_id WHERE u.name = '{user}' AND s.name = ''",
        db=hub["db"]).strip()
    return state == "ready", why


def ctl(hub, *args):
    env = dict(os.environ, SWARMHUB_URL=hub["url"],
               SWARMHUB_TOKEN=hub["token"])
    bindir = os.environ.get("SWARMHUB_BIN_DIR", str(ROOT / "bin"))
    return subprocess.run([os.path.join(bindir, "swarmhubctl"), *args],
                          capture_output=True, text=True, env=env,
                          timeout=300)


def test_without_credentials_unauthorized(swarm, registry, tmp_path):
    with hub_service(swarm, tmp_path, profiles(registry)) as hub:
        u = uniq("noauth")
        start(hub, u, "web")
        ready, why = outcome(hub, u)
        print("reason:", why)
        assert not ready
        assert why.startswith("unauthorized:") or \
            "unauthorized:" in why, why
        assert registry["ref"] in why and "no credentials" in why, why
        r = ctl(hub, "--json", "images", "pull", "web")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        ans = json.loads(r.stdout)
        nodes = ans["images"][0]["nodes"]
        assert len(nodes) == 3, nodes
        for n in nodes:
            assert n["status"] == "error", n
            assert "unauthorized" in n["message"], n
        assert not any(node_has(swarm, registry["ref"]).values())


@pytest.fixture(scope="module")
def auth_hub(swarm, registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("regauth")
    d.chmod(0o755)
    cfg = d / "config.json"
    cred = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    cfg.write_text(json.dumps({"auths": {registry["host"]: {"auth": cred}}}))
    cfg.chmod(0o644)
    with hub_service(swarm, d, profiles(registry), env=[
            "SWARMHUB_REGISTRY_AUTH_FILE=/run/secrets/registry_auth"],
            mounts=[{"Type": "bind", "Source": str(cfg),
                     "Target": "/run/secrets/registry_auth",
                     "ReadOnly": True}]) as hub:
        yield hub


def test_pulled_with_credentials_on_a_worker(swarm, registry, auth_hub):
    hub = auth_hub
    assert not any(node_has(swarm, registry["ref"]).values())
    u = uniq("pull")
    start(hub, u, "web")
    said = progress_messages(hub, u)
    ready, why = outcome(hub, u)
    assert ready, why
    print("progress:", said)
    assert f"Pulling {registry['ref']} on node shc-worker1" in said, said
    host, task = swarm["engine"].node_of(f"{hub['run']}-{esc(u)}")
    assert host == "shc-worker1", host
    image = task["Spec"]["ContainerSpec"]["Image"]
    assert image.startswith(registry["ref"] + "@sha256:"), image
    assert node_has(swarm, registry["ref"])[host]
    r = DIRECT.get(f"{hub['url']}/user/{u}/", timeout=20,
                   headers={"Authorization": "token " + api(
                       hub, "POST", f"/users/{u}/tokens",
                       json={}).json()["token"]})
    assert r.status_code == 200 and registry["marker"] in r.text, \
        (r.status_code, r.text[:300])
    # the service spec keeps no credential (Swarm holds them apart)
    svc = swarm["engine"].call("GET", f"/services/{hub['run']}-{esc(u)}")[1]
    assert PASSWORD not in json.dumps(svc)
    api(hub, "DELETE", f"/users/{u}/server")


def test_missing_tag_not_found(swarm, registry, auth_hub):
    u = uniq("nf")
    start(auth_hub, u, "web404")
    ready, why = outcome(auth_hub, u)
    print("reason:", why)
    assert not ready
    assert "not found" in why and registry["ref"].replace(":1", ":404") \
        in why, why


def test_images_pull_and_doctor(swarm, registry, auth_hub):
    hub = auth_hub
    r = ctl(hub, "images", "pull", "web")
    print(r.stdout)
    # only worker 1 pulls on the test swarm (see the top): exit 1
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    rows = {ln.split()[1]: ln for ln in r.stdout.splitlines()[1:]
            if ln.startswith(registry["ref"])}
    assert sorted(rows) == ["shc-manager", "shc-worker1", "shc-worker2"], \
        r.stdout
    for h, ln in rows.items():
        want = " ok" if h == "shc-worker1" else " error "
        assert want in ln, ln
        if h != "shc-worker1":
            assert "though the registry has it" in ln, ln
    has = node_has(swarm, registry["ref"])
    assert has == {"shc-manager": False, "shc-worker1": True,
                   "shc-worker2": False}, has
    # the manager gets the image as an operator would load it
    sock = node_socket(swarm["engine"], 0)
    subprocess.run(f"docker save {registry['ref']} | docker -H unix://{sock}"
                   " load -q", shell=True, check=True, timeout=120,
                   capture_output=True)
    has = node_has(swarm, registry["ref"])
    assert has["shc-manager"], has
    # worker 2 never got it: doctor names it (and no other node)
    victim = "shc-worker2"
    r = ctl(hub, "--json", "doctor")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    print(checks.get("images"))
    assert r.returncode == 1, r.stdout
    img = checks["images"]
    assert img["ok"] is False, img
    assert f"{victim} lacks {registry['ref']}" in img["detail"], img
    assert "images pull" in img["fix"], img
    others = [h for h in has if h != victim]
    assert not any(h + " " in img["detail"] for h in others), img


def test_bad_registry_auth_refused_at_start():
    need_postgres()
    db = new_database()
    try:
        for text, words in [
                ('{"auths": {"r:5000": {"auth": "x', ["not JSON"]),
                ('{"auths": {"": {"auth": "YTpi"}}}', ["no registry host"]),
                ('{"auths": {"r:5000": {}}}', ['auths."r:5000"'])]:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("SWARMHUB_")}
            env.update({"SWARMHUB_DB": db_uri(db),
                        "SWARMHUB_SECRET": uuid.uuid4().hex * 2,
                        "SWARMHUB_LISTEN": f"127.0.0.1:{free_port()}",
                        "SWARMHUB_NETWORK": "swarmhub-test",
                        "SWARMHUB_DB_WAIT": "5",
                        "SWARMHUB_REGISTRY_AUTH": text})
            bindir = os.environ.get("SWARMHUB_BIN_DIR", str(ROOT / "bin"))
            r = subprocess.run([os.path.join(bindir, "swarmhub")], env=env,
                               capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 1, (r.returncode, r.stderr[-500:])
            assert "SWARMHUB_REGISTRY_AUTH" in r.stderr, r.stderr[-500:]
            for w in words:
                assert w in r.stderr, r.stderr[-500:]
    finally:
        drop_database(db)

"""
test_run_dev.py - `make run` (scripts/run-dev.sh) on this machine's swarm:
it sets up spawning (network, image, local homes, CONNECT=gwbridge), the
printed admin can start a real Jupyter server that answers through the hub,
and `run-dev.sh --clean` removes what the setup made and nothing else (the
shared swarm and the test network stay). Own run directory, network name,
hub id and port, so it runs beside other tests and other hubs.
"""
import os
import subprocess
import time
from pathlib import Path

import requests

from hubtest import REAL, ROOT, PID, chromium, docker, filters, free_port, \
    login_ok, need_docker, out_dir, shot, tok, wait, wait_for, NET


def run_env(run_dir, port, ident):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    env.update(SWARMHUB_RUN_DIR=str(run_dir),
               SWARMHUB_LISTEN=f"127.0.0.1:{port}",
               SWARMHUB_RUN_NETWORK=ident, SWARMHUB_HUB_ID=ident)
    return env


def health(url):
    try:
        return requests.get(url + "/hub/health", timeout=2).status_code
    except requests.RequestException as e:
        return type(e).__name__


class Site:
    """What login_ok needs: the hub's url."""
    def __init__(self, url):
        self.url = url


def browser_start(url, password, ident):
    from selenium.webdriver.common.by import By
    with chromium(out_dir() / f"run-dev-{ident}-chromedriver.log") as d:
        d.get(url + "/hub/login")
        d.find_element(By.ID, "username").send_keys("admin")
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(d, lambda x: x.find_elements(By.ID, "start"))
        assert not d.find_elements(By.ID, "no-home"), "make run has homes"
        shot(d, "home", f"run-dev-{ident}")
        d.find_element(By.ID, "start").click()
        wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, "form.spawn"))
        d.find_element(By.CSS_SELECTOR,
                       "form.spawn button[type=submit]").click()
        wait(d, lambda x: "/user/admin/tree" in x.current_url and
             x.find_elements(By.ID, "notebook_list"), timeout=180)
        shot(d, "notebook-tree", f"run-dev-{ident}")


def services(ident):
    st, v = docker("GET", "/services?filters=" +
                   filters(label=[f"swarmhub.hub={ident}"]))
    assert st == 200, (st, v)
    return v


def test_make_run_spawns_and_cleans_up():
    need_docker(images=(REAL,))
    ident = f"shrun{PID}"
    run_dir = Path(f"/var/tmp/swarmhub-{ident}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = run_env(run_dir, port, ident)
    log = out_dir() / f"run-dev-{ident}.log"
    t0 = time.monotonic()
    with open(log, "wb") as f:
        proc = subprocess.Popen([str(ROOT / "scripts/run-dev.sh")], env=env,
                                stdout=f, stderr=subprocess.STDOUT,
                                cwd=ROOT)
    try:
        wait_for(lambda: proc.poll() is None and health(url), 120,
                 "make run's hub to answer", ok=lambda v: v == 200)
        said = log.read_text()
        assert proc.poll() is None, said
        assert f"network {ident}" in said and "homes in" in said, said
        assert "make run-clean" in said, said
        assert "spawning is off" not in said, said
        st, net = docker("GET", f"/networks/{ident}")
        assert st == 200 and net["Attachable"] and net["Driver"] == "overlay"
        password = (run_dir / "admin-password").read_text().strip()
        assert f"password '{password}'" in said, said
        token = (run_dir / "admin-token").read_text().strip()

        # the newcomer's path in a browser: sign in as admin, Start, submit
        # the form, the notebook's tree
        browser_start(url, password, ident)
        took = time.monotonic() - t0

        def ready():
            m = requests.get(url + "/hub/api/users/admin", headers=tok(token),
                             timeout=10).json()
            return (m.get("servers") or {}).get("", {}).get("ready")
        assert ready(), "the browser shows the tree but the server is not ready"
        s = login_ok(Site(url), "admin", password)
        r = s.get(url + "/user/admin/api/status", timeout=20)
        assert r.status_code == 200 and "started" in r.json(), \
            (r.status_code, r.text[:500])
        r = s.get(url + "/user/admin/tree", timeout=20)
        assert r.status_code == 200 and "Jupyter" in r.text, r.status_code
        (out_dir() / f"run-dev-{ident}-timing.txt").write_text(
            f"make run (scripts/run-dev.sh, images cached) to the notebook's "
            f"tree in the browser: {took:.1f} s\n")
        print(f"run-dev to a running notebook: {took:.1f} s")

        svc = services(ident)
        assert len(svc) == 1, svc
        mounts = svc[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
        assert mounts[0]["Source"] == str(run_dir / "homes" / "admin"), mounts
        assert (run_dir / "homes" / "admin").is_dir()
    finally:
        out = subprocess.run([str(ROOT / "scripts/run-dev.sh"), "--clean"],
                             env=env, capture_output=True, text=True,
                             timeout=180, cwd=ROOT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert out.returncode == 0, out.stderr
    assert proc.returncode == 0, f"the hub exited {proc.returncode}"
    assert services(ident) == [], out.stderr
    st, _ = docker("GET", f"/networks/{ident}")
    assert st == 404, f"network {ident} left behind: {out.stderr}"
    assert not run_dir.exists(), out.stderr
    # shared state stays: the swarm, the test network, the notebook image
    st, info = docker("GET", "/info")
    assert info["Swarm"]["LocalNodeState"] == "active"
    assert docker("GET", f"/networks/{NET()}")[0] == 200
    assert docker("GET", f"/images/{REAL}/json")[0] == 200
    assert "left the swarm" not in out.stderr and "stopped dockerd" \
        not in out.stderr, out.stderr


def test_make_run_without_docker_says_spawning_is_off():
    """SWARMHUB_RUN_DOCKER=0: the hub starts, says why nobody can start a
    server, and the home page says it too."""
    need_docker()
    ident = f"shrunoff{PID}"
    run_dir = Path(f"/var/tmp/swarmhub-{ident}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = run_env(run_dir, port, ident)
    env["SWARMHUB_RUN_DOCKER"] = "0"
    log = out_dir() / f"run-dev-{ident}.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([str(ROOT / "scripts/run-dev.sh")], env=env,
                                stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: proc.poll() is None and health(url), 120,
                 "make run's hub to answer", ok=lambda v: v == 200)
        said = log.read_text()
        assert "spawning is off (SWARMHUB_RUN_DOCKER=0)" in said, said
        password = (run_dir / "admin-password").read_text().strip()
        s = login_ok(Site(url), "admin", password)
        home = s.get(url + "/hub/home", timeout=10).text
        assert "Starting servers is not set up" in home, home[:3000]
        assert 'id="start"' not in home
    finally:
        out = subprocess.run([str(ROOT / "scripts/run-dev.sh"), "--clean"],
                             env=env, capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        proc.wait(timeout=20)
    assert out.returncode == 0, out.stderr
    assert "nothing to undo" in out.stderr, out.stderr
    assert docker("GET", f"/networks/{ident}")[0] == 404
    assert not run_dir.exists()

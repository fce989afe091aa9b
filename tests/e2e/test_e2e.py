"""
test_e2e.py - the whole mission against a deployed stack (tests/e2e/run.sh
deploys it and sets the environment below). The steps run in file order and
share one headless Chromium; each keeps a screenshot $SWARMHUB_TEST_OUT/e2e-*.png.

Everything goes to 127.0.0.1 through nginx over TLS (E2E_HTTPS_URL): the
browser, the kernel WebSocket and the admin calls with the admin token (the
hub's own port is not published by default). Files are checked in the
exported directory on this host (E2E_EXPORT), which nfs-ganesha serves to
the hub.

Environment: E2E_HTTPS_URL, E2E_CA (the self-signed
certificate), E2E_ADMIN_TOKEN_FILE, E2E_EXPORT, SWARMHUB_STACK,
SWARMHUB_TEST_OUT; the culler runs with CULL_TIMEOUT=30, CULL_EVERY=5.
"""
import json
import os
import re
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from hubtest import chromium, jmsg, shot, wait_for  # noqa: E402

HTTPS = os.environ.get("E2E_HTTPS_URL", "")
CA = os.environ.get("E2E_CA", "")
EXPORT = Path(os.environ.get("E2E_EXPORT", "/nonexistent"))
STACK = os.environ.get("SWARMHUB_STACK", "")
OUT = Path(os.environ.get("SWARMHUB_TEST_OUT") or "/tmp")
CULL_TIMEOUT = 30
CULL_EVERY = 5
NB = "e2e.ipynb"
NOPROXY = {"http": None, "https": None}

if not HTTPS:
    pytest.skip("run through tests/e2e/run.sh (E2E_HTTPS_URL unset)",
                allow_module_level=True)

ADMIN = Path(os.environ["E2E_ADMIN_TOKEN_FILE"]).read_text().strip()
S = {}   # state shared by the steps


def admin(method, path, **kw):
    kw.setdefault("timeout", 30)
    return requests.request(method, HTTPS + "/hub/api" + path,
                            proxies=NOPROXY, verify=CA,
                            headers={"Authorization": f"token {ADMIN}"}, **kw)


def user_model(name):
    r = admin("GET", f"/users/{name}")
    return r.json() if r.status_code == 200 else None


def hub_container():
    return subprocess.run(
        ["docker", "ps", "-q", "--filter",
         f"label=com.docker.swarm.service.name={STACK}_hub"],
        capture_output=True, text=True, check=True).stdout.split()[0]


def user_service(name):
    r = subprocess.run(["docker", "service", "ls", "--filter",
                        f"label=swarmhub.hub={STACK}", "--filter",
                        f"label=swarmhub.user={name}", "--format",
                        "{{.ID}} {{.Name}}"],
                       capture_output=True, text=True, check=True)
    return r.stdout.split()


# ---- the browser ------------------------------------------------------------

@pytest.fixture(scope="module")
def d():
    with chromium(OUT / "e2e-chromedriver.log", page_load_timeout=60,
                  args=("--ignore-certificate-errors",)) as drv:
        yield drv


def by(kind):
    from selenium.webdriver.common.by import By
    return getattr(By, kind)


def wait_page(d, cond, timeout=30, what="page", reload_url=None,
              refresh_every=None):
    """Waits for cond(d). Chromium aborts a load with ERR_NETWORK_CHANGED
    when Docker adds or removes a service's interfaces on this host; then
    reload_url is opened (a GET: refreshing the result of a form would post
    it again), or, without one, the page is refreshed. It aborts a page's
    own requests (XHR) the same way, and nothing shows it: with
    refresh_every, the page is refreshed that often until cond holds."""
    deadline = time.monotonic() + timeout
    next_refresh = time.monotonic() + (refresh_every or timeout)
    while time.monotonic() < deadline:
        try:
            if cond(d):
                return
        except Exception:
            pass
        if "ERR_NETWORK_CHANGED" in body_text(d):
            try:
                if reload_url:
                    d.get(reload_url)
                else:
                    d.refresh()
            except Exception:
                pass
        elif refresh_every and time.monotonic() >= next_refresh:
            next_refresh = time.monotonic() + refresh_every
            try:
                d.refresh()
            except Exception:
                pass
        time.sleep(0.25)
    shot(d, "failed-" + re.sub(r"\W+", "-", what), "e2e", OUT)
    pytest.fail(f"browser: {what} not reached in {timeout} s; at "
                f"{d.current_url}: {body_text(d)[:500]!r}", pytrace=False)


def loaded(d):
    return d.execute_script("return document.readyState") == "complete"


def body_text(d):
    try:
        return d.execute_script("return document.body ? "
                                "document.body.innerText : ''") or ""
    except Exception:
        return ""


def shows_42(d):
    return re.search(r"print\(6\*7\)\s*\n\s*42\b", body_text(d)) is not None


def get_until(d, url, cond, timeout, what, every=6):
    """Opens url and waits for cond; opens it again every `every` s (a
    person would press reload: Chromium aborts a load with
    ERR_NETWORK_CHANGED when Docker adds or removes interfaces)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            d.get(url)
        except Exception:
            pass
        t = time.monotonic() + every
        while time.monotonic() < min(t, deadline):
            if cond(d):
                return
            time.sleep(0.3)
        if time.monotonic() >= deadline:
            shot(d, "failed-" + re.sub(r"\W+", "-", what), "e2e", OUT)
            pytest.fail(f"browser: {what} not reached in {timeout} s; at "
                        f"{d.current_url}: {body_text(d)[:500]!r}",
                        pytrace=False)


def sign_in_tls(d, user, password):
    d.delete_all_cookies()
    d.get(HTTPS + "/hub/login")
    d.find_element(by("ID"), "username").send_keys(user)
    d.find_element(by("ID"), "password").send_keys(password)
    d.find_element(by("CSS_SELECTOR"), "button[type=submit]").click()
    wait_page(d, lambda x: "/hub/login" not in x.current_url and loaded(x),
              what=f"{user} signed in", reload_url=HTTPS + "/hub/home")


def browser_session(d):
    """A requests session with the browser's cookies (through nginx)."""
    s = requests.Session()
    s.trust_env = False     # REQUESTS_CA_BUNDLE would replace verify
    s.verify = CA
    for c in d.get_cookies():
        s.cookies.set(c["name"], c["value"])
    return s


def spawn_from_form(d, what):
    """On /hub/spawn: the real notebook image, 1 CPU, 1 GiB; submit; the
    progress page; then the notebook's tree."""
    d.get(HTTPS + "/hub/spawn")
    wait_page(d, loaded, what="spawn form")
    radios = [r for r in d.find_elements(by("CSS_SELECTOR"),
                                         "input[type=radio]")
              if r.get_attribute("value") == "notebook"
              and "image" in (r.get_attribute("name") or "")]
    assert radios, "no image choice 'notebook' on the spawn form: " + \
        d.page_source[:2000]
    d.execute_script("arguments[0].click()", radios[0])
    for field, value in (("cpu", "1"), ("mem_gb", "1")):
        els = [e for e in d.find_elements(by("CSS_SELECTOR"),
                                          f"input[name={field}]")
               if e.is_displayed() and e.is_enabled()]
        assert els, f"no {field} field on the spawn form"
        els[0].clear()
        els[0].send_keys(value)
    shot(d, f"{what}-spawn-form", "e2e", OUT)
    d.find_element(by("CSS_SELECTOR"), "form.spawn button[type=submit]").click()
    wait_page(d, lambda x: "/hub/spawn-pending/" in x.current_url
              or "/user/alice/" in x.current_url, timeout=30,
              what="progress page",
              reload_url=HTTPS + "/hub/spawn-pending/alice")
    if "/hub/spawn-pending/" in d.current_url:
        time.sleep(0.5)
        shot(d, f"{what}-progress", "e2e", OUT)
    wait_page(d, lambda x: "/user/alice/tree" in x.current_url and loaded(x),
              timeout=150, what="the notebook's tree after the progress page",
              reload_url=HTTPS + "/hub/spawn-pending/alice")
    time.sleep(1)
    shot(d, f"{what}-notebook-tree", "e2e", OUT)


# ---- the kernel over WebSocket through nginx ----------------------------------

def run_cell(s, kernel_id, code):
    import ssl
    import websocket
    session = uuid.uuid4().hex
    ws_url = HTTPS.replace("https://", "wss://") + \
        f"/user/alice/api/kernels/{kernel_id}/channels?session_id={session}"
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    ws = websocket.create_connection(
        ws_url, header=[f"Cookie: {cookie}"], origin=HTTPS, timeout=60,
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": CA},
        http_proxy_host=None, http_no_proxy=["127.0.0.1"])
    try:
        req = jmsg("execute_request",
                   {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False}, session,
                   username="alice")
        ws.send(json.dumps(req))
        outputs, count = [], None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = json.loads(ws.recv())
            if m["parent_header"].get("msg_id") != req["header"]["msg_id"]:
                continue
            if m["msg_type"] == "stream":
                outputs.append({"output_type": "stream",
                                "name": m["content"]["name"],
                                "text": m["content"]["text"]})
            elif m["msg_type"] == "execute_input":
                count = m["content"]["execution_count"]
            elif m["msg_type"] == "status" and \
                    m["content"]["execution_state"] == "idle":
                break
        return outputs, count
    finally:
        ws.close()


# ---- the steps ----------------------------------------------------------------------

def test_01_alice_logs_in_over_tls(d):
    # a fresh stack has no alice; a re-run against a kept one may have her
    # server still running: stop it so that the form shows
    if (user_model("alice") or {}).get("server"):
        admin("DELETE", "/users/alice/server")
        wait_for(lambda: not user_service("alice") and not (
            user_model("alice") or {}).get("pending") and not (
            user_model("alice") or {}).get("server"), 60, "old server gone",
            interval=0.5)
    sign_in_tls(d, "alice", "alicepw")
    assert d.current_url.startswith(HTTPS + "/hub/"), d.current_url
    shot(d, "01-alice-home", "e2e", OUT)
    S["cookies"] = {c["name"]: c for c in d.get_cookies()}
    assert "swarmhub-session" in S["cookies"], S["cookies"]


def test_01b_session_cookie_is_secure_behind_tls():
    c = S["cookies"]["swarmhub-session"]
    assert c.get("secure"), c


def test_02_spawn_form_progress_notebook(d):
    spawn_from_form(d, "02")
    m = user_model("alice")
    opts = m["servers"][""]["user_options"]
    assert opts.get("image") == "notebook" and float(opts["cpu"]) == 1 \
        and float(opts["mem_gb"]) == 1, opts
    sid, name = user_service("alice")
    spec = json.loads(subprocess.run(
        ["docker", "service", "inspect", sid], capture_output=True,
        text=True, check=True).stdout)[0]["Spec"]
    lim = spec["TaskTemplate"]["Resources"]["Limits"]
    assert lim["NanoCPUs"] == 1_000_000_000, lim
    assert lim["MemoryBytes"] == 2 ** 30, lim     # mem_gb is GiB
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"].startswith(
        "swarmhub/notebook:latest"), spec["TaskTemplate"]["ContainerSpec"]
    S["service"] = sid


def test_03_notebook_runs_print_6x7_and_saves(d):
    s = browser_session(d)
    base = HTTPS + "/user/alice/api"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3",
                       "language": "python"}},
          "cells": [{"cell_type": "code", "id": "c42", "metadata": {},
                     "source": "print(6*7)", "outputs": [],
                     "execution_count": None}]}
    r = s.put(f"{base}/contents/{NB}", json={"type": "notebook",
                                              "content": nb}, timeout=30)
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    r = s.post(f"{base}/sessions", json={"path": NB, "name": NB,
                                         "type": "notebook",
                                         "kernel": {"name": "python3"}},
               timeout=60)
    assert r.status_code == 201, (r.status_code, r.text[:300])
    kid = r.json()["kernel"]["id"]
    outputs, count = run_cell(s, kid, "print(6*7)")
    assert outputs == [{"output_type": "stream", "name": "stdout",
                        "text": "42\n"}], outputs
    nb["cells"][0]["outputs"] = outputs
    nb["cells"][0]["execution_count"] = count
    r = s.put(f"{base}/contents/{NB}", json={"type": "notebook",
                                              "content": nb}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    get_until(d, HTTPS + f"/user/alice/notebooks/{NB}", shows_42, 60,
              "the saved notebook showing 42")
    time.sleep(1)
    shot(d, "03-notebook-42", "e2e", OUT)


def test_04_ipynb_on_nfs_with_uid_and_mode():
    home = EXPORT / "alice"
    f = home / NB
    st_home, st_f = home.stat(), f.stat()
    assert (st_home.st_uid, st_home.st_gid) == (1000, 100), st_home
    assert stat.S_IMODE(st_home.st_mode) == 0o700, oct(st_home.st_mode)
    assert (st_f.st_uid, st_f.st_gid) == (1000, 100), st_f
    assert stat.S_IMODE(st_f.st_mode) == 0o644, oct(st_f.st_mode)
    cells = json.loads(f.read_text())["cells"]
    text = cells[0]["outputs"][0]["text"]
    text = "".join(text) if isinstance(text, list) else text
    assert text == "42\n", cells
    # the hub sees the same directory over NFS
    r = admin("GET", "/swarmhub/doctor")
    homes = [c for c in r.json()["checks"] if c["name"] == "homes"]
    assert homes and homes[0]["ok"], r.json()


def test_05_bob_cannot_open_alices_server(d):
    sign_in_tls(d, "bob", "bobpw")
    d.get(HTTPS + "/user/alice/")
    wait_page(d, loaded, what="bob at /user/alice/")
    shot(d, "05-bob-refused", "e2e", OUT)
    s = browser_session(d)
    for path in ("/user/alice/", f"/user/alice/api/contents/{NB}"):
        r = s.get(HTTPS + path, allow_redirects=False, timeout=30)
        assert r.status_code == 403, (path, r.status_code, r.text[:200])
    assert "42" not in d.page_source


def test_06_alice_stops_and_starts_and_finds_notebook(d):
    sign_in_tls(d, "alice", "alicepw")
    d.get(HTTPS + "/hub/home")
    wait_page(d, lambda x: x.find_elements(by("ID"), "stop"),
              what="home with a Stop button")
    shot(d, "06-home-running", "e2e", OUT)
    d.find_element(by("ID"), "stop").click()
    wait_for(lambda: (user_model("alice") or {}).get("server") is None
             and not (user_model("alice") or {}).get("pending"),
             60, "alice's server to stop", interval=0.5)
    wait_for(lambda: not user_service("alice"), 60, "her service to go",
             interval=0.5)
    d.get(HTTPS + "/hub/home")
    wait_page(d, lambda x: x.find_elements(by("ID"), "start"),
              what="home with a Start button")
    assert d.find_element(by("ID"), "state").text.strip().lower() == \
        "stopped"
    shot(d, "06-home-stopped", "e2e", OUT)
    d.find_element(by("ID"), "start").click()
    wait_page(d, lambda x: "/hub/spawn" in x.current_url and loaded(x),
              what="spawn form from Start")
    spawn_from_form(d, "06")
    # the listing is the tree page's own request (see wait_page)
    wait_page(d, lambda x: NB in x.page_source, timeout=30,
              what="e2e.ipynb listed in the tree", refresh_every=8)
    shot(d, "06-tree-has-notebook", "e2e", OUT)
    S["service"] = user_service("alice")[0]


def test_07_hub_restart_adopts_running_server(d):
    before = hub_container()
    subprocess.run(["docker", "service", "update", "--force", "--detach",
                    f"{STACK}_hub"], check=True, capture_output=True,
                   timeout=60)
    t0 = time.monotonic()

    def healthy():
        try:
            c = hub_container()
        except Exception:
            return False
        if c == before:
            return False
        try:
            return requests.get(HTTPS + "/hub/health", proxies=NOPROXY,
                                verify=CA, timeout=2).status_code == 200
        except requests.RequestException:
            return False
    wait_for(healthy, 120, "the new hub task to be healthy", interval=0.5)
    S["hub_restart_s"] = round(time.monotonic() - t0, 1)
    (OUT / "e2e-hub-restart.txt").write_text(
        f"hub restart to healthy: {S['hub_restart_s']} s\n")
    m = user_model("alice")
    assert m["servers"].get("", {}).get("ready"), m
    assert user_service("alice")[0] == S["service"], "service was replaced"
    # nginx resolves the new task by name within a few seconds; until then
    # it answers 503 "the hub is restarting" (reloading itself)
    get_until(d, HTTPS + f"/user/alice/notebooks/{NB}", shows_42, 90,
              "the notebook after the hub restart")
    time.sleep(1)
    shot(d, "07-notebook-after-hub-restart", "e2e", OUT)


def leave_notebook(d):
    """Leaves a Notebook 6 page for the home page. The page marks itself
    dirty once its kernel connects, and its beforeunload handler would keep
    the browser (and the kernel WebSocket, which counts as browser
    activity) on it."""
    try:
        d.execute_script(
            "try { if (window.Jupyter && Jupyter.notebook) {"
            " Jupyter.notebook.set_dirty(false);"
            " if (Jupyter.notebook.kernel) {"
            "  Jupyter.notebook.kernel.stop_channels(); } } } catch (e) {}"
            " window.onbeforeunload = null;")
    except Exception:
        pass
    d.get(HTTPS + "/hub/home")
    try:
        d.switch_to.alert.accept()
    except Exception:
        pass
    wait_page(d, lambda x: x.current_url.startswith(HTTPS + "/hub/home")
              and loaded(x), what="home, away from the notebook")


def test_08_idle_server_is_culled_and_home_says_why(d):
    leave_notebook(d)   # no notebook page polling any more
    t0 = time.monotonic()
    wait_for(lambda: (user_model("alice") or {}).get("server") is None
             and not user_service("alice"),
             CULL_TIMEOUT + CULL_EVERY + 90, "the culler to stop alice's server",
             interval=1)
    S["culled_after_s"] = round(time.monotonic() - t0, 1)
    d.get(HTTPS + "/hub/home")
    wait_page(d, lambda x: x.find_elements(by("ID"), "last-error"),
              what="home with the reason")
    why = d.find_element(by("ID"), "last-error").text
    shot(d, "08-home-culled", "e2e", OUT)
    assert "idle" in why.lower(), why


def test_09_cleanup_removes_alice_and_archives_home():
    c = hub_container()
    help_ = subprocess.run(["docker", "exec", c, "swarmhubctl", "--help"],
                           capture_output=True, text=True).stdout
    if re.search(r"^\s+cleanup\b", help_, re.M):
        r = subprocess.run(
            ["docker", "exec", c, "sh", "-c",
             "SWARMHUB_TOKEN=$(cat /run/secrets/admin_token) "
             "exec swarmhubctl cleanup alice --home archive --yes"],
            capture_output=True, text=True, timeout=60)
        (OUT / "e2e-cleanup.txt").write_text(r.stdout + r.stderr)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    else:
        # swarmhubctl cleanup is not in this build: its REST equivalents
        (OUT / "e2e-cleanup.txt").write_text(
            "swarmhubctl has no cleanup command; used DELETE "
            "/hub/api/users/alice + POST /hub/api/swarmhub/homes/alice\n")
        r = admin("DELETE", "/users/alice")
        assert r.status_code == 204, (r.status_code, r.text)
        r = admin("POST", "/swarmhub/homes/alice", json={"action": "archive"})
        assert r.status_code == 200, (r.status_code, r.text)
    assert user_model("alice") is None
    assert not (EXPORT / "alice").exists()
    arch = list((EXPORT / ".archive").glob("alice*"))
    assert arch, list(EXPORT.rglob("*"))[:20]
    assert any((a / NB).exists() or list(a.rglob(NB)) for a in arch), arch

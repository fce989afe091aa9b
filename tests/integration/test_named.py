"""
test_named.py - named servers against real services: the hub on the host
(SWARMHUB_CONNECT=gwbridge), the one-node swarm, the homes on the test
export, PostgreSQL. A user's default server ("") and named ones, each its
own service, token and route /user/<name>/<server>/; JupyterHub's REST API
for them; NAMED_SERVER_LIMIT_PER_USER and the profile quotas; the hub's own
culler and jupyterhub-idle-culler's requests (--cull-named-servers is what
it does with every server in the "servers" dict, --remove-named-servers the
{"remove": true} body) replayed; adoption across a hub restart; default_url.

Servers run swarmhub/test-notebook:latest (the fake notebook: echo-headers
shows which server answered and with which token). Hubs run with
SWARMHUB_HUB_ID=n<pid>; every service with that label is removed after
each test.
"""
import datetime
import json
import time
import urllib.parse

import pytest

from hubtest import (DIRECT, NB_CMD, NFS_DIR, PID, TINY, docker, limits,
                     need_docker, our_services, remove_homes, remove_services,
                     swarm_env, tok, uniq, wait_for, write_profiles)

HUB_ID = f"n{PID}"


def esc(s):
    return "".join(c if ("a" <= c <= "z" or "0" <= c <= "9") else
                   "-%02x" % ord(c) for c in s)


@pytest.fixture(scope="module")
def named_dir(tmp_path_factory):
    need_docker(nfs=True, images=(TINY,))
    d = tmp_path_factory.mktemp("named")
    images = {
        "tiny": {"image": TINY, "description": "fake notebook",
                 "cmd": NB_CMD, "port": 8888},
        "treeish": {"image": TINY, "description": "opens at /tree",
                    "cmd": NB_CMD, "port": 8888, "default_url": "/tree"},
    }
    common = limits(cpu=(0.1, 1, 0.2), mem_gb=(0.1, 4, 0.25))
    write_profiles(d / "profiles.json", images, {
        "default": {"images": ["tiny", "treeish"], **common}})
    write_profiles(d / "quota.json", images, {
        "default": {"images": ["tiny", "treeish"], **common,
                    "quota": {"servers": 3}}})
    yield d
    remove_services(HUB_ID, wait=True)
    remove_homes(f"n{PID}*")


@pytest.fixture(autouse=True)
def _remove_services(request):
    yield
    if "named_dir" in request.fixturenames:
        remove_services(HUB_ID)


def named_hub(start_hub, named_dir, label, profiles="profiles.json", **over):
    env = swarm_env(HUB_ID, str(named_dir / profiles), 30, 60, **{
        "SWARMHUB_LOGIN_MAX_FAILURES": "1000",
        "SWARMHUB_RECONCILE_EVERY": "3600",
        "SWARMHUB_CULL_TIMEOUT": "3600",
        **over})
    return start_hub(label, env=env)


def server_path(name, server):
    return f"/users/{name}/servers/{server}" if server else \
        f"/users/{name}/server"


def start(hub, name, server="", options=None, ok=(202,)):
    r = hub.api("POST", server_path(name, server),
                json=options if options is not None else {"cpu": 0.2})
    assert r.status_code in ok, (r.status_code, r.text)
    return r


def servers(hub, name, stopped=False):
    r = hub.api("GET", f"/users/{name}" +
                ("?include_stopped_servers" if stopped else ""))
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["servers"]


def wait_running(hub, name, server="", timeout=90):
    def ready():
        s = servers(hub, name).get(server)
        assert s is not None, f"{name}/{server} failed to start: " \
            f"{servers(hub, name, True)}\n{hub.stderr()[-3000:]}"
        return s["ready"]
    wait_for(ready, timeout, f"{name}/{server} ready", interval=0.3)


def wait_stopped(hub, name, server="", timeout=60):
    wait_for(lambda: server not in servers(hub, name), timeout,
             f"{name}/{server} stopped", interval=0.3)


def progress(hub, name, server, timeout=60):
    path = (f"/users/{name}/servers/{server}/progress" if server else
            f"/users/{name}/server/progress")
    r = hub.api("GET", path, stream=True, timeout=timeout)
    assert r.status_code == 200, (r.status_code, r.text)
    events = []
    try:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
    finally:
        r.close()
    return events


def through(hub, path, token, **kw):
    """GET <hub>/user/... through the edge with the user's own token."""
    kw.setdefault("timeout", 20)
    return DIRECT.get(hub.url + path, headers=tok(token),
                      allow_redirects=False, **kw)


def service_of(name, server):
    n = "jupyter-" + esc(name) + ("-" + esc(server) if server else "")
    for s in our_services(HUB_ID):
        if s["Spec"]["Name"] == n:
            return s
    return None


# ---- the REST API ----------------------------------------------------------

def test_named_api_and_services(start_hub, named_dir):
    hub = named_hub(start_hub, named_dir, "named-api")
    name = hub.make_user(uniq(f"n{PID}a"))

    # bad names: 400 naming the rule, nothing created
    for bad in ("Gpu", "-x", "a" * 64, "a%20b", "api", "x~y"):
        r = hub.api("POST", f"/users/{name}/servers/{bad}", json={})
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert "server name" in r.json()["message"], r.text
    assert servers(hub, name, stopped=True) == {}

    start(hub, name, "")
    start(hub, name, "gpu")
    start(hub, name, "proj.1", {"image": "treeish", "cpu": 0.2})
    ev = progress(hub, name, "gpu")
    assert ev[0]["progress"] == 0 and ev[-1]["ready"] is True, ev
    assert ev[-1]["url"] == f"/user/{name}/gpu/", ev
    for s in ("", "proj.1"):
        wait_running(hub, name, s)
    # starting a running one again is refused as the default one is
    r = start(hub, name, "gpu", ok=(400,))
    assert "gpu" in r.json()["message"] and "running" in r.json()["message"]

    # the model: JupyterHub's fields; url stays the prefix (default_url
    # is for pages only)
    model = hub.api("GET", f"/users/{name}").json()
    sv = model["servers"]
    assert set(sv) == {"", "gpu", "proj.1"}, sv
    assert model["server"] == f"/user/{name}/" and model["pending"] is None
    for key, s in sv.items():
        assert s["name"] == key and s["ready"] is True, s
        assert s["pending"] is None and s["stopped"] is False, s
        assert s["url"] == (f"/user/{name}/{key}/" if key else
                            f"/user/{name}/"), s
        assert s["progress_url"] == (
            f"/hub/api/users/{name}/servers/{key}/progress" if key else
            f"/hub/api/users/{name}/server/progress"), s
        assert s["started"].endswith("Z") and s["last_activity"], s
        assert s["state"] == {} and s["user_options"]["cpu"] == 0.2, s
    assert sv["proj.1"]["user_options"]["image"] == "treeish"

    # one service each: readable unique names and the labels
    for key in ("", "gpu", "proj.1"):
        svc = service_of(name, key)
        assert svc is not None, (key, [s["Spec"]["Name"] for s in
                                       our_services(HUB_ID)])
        labels = svc["Spec"]["Labels"]
        assert labels["swarmhub.user"] == name, labels
        assert labels["swarmhub.server"] == key, labels
    assert service_of(name, "gpu")["Spec"]["Name"] == \
        f"jupyter-{esc(name)}-gpu"

    # stop a named one: 202, then gone from the default model but kept
    # (stopped) with include_stopped_servers; the others keep running
    r = hub.api("DELETE", f"/users/{name}/servers/gpu")
    assert r.status_code == 202, (r.status_code, r.text)
    wait_stopped(hub, name, "gpu")
    assert service_of(name, "gpu") is None
    all_sv = servers(hub, name, stopped=True)
    assert all_sv["gpu"]["stopped"] is True and \
        all_sv["gpu"]["ready"] is False, all_sv["gpu"]
    assert set(servers(hub, name)) == {"", "proj.1"}
    r = hub.api("DELETE", f"/users/{name}/servers/gpu")
    assert r.status_code == 204, (r.status_code, r.text)
    # its progress stream ends (the last start's events, as the default
    # server's); an unknown server is 404
    ev = progress(hub, name, "gpu")
    assert ev[-1].get("ready") or ev[-1].get("failed"), ev
    r = hub.api("GET", f"/users/{name}/servers/nope/progress")
    assert r.status_code == 404, (r.status_code, r.text)
    r = hub.api("DELETE", f"/users/{name}/servers/nope")
    assert r.status_code == 404 and "nope" in r.text, (r.status_code, r.text)

    # remove: a stopped one at once (204), a running one once stopped (202)
    r = hub.api("DELETE", f"/users/{name}/servers/gpu",
                json={"remove": "yes"})
    assert r.status_code == 400 and "remove" in r.text, r.text
    r = hub.api("DELETE", f"/users/{name}/servers/gpu",
                json={"remove": True})
    assert r.status_code == 204, (r.status_code, r.text)
    assert "gpu" not in servers(hub, name, stopped=True)
    r = hub.api("DELETE", f"/users/{name}/servers/proj.1",
                json={"remove": True})
    assert r.status_code == 202, (r.status_code, r.text)
    wait_for(lambda: "proj.1" not in servers(hub, name, stopped=True), 60,
             "proj.1 removed")
    rows = hub.sql(f"SELECT s.name FROM servers s JOIN users u ON "
                   f"u.id = s.user_id WHERE u.name = '{name}' ORDER BY 1")
    assert rows == [[""]], rows

    # state=ready / active counts named servers too
    start(hub, name, "solo")
    wait_running(hub, name, "solo")
    hub.api("DELETE", f"/users/{name}/server")
    wait_stopped(hub, name, "")
    r = hub.api("GET", "/users?state=ready")
    assert name in [u["name"] for u in r.json()], r.text
    u = [u for u in r.json() if u["name"] == name][0]
    assert u["server"] is None and set(u["servers"]) == {"solo"}, u

    # deleting the user stops every server of theirs
    r = hub.api("DELETE", f"/users/{name}")
    assert r.status_code == 204, (r.status_code, r.text)
    assert not [s for s in our_services(HUB_ID)
                if s["Spec"]["Labels"]["swarmhub.user"] == name]


def test_routing_tokens_and_default_url(start_hub, named_dir):
    hub = named_hub(start_hub, named_dir, "named-route")
    name = hub.make_user(uniq(f"n{PID}r"))
    token = hub.make_token(name)
    start(hub, name, "")
    start(hub, name, "gpu", {"image": "treeish", "cpu": 0.2})
    start(hub, name, "idle")
    for s in ("", "gpu", "idle"):
        wait_running(hub, name, s)
    hub.api("DELETE", f"/users/{name}/servers/idle")
    wait_stopped(hub, name, "idle")

    # /user/<name>/gpu/… reaches the gpu server (its base URL), with a
    # token of its own; anything else the default server
    r = through(hub, f"/user/{name}/gpu/echo-headers", token)
    assert r.status_code == 200, (r.status_code, r.text)
    gpu = r.json()
    assert gpu["path"] == f"/user/{name}/gpu/echo-headers", gpu
    r = through(hub, f"/user/{name}/echo-headers", token)
    assert r.status_code == 200, (r.status_code, r.text)
    default = r.json()
    auth = {k.lower(): v for k, v in gpu["headers"].items()}["authorization"]
    dauth = {k.lower(): v for k, v in default["headers"].items()}[
        "authorization"]
    assert auth.startswith("token ") and dauth.startswith("token ")
    assert auth != dauth, "each server has its own token"
    assert token not in auth and token not in dauth
    # not a server of theirs: the default server's path (its 404)
    r = through(hub, f"/user/{name}/other/echo-headers", token)
    assert r.status_code == 404 and "other" in r.text, (r.status_code,
                                                         r.text)
    # the bare server name gets its slash
    r = through(hub, f"/user/{name}/gpu", token)
    assert r.status_code == 302 and \
        r.headers["Location"] == f"/user/{name}/gpu/", r.headers
    # a stopped named server: its spawn page (API paths: 503 JSON)
    r = through(hub, f"/user/{name}/idle/tree", token)
    assert r.status_code == 302, (r.status_code, r.text)
    loc = r.headers["Location"]
    assert loc.startswith(f"/hub/spawn/{name}/idle?next="), loc
    assert urllib.parse.unquote(loc.split("next=")[1]) == \
        f"/user/{name}/idle/tree"
    r = through(hub, f"/user/{name}/idle/api/status", token)
    assert r.status_code == 503 and "idle" in r.json()["message"], r.text
    # another user may not pass
    other = hub.make_user(uniq(f"n{PID}o"))
    r = through(hub, f"/user/{name}/gpu/echo-headers",
                hub.make_token(other))
    assert r.status_code == 403, (r.status_code, r.text)

    # activity through the proxy lands on that server only
    before = servers(hub, name)
    time.sleep(1.2)
    through(hub, f"/user/{name}/gpu/api/status", token)
    after = servers(hub, name)
    assert after["gpu"]["last_activity"] > before["gpu"]["last_activity"]
    assert after[""]["last_activity"] == before[""]["last_activity"]

    # the home page's Open goes to prefix + default_url ("/tree" for
    # treeish, the prefix for tiny); the API's url stays the prefix
    s = login_session(hub, name)
    home = s.get(hub.url + "/hub/home", timeout=15).text
    assert f'href="/user/{name}/gpu/tree"' in home, home
    assert f'href="/user/{name}/"' in home, home
    assert servers(hub, name)["gpu"]["url"] == f"/user/{name}/gpu/"


def login_session(hub, name, password="named-pw-123"):
    import requests
    r = hub.api("PATCH", f"/users/{name}", json={"password": password})
    assert r.status_code == 200, (r.status_code, r.text)
    s = requests.Session()
    s.trust_env = False
    page = s.get(hub.url + "/hub/login", timeout=15).text
    xsrf = page.split('name="_xsrf" value="')[1].split('"')[0]
    r = s.post(hub.url + "/hub/login", data={
        "username": name, "password": password, "_xsrf": xsrf},
        allow_redirects=False, timeout=15)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    return s


# ---- limits and quotas -----------------------------------------------------

def test_limit_and_quota(start_hub, named_dir):
    hub = named_hub(start_hub, named_dir, "named-limit", "quota.json",
                    SWARMHUB_NAMED_SERVER_LIMIT_PER_USER="2")
    r = hub.api("GET", "/info")
    assert r.status_code == 200 and \
        r.json()["named_servers"]["limit_per_user"] == 2, r.text
    name = hub.make_user(uniq(f"n{PID}l"))
    start(hub, name, "a")
    start(hub, name, "b")
    r = start(hub, name, "c", ok=(400,))
    msg = r.json()["message"]
    assert "maximum of 2 named servers" in msg and "'c'" in msg, msg
    for s in ("a", "b"):
        wait_running(hub, name, s)
    # the default server is not a named one: the quota (3 servers of the
    # default profile, every server counted) stops the fourth
    start(hub, name, "")
    wait_running(hub, name, "")
    other = hub.make_user(uniq(f"n{PID}q"))
    r = start(hub, other, "", ok=(403,))
    assert "quota" in r.json()["message"], r.text
    # a stopped named server still counts against the limit (its record
    # stays) and may start again; removing it makes room
    hub.api("DELETE", f"/users/{name}/servers/b")
    wait_stopped(hub, name, "b")
    start(hub, name, "c", ok=(400,))
    start(hub, name, "b")
    wait_running(hub, name, "b")
    r = hub.api("DELETE", f"/users/{name}/servers/a", json={"remove": True})
    assert r.status_code in (202, 204), r.text
    wait_for(lambda: "a" not in servers(hub, name, stopped=True), 60,
             "a removed")
    start(hub, name, "c")
    wait_running(hub, name, "c")


# ---- culling ---------------------------------------------------------------

def test_hub_culler_and_adoption(start_hub, named_dir):
    hub = named_hub(start_hub, named_dir, "named-cull",
                    SWARMHUB_CULL_TIMEOUT="6", SWARMHUB_CULL_EVERY="2")
    name = hub.make_user(uniq(f"n{PID}c"))
    token = hub.make_token(name)
    start(hub, name, "busy")
    start(hub, name, "lazy")
    for s in ("busy", "lazy"):
        wait_running(hub, name, s)
    busy_service = service_of(name, "busy")["ID"]

    # traffic keeps "busy"; "lazy" is culled, its record kept with why
    deadline = time.monotonic() + 40
    while "lazy" in servers(hub, name):
        assert time.monotonic() < deadline, servers(hub, name)
        r = through(hub, f"/user/{name}/busy/api/status", token)
        assert r.status_code == 200, (r.status_code, r.text)
        time.sleep(1)
    lazy = servers(hub, name, stopped=True)["lazy"]
    assert lazy["stopped"] is True, lazy
    assert "busy" in servers(hub, name)
    rows = hub.sql(f"SELECT s.last_error FROM servers s JOIN users u ON "
                   f"u.id = s.user_id WHERE u.name = '{name}' AND "
                   f"s.name = 'lazy'")
    assert rows and rows[0][0].startswith("culled: idle"), rows

    # a new hub on the same database adopts the running named server
    hub.stop()
    env = {k: v for k, v in hub.env.items() if k.startswith("SWARMHUB_")
           and k not in ("SWARMHUB_LISTEN", "SWARMHUB_ADMIN_TOKEN")}
    env["SWARMHUB_CULL_TIMEOUT"] = "3600"
    hub2 = start_hub("named-adopt", env=env, db=hub.db)  # same SECRET
    assert set(servers(hub2, name)) == {"busy"}
    assert service_of(name, "busy")["ID"] == busy_service
    r = through(hub2, f"/user/{name}/busy/echo-headers", token)
    assert r.status_code == 200 and \
        r.json()["path"] == f"/user/{name}/busy/echo-headers", \
        (r.status_code, r.headers, r.text, hub2.stderr()[-3000:])


# jupyterhub-idle-culler (jupyterhub_idle_culler/__init__.py): GET /info,
# then GET /users?state=ready (paginated, Accept: application/jupyterhub-
# pagination+json); for every entry of user["servers"] it reads pending,
# ready, url, started, last_activity and name; an idle named server is
# stopped with DELETE /users/<name>/servers/<server>, with the body
# {"remove": true} under --remove-named-servers; 202 is "slow to stop",
# any other 2xx done.
IDLE_CULLER_READS = {"pending": (str, type(None)), "ready": bool,
                     "url": str, "started": (str, type(None)),
                     "last_activity": (str, type(None)), "name": str}


def parse_date(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def idle_culler_pass(hub, inactive_limit, remove_named):
    """One pass as the culler makes it; returns {(user, server): status}."""
    auth = {"Authorization": f"token {hub.admin_token}"}
    r = DIRECT.get(hub.url + "/hub/api/info", headers=auth, timeout=20)
    assert r.status_code == 200 and isinstance(r.json()["version"], str)
    url = hub.url + "/hub/api/users?state=ready"
    users = []
    while url:
        r = DIRECT.get(url, headers={
            **auth, "Accept": "application/jupyterhub-pagination+json"},
            timeout=20)
        assert r.status_code == 200, r.text
        page = r.json()
        users += page["items"]
        nxt = page["_pagination"]["next"]
        url = nxt["url"] if nxt else None
    now = datetime.datetime.now(datetime.timezone.utc)
    done = {}
    for user in users:
        for sname, server in user["servers"].items():
            for key, typ in IDLE_CULLER_READS.items():
                assert isinstance(server[key], typ), (key, server)
            if server["pending"] or not server["ready"]:
                continue
            last = server["last_activity"] or server["started"]
            if (now - parse_date(last)).total_seconds() < inactive_limit:
                continue
            body = None
            if sname:
                path = "/users/%s/servers/%s" % (
                    urllib.parse.quote(user["name"]),
                    urllib.parse.quote(server["name"]))
                if remove_named:
                    body = json.dumps({"remove": True})
            else:
                path = "/users/%s/server" % urllib.parse.quote(user["name"])
            r = DIRECT.request("DELETE", hub.url + "/hub/api" + path,
                               headers=auth, data=body, timeout=30)
            assert 200 <= r.status_code < 300, (r.status_code, r.text)
            done[(user["name"], sname)] = r.status_code
    return done


def test_idle_culler_named_exchanges(start_hub, named_dir):
    hub = named_hub(start_hub, named_dir, "named-idle-culler")
    name = hub.make_user(uniq(f"n{PID}i"))
    token = hub.make_token(name)
    for s in ("", "old", "new", "gone"):
        start(hub, name, s)
    for s in ("", "old", "new", "gone"):
        wait_running(hub, name, s)
    time.sleep(6)
    for s in ("", "new"):      # active: kept
        r = through(hub, f"/user/{name}/{s + '/' if s else ''}api/status",
                    token)
        assert r.status_code == 200, (r.status_code, r.text)

    # --cull-named-servers without --remove-named-servers: stopped, kept
    done = idle_culler_pass(hub, 5, remove_named=False)
    assert set(done) == {(name, "old"), (name, "gone")}, done
    assert all(st in (202, 204) for st in done.values()), done
    wait_stopped(hub, name, "old")
    wait_stopped(hub, name, "gone")
    assert set(servers(hub, name)) == {"", "new"}
    assert {"old", "gone"} <= set(servers(hub, name, stopped=True))

    # --remove-named-servers: a culled named server's record goes too
    start(hub, name, "gone")
    wait_running(hub, name, "gone")
    time.sleep(6)
    for s in ("", "new"):
        through(hub, f"/user/{name}/{s + '/' if s else ''}api/status", token)
    done = idle_culler_pass(hub, 5, remove_named=True)
    assert set(done) == {(name, "gone")}, done
    wait_for(lambda: "gone" not in servers(hub, name, stopped=True), 60,
             "gone removed")
    assert set(servers(hub, name)) == {"", "new"}
    assert "old" in servers(hub, name, stopped=True)
    assert service_of(name, "gone") is None


# ---- swarmhubctl ------------------------------------------------------------

def ctl(hub, *args):
    import os
    import subprocess
    from hubtest import ROOT
    bin_dir = os.environ.get("SWARMHUB_BIN_DIR") or str(ROOT / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    env["SWARMHUB_TOKEN"] = hub.admin_token
    return subprocess.run([os.path.join(bin_dir, "swarmhubctl"), "--url",
                           hub.url, *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_ctl_named_servers(start_hub, named_dir):
    hub = named_hub(start_hub, named_dir, "named-ctl")
    name = hub.make_user(uniq(f"n{PID}t"))
    r = ctl(hub, "servers", "start", f"{name}/gpu", "--cpu", "0.2")
    assert r.returncode == 0 and r.stdout == f"{name}/gpu: pending\n", r
    r = ctl(hub, "servers", "start", name, "--cpu", "0.2")
    assert r.returncode == 0 and r.stdout == f"{name}: pending\n", r
    wait_running(hub, name, "gpu")
    wait_running(hub, name, "")
    r = ctl(hub, "servers", "list")
    assert r.returncode == 0, r
    rows = {line.split()[0]: line.split()[1]
            for line in r.stdout.splitlines()[1:]}
    assert rows == {name: "ready", f"{name}/gpu": "ready"}, r.stdout
    r = ctl(hub, "servers", "start", f"{name}/Bad")
    assert r.returncode == 1 and "server name 'Bad'" in r.stderr, r
    r = ctl(hub, "servers", "stop", "--idle-for", "1h", "--dry-run")
    assert r.returncode == 0 and r.stdout == "", r
    r = ctl(hub, "--json", "servers", "stop", f"{name}/gpu", "--remove")
    assert r.returncode == 0, r
    assert json.loads(r.stdout) == [{"name": f"{name}/gpu",
                                     "state": "pending"}], r.stdout
    wait_for(lambda: "gpu" not in servers(hub, name, stopped=True), 60,
             "gpu removed")
    r = ctl(hub, "servers", "list")
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == \
        [name], r.stdout


# ---- the pages, in a browser ------------------------------------------------

def row_says(d, server, word):
    """The home page's row of server shows word (the page reloads itself
    while a server is pending: a row replaced meanwhile is not yet)."""
    from selenium.common.exceptions import WebDriverException
    from hubtest import by
    try:
        return word in by(d, f"tr[data-server='{server}']").text
    except WebDriverException:
        return False


def test_browser_home_two_named_servers(start_hub, named_dir, request):
    from urllib.parse import urlsplit
    from hubtest import (all_by, by, chromium, click_and_load, driver_log,
                         loaded, shot, sign_in, wait)
    hub = named_hub(start_hub, named_dir, "named-browser")
    name = hub.make_user(uniq(f"n{PID}w"), password="named-web-pw")
    with chromium(driver_log("chromedriver", request),
                  window="1280,900") as d:
        sign_in(d, hub, name, "named-web-pw", expect_path="/hub/home")
        assert by(d, "#no-named")
        # a bad name: the form's own check, then the hub's 400 page
        d.get(hub.url + "/hub/home/new?server=Bad%20Name")
        assert "Bad server name" in d.page_source
        assert "1-63 characters" in d.page_source
        for server, image, path in (("gpu", "treeish", "gpu/tree"),
                                    ("proj.1", "tiny", "proj.1/")):
            d.get(hub.url + "/hub/home")
            by(d, "#server-name-in").send_keys(server)
            click_and_load(d, "#new-server button[type=submit]")
            assert urlsplit(d.current_url).path == \
                f"/hub/spawn/{name}/{server}", d.current_url
            assert server in by(d, "h1").text
            by(d, f"input[type=radio][value={image}]").click()
            by(d, "form[action^='/hub/spawn'] button[type=submit]").click()
            # the progress page, then on to the server at its default_url
            wait(d, lambda x: urlsplit(x.current_url).path ==
                 f"/user/{name}/{path}", timeout=90)
        d.get(hub.url + "/hub/home")
        loaded(d)
        rows = all_by(d, "#named tbody tr")
        assert [r.get_attribute("data-server") for r in rows] == \
            ["gpu", "proj.1"]
        for r in rows:
            assert "running" in r.text, r.text
        opens = [a.get_attribute("href") for a in
                 all_by(d, "#named a[data-act=open]")]
        assert opens == [f"{hub.url}/user/{name}/gpu/tree",
                         f"{hub.url}/user/{name}/proj.1/"], opens
        shot(d, "home-two-named-servers", f"named-{PID}")
        # Stop one from the home page; it stays listed, stopped, with
        # Start and Remove
        by(d, "tr[data-server='proj.1'] button[data-act=stop]").click()
        wait(d, lambda x: row_says(x, "proj.1", "stopped"), timeout=60)
        row = by(d, "tr[data-server='proj.1']")
        assert row.find_element("css selector", "a[data-act=start]")
        assert "running" in by(d, "tr[data-server='gpu']").text
        shot(d, "home-named-one-stopped", f"named-{PID}")
        row.find_element("css selector", "button[data-act=remove]").click()
        wait(d, lambda x: not all_by(x, "tr[data-server='proj.1']"),
             timeout=30)
        # the admin page lists the named server under its user
        r = hub.api("PATCH", f"/users/{name}", json={"admin": True})
        assert r.status_code == 200
        d.get(hub.url + "/hub/admin")
        loaded(d)
        named = all_by(d, "tr.named-server")
        assert [r.get_attribute("data-server") for r in named] == ["gpu"]
        assert f"{name}/gpu" in named[0].text and "running" in \
            named[0].text, named[0].text
        shot(d, "admin-named-server", f"named-{PID}")

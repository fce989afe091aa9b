"""
test_webapp.py - images of kind "web" (compose/profiles.md): web apps that
know nothing of the hub, behind the hub's login alone. The real hub on the
host (SWARMHUB_CONNECT=gwbridge), servers as services on the test swarm,
homes on the test NFS export, PostgreSQL.

Two apps:
  swarmhub/test-notebook:latest  the fake server (echo-headers, ws-echo) run
                                 as a web app with an empty token: it shows
                                 what arrives (path, headers, cookies)
  swarmhub/test-shiny:latest     an R Shiny app from Debian's r-cran-shiny
                                 (its WebSocket), opened in Chromium

What is checked: the prefix stripped (requests and the WebSocket upgrade) or
kept, the image's headers added with {base_url}/{user}/{token} expanded and
the client's copies dropped, no Jupyter token and no hub credential (its
Authorization, its session cookie) forwarded, only the owner (and an admin
with ADMIN_ACCESS) let in, readiness on ready_path (a failing one never
counts as ready), a header credential the app checks ({token}), activity
from the proxy, the culler not asking web apps for Jupyter's api/status, and
a web image with neither a credential nor trust_network refused at start.
Screenshots (SWARMHUB_TEST_OUT): webapp-<pid>-spawn-form.png,
webapp-<pid>-shiny.png.

Every hub runs with SWARMHUB_HUB_ID=t<pid>w; its services are removed at
the end of the module, whatever happened.
"""
import json
import re
import secrets
import time
import urllib.parse

import pytest

from hubtest import (DIRECT, PID, SESSION_COOKIE, SHINY, TINY, Hub,
                     by, chromium, docker_call, driver_log, gw_ip, login, need_docker,
                     remove_homes, remove_services, running_container,
                     server_token, shot, sign_in, start, stop_hub, swarm_env,
                     tok, uniq, user_model, wait, wait_for, wait_ready,
                     write_profiles, ws_connect)

HUB_ID = f"t{PID}w"
SHOTS = f"webapp-{PID}"
HTTP_TIMEOUT = 25           # SWARMHUB_HTTP_TIMEOUT: R starts in a few s
FAKE = ["python3", "-m", "notebook", "--ip=0.0.0.0", "--port={port}"]
NO_TOKEN = "--NotebookApp.token="   # the fake then checks nothing
RNG = {"cpu": {"min": 0.1, "max": 1, "default": 0.2},
       "mem_gb": {"min": 0.1, "max": 2, "default": 0.3}}


def images():
    return {
        # served at "/", the prefix stripped, headers from placeholders
        "strip": {"image": TINY, "description": "fake app, prefix stripped",
                  "kind": "web", "prefix": "strip", "trust_network": True,
                  "cmd": FAKE + [NO_TOKEN], "ready_path": "/tree",
                  "headers": {"X-App-Root": "{base_url}",
                              "X-App-User": "{user}"}},
        # served under /user/<name>/, the prefix kept
        "keep": {"image": TINY, "description": "fake app, prefix kept",
                 "kind": "web", "trust_network": True,
                 "cmd": FAKE + ["--base-url={base_url}", NO_TOKEN],
                 "ready_path": "/api"},
        # checks "Authorization: token <JUPYTER_TOKEN>": the hub adds it
        "tokenapp": {"image": TINY, "description": "fake app with a token",
                     "kind": "web", "prefix": "strip", "cmd": FAKE,
                     "ready_path": "/tree",
                     "headers": {"Authorization": "token {token}"}},
        # its ready path never answers 2xx/3xx
        "notready": {"image": TINY, "description": "never ready",
                     "kind": "web", "prefix": "strip", "trust_network": True,
                     "cmd": FAKE + [NO_TOKEN],
                     "ready_path": "/never-there"},
        "shiny": {"image": SHINY, "description": "R Shiny app",
                  "kind": "web", "prefix": "strip", "trust_network": True,
                  "port": 8888},
    }


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory):
    need_docker(nfs=True, images=(TINY, SHINY), websocket=True)
    d = tmp_path_factory.mktemp("webapp")
    yield d
    remove_services(HUB_ID, wait=True)
    remove_homes(f"*{PID}x*")


class Bag:
    """The module's hub, its users, passwords and tokens."""


@pytest.fixture(scope="module")
def web(web_dir):
    """A hub with ADMIN_ACCESS and a culler pass every 2 s (nothing idle
    long enough to cull); alice (strip), bob (keep), carol (tokenapp)
    running; dave, erin, mallory without servers; an admin."""
    profiles = write_profiles(web_dir / "profiles.json", images(), {
        "default": {"images": list(images()), **RNG}})
    hub = Hub("webapp", env=swarm_env(HUB_ID, profiles, 30, HTTP_TIMEOUT, **{
        "SWARMHUB_ADMIN_ACCESS": "true",
        "SWARMHUB_CULL_EVERY": "2",
        "SWARMHUB_CULL_TIMEOUT": "3600",
        "SWARMHUB_RECONCILE_EVERY": "3600",
        "SWARMHUB_LOG_LEVEL": "debug"}))
    try:
        b = Bag()
        b.hub = hub
        b.pw = "pw-" + secrets.token_hex(6)
        b.alice, b.bob, b.carol, b.dave, b.erin, b.mallory = (
            uniq("alice"), uniq("bob"), uniq("carol"), uniq("dave"),
            uniq("erin"), uniq("mallory"))
        b.admin = uniq("adm")
        people = (b.alice, b.bob, b.carol, b.dave, b.erin, b.mallory)
        for u in people:
            hub.make_user(u, password=b.pw)
        hub.make_user(b.admin, admin=True, password=b.pw)
        b.tokens = {u: hub.make_token(u, note="webapp test")
                    for u in people + (b.admin,)}
        for u, image in ((b.alice, "strip"), (b.bob, "keep"),
                         (b.carol, "tokenapp")):
            start(hub, u, {"image": image}, ok=(201, 202))
        for u in (b.alice, b.bob, b.carol):
            wait_ready(hub, u, 90)
        yield b
    finally:
        try:
            stop_hub(hub, keep_db=False)
        finally:
            remove_services(HUB_ID, wait=False)


def session_of(b, user):
    s, r = login(b.hub, user, b.pw)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert s.cookies.get(SESSION_COOKIE)
    s.trust_env = False
    return s


def uget(b, path, session=None, **kw):
    kw.setdefault("timeout", 20)
    kw.setdefault("allow_redirects", False)
    return (session or DIRECT).get(b.hub.url + path, **kw)


def echo(b, user, sub, session=None, **kw):
    r = uget(b, f"/user/{user}/{sub}", session=session, **kw)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()


def header(seen, name):
    """The values of header name (any case) in an echo-headers answer."""
    return [v for k, v in seen["headers"].items() if k.lower() == name]


# ---- the path: strip or keep ---------------------------------------------

def test_strip_prefix_and_headers(web):
    a = web.alice
    s = session_of(web, a)
    s.cookies.set("appcookie", "kept", path="/")
    seen = echo(web, a, "echo-headers?x=1&y=%2F", session=s,
                headers={"X-App-User": "mallory", "x-app-root": "/evil/"})
    # the app is served at "/": /user/<a>/ is gone from the path
    assert seen["path"] == "/echo-headers?x=1&y=%2F", seen
    # the image's headers, expanded, replace what the client sent
    assert header(seen, "x-app-root") == [f"/user/{a}/"], seen
    assert header(seen, "x-app-user") == [a], seen
    # no Jupyter token, no Authorization at all, no hub session cookie
    assert header(seen, "authorization") == [], seen
    cookie = "; ".join(header(seen, "cookie"))
    assert "appcookie=kept" in cookie, seen
    assert SESSION_COOKIE not in cookie, seen
    # with an API token: in, and the token is not forwarded either
    seen = echo(web, a, "echo-headers", headers=tok(web.tokens[a]))
    assert seen["path"] == "/echo-headers", seen
    assert header(seen, "authorization") == [], seen
    assert web.tokens[a] not in json.dumps(seen)
    # /user/<a>/ itself is the app's "/"
    r = uget(web, f"/user/{a}/", session=s)
    assert r.status_code == 200 and "fake notebook" in r.text, \
        (r.status_code, r.text[:300])


def test_strip_prefix_websocket(web):
    """The fake app serves its echo at /ws-echo only: the upgrade's path
    was stripped too."""
    a = web.alice
    ws = ws_connect(web.hub, f"/user/{a}/ws-echo",
                    headers=[f"Authorization: token {web.tokens[a]}"])
    try:
        ws.send("through the hub, prefix stripped")
        assert ws.recv() == "through the hub, prefix stripped"
    finally:
        ws.close()


def test_keep_prefix(web):
    bb = web.bob
    seen = echo(web, bb, "echo-headers?q=2", headers=tok(web.tokens[bb]))
    assert seen["path"] == f"/user/{bb}/echo-headers?q=2", seen
    assert header(seen, "authorization") == [], seen
    assert header(seen, "x-app-root") == [], seen


# ---- who passes -------------------------------------------------------------

def test_only_owner_and_admin_with_admin_access(web):
    a, bb, m = web.alice, web.bob, web.mallory
    # another user: by token and by cookie, any path, even the WebSocket
    for path in ("", "echo-headers", "tree", "api/status"):
        r = uget(web, f"/user/{a}/{path}", headers=tok(web.tokens[bb]))
        assert r.status_code == 403, (path, r.status_code, r.text[:300])
        assert "fake notebook" not in r.text and '"headers"' not in r.text
    sm = session_of(web, m)
    r = uget(web, f"/user/{a}/echo-headers", session=sm)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    import websocket
    with pytest.raises(websocket.WebSocketBadStatusException) as ex:
        ws_connect(web.hub, f"/user/{a}/ws-echo",
                   headers=[f"Authorization: token {web.tokens[m]}"])
    assert ex.value.status_code == 403
    # nobody: to the login page, never to the app
    r = uget(web, f"/user/{a}/echo-headers")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert urllib.parse.urlsplit(r.headers["Location"]).path == "/hub/login"
    # an admin, with ADMIN_ACCESS: in, as the owner's app sees it
    seen = echo(web, a, "echo-headers", headers=tok(web.tokens[web.admin]))
    assert seen["path"] == "/echo-headers", seen
    assert header(seen, "x-app-user") == [a], seen


# ---- credentials the app checks -------------------------------------------

def test_token_header_checked_by_the_app(web):
    """tokenapp checks "Authorization: token <its JUPYTER_TOKEN>": the hub
    adds it from the image's headers ({token}); the same app reached
    without the hub (its gwbridge address) refuses. Its ready_path needs
    the token too: the readiness probe sent the image's headers."""
    c = web.carol
    s = session_of(web, c)
    r = uget(web, f"/user/{c}/tree", session=s)
    assert r.status_code == 200 and "fake notebook" in r.text, \
        (r.status_code, r.text[:300])
    # the caller's own Authorization (an API token) is replaced
    seen = echo(web, c, "echo-headers", headers=tok(web.tokens[c]))
    token = server_token(web.hub.secret, c, HUB_ID)
    assert header(seen, "authorization") == [f"token {token}"], seen
    direct = f"http://{gw_ip(c)}:8888"
    r = DIRECT.get(direct + "/tree", timeout=10)
    assert r.status_code == 403, (r.status_code, r.text[:200])
    r = DIRECT.get(direct + "/tree", headers=tok("x" * 64), timeout=10)
    assert r.status_code == 403, (r.status_code, r.text[:200])
    r = DIRECT.get(direct + "/tree", headers=tok(token), timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:200])


# ---- readiness --------------------------------------------------------------

def test_failing_ready_path_never_ready(web):
    """notready's /never-there answers 404: the server is pending, never
    ready, until HTTP_TIMEOUT fails the start and removes the service."""
    d = web.dave
    start(web.hub, d, {"image": "notready"}, ok=(202,))
    # the task runs and the app answers (its "/" is 200), but not ready
    wait_for(lambda: running_container(d, timeout=30), 30, "dave's task")
    for _ in range(6):
        srv = user_model(web.hub, d)["servers"].get("")
        assert srv and not srv["ready"] and srv["pending"] == "spawn", srv
        r = uget(web, f"/user/{d}/", headers=tok(web.tokens[d]))
        assert r.status_code == 302 and "fake notebook" not in r.text, \
            (r.status_code, r.text[:200])
        time.sleep(1)
    model = wait_for(lambda: user_model(web.hub, d),
                     HTTP_TIMEOUT + 30, "dave's start to fail",
                     ok=lambda m: not m["servers"])
    assert model["servers"] == {}, model
    log = web.hub.stderr()
    assert re.search(r"/never-there: answered 404", log), log[-3000:]


# ---- activity and the culler -------------------------------------------------

def last_activity(b, user):
    return user_model(b.hub, user)["servers"][""]["last_activity"]


def test_activity_from_the_proxy(web):
    a = web.alice
    before = last_activity(web, a)
    time.sleep(1.2)
    echo(web, a, "echo-headers", headers=tok(web.tokens[a]))
    after = wait_for(lambda: last_activity(web, a), 10,
                     "alice's last_activity to move",
                     ok=lambda v: v and v > before)
    assert after > before


def test_culler_does_not_ask_web_apps_for_api_status(web):
    """Passes run every 2 s over alice (strip: api/status would be 404
    there), bob and carol: none fails a probe, and no app saw a request
    for api/status."""
    def passes():
        return [ln for ln in web.hub.stderr().splitlines()
                if "event=culler.pass" in ln and "probed=0" not in ln]
    seen = wait_for(passes, 20, "a culler pass that considered servers")
    for ln in seen:
        assert "probe_failures=0" in ln, ln
    for u in (web.alice, web.bob, web.carol):
        cid = running_container(u)
        st, raw = docker_call("GET", f"/v1.41/containers/{cid}/logs?"
                              "stdout=1&stderr=1")
        assert st == 200, st
        assert b"GET /api/status" not in raw and \
            b"api/status" not in raw, (u, raw[-2000:])


# ---- profiles checked at start ---------------------------------------------

def test_web_image_without_credential_refused_at_start(web_dir):
    bad = images()
    del bad["tokenapp"]["headers"]      # no {token} anywhere, no trust
    profiles = write_profiles(web_dir / "bad-profiles.json", bad, {
        "default": {"images": list(bad), **RNG}})
    hub = Hub("webapp-bad", env=swarm_env(HUB_ID, profiles), wait=False)
    try:
        hub.proc.wait(20)
        assert hub.proc.returncode != 0
        log = hub.stderr()
        assert re.search(r"images\.tokenapp: an image of kind .*web.* must "
                         r"either pass the app a credential it checks "
                         r".*\{token\}.*trust_network", log), log[-2000:]
    finally:
        hub.cleanup()


# ---- the Shiny app in Chromium ---------------------------------------------

def test_shiny_in_chromium(web, request):
    """erin picks the Shiny app in the spawn form, lands on it under
    /user/<erin>/ (prefix stripped), types her name: the greeting comes back
    over Shiny's WebSocket through the hub, and activity is recorded."""
    e = web.erin
    with chromium(driver_log("chromedriver-webapp", request)) as d:
        sign_in(d, web.hub, e, web.pw, expect_path="/hub/home")
        d.get(web.hub.url + "/hub/spawn")
        choice = by(d, "input[name=image][value=shiny]")
        label = by(d, f"label[for={choice.get_attribute('id')}]")
        assert "web app" in label.text, label.text
        label.click()
        assert choice.is_selected()
        assert "R Shiny app" in d.page_source
        shot(d, "spawn-form", SHOTS)
        by(d, "form.spawn button[type=submit]").click()
        wait(d, lambda x: urllib.parse.urlsplit(x.current_url).path ==
             f"/user/{e}/", 90)
        wait(d, lambda x: x.find_elements("css selector", "#who"), 30)
        assert "swarmhub Shiny test" in d.title
        # Shiny connected: its output is rendered over the WebSocket
        wait(d, lambda x: by(x, "#greeting").text == "Nobody yet", 30)
        before = last_activity(web, e)
        time.sleep(1.2)
        by(d, "#who").send_keys("swarmhub")
        wait(d, lambda x: by(x, "#greeting").text == "Hello, swarmhub!", 20)
        assert by(d, "#count").text == "8"
        shot(d, "shiny", SHOTS)
        connected = d.execute_script(
            "return !!(window.Shiny && Shiny.shinyapp && "
            "Shiny.shinyapp.isConnected())")
        assert connected
    srv = user_model(web.hub, e)["servers"][""]
    assert srv["ready"] and srv["user_options"]["image"] == "shiny", srv
    wait_for(lambda: last_activity(web, e), 10, "erin's activity",
             ok=lambda v: v and v > before)

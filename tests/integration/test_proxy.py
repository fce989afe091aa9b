"""
test_proxy.py - the /user/<name>/ proxy end to end: the real hub on the host
(SWARMHUB_CONNECT=gwbridge), users' servers as services on a one-node Docker
swarm, homes on the test NFS export, PostgreSQL.

Two kinds of servers:
  swarmhub/notebook:latest       the real Jupyter Notebook 6 (kernels over
                                 WebSocket, terminals, the contents API)
  swarmhub/test-notebook:latest  the fake (echo-headers, ws-echo, ...): fast

Everything goes through the hub's port; a container is addressed directly
(its docker_gwbridge address, never an overlay address) only to prove what
arrived there. Every hub runs with SWARMHUB_HUB_ID=t<pid>x; every service
with that label is removed at the end of the module, whatever happened.

Needs (tests/run.sh exports them):
  SWARMHUB_TEST_DOCKER_NETWORK  from 'tests/services/docker.sh start'
  SWARMHUB_TEST_NFS_URL, SWARMHUB_TEST_NFS_DIR
                                from 'tests/services/nfs.sh start DIR'
  the PostgreSQL variables of hubtest.py
SWARMHUB_TEST_SKIP=docker skips instead of failing.
WebSocket client: python3-websocket (websocket-client).
"""
import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

from hubtest import (DIRECT, NFS_DIR, PID, PROXY_HUB_ID as HUB_ID,
                     SESSION_COOKIE, Hub, gw_ip, jmsg, login,
                     need_proxy_services, parallel, proxy_env, remove_homes,
                     remove_services, rss_kb, running_container, server_token,
                     service_name, start, stop_hub, tasks, tok, uniq,
                     user_model, wait_for, wait_ready,
                     write_notebook_profiles, ws_connect)

try:
    import websocket  # python3-websocket (websocket-client)
except ImportError:  # pragma: no cover - reported by need_proxy_services()
    websocket = None

FOREIGN = "http://evil.example.com"
MB = 1024 * 1024


def iso_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


# ---- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory):
    need_proxy_services()
    d = tmp_path_factory.mktemp("proxy")
    yield d
    remove_services(HUB_ID, wait=True)
    remove_homes(f"*{PID}x*")


class Tiny:
    """A bag for a hub fixture: the hub, users, passwords, tokens."""


@pytest.fixture(scope="module")
def tiny(proxy_dir):
    """A hub (ADMIN_ACCESS unset) with alice, bob (servers running), carol,
    dave and erin (running, killed by the 502 tests), mallory (no server
    yet), an admin and tokens."""
    profiles = write_notebook_profiles(proxy_dir / "profiles.json")
    hub = Hub("proxy-tiny", env=proxy_env(profiles))
    try:
        t = Tiny()
        t.hub = hub
        t.pw = "pw-" + secrets.token_hex(6)
        t.alice, t.bob, t.carol, t.dave, t.erin, t.mallory, t.admin = (
            uniq("alice"), uniq("bob"), uniq("carol"), uniq("dave"),
            uniq("erin"), uniq("mallory"), uniq("adm"))
        people = (t.alice, t.bob, t.carol, t.dave, t.erin, t.mallory)
        for u in people:
            hub.make_user(u, password=t.pw)
        hub.make_user(t.admin, admin=True, password=t.pw)
        t.tokens = {u: hub.make_token(u, note="proxy test")
                    for u in people + (t.admin,)}
        users = (t.alice, t.bob, t.carol, t.dave, t.erin)
        for u in users:
            start(hub, u, {"image": "tiny", "cpu": 0.2, "mem_gb": 0.25},
                  ok=(201, 202))
        parallel(*[(lambda u=u: wait_ready(hub, u)) for u in users])
        yield t
    finally:
        try:
            stop_hub(hub, keep_db=False)
        finally:
            remove_services(HUB_ID, wait=False)


def cookie_session(t, user, extra_cookies=None):
    s, r = login(t.hub, user, t.pw)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    assert s.cookies.get(SESSION_COOKIE), s.cookies
    s.trust_env = False
    for k, v in (extra_cookies or {}).items():
        s.cookies.set(k, v)
    return s


def uget(hub, path, session=None, **kw):
    kw.setdefault("timeout", 20)
    kw.setdefault("allow_redirects", False)
    return (session or DIRECT).get(hub.url + path, **kw)


def ureq(hub, method, path, session=None, **kw):
    kw.setdefault("timeout", 20)
    kw.setdefault("allow_redirects", False)
    return (session or DIRECT).request(method, hub.url + path, **kw)


# ---- the fake server: who passes ---------------------------------------------

def test_owner_passes_others_refused_by_token(tiny):
    hub, a, b = tiny.hub, tiny.alice, tiny.bob
    for owner in (a, b):
        r = uget(hub, f"/user/{owner}/api/status",
                 headers=tok(tiny.tokens[owner]))
        assert r.status_code == 200, (owner, r.status_code, r.text[:500])
        assert "last_activity" in r.json(), r.text
    for who, other in ((a, b), (b, a)):
        for path in ("api/status", "tree", "echo-headers"):
            r = uget(hub, f"/user/{other}/{path}",
                     headers=tok(tiny.tokens[who]))
            assert r.status_code == 403, (who, other, path, r.status_code,
                                          r.text[:300])
            assert "last_activity" not in r.text and \
                "fake notebook" not in r.text, r.text[:500]
        r = ureq(hub, "POST", f"/user/{other}/write",
                 params={"name": "intruder.txt"},
                 headers=tok(tiny.tokens[who]))
        assert r.status_code == 403, (r.status_code, r.text[:300])
    assert not (NFS_DIR() / a / "intruder.txt").exists()
    assert not (NFS_DIR() / b / "intruder.txt").exists()
    # a wrong token is no one
    r = uget(hub, f"/user/{a}/api/status", headers=tok("x" * 40))
    assert r.status_code == 403, (r.status_code, r.text[:300])


def test_owner_passes_others_refused_by_cookie(tiny):
    hub, a, b = tiny.hub, tiny.alice, tiny.bob
    sa, sb = cookie_session(tiny, a), cookie_session(tiny, b)
    r = uget(hub, f"/user/{a}/tree", session=sa)
    assert r.status_code == 200 and "fake notebook" in r.text, \
        (r.status_code, r.text[:300])
    r = uget(hub, f"/user/{b}/api/status", session=sb)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    for s, other in ((sa, b), (sb, a)):
        r = uget(hub, f"/user/{other}/tree", session=s)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert "text/html" in r.headers.get("Content-Type", ""), r.headers
        assert "fake notebook" not in r.text, r.text[:300]
        r = uget(hub, f"/user/{other}/api/status", session=s)
        assert r.status_code == 403, (r.status_code, r.text[:300])


def test_admin_refused_without_admin_access(tiny):
    hub = tiny.hub
    r = uget(hub, f"/user/{tiny.alice}/api/status",
             headers=tok(tiny.tokens[tiny.admin]))
    assert r.status_code == 403, (r.status_code, r.text[:300])
    s = cookie_session(tiny, tiny.admin)
    r = uget(hub, f"/user/{tiny.alice}/tree", session=s)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    # the hub's own admin token is not a user: never a way in
    r = uget(hub, f"/user/{tiny.alice}/api/status",
             headers=tok(hub.admin_token))
    assert r.status_code == 403, (r.status_code, r.text[:300])


def test_not_logged_in_redirects_to_login(tiny):
    hub, a = tiny.hub, tiny.alice
    r = uget(hub, f"/user/{a}/tree?x=1&y=2")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    loc = r.headers["Location"]
    u = urllib.parse.urlsplit(loc)
    assert u.path == "/hub/login", loc
    nxt = urllib.parse.parse_qs(u.query)["next"]
    assert nxt == [f"/user/{a}/tree?x=1&y=2"], loc
    # under .../api/: 403 JSON, no redirect
    r = uget(hub, f"/user/{a}/api/status")
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.json()["status"] == 403, r.text
    # an expired/unknown session cookie is not logged in either
    r = uget(hub, f"/user/{a}/tree",
             cookies={SESSION_COOKIE: secrets.token_hex(32)})
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith("/hub/login?next="), r.headers


def test_no_trailing_slash_redirects(tiny):
    hub, a = tiny.hub, tiny.alice
    r = uget(hub, f"/user/{a}", headers=tok(tiny.tokens[a]))
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"] == f"/user/{a}/", r.headers
    r = uget(hub, f"/user/{a}?q=1")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"] == f"/user/{a}/?q=1", r.headers


# ---- headers -----------------------------------------------------------------

def test_headers_hub_credentials_never_arrive(tiny):
    hub, a = tiny.hub, tiny.alice
    want_auth = f"token {server_token(hub.secret, a, HUB_ID)}"

    def check(h, via):
        lower = {k.lower(): v for k, v in h.items()}
        assert lower.get("authorization") == want_auth, (via, lower)
        cookie = lower.get("cookie", "")
        assert SESSION_COOKIE not in cookie, (via, cookie)
        assert "mine=yes" in cookie and "theme=dark" in cookie, (via, cookie)
        assert lower.get("x-forwarded-for") == "127.0.0.1", (via, lower)
        assert lower.get("x-forwarded-proto") == "http", (via, lower)
        assert lower.get("x-forwarded-host") == f"127.0.0.1:{hub.port}", \
            (via, lower)
        assert lower.get("host") == f"127.0.0.1:{hub.port}", (via, lower)
        for hop in ("proxy-authorization", "keep-alive", "te",
                    "x-hop-test"):
            assert hop not in lower, (via, hop, lower)
        assert lower.get("x-custom") == "kept", (via, lower)

    # 1. by cookie, with other cookies and hop-by-hop headers
    s = cookie_session(tiny, a, {"mine": "yes", "theme": "dark"})
    sess = s.cookies.get(SESSION_COOKIE)
    r = ureq(hub, "POST", f"/user/{a}/echo-headers?q=1", session=s,
             data=b"0123456789",
             headers={"X-Custom": "kept", "Connection": "X-Hop-Test",
                      "X-Hop-Test": "dropped",
                      "Proxy-Authorization": "Basic c2VjcmV0",
                      "Origin": hub.url})
    assert r.status_code == 200, (r.status_code, r.text[:500])
    j = r.json()
    assert j["method"] == "POST" and j["path"] == f"/user/{a}/echo-headers?q=1"
    assert j["body_bytes"] == 10, j
    check(j["headers"], "cookie")
    assert sess not in json.dumps(j), "the session value arrived"

    # 2. by the owner's API token, with the session cookie set as well,
    #    and the session cookie between two others (and twice)
    raw_cookie = f"mine=yes; {SESSION_COOKIE}={sess}; theme=dark; " \
                 f"{SESSION_COOKIE}={sess}"
    r = uget(hub, f"/user/{a}/echo-headers",
             headers={**tok(tiny.tokens[a]), "Cookie": raw_cookie,
                      "X-Custom": "kept"})
    assert r.status_code == 200, (r.status_code, r.text[:500])
    j = r.json()
    check(j["headers"], "token")
    assert tiny.tokens[a] not in json.dumps(j), "the API token arrived"
    assert sess not in json.dumps(j), "the session value arrived"

    # 3. a client-supplied X-Forwarded-For is not believed (no trusted proxy)
    r = uget(hub, f"/user/{a}/echo-headers",
             headers={**tok(tiny.tokens[a]), "X-Forwarded-For": "6.6.6.6",
                      "X-Forwarded-Proto": "https",
                      "X-Forwarded-Host": "evil.example.com"})
    h = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert h["x-forwarded-for"] == "127.0.0.1", h
    assert h["x-forwarded-proto"] == "http", h
    assert h["x-forwarded-host"] == f"127.0.0.1:{hub.port}", h


def test_cookie_user_with_browser_basic_authorization(tiny):
    """A browser behind a TLS proxy with HTTP Basic auth (nginx auth_basic)
    sends 'Authorization: Basic ...' on every request, next to the session
    cookie. That header is not a hub token: the cookie must still count
    (as in JupyterHub, which only reads 'token'/'bearer'), and the Basic
    credentials must not reach the user's server."""
    hub, a = tiny.hub, tiny.alice
    s = cookie_session(tiny, a, {"mine": "yes"})
    basic = {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}
    r = uget(hub, f"/user/{a}/echo-headers", session=s, headers=basic)
    assert r.status_code == 200, (
        "a session cookie plus 'Authorization: Basic' is refused: "
        f"{r.status_code} {r.text[:300]}")
    h = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert h["authorization"] == \
        f"token {server_token(hub.secret, a, HUB_ID)}", h
    assert "dXNlcjpwYXNzd29yZA" not in json.dumps(h), h
    assert SESSION_COOKIE not in h.get("cookie", ""), h


def test_body_and_query_unchanged(tiny):
    """Method, path, query and body pass unchanged; the response is streamed
    back. (Chunked request bodies: with the real notebook, which reads them;
    the fake does not.)"""
    hub, a = tiny.hub, tiny.alice
    body = os.urandom(3 * MB)
    r = ureq(hub, "PUT", f"/user/{a}/write?name=blob-{PID}.bin",
             data=body, headers=tok(tiny.tokens[a]))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.json()["bytes"] == len(body), r.json()
    assert (NFS_DIR() / a / f"blob-{PID}.bin").read_bytes() == body

    r = ureq(hub, "PATCH", f"/user/{a}/echo-headers?a=%2F&b=%20",
             data=body[:100000], headers=tok(tiny.tokens[a]))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.json()["method"] == "PATCH"
    assert r.json()["path"] == f"/user/{a}/echo-headers?a=%2F&b=%20"
    assert r.json()["body_bytes"] == 100000, r.json()
    r = uget(hub, f"/user/{a}/static-1k", headers=tok(tiny.tokens[a]))
    assert r.status_code == 200 and len(r.content) == 1024, r.status_code
    # keep-alive: many requests on one client connection
    s = requests.Session()
    s.trust_env = False
    for _ in range(50):
        r = uget(hub, f"/user/{a}/static-1k", session=s,
                 headers=tok(tiny.tokens[a]))
        assert r.status_code == 200 and len(r.content) == 1024


# ---- Origin ------------------------------------------------------------------

def test_origin_checked_for_state_changing_requests(tiny):
    hub, a = tiny.hub, tiny.alice
    s = cookie_session(tiny, a)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = ureq(hub, method, f"/user/{a}/echo-headers", session=s,
                 headers={"Origin": FOREIGN}, data=b"x")
        assert r.status_code == 403, (method, r.status_code, r.text[:300])
        r = ureq(hub, method, f"/user/{a}/echo-headers", session=s,
                 headers={"Origin": hub.url}, data=b"x")
        assert r.status_code == 200, (method, r.status_code, r.text[:300])
    # a foreign origin cannot write a file
    r = ureq(hub, "POST", f"/user/{a}/write", session=s,
             params={"name": f"csrf-{PID}.txt"}, headers={"Origin": FOREIGN})
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert not (NFS_DIR() / a / f"csrf-{PID}.txt").exists()
    # same host, other port or scheme is another origin; "null" too
    for o in (f"http://127.0.0.1:{hub.port + 1}", f"https://127.0.0.1:"
              f"{hub.port}", "null"):
        r = ureq(hub, "POST", f"/user/{a}/echo-headers", session=s,
                 headers={"Origin": o})
        assert r.status_code == 403, (o, r.status_code, r.text[:300])
    # no Origin (curl, old browsers' same-origin GETs): passes
    r = ureq(hub, "POST", f"/user/{a}/echo-headers", session=s)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    # a GET with a foreign Origin is not state-changing
    r = uget(hub, f"/user/{a}/api/status", session=s,
             headers={"Origin": FOREIGN})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    # the same with a token
    r = ureq(hub, "POST", f"/user/{a}/echo-headers",
             headers={**tok(tiny.tokens[a]), "Origin": FOREIGN})
    assert r.status_code == 403, (r.status_code, r.text[:300])


# ---- WebSocket ---------------------------------------------------------------

def test_websocket_echo_and_foreign_origin(tiny):
    hub, a = tiny.hub, tiny.alice
    path = f"/user/{a}/ws-echo"
    hdr = [f"Authorization: token {tiny.tokens[a]}"]
    ws = ws_connect(hub, path, hdr)
    try:
        for i in range(20):
            ws.send(f"hello {i}")
            assert ws.recv() == f"hello {i}"
        blob = os.urandom(200 * 1024)
        ws.send_binary(blob)
        op, data = ws.recv_data()
        assert op == websocket.ABNF.OPCODE_BINARY and data == blob
        ws.ping(b"pp")
        op, data = ws.recv_data(control_frame=True)
        assert op == websocket.ABNF.OPCODE_PONG and data == b"pp", (op, data)
    finally:
        ws.close()
    # by cookie as a browser would
    s = cookie_session(tiny, a)
    ck = f"{SESSION_COOKIE}={s.cookies.get(SESSION_COOKIE)}"
    ws = ws_connect(hub, path, [f"Cookie: {ck}"])
    ws.send("by cookie")
    assert ws.recv() == "by cookie"
    ws.close()
    # a foreign Origin: refused before it reaches the server
    for headers in (hdr, [f"Cookie: {ck}"]):
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            ws_connect(hub, path, headers, origin=FOREIGN)
        assert ei.value.status_code == 403, ei.value
    # someone else's WebSocket
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(hub, f"/user/{tiny.bob}/ws-echo", hdr)
    assert ei.value.status_code == 403, ei.value


def test_websocket_half_close(tiny):
    """The client's close frame reaches the server and its answer comes
    back; then the hub closes the client side."""
    hub, a = tiny.hub, tiny.alice
    ws = ws_connect(hub, f"/user/{a}/ws-echo",
                    [f"Authorization: token {tiny.tokens[a]}"])
    ws.send("x")
    assert ws.recv() == "x"
    ws.send_close(status=1000, reason=b"")
    op, data = ws.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE, (op, data)
    assert data[:2] == (1000).to_bytes(2, "big"), data
    ws.sock.settimeout(5)
    assert ws.sock.recv(10) == b"", "the hub did not close after the close"
    ws.shutdown()


# ---- activity ------------------------------------------------------------------

def test_activity_advances(tiny):
    hub, b = tiny.hub, tiny.bob
    before = user_model(hub, b)["servers"][""]["last_activity"]
    time.sleep(1.2)
    t0 = datetime.datetime.now(datetime.timezone.utc)
    for _ in range(3):
        r = uget(hub, f"/user/{b}/api/status", headers=tok(tiny.tokens[b]))
        assert r.status_code == 200

    def advanced():
        la = user_model(hub, b)["servers"][""]["last_activity"]
        return la if la and (before is None or
                             iso_time(la) > iso_time(before)) else None
    la = wait_for(advanced, 8, "servers[''].last_activity to advance after "
                  "proxied requests", interval=0.5)
    assert iso_time(la) >= t0 - datetime.timedelta(seconds=1), (la, t0)
    # WebSocket traffic alone keeps it moving
    ws = ws_connect(hub, f"/user/{b}/ws-echo",
                    [f"Authorization: token {tiny.tokens[b]}"])
    try:
        time.sleep(1.2)
        for i in range(3):
            ws.send(f"m{i}")
            assert ws.recv() == f"m{i}"
            time.sleep(1.1)

        def advanced_again():
            la2 = user_model(hub, b)["servers"][""]["last_activity"]
            return la2 if iso_time(la2) > iso_time(la) else None
        wait_for(advanced_again, 8, "last_activity to advance with "
                 "WebSocket traffic only", interval=0.5)
    finally:
        ws.close()
    # a refused request (bob's server, alice's token) is not bob's activity
    last = user_model(hub, b)["servers"][""]["last_activity"]
    time.sleep(6.5)
    assert user_model(hub, b)["servers"][""]["last_activity"] == last
    for _ in range(3):
        uget(hub, f"/user/{b}/api/status", headers=tok(tiny.tokens[tiny.alice]))
    time.sleep(6.5)
    assert user_model(hub, b)["servers"][""]["last_activity"] == last, \
        "requests refused with 403 counted as the owner's activity"


# ---- upstream failures and stopped servers -------------------------------------

def _kill(user):
    cid = running_container(user)
    r = subprocess.run(["docker", "kill", cid], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def _reported_stopped(hub, name, timeout=8):
    def stopped():
        m = user_model(hub, name)
        return m["servers"] == {} and m["server"] is None
    t0 = time.monotonic()
    wait_for(stopped, timeout, f"{name}'s server reported stopped after the "
             f"502 (RECONCILE_EVERY is 3600 s: only the hub's re-check with "
             f"Docker can notice)")
    return time.monotonic() - t0


def test_container_killed_mid_request_502_then_stopped(tiny):
    hub, c = tiny.hub, tiny.carol
    # a PUT whose body is still being sent when the container dies; the
    # client goes on sending (as a browser does) while it waits for an answer
    total = 50 * MB
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=15)
    stop = threading.Event()

    def sender():
        sent = 0
        piece = b"x" * (64 * 1024)
        try:
            while sent < total and not stop.is_set():
                s.sendall(piece)
                sent += len(piece)
                time.sleep(0.002)
        except OSError:
            pass
    try:
        s.sendall((f"PUT /user/{c}/write?name=slow.bin HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{hub.port}\r\n"
                   f"Authorization: token {tiny.tokens[c]}\r\n"
                   f"Content-Length: {total}\r\n\r\n").encode())
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        time.sleep(0.5)
        _kill(c)
        head = b""
        deadline = time.monotonic() + 15
        while b"\r\n\r\n" not in head and time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            head += chunk
    finally:
        stop.set()
        s.close()
    status = head.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 502"), \
        f"killed upstream mid-request: got {head[:300]!r}"
    _reported_stopped(hub, c)
    # now stopped: pages go to the spawn page, the API says 503 JSON
    r = uget(hub, f"/user/{c}/tree", headers=tok(tiny.tokens[c]))
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"] == \
        f"/hub/spawn/{c}?next=" + urllib.parse.quote(f"/user/{c}/tree",
                                                     safe=""), r.headers
    r = uget(hub, f"/user/{c}/api/x", headers=tok(tiny.tokens[c]))
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    j = r.json()
    assert j["status"] == 503 and isinstance(j["message"], str), j


def _wait_task_ended(user, timeout=30):
    """Waits until Docker records the killed container's task as ended.
    That usually takes well under a second, but on a loaded machine the
    worker's report to the manager was seen to take more than 10 s."""
    ended = ("failed", "shutdown", "complete")
    wait_for(lambda: [t["Status"]["State"]
                      for t in tasks(service_name(user))],
             timeout, f"{user}'s task to be failed (task states)",
             ok=lambda states: any(s in ended for s in states))


def test_container_killed_before_request_502_then_stopped(tiny):
    hub, d = tiny.hub, tiny.dave
    _kill(d)
    # let Docker record the death first: here the re-check cannot race it
    _wait_task_ended(d)
    t0 = time.monotonic()
    r = uget(hub, f"/user/{d}/api/status", headers=tok(tiny.tokens[d]),
             timeout=40)
    took = time.monotonic() - t0
    assert "not under /user/" not in r.text, (
        "the request for the dead server was delivered to whichever "
        "container now holds its old docker_gwbridge address (see "
        "test_dead_servers_address_never_reaches_another_users_server): "
        f"{r.status_code} {r.text[:200]!r}")
    assert r.status_code in (502, 504), (r.status_code, r.text[:300])
    assert "text/html" in r.headers.get("Content-Type", ""), r.headers
    assert took < 35, f"the 502 took {took:.1f} s"
    _reported_stopped(hub, d)
    s = cookie_session(tiny, d)
    r = uget(hub, f"/user/{d}/tree?a=b", session=s)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert loc.path == f"/hub/spawn/{d}", r.headers
    assert urllib.parse.parse_qs(loc.query)["next"] == \
        [f"/user/{d}/tree?a=b"], r.headers
    r = uget(hub, f"/user/{d}/api/kernels", session=s)
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.json()["status"] == 503


def test_dead_servers_address_never_reaches_another_users_server(tiny):
    """erin's container dies; Docker hands its docker_gwbridge address to
    the next container (the lowest free address): here mallory's new
    server. A request for erin must not be delivered to mallory's server:
    it would carry erin's server token (stable: an HMAC of the secret and
    the name) into a container mallory controls."""
    hub, e, m = tiny.hub, tiny.erin, tiny.mallory
    old_ip = gw_ip(e)
    _kill(e)
    _wait_task_ended(e)
    # new servers take the lowest free addresses: start some until one
    # holds erin's old address (other tenants of the swarm may take it
    # first: then their container gets erin's request, which fails too)
    for k in range(4):
        if k:
            m = hub.make_user(uniq("mallory"))
        start(hub, m, {"image": "tiny", "cpu": 0.2, "mem_gb": 0.25},
              ok=(201, 202))
        wait_ready(hub, m)
        new_ip = gw_ip(m)
        if new_ip == old_ip:
            break
    r = uget(hub, f"/user/{e}/echo-headers", headers=tok(tiny.tokens[e]),
             timeout=40)
    assert "not under /user/" not in r.text, (
        f"erin's request (with erin's server token) was delivered to "
        f"mallory's container: erin's dead server had {old_ip}, mallory's "
        f"new one got {new_ip}; the hub still routes erin to {old_ip}: "
        f"{r.status_code} {r.text[:200]!r}")
    assert r.status_code in (502, 503, 504, 302), \
        (old_ip, new_ip, r.status_code, r.text[:300])


def test_never_started_server(tiny, proxy_dir):
    hub = tiny.hub
    e = hub.make_user(uniq("erin"), password=tiny.pw)
    t = hub.make_token(e)
    r = uget(hub, f"/user/{e}/", headers=tok(t))
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(f"/hub/spawn/{e}?next="), \
        r.headers
    r = uget(hub, f"/user/{e}/api/status", headers=tok(t))
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.json()["status"] == 503
    # someone else's stopped server is still 403, not a redirect
    r = uget(hub, f"/user/{e}/", headers=tok(tiny.tokens[tiny.alice]))
    assert r.status_code == 403, (r.status_code, r.text[:300])


# ---- admins with ADMIN_ACCESS ---------------------------------------------------

@pytest.fixture(scope="module")
def hub2(proxy_dir):
    """A hub with ADMIN_ACCESS=1 and PROXY_TIMEOUT=3; frank's server runs."""
    profiles = write_notebook_profiles(proxy_dir / "profiles-admin.json")
    hub = Hub("proxy-admin", env=proxy_env(profiles,
                                           SWARMHUB_ADMIN_ACCESS="1",
                                           SWARMHUB_PROXY_TIMEOUT="3"))
    try:
        t = Tiny()
        t.hub = hub
        t.pw = pw = "pw-" + secrets.token_hex(6)
        t.frank = hub.make_user(uniq("frank"), password=pw)
        t.adm = hub.make_user(uniq("adm"), admin=True, password=pw)
        t.gina = hub.make_user(uniq("gina"), password=pw)
        start(hub, t.frank, {"image": "tiny", "cpu": 0.2, "mem_gb": 0.25},
              ok=(201, 202))
        wait_ready(hub, t.frank)
        t.ftok = hub.make_token(t.frank)
        yield t
    finally:
        try:
            stop_hub(hub, keep_db=False)
        finally:
            remove_services(HUB_ID, wait=False)


def test_admin_access_on(hub2):
    hub, f, adm = hub2.hub, hub2.frank, hub2.adm
    atok, gtok = hub.make_token(adm), hub.make_token(hub2.gina)
    r = uget(hub, f"/user/{f}/api/status", headers=tok(atok))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    s, r = login(hub, adm, hub2.pw)
    assert r.status_code == 302, r.text[:300]
    s.trust_env = False
    r = uget(hub, f"/user/{f}/echo-headers", session=s)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    h = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert h["authorization"] == \
        f"token {server_token(hub.secret, f, HUB_ID)}", h
    assert SESSION_COOKIE not in h.get("cookie", ""), h
    # an admin's WebSocket too
    ws = ws_connect(hub, f"/user/{f}/ws-echo", [f"Authorization: token {atok}"])
    ws.send("admin")
    assert ws.recv() == "admin"
    ws.close()
    # a non-admin still cannot
    r = uget(hub, f"/user/{f}/api/status", headers=tok(gtok))
    assert r.status_code == 403, (r.status_code, r.text[:300])
    # the admin token of the hub (a service) is not a person
    r = uget(hub, f"/user/{f}/api/status", headers=tok(hub.admin_token))
    assert r.status_code == 403, (r.status_code, r.text[:300])


def test_silent_upstream_504_then_recovers(hub2):
    """A frozen server (docker pause: the kernel still accepts, nobody
    answers) gives 504 after PROXY_TIMEOUT (3 s); the server stays running
    (Docker says it is), and answers again once thawed."""
    hub, f = hub2.hub, hub2.frank
    cid = running_container(f)
    r = subprocess.run(["docker", "pause", cid], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        t0 = time.monotonic()
        r = uget(hub, f"/user/{f}/api/status", headers=tok(hub2.ftok),
                 timeout=30)
        took = time.monotonic() - t0
        assert r.status_code == 504, (r.status_code, r.text[:300])
        assert "text/html" in r.headers.get("Content-Type", ""), r.headers
        assert 2.5 <= took <= 10, f"504 after {took:.1f} s (timeout 3 s)"
    finally:
        subprocess.run(["docker", "unpause", cid], capture_output=True,
                       timeout=30)
    time.sleep(1)
    assert user_model(hub, f)["servers"][""]["ready"] is True
    r = uget(hub, f"/user/{f}/api/status", headers=tok(hub2.ftok))
    assert r.status_code == 200, (r.status_code, r.text[:300])


# ---- the real notebook ---------------------------------------------------------

@pytest.fixture(scope="module")
def real(proxy_dir):
    profiles = write_notebook_profiles(proxy_dir / "profiles-real.json")
    hub = Hub("proxy-real", env=proxy_env(profiles))
    try:
        t = Tiny()
        t.hub = hub
        t.alice = hub.make_user(uniq("alice"))
        t.token = hub.make_token(t.alice, note="real notebook")
        start(hub, t.alice, {"image": "real", "cpu": 2, "mem_gb": 3},
              ok=(201, 202))
        wait_ready(hub, t.alice, timeout=90)
        yield t
    finally:
        try:
            stop_hub(hub, keep_db=False)
        finally:
            remove_services(HUB_ID, wait=False)


def test_real_notebook_kernel_executes(real):
    hub, a = real.hub, real.alice
    r = uget(hub, f"/user/{a}/api/status", headers=tok(real.token))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert "started" in r.json(), r.json()
    r = ureq(hub, "POST", f"/user/{a}/api/kernels", headers=tok(real.token),
             json={"name": "python3"})
    assert r.status_code == 201, (r.status_code, r.text[:500])
    kid = r.json()["id"]
    try:
        session = uuid.uuid4().hex
        ws = ws_connect(hub, f"/user/{a}/api/kernels/{kid}/channels"
                             f"?session_id={session}",
                        [f"Authorization: token {real.token}"], timeout=60)
        try:
            req = jmsg("execute_request",
                       {"code": "print(6*7)", "silent": False,
                        "store_history": True, "user_expressions": {},
                        "allow_stdin": False}, session)
            ws.send(json.dumps(req))
            seen = []
            deadline = time.monotonic() + 60
            got = None
            while time.monotonic() < deadline:
                m = json.loads(ws.recv())
                seen.append((m.get("channel"), m.get("msg_type")))
                if m.get("msg_type") == "stream" and \
                        m["parent_header"].get("msg_id") == \
                        req["header"]["msg_id"]:
                    got = m["content"]
                    break
            assert got == {"name": "stdout", "text": "42\n"}, (got, seen)
        finally:
            ws.close()
        # the kernel is listed through the hub
        r = uget(hub, f"/user/{a}/api/kernels", headers=tok(real.token))
        assert r.status_code == 200 and kid in [k["id"] for k in r.json()]
    finally:
        ureq(hub, "DELETE", f"/user/{a}/api/kernels/{kid}",
             headers=tok(real.token))


def test_real_notebook_terminal(real):
    hub, a = real.hub, real.alice
    r = ureq(hub, "POST", f"/user/{a}/api/terminals", headers=tok(real.token))
    if r.status_code == 404:
        # the image lacks terminado (Debian: python3-terminado): the notebook
        # serves no terminals at all. The answer must at least be clear.
        st = uget(hub, f"/user/{a}/api/status", headers=tok(real.token))
        pytest.fail("the real notebook image has no terminal support "
                    "(POST api/terminals -> 404; install python3-terminado "
                    f"in images/notebook): {r.text[:200]!r}; api/status "
                    f"{st.status_code}", pytrace=False)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    name = r.json()["name"]
    try:
        ws = ws_connect(hub, f"/user/{a}/terminals/websocket/{name}",
                        [f"Authorization: token {real.token}"], timeout=30)
        try:
            ws.send(json.dumps(["stdin", "echo hi\r"]))
            out = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                m = json.loads(ws.recv())
                if m[0] == "stdout":
                    out += m[1]
                    if re.search(r"[\r\n]hi\r?\n", out):
                        break
            assert re.search(r"[\r\n]hi\r?\n", out), out
        finally:
            ws.close()
    finally:
        ureq(hub, "DELETE", f"/user/{a}/api/terminals/{name}",
             headers=tok(real.token))


def test_real_notebook_chunked_request_body(real):
    """A request body in chunked transfer coding reaches the notebook whole
    (Tornado reads chunked bodies)."""
    hub, a = real.hub, real.alice
    text = "".join(f"line {i} {secrets.token_hex(8)}\n" for i in range(20000))
    doc = json.dumps({"type": "file", "format": "text",
                      "content": text}).encode()

    def gen():
        for i in range(0, len(doc), 64 * 1024):
            yield doc[i:i + 64 * 1024]
    r = ureq(hub, "PUT", f"/user/{a}/api/contents/chunked.txt", data=gen(),
             headers={**tok(real.token), "Content-Type": "application/json"})
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    r = uget(hub, f"/user/{a}/files/chunked.txt", headers=tok(real.token))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.text == text


class B64Body:
    """The JSON body of a contents-API PUT of data (base64), produced piece
    by piece so neither side needs it whole."""

    def __init__(self, data):
        self.data = data
        self.head = b'{"type": "file", "format": "base64", "content": "'
        self.tail = b'"}'
        self.length = len(self.head) + 4 * ((len(data) + 2) // 3) + \
            len(self.tail)
        self.pos = 0          # in data
        self.pending = self.head
        self.done = False

    def __len__(self):
        return self.length

    def read(self, n=-1):
        if n is None or n < 0:
            n = 1 << 20
        out = bytearray(self.pending[:n])
        self.pending = self.pending[n:]
        while len(out) < n and not self.done:
            step = 3 * 256 * 1024
            if self.pos < len(self.data):
                piece = self.data[self.pos:self.pos + step]
                self.pos += len(piece)
                enc = base64.b64encode(piece)
            else:
                enc = self.tail
                self.done = True
            take = n - len(out)
            out += enc[:take]
            self.pending = enc[take:]
        return bytes(out)


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.base = rss_kb(pid)
        self.peak = self.base
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join(5)
        self.peak = max(self.peak, rss_kb(self.pid))
        return (self.peak - self.base) / 1024


def test_real_notebook_100mb_upload_download(real):
    hub, a = real.hub, real.alice
    data = os.urandom(100 * MB)
    want = hashlib.sha256(data).hexdigest()
    body = B64Body(data)
    sampler = RssSampler(hub.proc.pid)
    sampler.start()
    try:
        t0 = time.monotonic()
        r = ureq(hub, "PUT", f"/user/{a}/api/contents/big.bin",
                 data=body, timeout=180,
                 headers={**tok(real.token),
                          "Content-Type": "application/json",
                          "Content-Length": str(len(body))})
        up = time.monotonic() - t0
        assert r.status_code in (200, 201), (r.status_code, r.text[:500])
        assert r.json()["size"] == len(data), r.json()
        t0 = time.monotonic()
        h = hashlib.sha256()
        n = 0
        with DIRECT.get(hub.url + f"/user/{a}/files/big.bin",
                        headers=tok(real.token), stream=True,
                        timeout=180) as r:
            assert r.status_code == 200, (r.status_code, r.text[:300])
            for chunk in r.iter_content(1 << 20):
                h.update(chunk)
                n += len(chunk)
        down = time.monotonic() - t0
        # a slow client: read 1 MB, then stall; the hub must not read the
        # rest from the server into its own memory meanwhile
        with DIRECT.get(hub.url + f"/user/{a}/files/big.bin",
                        headers=tok(real.token), stream=True,
                        timeout=180) as r:
            assert r.status_code == 200, r.status_code
            it = r.iter_content(1 << 20)
            h2 = hashlib.sha256(next(it))
            time.sleep(4)
            for chunk in it:
                h2.update(chunk)
        assert h2.hexdigest() == want, "the slow download differs"
    finally:
        grew = sampler.stop()
    print(f"100 MB: up {up:.1f} s, down {down:.1f} s, hub RSS base "
          f"{sampler.base / 1024:.1f} MB, grew {grew:.1f} MB")
    assert n == len(data), n
    assert h.hexdigest() == want, "the download differs from the upload"
    assert (NFS_DIR() / a / "big.bin").stat().st_size == len(data)
    assert grew <= 50, (f"hub RSS grew by {grew:.1f} MB while 100 MB went "
                        f"through it (base {sampler.base / 1024:.1f} MB); "
                        f"up {up:.1f} s, down {down:.1f} s")

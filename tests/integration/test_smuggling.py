"""
test_smuggling.py - request smuggling through the hub's port, against the
real hub (its pages and API behind the edge) and a user's server (the fake
notebook as a swarm service, reached over docker_gwbridge).

Every row of SMUGGLING is sent raw on its own connection, once to a hub
path and once to alice's server, and must get the answer the table gives
and then a closed connection. After each row, fresh connections (enough to
reach both edge threads) must get their own answers: a victim's GET of
/hub/home keeps its session, a request to alice's server sees its own
marker and nothing else, so nothing the attacker sent was left on a pooled
upstream connection. The first rows are the exchange of issue 10.
"""
import re
import socket
import time

import pytest

from hubtest import (DIRECT, PROXY_HUB_ID, SESSION_COOKIE, Hub, login,
                     need_proxy_services, proxy_env, remove_services, start,
                     stop_hub, tok, uniq, wait_ready, write_notebook_profiles)

H = "Host: h\r\n"

# (name, request bytes with {p} for the path, expected status)
SMUGGLING = [
    ("issue 10: bare LF after the last chunk, then a request",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\nPOST /hub/logout HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: "
     "6.6.6.6\r\nContent-Length: 10\r\n\r\n", 400),
    ("bare LF in a trailer line",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\nX: y\nGET /hub/logout HTTP/1.1\r\n\r\n", 400),
    ("0\\n\\n",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\n\nGET /hub/logout HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("CL.TE",
     "POST {p} HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400),
    ("TE.CL",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", 400),
    ("TE.TE: two headers",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: x\r\n\r\n0\r\n\r\n", 400),
    ("TE.TE: xchunked",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n"
     "0\r\n\r\n", 400),
    ("TE.TE: space before the colon",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"
     "0\r\n\r\n", 400),
    ("TE.TE: tab and a comma",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked,\r\n\r\n"
     "0\r\n\r\n", 400),
    ("TE.TE: identity, chunked",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, "
     "chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE in HTTP/1.0",
     "POST {p} HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n", 400),
    ("duplicate Content-Length",
     "POST {p} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
     "Content-Length: 40\r\n\r\nabc", 400),
    ("duplicate equal Content-Length",
     "POST {p} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
     "Content-Length: 3\r\n\r\nabc", 400),
    ("negative Content-Length",
     "POST {p} HTTP/1.1\r\nHost: h\r\nContent-Length: -3\r\n\r\nabc", 400),
    ("overflowing Content-Length",
     "POST {p} HTTP/1.1\r\nHost: h\r\nContent-Length: "
     "18446744073709551619\r\n\r\nabc", 400),
    ("chunk-size overflow",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "10000000000000003\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk extension with a bare LF",
     "POST {p} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3;x\nabc\r\n0\r\n\r\n", 400),
    ("obs-fold",
     "GET {p} HTTP/1.1\r\nHost: h\r\nX-A: a\r\n Transfer-Encoding: "
     "chunked\r\n\r\n", 400),
    ("NUL in a header",
     "GET {p} HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n", 400),
    ("bare LF line ends",
     "GET {p} HTTP/1.1\nHost: h\n\n", 400),
    ("# in the request target",
     "GET {p}#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("two Host headers",
     "GET {p} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
]


def raw_exchange(port, data, timeout=10):
    """Sends data on a new connection; returns (everything read until the
    hub closed it, closed?)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data.encode("latin-1") if isinstance(data, str) else data)
    out, closed = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    finally:
        s.close()
    return out, closed


def statuses(raw):
    return [int(m) for m in re.findall(rb"^HTTP/1\.[01] (\d{3})", raw, re.M)]


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    need_proxy_services()
    d = tmp_path_factory.mktemp("smuggling")
    profiles = write_notebook_profiles(d / "profiles.json")
    hub = Hub("smuggling", env=proxy_env(profiles))
    try:
        e = Env()
        e.hub = hub
        e.pw = "pw-smuggle"
        e.alice, e.bob = uniq("alice"), uniq("bob")
        for u in (e.alice, e.bob):
            hub.make_user(u, password=e.pw)
        e.token = hub.make_token(e.alice, note="smuggling")
        start(hub, e.alice, {"image": "tiny", "cpu": 0.2, "mem_gb": 0.25},
              ok=(201, 202))
        wait_ready(hub, e.alice)
        e.bob_session, r = login(hub, e.bob, e.pw)
        assert r.status_code == 302, r.text[:300]
        e.bob_session.trust_env = False
        yield e
    finally:
        try:
            stop_hub(hub, keep_db=False)
        finally:
            remove_services(PROXY_HUB_ID, wait=False)


def victims_unharmed(e, marker):
    """Fresh connections: bob keeps his session, alice's server sees only
    the victim's own request."""
    for i in range(6):
        r = e.bob_session.get(e.hub.url + "/hub/home", timeout=10,
                              headers={"Connection": "close"},
                              allow_redirects=False)
        assert r.status_code == 200, (marker, i, r.status_code, r.headers)
        assert "Set-Cookie" not in r.headers, (marker, r.headers)
        assert e.bob in r.text
        r = DIRECT.get(f"{e.hub.url}/user/{e.alice}/echo-headers?v={i}",
                       headers={**tok(e.token), "X-Victim": marker,
                                "Connection": "close"},
                       timeout=10, allow_redirects=False)
        assert r.status_code == 200, (marker, r.status_code, r.text[:300])
        seen = r.json()
        assert seen["method"] == "GET" and seen["path"].endswith(f"?v={i}"), \
            (marker, seen)
        assert seen["headers"].get("X-Victim") == marker, (marker, seen)
        assert seen["body_bytes"] == 0, (marker, seen)


@pytest.mark.parametrize("row", SMUGGLING, ids=[r[0] for r in SMUGGLING])
@pytest.mark.parametrize("where", ["hub", "server"])
def test_smuggling_row(env, row, where):
    name, template, want = row
    path = "/hub/api/users" if where == "hub" \
        else f"/user/{env.alice}/echo-headers"
    # with credentials, so that the body really is on its way up
    token = env.hub.admin_token if where == "hub" else env.token
    raw = template.format(p=path).replace(
        "Host: h\r\n", f"Host: h\r\nAuthorization: token {token}\r\n", 1)
    raw, closed = raw_exchange(env.hub.port, raw)
    got = statuses(raw)
    assert got == [want], (name, where, raw[:400])
    assert closed, (name, where, "the connection stayed open")
    victims_unharmed(env, f"{where}-{SMUGGLING.index(row)}")


def test_issue_exchange_never_reaches_the_hub(env):
    """The exact exchange of issue 10: nothing in the hub's log for the
    smuggled /hub/logout or its forged address."""
    before = env.hub.stderr()
    attack = ("POST /hub/health HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
              "chunked\r\n\r\n0\r\n\nPOST /hub/logout HTTP/1.1\r\nHost: h\r\n"
              "X-Forwarded-For: 6.6.6.6\r\nContent-Length: 10\r\n\r\n")
    raw, closed = raw_exchange(env.hub.port, attack)
    assert statuses(raw) == [400] and closed, raw[:300]
    victims_unharmed(env, "issue-exchange")
    time.sleep(0.5)
    after = env.hub.stderr()[len(before):]
    assert "6.6.6.6" not in after, after[-2000:]
    assert "/hub/logout" not in after, after[-2000:]


def test_chunked_bodies_are_reframed(env):
    """A valid chunked body with extensions and a trailer arrives re-framed:
    chunked, no extension, no trailer; the data whole."""
    body = ("5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    req = (f"POST /user/{env.alice}/echo-headers HTTP/1.1\r\nHost: h\r\n"
           f"Authorization: token {env.token}\r\nTransfer-Encoding: chunked"
           f"\r\nConnection: close\r\n\r\n{body}")
    raw, _ = raw_exchange(env.hub.port, req)
    assert statuses(raw) == [200], raw[:500]
    seen = raw.split(b"\r\n\r\n", 1)[1]
    assert b'"body_bytes": 11' in seen, seen
    assert b'"Transfer-Encoding": "chunked"' in seen, seen
    assert b"X-Trailer" not in seen, seen
    # and the hub's own server takes a re-chunked JSON body
    js = '{"note": "chunked"}'
    req = (f"POST /hub/api/users/{env.alice}/tokens HTTP/1.1\r\nHost: h\r\n"
           f"Authorization: token {env.hub.admin_token}\r\nContent-Type: "
           f"application/json\r\nTransfer-Encoding: chunked\r\nConnection: "
           f"close\r\n\r\n{len(js):x};a=b\r\n{js}\r\n0\r\nT: x\r\n\r\n")
    raw, _ = raw_exchange(env.hub.port, req)
    assert statuses(raw) == [201], raw[:500]


def test_absolute_form_is_origin_form(env):
    req = (f"GET http://elsewhere.example:81/user/{env.alice}/echo-headers?"
           f"q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: token {env.token}\r\n"
           f"Connection: close\r\n\r\n")
    raw, _ = raw_exchange(env.hub.port, req)
    assert statuses(raw) == [200], raw[:500]
    assert f'"path": "/user/{env.alice}/echo-headers?q=1"'.encode() in raw


def test_forged_client_address_never_arrives(env):
    """X-Forwarded-For and X-Real-IP from an untrusted client: the server
    and the hub see the peer, never the forged value."""
    r = DIRECT.get(f"{env.hub.url}/user/{env.alice}/echo-headers",
                   headers={**tok(env.token), "X-Real-IP": "6.6.6.7",
                            "X-Forwarded-For": "6.6.6.8"}, timeout=10)
    h = r.json()["headers"]
    assert h.get("X-Real-IP") == "127.0.0.1", h
    assert h.get("X-Forwarded-For") == "127.0.0.1", h


def test_users_server_cannot_set_hub_cookies(env):
    """Set-Cookie for the hub's session and login cookies from a user's
    server is dropped; its own cookies pass."""
    r = DIRECT.get(f"{env.hub.url}/user/{env.alice}/set-cookie?name="
                   f"{SESSION_COOKIE}&name=swarmhub-login&name=nbcookie",
                   headers=tok(env.token), timeout=10)
    assert r.status_code == 200, r.text[:300]
    cookies = r.raw.headers.getlist("Set-Cookie")
    assert cookies == ["nbcookie=from-server; Path=/"], cookies

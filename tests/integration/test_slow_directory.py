"""
test_slow_directory.py - a directory that accepts connections and never
answers must not slow anything else down (issue 10, item 4).

The hub reaches the test slapd through a TCP forwarder that can turn into a
black hole: new connections are accepted and never answered. After a login
the directory goes silent and AUTH_RECHECK comes due: the re-check waits
LDAP_TIMEOUT in the background while requests through the edge (decided on
its event loops: /user/<name>/...) and to the hub's own pages go on at
once with the still-valid session or token. With Docker (tests/run.sh
starts it), WebSocket round trips to a user's server (the fake notebook's
ws-echo) on the same edge thread stay fast too.
"""
import os
import time
import urllib.parse

import requests

from hubtest import (PID, Relay, cookie_api, ldap_env, login_ok, need_docker,
                     need_ldap, remove_services, wait_for, wait_ready,
                     write_notebook_profiles, ws_connect)

LDAP_TIMEOUT = 4
HUB_ID = f"sd{PID}x"


def slapd():
    u = urllib.parse.urlsplit(os.environ.get("SWARMHUB_TEST_LDAP_URI", ""))
    return u.hostname, u.port


def test_requests_stay_fast_while_the_directory_hangs(start_hub):
    need_ldap()
    fwd = Relay(slapd()).start()
    try:
        hub = start_hub("slow-directory", env=ldap_env(
            SWARMHUB_LDAP_URI=f"ldap://127.0.0.1:{fwd.port}",
            SWARMHUB_LDAP_ALLOWED_GROUPS="datascience",
            SWARMHUB_AUTH_RECHECK="1s",
            SWARMHUB_LDAP_TIMEOUT=str(LDAP_TIMEOUT),
            SWARMHUB_EDGE_THREADS="1"))
        s = login_ok(hub, "alice", "alicepw")
        r = cookie_api(hub, s, "POST", "/users/alice/tokens",
                       json={"note": "slow directory"})
        assert r.status_code == 201, r.text
        token = {"Authorization": "token " + r.json()["token"]}
        fwd.hole = True
        time.sleep(1.5)  # the session and the token are due for a re-check

        calls = [
            # decided on the edge's event loop (the server is not running)
            (lambda: s.get(hub.url + "/user/alice/tree", timeout=10,
                           allow_redirects=False), 302),
            (lambda: requests.get(hub.url + "/user/alice/api/status",
                                  headers=token, timeout=10), 503),
            # the hub's own pages and API, through the edge
            (lambda: s.get(hub.url + "/hub/api/user", timeout=10), 200),
            (lambda: requests.get(hub.url + "/hub/api/user", headers=token,
                                  timeout=10), 200),
            (lambda: s.get(hub.url + "/hub/home", timeout=10,
                           allow_redirects=False), 200),
        ]
        worst, n = 0.0, 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < LDAP_TIMEOUT + 1:
            for call, want in calls:
                t = time.monotonic()
                r = call()
                worst = max(worst, time.monotonic() - t)
                n += 1
                assert r.status_code == want, (r.status_code, r.text[:300])
        assert worst < 1.0, f"slowest of {n} requests: {worst:.2f} s"
        # the re-check did reach the silent directory, once for alice
        # (one re-check per user in flight), and gave up after the timeout
        assert len(fwd.held) == 1, len(fwd.held)
        wait_for(lambda: "session.recheck_failed" in hub.stderr(),
                 LDAP_TIMEOUT + 5, "the re-check gives up", interval=0.2)
        # a directory that does not answer logs nobody out
        assert s.get(hub.url + "/hub/api/user", timeout=10).status_code == 200
        assert requests.get(hub.url + "/hub/api/user", headers=token,
                            timeout=10).status_code == 200
    finally:
        fwd.hole = False
        fwd.stop()


# ---- WebSocket round trips to a user's server (Docker) ---------------------

def test_websockets_stay_fast_while_the_directory_hangs(start_hub, tmp_path):
    need_ldap()
    need_docker(websocket=True)
    homes = tmp_path / "homes"
    homes.mkdir()
    fwd = Relay(slapd()).start()
    try:
        env = ldap_env(
            SWARMHUB_LDAP_URI=f"ldap://127.0.0.1:{fwd.port}",
            SWARMHUB_LDAP_ALLOWED_GROUPS="datascience",
            SWARMHUB_AUTH_RECHECK="1s",
            SWARMHUB_LDAP_TIMEOUT=str(LDAP_TIMEOUT),
            SWARMHUB_EDGE_THREADS="1")
        env.update({
            "SWARMHUB_NETWORK": os.environ["SWARMHUB_TEST_DOCKER_NETWORK"],
            "SWARMHUB_CONNECT": "gwbridge",
            "SWARMHUB_HUB_ID": HUB_ID,
            "SWARMHUB_SERVICE_NAME_TEMPLATE": f"sd{PID}-{{user}}",
            "SWARMHUB_PROFILES": write_notebook_profiles(
                tmp_path / "profiles.json"),
            "SWARMHUB_START_TIMEOUT": "30",
            "SWARMHUB_HTTP_TIMEOUT": "60",
            "SWARMHUB_HOME": str(homes),
            "SWARMHUB_HOME_UID": str(os.getuid()),
            "SWARMHUB_HOME_GID": str(os.getgid()),
        })
        hub = start_hub("slow-directory-ws", env=env)
        s = login_ok(hub, "alice", "alicepw")
        r = hub.api("POST", "/users/alice/server",
                    json={"image": "tiny", "cpu": 0.2, "mem_gb": 0.25})
        assert r.status_code in (201, 202), (r.status_code, r.text)
        wait_ready(hub, "alice")
        cookie = ["Cookie: swarmhub-session=" +
                  s.cookies.get("swarmhub-session")]
        ws = ws_connect(hub, "/user/alice/ws-echo", cookie)
        fwd.hole = True
        time.sleep(1.5)  # alice's session is due for a re-check
        worst, n = 0.0, 0
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < LDAP_TIMEOUT + 1:
                t = time.monotonic()
                ws.send(f"ping {n}")
                assert ws.recv() == f"ping {n}"
                # a new upgrade and a request, each identified on the
                # edge's one thread while the re-check waits
                ws2 = ws_connect(hub, "/user/alice/ws-echo", cookie)
                ws2.send("new")
                assert ws2.recv() == "new"
                ws2.close()
                r = s.get(hub.url + "/user/alice/api/status", timeout=10)
                assert r.status_code == 200, r.text[:300]
                worst = max(worst, time.monotonic() - t)
                n += 1
        finally:
            ws.close()
        assert worst < 1.0, f"slowest of {n} rounds: {worst:.2f} s"
        assert len(fwd.held) == 1, len(fwd.held)
        r = hub.api("DELETE", "/users/alice/server")
        assert r.status_code in (202, 204), (r.status_code, r.text)
    finally:
        fwd.hole = False
        fwd.stop()
        remove_services(HUB_ID)

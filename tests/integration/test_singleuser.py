"""
test_singleuser.py - a stock jupyterhub-singleuser (Debian 12's JupyterHub
3.0 with Notebook 6.4, images/test-singleuser) as a user's server: images
of kind "singleuser" get the JUPYTERHUB_* environment, authenticate every
caller through the hub (OAuth for browsers, /hub/api/user for tokens) and
report activity to it.

The hub runs on the host (CONNECT=gwbridge) listening on every address, so
that the servers reach its API at the docker_gwbridge gateway
(HUB_CONNECT_URL). alice and bob each run a server; a container is
addressed directly (its docker_gwbridge address) only to show what the
server itself decides. Every service has the label t<pid>su and is removed
at the end of the module.

Needs what test_proxy.py needs (tests/run.sh exports it), and the image
swarmhub/test-singleuser:latest (tests/run.sh builds it).
"""
import json
import secrets
import time
import urllib.parse
import uuid

import pytest
import requests

from hubtest import (DIRECT, NB_CMD, PID, SESSION_COOKIE, TINY, Hub,
                     chromium, docker,
                     driver_log, free_port, gw_ip, limits, login,
                     need_docker, remove_homes, remove_services,
                     server_token, service_name, shot, sign_in, start,
                     stop_hub, swarm_env, tok, uniq, user_model, wait,
                     wait_for, wait_ready, write_profiles)

HUB_ID = f"t{PID}su"
IMAGE = "swarmhub/test-singleuser:latest"
GATEWAY_NET = "docker_gwbridge"


def gateway():
    """The host's address on docker_gwbridge: where containers reach it."""
    st, net = docker("GET", f"/networks/{GATEWAY_NET}")
    assert st == 200, net
    return net["IPAM"]["Config"][0]["Gateway"]


class Bag:
    pass


def start_hub_on(port, env, db=None):
    """A hub listening on every address at port (the servers' env names
    it), reached by the test at 127.0.0.1."""
    hub = Hub("singleuser", env=env, db=db, wait=False)
    hub.port = port
    hub.url = f"http://127.0.0.1:{port}"
    hub.wait_ready()
    return hub


@pytest.fixture(scope="module")
def su(tmp_path_factory):
    need_docker(nfs=True, images=(IMAGE, TINY), websocket=True)
    d = tmp_path_factory.mktemp("singleuser")
    profiles = write_profiles(d / "profiles.json", {
        "su": {"image": IMAGE, "kind": "singleuser", "port": 8888,
               "description": "jupyterhub-singleuser 3.0",
               # report activity every 5 s instead of 300
               "env": {"JUPYTERHUB_ACTIVITY_INTERVAL": "5"}},
        # the fake notebook as kind singleuser: without JUPYTER_TOKEN it
        # lets anyone in and echoes what the edge forwarded
        "probe": {"image": TINY, "kind": "singleuser", "cmd": NB_CMD,
                  "port": 8888},
    }, {"default": {"images": ["su", "probe"],
                    **limits(cpu=(0.1, 2, 1), mem_gb=(0.1, 4, 1))}})
    b = Bag()
    b.hub = None
    try:
        port = free_port()
        b.env = swarm_env(HUB_ID, profiles, 60, 120, **{
            "SWARMHUB_LISTEN": f"0.0.0.0:{port}",
            "SWARMHUB_HUB_CONNECT_URL": f"http://{gateway()}:{port}",
            "SWARMHUB_OAUTH_CODE_TTL": "3",
            "SWARMHUB_RECONCILE_EVERY": "3600",
            "SWARMHUB_ADMIN_ACCESS": "1",
        })
        b.port = port
        hub = b.hub = start_hub_on(port, b.env)
        b.pw = "pw-" + secrets.token_hex(6)
        b.alice, b.bob = uniq("alice"), uniq("bob")
        b.adm = hub.make_user(uniq("adm"), admin=True, password=b.pw)
        for u in (b.alice, b.bob):
            hub.make_user(u, password=b.pw)
            start(hub, u, {"image": "su", "cpu": 1, "mem_gb": 1},
                  ok=(201, 202))
        b.carol = hub.make_user(uniq("carol"), password=b.pw)
        start(hub, b.carol, {"image": "probe", "cpu": 0.2, "mem_gb": 0.25},
              ok=(201, 202))
        for u in (b.alice, b.bob, b.carol):
            wait_ready(hub, u, timeout=150, read_timeout=60)
        b.tokens = {u: hub.make_token(u, note="singleuser test")
                    for u in (b.alice, b.bob, b.carol)}
        b.secret = {u: server_token(hub.secret, u, HUB_ID)
                    for u in (b.alice, b.bob, b.carol)}
        yield b
    finally:
        try:
            if b.hub is not None:
                stop_hub(b.hub, keep_db=False)
        finally:
            remove_services(HUB_ID, wait=True)
            remove_homes(f"*{PID}*")


def session_of(b, user):
    s, r = login(b.hub, user, b.pw)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    s.trust_env = False
    return s


def client_id(user):
    return "jupyterhub-user-" + urllib.parse.quote(user, safe="-_.~")


def callback(user):
    return f"/user/{user}/oauth_callback"


def authorize(b, s, user, **over):
    q = {"client_id": client_id(user), "redirect_uri": callback(user),
         "response_type": "code", "state": "st-" + uuid.uuid4().hex}
    q.update(over)
    q = {k: v for k, v in q.items() if v is not None}
    return s.get(b.hub.url + "/hub/api/oauth2/authorize", params=q,
                 allow_redirects=False, timeout=20)


def code_for(b, user):
    r = authorize(b, session_of(b, user), user, state="abc")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert loc.path == callback(user), r.headers["Location"]
    q = urllib.parse.parse_qs(loc.query)
    assert q["state"] == ["abc"], q
    return q["code"][0]


def exchange(b, user, code, **over):
    body = {"client_id": client_id(user), "client_secret": b.secret[user],
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": callback(user)}
    body.update(over)
    body = {k: v for k, v in body.items() if v is not None}
    return DIRECT.post(b.hub.url + "/hub/api/oauth2/token", data=body,
                       timeout=20, allow_redirects=False)


def whoami(b, token):
    return DIRECT.get(b.hub.url + "/hub/api/user", headers=tok(token),
                      timeout=20)


def direct(b, user, path, token):
    """GET on user's server itself (its gwbridge address), not the edge."""
    return DIRECT.get(f"http://{gw_ip(user)}:8888/user/{user}/{path}",
                      headers=tok(token) if token else {}, timeout=20,
                      allow_redirects=False)


def activity_posts(b):
    """How many activity reports the hub has answered (its metrics)."""
    r = DIRECT.get(b.hub.url + "/hub/metrics", timeout=10,
                   headers=tok(b.hub.admin_token))
    assert r.status_code == 200, r.status_code
    n = 0
    for line in r.text.splitlines():
        if 'handler="api_activity"' in line and 'code="204"' in line and \
                line.startswith("jupyterhub_request_duration_seconds_count"):
            n += float(line.rsplit(" ", 1)[1])
    return n


# ---- the environment and the tokens -----------------------------------------

def test_server_gets_the_jupyterhub_environment(su):
    st, svc = docker("GET", f"/services/{service_name(su.alice)}")
    assert st == 200, svc
    env = dict(e.split("=", 1) for e in
               svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"])
    a = su.alice
    assert "JUPYTER_TOKEN" not in env
    assert env["JUPYTERHUB_API_TOKEN"] == su.secret[a]
    assert env["JUPYTERHUB_API_URL"].endswith("/hub/api")
    assert env["JUPYTERHUB_ACTIVITY_URL"] == \
        env["JUPYTERHUB_API_URL"] + f"/users/{a}/activity"
    assert env["JUPYTERHUB_CLIENT_ID"] == client_id(a)
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == callback(a)
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [
        f"access:servers!server={a}/", f"access:servers!user={a}"]
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == f"/user/{a}/"
    assert env["JUPYTERHUB_USER"] == a
    assert env["JUPYTERHUB_SERVER_NAME"] == ""


def test_server_token_identifies_owner_with_server_scopes(su):
    a = su.alice
    r = whoami(su, su.secret[a])
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["name"] == a and m["kind"] == "user"
    assert f"access:servers!server={a}/" in m["scopes"]
    assert f"users:activity!user={a}" in m["scopes"]
    assert not any(s.startswith("admin") for s in m["scopes"])
    # the culler asks the server with it (api/status, api/kernels)
    r = direct(su, a, "api/status", su.secret[a])
    assert r.status_code == 200 and "last_activity" in r.json(), r.text
    # and nothing else of the API
    r = su.hub.api("GET", f"/users/{a}", token=su.secret[a])
    assert r.status_code == 403, r.text
    r = su.hub.api("POST", f"/users/{a}/server", token=su.secret[a])
    assert r.status_code == 403, r.text
    r = su.hub.api("POST", f"/users/{su.bob}/activity", token=su.secret[a],
                   json={"last_activity": "2026-01-01T00:00:00Z"})
    assert r.status_code == 403, r.text


def test_token_note_of_oauth_tokens_reserved(su):
    """A user cannot make a token that looks like an OAuth token issued
    for someone else's server."""
    r = su.hub.api("POST", f"/users/{su.bob}/tokens", token=su.tokens[su.bob],
                   json={"note": f"oauth-client-of-server:{su.alice}/"})
    assert r.status_code == 400 and "oauth-client-of-server:" in \
        r.json()["message"], r.text


def test_user_token_scopes_inherit_owner(su):
    a = su.alice
    m = whoami(su, su.tokens[a]).json()
    for s in (f"access:servers!user={a}", f"read:users!user={a}",
              f"servers!user={a}"):
        assert s in m["scopes"], m["scopes"]
    # no server filter beside the user one: jupyterhub-singleuser 3.0's
    # scope check raises on one that names another server of the user
    assert not any(s.startswith("access:servers!server=")
                   for s in m["scopes"]), m["scopes"]
    assert not any(su.bob in s for s in m["scopes"]), m["scopes"]


# ---- the server itself decides -----------------------------------------------

def test_owner_token_works_for_server_api(su):
    a = su.alice
    # through the edge: the caller's own token reaches the server
    r = DIRECT.get(f"{su.hub.url}/user/{a}/api/contents",
                   headers=tok(su.tokens[a]), timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.json()["type"] == "directory"
    # and the server itself accepts it (it asked the hub)
    r = direct(su, a, "api/status", su.tokens[a])
    assert r.status_code == 200, (r.status_code, r.text[:300])


def test_other_user_refused_at_server_itself(su):
    a, bob = su.alice, su.bob
    r = direct(su, a, "api/contents", su.tokens[bob])
    assert r.status_code == 403, (r.status_code, r.text[:300])
    r = direct(su, a, "api/contents", None)
    assert r.status_code in (302, 403), (r.status_code, r.text[:300])
    # bob's server token is bob's, not alice's
    r = direct(su, a, "api/contents", su.secret[bob])
    assert r.status_code == 403, (r.status_code, r.text[:300])
    # and the edge refuses him too
    r = DIRECT.get(f"{su.hub.url}/user/{a}/api/contents",
                   headers=tok(su.tokens[bob]), timeout=30,
                   allow_redirects=False)
    assert r.status_code == 403, (r.status_code, r.text[:300])


# ---- the browser: OAuth, a cell over the kernel WebSocket, activity ----------

RUN_CELL = """
const done = arguments[arguments.length - 1];
const base = arguments[0];
const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
(async () => {
  const r = await fetch(base + "api/kernels", {method: "POST",
      headers: {"X-XSRFToken": decodeURIComponent(xsrf),
                "Content-Type": "application/json"},
      body: JSON.stringify({name: "python3"})});
  if (r.status !== 201) { done("kernel: " + r.status); return; }
  const k = await r.json();
  const session = crypto.randomUUID();
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + base + "api/kernels/" +
                           k.id + "/channels?session_id=" + session);
  const id = crypto.randomUUID();
  ws.onerror = () => done("websocket error");
  ws.onopen = () => ws.send(JSON.stringify({
    header: {msg_id: id, msg_type: "execute_request", username: "",
             session: session, date: new Date().toISOString(),
             version: "5.3"},
    parent_header: {}, metadata: {}, channel: "shell",
    content: {code: "print(6*7)", silent: false, store_history: true,
              user_expressions: {}, allow_stdin: false}}));
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.msg_type === "stream" && m.parent_header.msg_id === id) {
      ws.close(); done("stdout:" + m.content.text);
    }
  };
})().catch((e) => done("error: " + e));
"""


def test_browser_login_open_run_cell_activity(su, request):
    a = su.alice
    before = activity_posts(su)
    la0 = user_model(su.hub, a)["servers"][""]["last_activity"]
    with chromium(driver_log("singleuser", request)) as d:
        d.set_script_timeout(90)
        # the server itself sends the browser to the hub's authorize,
        # the hub to its login, then back to the server with a code
        d.get(f"{su.hub.url}/user/{a}/tree")
        wait(d, lambda x: "/hub/login" in x.current_url, 60)
        sign_in(d, su.hub, a, su.pw,
                next=urllib.parse.unquote(urllib.parse.urlsplit(
                    d.current_url).query.split("next=", 1)[1]), timeout=60)
        wait(d, lambda x: urllib.parse.urlsplit(x.current_url).path ==
             f"/user/{a}/tree", 60)
        wait(d, lambda x: x.execute_script(
            "return document.readyState") == "complete", 30)
        shot(d, "tree", f"singleuser-{PID}")
        assert "Logout" in d.page_source or "logout" in d.page_source
        names = [c["name"] for c in d.get_cookies()]
        assert client_id(a) in names, names
        out = d.execute_async_script(RUN_CELL, f"/user/{a}/")
        assert out == "stdout:42\n", out
    # the server reports its activity to the hub (every 5 s here)
    wait_for(lambda: activity_posts(su) > before, 30,
             "an activity report from the server")
    wait_for(lambda: user_model(su.hub, a)["servers"][""]["last_activity"]
             > la0, 30, "the server's last_activity to advance")


def test_browser_of_other_user_refused(su, request):
    a, bob = su.alice, su.bob
    with chromium(driver_log("singleuser", request)) as d:
        sign_in(d, su.hub, bob, su.pw)
        d.get(f"{su.hub.url}/user/{a}/tree")
        wait(d, lambda x: x.execute_script(
            "return document.readyState") == "complete", 30)
        # the edge's 403 page: bob never reaches alice's server, and no
        # cookie of alice's server is set in his browser
        assert "someone else" in d.page_source, d.page_source[:500]
        assert "Jupyter Notebook" not in d.title, d.title
        assert client_id(a) not in [c["name"] for c in d.get_cookies()]
        # nor can he get a code for her server's client
        d.get(f"{su.hub.url}/hub/api/oauth2/authorize?client_id="
              f"{client_id(a)}&redirect_uri={callback(a)}"
              "&response_type=code&state=x")
        assert "someone else" in d.page_source, d.page_source[:500]
        assert "code=" not in d.current_url, d.current_url


# ---- OAuth edge cases as API calls ------------------------------------------

def test_oauth_token_and_user_model(su):
    a = su.alice
    r = exchange(su, a, code_for(su, a))
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["token_type"] == "Bearer" and len(j["access_token"]) >= 32
    m = whoami(su, j["access_token"]).json()
    assert m["name"] == a
    assert f"access:servers!server={a}/" in m["scopes"]
    assert f"access:servers!user={a}" in m["scopes"]
    # limited: identifies, opens the server, nothing else
    r = su.hub.api("GET", f"/users/{a}/tokens", token=j["access_token"])
    assert r.status_code == 403, r.text
    r = direct(su, a, "api/status", j["access_token"])
    assert r.status_code == 200, r.text


def test_oauth_code_single_use(su):
    a = su.alice
    code = code_for(su, a)
    assert exchange(su, a, code).status_code == 200
    r = exchange(su, a, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", \
        r.text


def test_oauth_code_expires(su):
    a = su.alice
    code = code_for(su, a)
    time.sleep(4)           # OAUTH_CODE_TTL=3
    r = exchange(su, a, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", \
        r.text


def test_oauth_redirect_checked_exactly(su):
    a = su.alice
    s = session_of(su, a)
    for bad in (f"/user/{a}/oauth_callback/", f"/user/{a}/x",
                "https://evil.example.com/user/%s/oauth_callback" % a):
        r = authorize(su, s, a, redirect_uri=bad)
        assert r.status_code == 400, (bad, r.status_code)
        assert "Location" not in r.headers
    code = code_for(su, a)
    r = exchange(su, a, code, redirect_uri=f"/user/{a}/oauth_callback?x")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", \
        r.text


def test_oauth_wrong_client(su):
    a, bob = su.alice, su.bob
    code = code_for(su, a)
    # wrong secret
    r = exchange(su, a, code, client_secret=su.tokens[a])
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", \
        r.text
    # unknown client
    r = exchange(su, a, code, client_id="jupyterhub-user-nobody")
    assert r.status_code == 401, r.text
    # another server's valid client with alice's code
    r = exchange(su, bob, code, redirect_uri=callback(a))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", \
        r.text


def test_oauth_authorize_owner_only_and_login_first(su):
    a, bob = su.alice, su.bob
    # bob, signed in, may not authorize alice's server
    r = authorize(su, session_of(su, bob), a)
    assert r.status_code == 403, r.status_code
    # nobody signed in: the login page, coming back here
    r = authorize(su, requests.Session(), a)
    assert r.status_code == 302, r.status_code
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert loc.path == "/hub/login", r.headers["Location"]
    back = urllib.parse.parse_qs(loc.query)["next"][0]
    assert back.startswith("/hub/api/oauth2/authorize?"), back
    assert f"client_id={client_id(a)}" in back.replace("%40", "@") or \
        client_id(a) in urllib.parse.unquote(back), back
    # unknown client, wrong response_type
    r = authorize(su, session_of(su, a), a, client_id="nope")
    assert r.status_code == 400
    r = authorize(su, session_of(su, a), a, response_type="token")
    assert r.status_code == 400


def test_admin_with_admin_access_authorizes_others_server(su):
    """ADMIN_ACCESS: an admin's OAuth token opens alice's server (as
    JupyterHub grants admins access:servers); the token names the admin."""
    a = su.alice
    r = authorize(su, session_of(su, su.adm), a, state="adm")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(
        r.headers["Location"]).query)["code"][0]
    r = exchange(su, a, code)
    assert r.status_code == 200, r.text
    access = r.json()["access_token"]
    m = whoami(su, access).json()
    assert m["name"] == su.adm, m
    assert f"access:servers!server={a}/" in m["scopes"], m["scopes"]
    assert direct(su, a, "api/status", access).status_code == 200
    # not bob's server
    assert direct(su, su.bob, "api/status", access).status_code == 403
    su.admin_access_token = access


def test_edge_forwards_callers_credentials_never_hub_cookie(su):
    """What arrives at a singleuser server (the fake notebook echoes it):
    the caller's own Authorization and the cookies of the server's path,
    no token of the hub's, never the hub's session cookie."""
    c = su.carol
    s = session_of(su, c)
    hub_cookie = s.cookies.get(SESSION_COOKIE)
    assert hub_cookie
    s.cookies.set(client_id(c), "server-cookie-value", path=f"/user/{c}/")
    url = f"{su.hub.url}/user/{c}/echo-headers"
    r = s.get(url, headers=tok(su.tokens[c]), timeout=30,
              allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    h = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert h.get("authorization") == f"token {su.tokens[c]}", h
    assert f"{client_id(c)}=server-cookie-value" in h.get("cookie", ""), h
    assert SESSION_COOKIE not in h.get("cookie", ""), h
    assert hub_cookie not in json.dumps(h)
    # with the session cookie alone: no Authorization is added
    r = s.get(url, timeout=30, allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    h = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert "authorization" not in h, h
    assert SESSION_COOKIE not in h.get("cookie", ""), h
    assert su.secret[c] not in json.dumps(h)


# ---- JupyterHub 4.x and 5.x single-user servers: their requests, replayed ---
#
# Only 3.0 can be installed here (Debian 12). The requests below are the
# ones jupyterhub-singleuser 4.x and 5.x make, as their sources spell them
# (jupyterhub/services/auth.py HubAuth._api_request, HubOAuth.login_url and
# _token_for_code; jupyterhub/singleuser/extension.py check_hub_version and
# notify_activity; the JupyterHubIdentityProvider's scope check against
# $JUPYTERHUB_OAUTH_ACCESS_SCOPES), written down by hand, and replayed
# against the hub with what the spawner gave the server (its environment).

def _check_scopes(required, have):
    """What 4.x/5.x's services.auth.check_scopes decides for access scopes:
    a required "access:servers!server=u/s" or "access:servers!user=u" is
    met by the same scope or by the unfiltered "access:servers"."""
    have = set(have)
    return {r for r in required if r in have or r.split("!")[0] in have}


EXCHANGES = [
    # (version, what, method, url template, headers, body kind, body,
    #  expected status, checks)
    ("4.x/5.x", "check_hub_version", "GET", "{api}", {}, None, None, 200,
     ("header:X-JupyterHub-Version", "json:version")),
    ("4.x/5.x", "user_for_token (server token)", "GET", "{api}/user",
     {"Authorization": "token {api_token}"}, None, None, 200,
     ("json:name", "json:scopes", "json:kind")),
    ("4.x/5.x", "login_url + state", "GET",
     "{hub}/hub/api/oauth2/authorize?client_id={client_id}"
     "&redirect_uri={redirect}&response_type=code&state={state}",
     "session", None, None, 302, ("location:{redirect}",)),
    ("4.x/5.x", "_token_for_code", "POST", "{api}/oauth2/token",
     {"Authorization": "token {api_token}",
      "Content-Type": "application/x-www-form-urlencoded"}, "form",
     {"client_id": "{client_id}", "client_secret": "{api_token}",
      "grant_type": "authorization_code", "code": "{code}",
      "redirect_uri": "{redirect}"}, 200, ("json:access_token",)),
    ("4.x/5.x", "user_for_token (OAuth cookie token)", "GET", "{api}/user",
     {"Authorization": "token {access_token}"}, None, None, 200,
     ("json:name", "scopes-allow-owner")),
    ("4.x/5.x", "user_for_token (bearer spelling)", "GET", "{api}/user",
     {"Authorization": "bearer {access_token}"}, None, None, 200,
     ("json:name",)),
    ("4.x/5.x", "notify_activity", "POST", "{activity}",
     {"Authorization": "token {api_token}",
      "Content-Type": "application/json"}, "json",
     {"servers": {"": {"last_activity": "{now}"}},
      "last_activity": "{now}"}, 204, ()),
    ("4.x/5.x", "user_for_token (another user's token)", "GET",
     "{api}/user", {"Authorization": "token {other_token}"}, None, None,
     200, ("scopes-refuse",)),
]


def _fill(v, ctx):
    if isinstance(v, str):
        return v.format(**ctx)
    if isinstance(v, dict):
        return {k: _fill(x, ctx) for k, x in v.items()}
    return v


def test_replay_4x_5x_singleuser_requests(su):
    a = su.alice
    st, svc = docker("GET", f"/services/{service_name(a)}")
    env = dict(e.split("=", 1) for e in
               svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"])
    # the server reaches the hub at HUB_CONNECT_URL; the test, on the
    # host, at the hub's own address: the same hub
    api = env["JUPYTERHUB_API_URL"].replace(
        env["JUPYTERHUB_API_URL"].split("/hub/api")[0], su.hub.url)
    activity = env["JUPYTERHUB_ACTIVITY_URL"].replace(
        env["JUPYTERHUB_ACTIVITY_URL"].split("/hub/api")[0], su.hub.url)
    access_scopes = set(json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]))
    ctx = {"hub": su.hub.url, "api": api, "activity": activity,
           "api_token": env["JUPYTERHUB_API_TOKEN"],
           "client_id": env["JUPYTERHUB_CLIENT_ID"],
           "redirect": env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
           "state": secrets.token_urlsafe(16),
           "other_token": su.tokens[su.bob],
           "now": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                time.gmtime())}
    browser = session_of(su, a)
    for (ver, what, method, url, headers, kind, body, status,
         checks) in EXCHANGES:
        url = _fill(url, ctx)
        kw = {"timeout": 20, "allow_redirects": False}
        if headers == "session":
            sess = browser
        else:
            sess = DIRECT
            kw["headers"] = _fill(headers, ctx)
        if kind == "form":
            kw["data"] = urllib.parse.urlencode(_fill(body, ctx))
        elif kind == "json":
            kw["data"] = json.dumps(_fill(body, ctx))
        r = sess.request(method, url, **kw)
        label = f"{ver} {what}"
        assert r.status_code == status, (label, r.status_code, r.text[:300])
        for c in checks:
            if c.startswith("header:"):
                assert r.headers.get(c[7:]), (label, dict(r.headers))
            elif c.startswith("json:"):
                assert c[5:] in r.json(), (label, r.text[:300])
            elif c.startswith("location:"):
                loc = urllib.parse.urlsplit(r.headers["Location"])
                assert loc.path == _fill(c[9:], ctx), (label, loc)
                q = urllib.parse.parse_qs(loc.query)
                assert q["state"] == [ctx["state"]], (label, q)
                ctx["code"] = q["code"][0]
            elif c == "scopes-allow-owner":
                assert r.json()["name"] == a
                assert _check_scopes(access_scopes, r.json()["scopes"]), \
                    (label, r.json()["scopes"])
            elif c == "scopes-refuse":
                assert not _check_scopes(access_scopes, r.json()["scopes"]), \
                    (label, r.json()["scopes"])
        if what == "_token_for_code":
            ctx["access_token"] = r.json()["access_token"]
    # the activity report moved the server's last_activity to "now"
    la = user_model(su.hub, a)["servers"][""]["last_activity"]
    assert la[:19] >= ctx["now"][:19], (la, ctx["now"])


# ---- a hub restart keeps singleuser servers working -------------------------

def test_named_singleuser_server(su):
    """A named server of kind singleuser: its own token, client, callback,
    scopes and activity, the edge routing to it by name, the owner's token
    let in and bob's refused by the server itself."""
    a, bob = su.alice, su.bob
    r = su.hub.api("POST", f"/users/{a}/servers/proj",
                   json={"image": "su", "cpu": 0.5, "mem_gb": 0.5})
    assert r.status_code in (201, 202), r.text
    try:
        def ready():
            m = su.hub.api("GET", f"/users/{a}").json()
            return (m.get("servers") or {}).get("proj", {}).get("ready")
        wait_for(ready, 150, "alice's server proj ready")
        svc_name = service_name(a) + "-proj"
        st, svc = docker("GET", f"/services/{svc_name}")
        assert st == 200, svc
        env = dict(e.split("=", 1) for e in
                   svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"])
        assert env["JUPYTERHUB_SERVER_NAME"] == "proj"
        assert env["JUPYTERHUB_SERVICE_PREFIX"] == f"/user/{a}/proj/"
        assert env["JUPYTERHUB_CLIENT_ID"] == client_id(a) + "-proj"
        assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == \
            f"/user/{a}/proj/oauth_callback"
        assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [
            f"access:servers!server={a}/proj", f"access:servers!user={a}"]
        own = env["JUPYTERHUB_API_TOKEN"]
        assert own != su.secret[a], "each server has its own token"
        ip = gw_ip(a, service=svc_name)
        # ready means "answers HTTP" (as JupyterHub waits); let its API
        # answer its own token before going through the edge
        wait_for(lambda: DIRECT.get(
            f"http://{ip}:8888/user/{a}/proj/api/status", headers=tok(own),
            timeout=10).status_code, 60, "proj's API", ok=lambda c: c == 200)
        m = whoami(su, own).json()
        assert f"access:servers!server={a}/proj" in m["scopes"], m
        # the server's own token, through the edge, reaches this server
        # and no other (the edge routes by server name)
        r = DIRECT.get(f"{su.hub.url}/user/{a}/proj/api/status",
                       headers=tok(own), timeout=30)
        assert r.status_code == 200 and "last_activity" in r.json(), \
            (r.status_code, r.text[:300])
        # the owner's own token, through the edge, reaches it
        r = DIRECT.get(f"{su.hub.url}/user/{a}/proj/api/contents",
                       headers=tok(su.tokens[a]), timeout=30)
        assert r.status_code == 200 and r.json()["type"] == "directory", \
            (r.status_code, r.text[:300])
        # bob is refused by the server itself
        r = DIRECT.get(f"http://{ip}:8888/user/{a}/proj/api/contents",
                       headers=tok(su.tokens[bob]), timeout=20,
                       allow_redirects=False)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        # the server's activity report names its server
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        r = su.hub.api("POST", f"/users/{a}/activity", token=own,
                       json={"servers": {"proj": {"last_activity": now}}})
        assert r.status_code == 204, r.text
        r = su.hub.api("POST", f"/users/{a}/activity", token=own,
                       json={"servers": {"nope": {"last_activity": now}}})
        assert r.status_code == 400 and "nope" in r.text, r.text
    finally:
        su.hub.api("DELETE", f"/users/{a}/servers/proj",
                   json={"remove": True})

        def gone():
            m = su.hub.api("GET", f"/users/{a}?include_stopped_servers").json()
            return "proj" not in (m.get("servers") or {})
        wait_for(gone, 90, "alice's server proj removed")


def test_hub_restart_adopts_singleuser_server(su):
    """The new hub knows the adopted server's API token (derived from the
    stored nonce) and its OAuth client; issued access tokens stay valid."""
    a = su.alice
    before = exchange(su, a, code_for(su, a)).json()["access_token"]
    old = su.hub
    stop_hub(old)
    su.hub = start_hub_on(su.port, {**su.env,
                                    "SWARMHUB_SECRET": old.secret,
                                    "SWARMHUB_ADMIN_TOKEN": old.admin_token},
                          db=old.db)
    su.hub.secret, su.hub.admin_token = old.secret, old.admin_token
    su.hub.own_db = True
    wait_for(lambda: (user_model(su.hub, a)["servers"].get("") or {})
             .get("ready"), 30, "alice's server adopted")
    m = whoami(su, su.secret[a]).json()
    assert m["name"] == a and f"access:servers!server={a}/" in m["scopes"]
    assert whoami(su, before).json()["name"] == a
    # the server itself still reaches this hub and accepts her token
    assert direct(su, a, "api/status", su.tokens[a]).status_code == 200
    r = exchange(su, a, code_for(su, a))
    assert r.status_code == 200, r.text
    assert direct(su, a, "api/contents",
                  r.json()["access_token"]).status_code == 200


# ---- last: stopping the server revokes its tokens ----------------------------

def test_stop_revokes_oauth_tokens(su):
    a = su.alice
    r = exchange(su, a, code_for(su, a))
    access = r.json()["access_token"]
    assert whoami(su, access).status_code == 200
    server_tok = su.secret[a]
    r = su.hub.api("DELETE", f"/users/{a}/server")
    assert r.status_code in (202, 204), r.text
    wait_for(lambda: user_model(su.hub, a)["servers"] == {}, 60,
             "alice's server to stop")
    assert whoami(su, access).status_code == 403
    assert whoami(su, server_tok).status_code == 403
    assert whoami(su, su.admin_access_token).status_code == 403
    n = su.hub.sql("SELECT count(*) FROM api_tokens WHERE note = "
                   f"'oauth-client-of-server:{a}/'")
    assert n == [["0"]], n
    # her own API token is untouched
    assert whoami(su, su.tokens[a]).status_code == 200


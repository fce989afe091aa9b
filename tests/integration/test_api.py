"""
test_api.py - the hub's REST API against the real daemon and PostgreSQL:
JupyterHub compatibility (paths, fields, status codes, pagination),
permissions, tokens, bad input. Every test makes its own users.
"""
import re
import time
from datetime import datetime, timezone

import pytest
import requests

from hubtest import HUBADMIN, HUBADMIN_PW, cookie_api, login, login_ok, uniq

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def assert_json_error(r, status, *words):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json"), \
        r.headers
    body = r.json()
    assert body.get("status") == status, body
    assert isinstance(body.get("message"), str) and body["message"], body
    for w in words:
        assert w.lower() in body["message"].lower(), (w, body)
    return body


def parse_iso(s):
    assert isinstance(s, str) and ISO_Z.match(s), s
    return datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=timezone.utc)


def user_token(hub, name=None, **body):
    name = name or hub.make_user(uniq())
    return name, hub.make_token(name, **body)


# ---- basics ------------------------------------------------------------

def test_api_version(local_hub):
    r = local_hub.api("GET", "", token="")
    assert r.status_code == 200
    assert re.match(r"^\d+\.\d+", r.json()["version"])


def test_health(local_hub):
    r = local_hub.get("/hub/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_whoami_admin_token_is_admin(local_hub):
    r = local_hub.api("GET", "/user")
    assert r.status_code == 200, r.text
    assert r.json()["admin"] is True


def test_whoami_user_token_and_bearer(local_hub):
    name, tok = user_token(local_hub)
    for scheme in ("token", "Bearer", "bearer"):
        r = local_hub.api("GET", "/user", token="",
                          headers={"Authorization": f"{scheme} {tok}"})
        assert r.status_code == 200, (scheme, r.text)
        u = r.json()
        assert u["name"] == name and u["admin"] is False
        assert u["kind"] == "user"


@pytest.mark.parametrize("header", [
    None, "token ", "token garbage", "token " + "0" * 64, "Bearer x' OR 1=1",
    "Basic YWxpY2U6cHc=", "token \u00e9\u00e9", "token " + "a" * 5000,
])
def test_whoami_without_valid_credentials_403(local_hub, header):
    h = {"Authorization": header.encode("utf-8")} if header else {}
    r = local_hub.api("GET", "/user", token="", headers=h)
    assert_json_error(r, 403)


def test_garbage_cookie_is_not_a_session(local_hub):
    for v in ("x", "0" * 64, "'; DROP TABLE sessions; --", "\u00ff" * 64):
        r = requests.get(local_hub.url + "/hub/api/user", timeout=10,
                         headers={"Cookie": "swarmhub-session=" + v
                                  if v.isascii() else
                                  b"swarmhub-session=" + v.encode("latin-1")})
        assert_json_error(r, 403)
    assert local_hub.get("/hub/health").status_code == 200


# ---- POST /hub/api/users ---------------------------------------------------

def test_post_users_creates_normalizes_and_skips_duplicates(local_hub):
    a, b = uniq("pa"), uniq("pb")
    r = local_hub.api("POST", "/users",
                      json={"usernames": [a, b.upper(), a]})
    assert r.status_code == 201, r.text
    got = r.json()
    assert isinstance(got, list)
    assert sorted(u["name"] for u in got) == sorted([a, b])
    for u in got:
        assert u["admin"] is False
        parse_iso(u["created"])
    # existing names are skipped, new ones created
    c = uniq("pc")
    r = local_hub.api("POST", "/users", json={"usernames": [a, c]})
    assert r.status_code == 201, r.text
    assert [u["name"] for u in r.json()] == [c]
    # all exist -> 409
    r = local_hub.api("POST", "/users", json={"usernames": [a, b]})
    assert_json_error(r, 409, "exist")
    # repeats of an existing name, and a name three times (each compared
    # with a neighbour already dropped: caught by make asan)
    d = uniq("pd")
    r = local_hub.api("POST", "/users",
                      json={"usernames": [a, a.upper(), a, d, d, d.upper()]})
    assert r.status_code == 201, r.text
    assert [u["name"] for u in r.json()] == [d]
    assert local_hub.get("/hub/health").status_code == 200


def test_post_users_admin_flag(local_hub):
    a = uniq("adm")
    r = local_hub.api("POST", "/users", json={"usernames": [a],
                                              "admin": True})
    assert r.status_code == 201
    assert local_hub.api("GET", f"/users/{a}").json()["admin"] is True
    r = local_hub.api("POST", "/users", json={"usernames": [uniq()],
                                              "admin": "yes"})
    assert_json_error(r, 400, "admin")


@pytest.mark.parametrize("bad", [
    "", " ", "a/b", "a b", "../etc", "x" * 300, "'; DROP TABLE users; --",
    "alice\u0000", "<script>", "a\nb",
])
def test_post_users_invalid_name_400_names_it(local_hub, bad):
    ok = uniq("ok")
    r = local_hub.api("POST", "/users", json={"usernames": [ok, bad]})
    body = assert_json_error(r, 400)
    shown = bad.strip()[:20]
    if shown and "\u0000" not in shown and "\n" not in shown:
        assert shown in body["message"], body
    # nothing half-written
    assert local_hub.api("GET", f"/users/{ok}").status_code == 404


def test_sql_metacharacters_do_not_harm(local_hub):
    r = local_hub.api("POST", "/users",
                      json={"usernames": ["'; DROP TABLE users; --"]})
    assert_json_error(r, 400)
    r = local_hub.api("GET", "/users/x'%20OR%20'1'='1")
    assert r.status_code in (400, 404)
    a = local_hub.make_user(uniq())
    assert local_hub.api("GET", f"/users/{a}").status_code == 200
    assert local_hub.sql("SELECT count(*) FROM users")[0][0] != "0"


@pytest.mark.parametrize("body,ctype,status", [
    (b'{"usernames": ["x"', "application/json", 400),
    (b'["a", "b"]', "application/json", 400),
    (b'{"usernames": "bob"}', "application/json", 400),
    (b'{"usernames": []}', "application/json", 400),
    (b'{"usernames": [1, 2]}', "application/json", 400),
    (b'{"usernames": ["zz"], "colour": "red"}', "application/json", 400),
    (b'{"usernames": ["\xff\xfe"]}', "application/json", 400),
    (b'\xff\xfe\xfd', "application/json", 400),
    (b'null', "application/json", 400),
    (b'', "application/json", 400),
])
def test_post_users_bad_bodies(local_hub, body, ctype, status):
    r = local_hub.api("POST", "/users", data=body,
                      headers={"Content-Type": ctype})
    assert_json_error(r, status)


def test_post_users_unknown_field_is_named(local_hub):
    r = local_hub.api("POST", "/users", json={"usernames": [uniq()],
                                              "colour": "red"})
    assert_json_error(r, 400, "colour")


def test_body_over_size_limit_413(local_hub):
    big = b'{"usernames": ["' + b"a" * (2 << 20) + b'"]}'
    r = local_hub.api("POST", "/users", data=big,
                      headers={"Content-Type": "application/json"})
    assert_json_error(r, 413)
    assert local_hub.get("/hub/health").status_code == 200


def test_many_users_at_once(local_hub):
    names = [uniq("bulk") for _ in range(500)]
    t0 = time.monotonic()
    r = local_hub.api("POST", "/users", json={"usernames": names})
    assert r.status_code == 201, r.text[:300]
    assert len(r.json()) == 500
    assert time.monotonic() - t0 < 5


# ---- GET /hub/api/users ----------------------------------------------------

def test_list_users_plain_and_paginated(local_hub):
    mine = {local_hub.make_user(uniq("pg")) for _ in range(7)}
    r = local_hub.api("GET", "/users")
    assert r.status_code == 200
    plain = r.json()
    assert isinstance(plain, list)
    names = [u["name"] for u in plain]
    assert mine <= set(names)
    assert len(names) == len(set(names))

    hdr = {"Accept": "application/jupyterhub-pagination+json"}
    r = local_hub.api("GET", "/users", params={"limit": 3}, headers=hdr)
    assert r.status_code == 200
    env = r.json()
    assert set(env) >= {"items", "_pagination"}
    p = env["_pagination"]
    assert p["offset"] == 0 and p["limit"] == 3 and p["total"] >= 7
    assert len(env["items"]) == 3
    total = p["total"]
    seen = [u["name"] for u in env["items"]]
    nxt = p["next"]
    pages = 1
    while nxt:
        assert set(nxt) >= {"offset", "limit", "url"}
        # absolute, as JupyterHub's (jupyterhub-idle-culler requests it
        # as it is)
        assert nxt["url"].startswith(local_hub.url + "/hub/api/users?"), nxt
        r = requests.get(nxt["url"], headers={
            **hdr, "Authorization": f"token {local_hub.admin_token}"},
            timeout=10)
        assert r.status_code == 200, (nxt, r.text)
        page = r.json()
        seen += [u["name"] for u in page["items"]]
        nxt = page["_pagination"]["next"]
        pages += 1
        assert pages < 10000
    assert len(seen) == total == len(set(seen))
    assert mine <= set(seen)


def test_list_users_limit_capped_at_200(local_hub):
    local_hub.api("POST", "/users",
                  json={"usernames": [uniq("cap") for _ in range(210)]})
    hdr = {"Accept": "application/jupyterhub-pagination+json"}
    r = local_hub.api("GET", "/users", params={"limit": 100000},
                      headers=hdr)
    assert r.status_code == 200
    assert len(r.json()["items"]) == 200
    assert r.json()["_pagination"]["limit"] == 200
    r = local_hub.api("GET", "/users", params={"limit": 5, "offset": 2})
    assert r.status_code == 200 and len(r.json()) == 5


@pytest.mark.parametrize("q", [{"offset": "-1"}, {"offset": "abc"},
                               {"limit": "-5"}, {"limit": "1e3"},
                               {"offset": "1 OR 1=1"}])
def test_list_users_bad_numbers_400(local_hub, q):
    assert_json_error(local_hub.api("GET", "/users", params=q), 400)


def test_list_users_state_filter(local_hub):
    local_hub.make_user(uniq())
    for st in ("ready", "active"):
        r = local_hub.api("GET", "/users", params={"state": st})
        assert r.status_code == 200 and r.json() == [], (st, r.text)
    r = local_hub.api("GET", "/users", params={"state": "inactive"})
    assert r.status_code == 200 and len(r.json()) >= 1
    assert_json_error(local_hub.api("GET", "/users",
                                    params={"state": "sleepy"}), 400, "state")


def test_list_users_needs_admin(local_hub):
    _, tok = user_token(local_hub)
    assert_json_error(local_hub.api("GET", "/users", token=tok), 403)
    assert_json_error(local_hub.api("GET", "/users", token=""), 403)


# ---- one user ------------------------------------------------------------

def test_user_model_fields(local_hub):
    a = local_hub.make_user(uniq())
    r = local_hub.api("GET", f"/users/{a}")
    assert r.status_code == 200
    u = r.json()
    for k in ("name", "admin", "groups", "server", "pending", "created",
              "last_activity", "servers"):
        assert k in u, k
    assert u["name"] == a and u["admin"] is False and u["groups"] == []
    assert u["server"] is None and u["pending"] is None
    assert isinstance(u["servers"], dict)
    created = parse_iso(u["created"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 120
    assert u["last_activity"] is None or parse_iso(u["last_activity"])


def test_get_post_delete_one_user(local_hub):
    a = uniq()
    assert_json_error(local_hub.api("GET", f"/users/{a}"), 404, a)
    r = local_hub.api("POST", f"/users/{a}")
    assert r.status_code == 201 and r.json()["name"] == a
    assert_json_error(local_hub.api("POST", f"/users/{a}"), 409, a)
    r = local_hub.api("DELETE", f"/users/{a}")
    assert r.status_code == 204
    assert_json_error(local_hub.api("DELETE", f"/users/{a}"), 404)
    assert_json_error(local_hub.api("GET", f"/users/{a}"), 404)


@pytest.mark.parametrize("bad", ["a%20b", "%3Cscript%3Ex", "x'%3B--",
                                 "%C3%28", "a%0Ab"])
def test_post_one_user_invalid_name_400(local_hub, bad):
    """POST /hub/api/users/<name> validates the name like POST /users."""
    r = local_hub.api("POST", f"/users/{bad}")
    assert_json_error(r, 400)


def test_post_one_user_normalizes_name(local_hub):
    a = uniq("norm")
    r = local_hub.api("POST", f"/users/{a.upper()}")
    assert r.status_code in (201, 400), r.text
    if r.status_code == 201:
        assert r.json()["name"] == a
        assert local_hub.api("GET", f"/users/{a}").status_code == 200


def test_patch_admin_and_rename(local_hub):
    a, b = local_hub.make_user(uniq()), uniq()
    _, tok = user_token(local_hub, a)
    r = local_hub.api("PATCH", f"/users/{a}", json={"admin": True})
    assert r.status_code == 200 and r.json()["admin"] is True
    r = local_hub.api("PATCH", f"/users/{a}", json={"name": b})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == b and r.json()["admin"] is True
    assert local_hub.api("GET", f"/users/{a}").status_code == 404
    assert local_hub.api("GET", f"/users/{b}").status_code == 200
    # the renamed user's token now belongs to the new name
    me = local_hub.api("GET", "/user", token=tok)
    assert me.status_code == 200 and me.json()["name"] == b
    # rename onto an existing user -> 400
    c = local_hub.make_user(uniq())
    assert_json_error(local_hub.api("PATCH", f"/users/{b}",
                                    json={"name": c}), 400, c)
    assert_json_error(local_hub.api("PATCH", f"/users/{b}",
                                    json={"name": "bad name"}), 400)
    assert_json_error(local_hub.api("PATCH", f"/users/{b}",
                                    json={"admin": 1}), 400)
    assert_json_error(local_hub.api("PATCH", f"/users/{b}",
                                    json={"shoe_size": 1}), 400, "shoe_size")
    assert_json_error(local_hub.api("PATCH", f"/users/{uniq()}",
                                    json={"admin": True}), 404)


def test_password_patch_then_login(local_hub):
    a = local_hub.make_user(uniq())
    r = local_hub.api("PATCH", f"/users/{a}",
                      json={"password": "s3cret-\u00e9t\u00e9"})
    assert r.status_code == 200, r.text
    assert "password" not in r.text
    s, r = login(local_hub, a, "s3cret-\u00e9t\u00e9")
    assert r.status_code == 302
    assert s.get(local_hub.url + "/hub/api/user", timeout=10).json()[
        "name"] == a
    # the hash is stored, not the password
    row = local_hub.sql(f"SELECT password_hash FROM users WHERE name='{a}'")
    assert row[0][0].startswith("$y$"), row
    assert_json_error(local_hub.api("PATCH", f"/users/{a}",
                                    json={"password": 5}), 400)


def test_non_admin_permissions(local_hub):
    a, tok = user_token(local_hub)
    b = local_hub.make_user(uniq())
    assert local_hub.api("GET", f"/users/{a}", token=tok).status_code == 200
    assert_json_error(local_hub.api("GET", f"/users/{b}", token=tok), 403)
    assert_json_error(local_hub.api("PATCH", f"/users/{a}", token=tok,
                                    json={"password": "x"}), 403)
    assert_json_error(local_hub.api("PATCH", f"/users/{a}", token=tok,
                                    json={"admin": True}), 403)
    assert local_hub.api("GET", f"/users/{a}").json()["admin"] is False
    assert_json_error(local_hub.api("PATCH", f"/users/{b}", token=tok,
                                    json={"admin": True}), 403)
    assert_json_error(local_hub.api("DELETE", f"/users/{b}", token=tok), 403)
    assert_json_error(local_hub.api("POST", "/users", token=tok,
                                    json={"usernames": [uniq()]}), 403)
    assert_json_error(local_hub.api("POST", f"/users/{b}/tokens",
                                    token=tok, json={}), 403)
    assert_json_error(local_hub.api("GET", f"/users/{b}/tokens",
                                    token=tok), 403)
    assert_json_error(local_hub.api("GET", "/groups", token=tok), 403)
    # no information leak: unknown users also answer 403 to non-admins
    assert_json_error(local_hub.api("GET", f"/users/{uniq()}", token=tok),
                      403)


# ---- tokens --------------------------------------------------------------

def test_tokens_create_list_get_revoke(local_hub):
    a = local_hub.make_user(uniq())
    r = local_hub.api("POST", f"/users/{a}/tokens",
                      json={"note": "ci \u2713", "expires_in": 3600})
    assert r.status_code == 201, r.text
    t = r.json()
    assert re.match(r"^a\d+$", t["id"]), t
    raw = t["token"]
    assert len(raw) >= 32
    assert t["note"] == "ci \u2713" and t["user"] == a
    exp = parse_iso(t["expires_at"])
    assert 3000 < (exp - datetime.now(timezone.utc)).total_seconds() < 3700
    parse_iso(t["created"])

    # the user's own token can create another (users manage their own)
    r = local_hub.api("POST", f"/users/{a}/tokens", token=raw, json={})
    assert r.status_code == 201, r.text
    t2 = r.json()

    r = local_hub.api("GET", f"/users/{a}/tokens")
    assert r.status_code == 200
    lst = r.json()["api_tokens"]
    assert {x["id"] for x in lst} == {t["id"], t2["id"]}
    assert raw not in r.text and t2["token"] not in r.text
    assert all("token" not in x for x in lst)

    r = local_hub.api("GET", f"/users/{a}/tokens/{t['id']}")
    assert r.status_code == 200 and r.json()["id"] == t["id"]
    assert "token" not in r.json()
    assert raw not in local_hub.stderr()

    assert local_hub.api("DELETE", f"/users/{a}/tokens/{t['id']}",
                         token=t2["token"]).status_code == 204
    assert_json_error(local_hub.api("GET", "/user", token=raw), 403)
    assert_json_error(local_hub.api("DELETE", f"/users/{a}/tokens/{t['id']}"),
                      404)
    assert_json_error(local_hub.api("GET", f"/users/{a}/tokens/{t['id']}"),
                      404)
    # the hash is stored, not the token
    assert local_hub.sql(
        f"SELECT count(*) FROM api_tokens WHERE hash = '{raw}'")[0][0] == "0"


def test_token_ids_of_other_users_404(local_hub):
    a, b = local_hub.make_user(uniq()), local_hub.make_user(uniq())
    tb = local_hub.api("POST", f"/users/{b}/tokens", json={}).json()
    assert_json_error(local_hub.api("GET", f"/users/{a}/tokens/{tb['id']}"),
                      404)
    assert_json_error(local_hub.api("DELETE",
                                    f"/users/{a}/tokens/{tb['id']}"), 404)
    assert local_hub.api("GET", "/user", token=tb["token"]).status_code == 200
    for bad in ("a0", "b1", "a-1", "a1x", "1", "a99999999999999999999"):
        r = local_hub.api("GET", f"/users/{a}/tokens/{bad}")
        assert_json_error(r, 404)


def test_token_expires_in_honoured(local_hub):
    a = local_hub.make_user(uniq())
    tok = local_hub.make_token(a, expires_in=1)
    assert local_hub.api("GET", "/user", token=tok).status_code == 200
    time.sleep(2.1)
    assert_json_error(local_hub.api("GET", "/user", token=tok), 403)
    lst = local_hub.api("GET", f"/users/{a}/tokens").json()["api_tokens"]
    assert lst == []


@pytest.mark.parametrize("body,ok", [
    ({"scopes": ["inherit"]}, True),
    ({"scopes": []}, True),
    ({"scopes": ["admin:users"]}, False),
    ({"scopes": "inherit"}, False),
    ({"roles": ["admin"]}, False),
    ({"expires_in": 0}, False),
    ({"expires_in": -5}, False),
    ({"expires_in": "60"}, False),
    ({"note": 5}, False),
    ({"note": "x" * 5000}, False),
    ({"flavour": "x"}, False),
])
def test_token_options(local_hub, body, ok):
    a = local_hub.make_user(uniq())
    r = local_hub.api("POST", f"/users/{a}/tokens", json=body)
    if ok:
        assert r.status_code == 201, r.text
    else:
        assert_json_error(r, 400)


def test_token_for_unknown_user_404(local_hub):
    assert_json_error(local_hub.api("POST", f"/users/{uniq()}/tokens",
                                    json={}), 404)
    assert_json_error(local_hub.api("GET", f"/users/{uniq()}/tokens"), 404)


def test_delete_user_revokes_tokens_and_sessions(local_hub):
    a = local_hub.make_user(uniq(), password="pw-delete-me")
    tok = local_hub.make_token(a)
    s = login_ok(local_hub, a, "pw-delete-me")
    assert s.get(local_hub.url + "/hub/api/user", timeout=10).status_code \
        == 200
    assert local_hub.api("DELETE", f"/users/{a}").status_code == 204
    assert_json_error(local_hub.api("GET", "/user", token=tok), 403)
    assert_json_error(s.get(local_hub.url + "/hub/api/user", timeout=10),
                      403)
    # a new user of the same name does not inherit them
    local_hub.make_user(a)
    assert_json_error(local_hub.api("GET", "/user", token=tok), 403)
    assert_json_error(s.get(local_hub.url + "/hub/api/user", timeout=10),
                      403)
    assert local_hub.sql(
        "SELECT count(*) FROM api_tokens t JOIN users u ON u.id=t.user_id "
        f"WHERE u.name='{a}'")[0][0] == "0"


# ---- cookie-authenticated API changes (XSRF) ------------------------------

def test_cookie_api_needs_xsrf(local_hub):
    a = local_hub.make_user(uniq(), password="pw-xsrf")
    s = login_ok(local_hub, a, "pw-xsrf")
    r = cookie_api(local_hub, s, "GET", "/user", xsrf=False)
    assert r.status_code == 200 and r.json()["name"] == a
    r = cookie_api(local_hub, s, "POST", f"/users/{a}/tokens", xsrf=False,
                   json={})
    assert_json_error(r, 403, "xsrf")
    r = cookie_api(local_hub, s, "POST", f"/users/{a}/tokens", xsrf=False,
                   json={}, headers={"X-XSRFToken": "0" * 64})
    assert_json_error(r, 403, "xsrf")
    r = cookie_api(local_hub, s, "POST", f"/users/{a}/tokens", json={})
    assert r.status_code == 201, r.text


def test_cookie_admin_can_manage_users(local_hub):
    s = login_ok(local_hub, HUBADMIN, HUBADMIN_PW)
    a = uniq()
    r = cookie_api(local_hub, s, "POST", "/users", json={"usernames": [a]})
    assert r.status_code == 201, r.text
    r = cookie_api(local_hub, s, "DELETE", f"/users/{a}")
    assert r.status_code == 204
    # a session's XSRF token does not work with another session
    s2 = login_ok(local_hub, HUBADMIN, HUBADMIN_PW)
    r = cookie_api(local_hub, s2, "POST", "/users", xsrf=False,
                   json={"usernames": [uniq()]},
                   headers={"X-XSRFToken": s.cookies.get("_xsrf")})
    assert_json_error(r, 403, "xsrf")


# ---- activity, groups, servers --------------------------------------------

def test_activity_updates_last_activity_and_is_flushed(local_hub):
    a = local_hub.make_user(uniq())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    r = local_hub.api("POST", f"/users/{a}/activity",
                      json={"last_activity": stamp})
    assert r.status_code in (200, 204), r.text
    u = local_hub.api("GET", f"/users/{a}").json()
    assert abs((parse_iso(u["last_activity"]) - now).total_seconds()) <= 1
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        row = local_hub.sql("SELECT extract(epoch FROM last_activity)::bigint"
                            f" FROM users WHERE name='{a}'")
        if row and row[0][0]:
            assert abs(int(row[0][0]) - now.timestamp()) <= 1
            break
        time.sleep(0.5)
    else:
        pytest.fail("last_activity not written to PostgreSQL within 8 s")
    assert_json_error(local_hub.api("POST", f"/users/{a}/activity",
                                    json={"last_activity": "yesterday"}), 400)
    assert_json_error(local_hub.api("POST", f"/users/{uniq()}/activity",
                                    json={"last_activity": stamp}), 404)


def test_groups_admin_only(local_hub):
    r = local_hub.api("GET", "/groups")
    assert r.status_code == 200 and isinstance(r.json(), list)
    assert_json_error(local_hub.api("GET", "/groups", token=""), 403)


def test_groups_from_ldap(ldap_hub):
    s = login_ok(ldap_hub, "bob", "bobpw")
    r = ldap_hub.api("GET", "/groups")
    assert r.status_code == 200
    groups = {g["name"]: g for g in r.json()}
    assert "bob" in groups["datascience"]["users"]
    assert "bob" in groups["analysts"]["users"]
    r = ldap_hub.api("GET", "/groups/datascience")
    assert r.status_code == 200 and "bob" in r.json()["users"]
    assert_json_error(ldap_hub.api("GET", "/groups/no-such-group"), 404)
    s.close()


@pytest.mark.parametrize("method,path", [
    ("POST", "/server"), ("DELETE", "/server"), ("GET", "/server/progress"),
])
def test_server_endpoints_answer_cleanly(local_hub, method, path):
    """Without Docker in this hub the server endpoints answer a JSON error
    (or, for progress, an event stream that says the server is not
    running) - never a crash or a hang."""
    a = local_hub.make_user(uniq())
    r = local_hub.api(method, f"/users/{a}{path}", timeout=30)
    ctype = r.headers.get("Content-Type", "")
    if r.status_code >= 400:
        assert_json_error(r, r.status_code)
    elif ctype.startswith("text/event-stream"):
        assert path.endswith("progress")
        assert r.text.startswith("data: "), r.text[:300]
    else:
        assert r.status_code in (201, 202, 204), (r.status_code, r.text)
    r = local_hub.api(method, f"/users/{uniq()}{path}")
    assert r.status_code in (404, 503), r.text  # 503: spawning not set up
    assert_json_error(r, r.status_code)
    other = local_hub.make_user(uniq())
    tok = local_hub.make_token(local_hub.make_user(uniq()))
    assert_json_error(local_hub.api(method, f"/users/{other}{path}",
                                    token=tok), 403)
    assert local_hub.alive()


# ---- metrics, errors ----------------------------------------------------

def test_metrics_prometheus(local_hub):
    local_hub.api("GET", "/user")
    r = local_hub.get("/hub/metrics", headers={
        "Authorization": f"token {local_hub.admin_token}"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert re.search(r"^# TYPE jupyterhub_total_users gauge$", text, re.M)
    m = re.search(r"^jupyterhub_total_users(\{[^}]*\})? (\d+)", text, re.M)
    assert m and int(m.group(2)) >= 1
    assert re.search(r"^# TYPE jupyterhub_request_duration_seconds "
                     r"histogram$", text, re.M)
    assert re.search(r'^jupyterhub_request_duration_seconds_bucket\{.*'
                     r'le="\+Inf"\} \d+', text, re.M)
    assert "jupyterhub_request_duration_seconds_count" in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? '
                            r'[-+0-9.eE]+|NaN|[+-]Inf$', line), line


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404), ("GET", "/users/x/nope", 404),
    ("GET", "/groupz", 404), ("PUT", "/users", 405),
    ("DELETE", "/users", 405), ("PUT", "/users/hubadmin", 405),
    ("PUT", "/users/hubadmin/tokens", 405),
    ("GET", "/users/hubadmin/activity", 405),
    ("POST", "/groups", 405),
])
def test_unknown_paths_and_methods(local_hub, method, path, status):
    r = local_hub.api(method, path)
    assert_json_error(r, status)


def test_hub_pages_404(local_hub):
    r = local_hub.get("/hub/nope")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("text/html")


def test_hub_survives_garbage(local_hub):
    """Raw requests that are not HTTP or are cut short."""
    import socket
    for raw in (b"GARBAGE\r\n\r\n", b"GET /hub/api/users HTTP/1.1\r\n",
                b"POST /hub/api/users HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100\r\n\r\n{\"user",
                b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /hub/api/users/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", local_hub.port), 5) as c:
            c.sendall(raw)
            c.shutdown(socket.SHUT_WR)
            c.settimeout(1)
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass
    assert local_hub.get("/hub/health").status_code == 200
    assert local_hub.alive()


def test_concurrent_creates_of_one_name(local_hub):
    from concurrent.futures import ThreadPoolExecutor
    name = uniq("race")

    def create(i):
        if i % 2:
            return local_hub.api("POST", f"/users/{name}").status_code
        return local_hub.api("POST", "/users",
                             json={"usernames": [name]}).status_code

    with ThreadPoolExecutor(12) as ex:
        codes = list(ex.map(create, range(12)))
    assert codes.count(201) == 1, codes
    assert set(codes) <= {201, 409}, codes
    names = [u["name"] for u in local_hub.api("GET", "/users").json()]
    assert names.count(name) == 1
    assert local_hub.sql(
        f"SELECT count(*) FROM users WHERE name='{name}'") == [["1"]]

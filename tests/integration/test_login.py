"""
test_login.py - signing in through the form, local and LDAP (the test
slapd of tests/services/slapd.sh), sessions, logout, the failed-login
limiter, the audit log and the LDAP membership re-check.
"""
import os
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests

from hubtest import (GROUPS, PEOPLE, cookie_api, form_xsrf, ldap_env, login,
                     login_ok, need_ldap, uniq, wait_for)


def me(hub, session):
    return session.get(hub.url + "/hub/api/user", timeout=10,
                       allow_redirects=False)


def set_cookie_headers(r):
    return r.raw.headers.getlist("Set-Cookie")


def session_cookie_header(r):
    for c in set_cookie_headers(r):
        if c.startswith("swarmhub-session="):
            return c
    raise AssertionError(f"no session cookie in {set_cookie_headers(r)}")


def login_cookie_header(r):
    """The login nonce cookie the login form sets."""
    for c in set_cookie_headers(r):
        if c.startswith("swarmhub-login="):
            return c
    raise AssertionError(f"no login cookie in {set_cookie_headers(r)}")


def assert_login_refused(r, status=403, *words):
    assert r.status_code == status, (r.status_code, r.text[:800])
    assert r.headers["Content-Type"].startswith("text/html")
    assert 'name="password"' in r.text, "the form is shown again"
    assert 'class="error"' in r.text
    for w in words:
        assert w.lower() in r.text.lower(), (w, r.text[:2000])
    assert "swarmhub-session=" not in " ".join(
        c for c in set_cookie_headers(r) if "Max-Age=0" not in c)


@pytest.fixture
def local_user(local_hub):
    name = local_hub.make_user(uniq("lg"), password="right-pw")
    return name


# ---- local logins --------------------------------------------------------

def test_login_page(local_hub):
    r = local_hub.get("/hub/login")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert len(form_xsrf(r.text)) >= 32
    assert 'name="username"' in r.text and 'name="password"' in r.text


def test_local_login_success(local_hub, local_user):
    s, r = login(local_hub, local_user, "right-pw")
    assert r.status_code == 302
    assert urlsplit(r.headers["Location"]).path == "/hub/home"
    c = session_cookie_header(r)
    low = c.lower()
    assert "httponly" in low
    assert "samesite=lax" in low
    assert "secure" not in low.replace("samesite", "")
    assert me(local_hub, s).json()["name"] == local_user
    home = s.get(local_hub.url + "/hub/home", timeout=10,
                 allow_redirects=False)
    assert home.status_code == 200 and local_user in home.text
    # the session id is stored hashed
    raw = s.cookies.get("swarmhub-session")
    assert local_hub.sql(
        f"SELECT count(*) FROM sessions WHERE hash = '{raw}'")[0][0] == "0"


def test_secure_cookie_behind_trusted_https_proxy(start_hub):
    hub = start_hub("proxy", env={"SWARMHUB_TRUSTED_PROXIES": "127.0.0.1"})
    hub.make_user("px", password="pw")
    h = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.8.7"}
    r = requests.get(hub.url + "/hub/login", timeout=10)
    assert "secure" not in login_cookie_header(r).lower().replace(
        "samesite", "")
    # over HTTPS (per the trusted proxy) the login nonce is Secure too;
    # this client talks plain HTTP, so it sends the cookie by hand
    r = requests.get(hub.url + "/hub/login", headers=h, timeout=10)
    assert "secure" in login_cookie_header(r).lower().replace(
        "samesite", "")
    nonce = login_cookie_header(r).split(";")[0].split("=", 1)[1]
    r = requests.post(hub.url + "/hub/login", headers=h,
                      cookies={"swarmhub-login": nonce},
                      data={"username": "px", "password": "pw",
                            "_xsrf": form_xsrf(r.text)},
                      allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    assert "secure" in session_cookie_header(r).lower()
    row = hub.sql("SELECT ip FROM audit_log WHERE action='login' "
                  "ORDER BY id DESC LIMIT 1")
    assert row == [["10.9.8.7"]]


def test_untrusted_forwarded_headers_ignored(local_hub, local_user):
    h = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3"}
    s, r = login(local_hub, local_user, "right-pw", headers=h)
    assert r.status_code == 302
    assert "secure" not in session_cookie_header(r).lower().replace(
        "samesite", "")
    row = local_hub.sql("SELECT ip FROM audit_log WHERE action='login' AND "
                        f"target='{local_user}' ORDER BY id DESC LIMIT 1")
    assert row == [["127.0.0.1"]]


@pytest.mark.parametrize("nxt,want", [
    ("/hub/api/user", "/hub/api/user"),
    ("/user/x/lab?a=1", "/user/x/lab"),
    ("//evil.com", "/hub/home"),
    ("//evil.com/hub/home", "/hub/home"),
    ("http://evil.com", "/hub/home"),
    ("https://evil.com/x", "/hub/home"),
    ("/\\evil.com", "/hub/home"),
    ("\\\\evil.com", "/hub/home"),
    ("javascript:alert(1)", "/hub/home"),
    ("/%2F/evil.com", None),
    ("/\t/evil.com", None),
])
def test_login_next_stays_on_site(local_hub, local_user, nxt, want):
    s, r = login(local_hub, local_user, "right-pw", next=nxt)
    assert r.status_code == 302
    loc = r.headers["Location"]
    u = urlsplit(loc)
    assert u.scheme in ("", "http") and u.netloc in (
        "", f"127.0.0.1:{local_hub.port}"), loc
    assert not loc.startswith("//") and not loc.startswith("/\\"), loc
    assert "\t" not in loc and "\\" not in loc.split("?")[0], loc
    # what a browser would resolve it to stays on the hub
    resolved = requests.compat.urljoin(local_hub.url + "/hub/login", loc)
    assert urlsplit(resolved).netloc == f"127.0.0.1:{local_hub.port}", loc
    if want:
        assert u.path == want, loc


def test_home_escapes_name_and_needs_login(local_hub):
    r = local_hub.get("/hub/home")
    assert r.status_code == 302 and "/hub/login" in r.headers["Location"]
    # a user name containing markup must be escaped wherever it is shown:
    # names are restricted, so echo through the login form instead
    s = requests.Session()
    page = s.get(local_hub.url + "/hub/login", timeout=10)
    r = s.post(local_hub.url + "/hub/login", allow_redirects=False,
               timeout=10, data={"username": '"><script>alert(1)</script>',
                                 "password": "x",
                                 "_xsrf": form_xsrf(page.text)})
    assert r.status_code in (400, 403)
    assert "<script>alert(1)" not in r.text
    assert "&lt;script&gt;" in r.text or "script" not in r.text


def test_wrong_password_403_with_form(local_hub, local_user):
    _, r = login(local_hub, local_user, "wrong-pw")
    assert_login_refused(r, 403, "invalid username or password")
    _, r = login(local_hub, uniq("nobody"), "whatever")
    assert_login_refused(r, 403, "invalid username or password")


def test_empty_password_refused(local_hub, local_user):
    _, r = login(local_hub, local_user, "")
    assert_login_refused(r, 403)


def test_login_without_or_with_forged_xsrf_403(local_hub, local_user):
    s = requests.Session()
    page = s.get(local_hub.url + "/hub/login", timeout=10)
    good = form_xsrf(page.text)
    cases = [
        {"username": local_user, "password": "right-pw"},
        {"username": local_user, "password": "right-pw", "_xsrf": ""},
        {"username": local_user, "password": "right-pw", "_xsrf": "0" * 64},
        {"username": local_user, "password": "right-pw",
         "_xsrf": good[:-1] + ("0" if good[-1] != "0" else "1")},
    ]
    for data in cases:
        r = s.post(local_hub.url + "/hub/login", data=data, timeout=10,
                   allow_redirects=False)
        assert_login_refused(r, 403)
    # the right _xsrf without its login cookie (another browser) fails too
    r = requests.post(local_hub.url + "/hub/login", timeout=10,
                      allow_redirects=False,
                      data={"username": local_user, "password": "right-pw",
                            "_xsrf": good})
    assert_login_refused(r, 403)


def test_login_non_utf8_and_huge_fields(local_hub, local_user):
    s = requests.Session()
    page = s.get(local_hub.url + "/hub/login", timeout=10)
    x = form_xsrf(page.text)
    for body in (b"username=%ff%fe&password=x&_xsrf=" + x.encode(),
                 b"username=" + b"a" * 5000 + b"&password=x&_xsrf="
                 + x.encode(),
                 b"username=alice%00&password=x&_xsrf=" + x.encode(),
                 b"\xff\xfe\xfd"):
        r = s.post(local_hub.url + "/hub/login", data=body, timeout=10,
                   allow_redirects=False, headers={
                       "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code in (400, 403), (body[:40], r.status_code)
        assert r.headers["Content-Type"].startswith("text/html")
    assert local_hub.get("/hub/health").status_code == 200


def test_logout_revokes_session(local_hub, local_user):
    s = login_ok(local_hub, local_user, "right-pw")
    stolen = s.cookies.get("swarmhub-session")
    assert me(local_hub, s).status_code == 200
    # GET only shows the form: a link or an image elsewhere signs no one out
    r = s.get(local_hub.url + "/hub/logout", timeout=10,
              allow_redirects=False)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert 'method="post" action="/hub/logout"' in r.text
    xsrf = form_xsrf(r.text)
    assert me(local_hub, s).status_code == 200
    # a POST without the form's _xsrf (another site's form) does nothing
    r = s.post(local_hub.url + "/hub/logout", data={"_xsrf": "x" * 64},
               timeout=10, allow_redirects=False)
    assert r.status_code == 403
    assert me(local_hub, s).status_code == 200
    r = s.post(local_hub.url + "/hub/logout", data={"_xsrf": xsrf},
               timeout=10, allow_redirects=False)
    assert r.status_code in (302, 303)
    assert urlsplit(r.headers["Location"]).path == "/hub/login"
    assert me(local_hub, s).status_code == 403
    # replaying the old cookie does not bring the session back
    r = requests.get(local_hub.url + "/hub/api/user", timeout=10,
                     cookies={"swarmhub-session": stolen})
    assert r.status_code == 403
    r = requests.get(local_hub.url + "/hub/home", timeout=10,
                     cookies={"swarmhub-session": stolen},
                     allow_redirects=False)
    assert r.status_code == 302
    assert local_hub.sql(
        "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id "
        f"WHERE u.name = '{local_user}'")[0][0] == "0"


def test_logout_without_session_goes_to_login(local_hub):
    r = local_hub.get("/hub/logout")
    assert r.status_code == 302
    assert urlsplit(r.headers["Location"]).path == "/hub/login"


def test_home_logs_out_with_a_form(local_hub, local_user):
    s = login_ok(local_hub, local_user, "right-pw")
    home = s.get(local_hub.url + "/hub/home", timeout=10).text
    assert 'href="/hub/logout"' not in home
    i = home.index('action="/hub/logout"')
    xsrf = form_xsrf(home[i:])
    r = s.post(local_hub.url + "/hub/logout", data={"_xsrf": xsrf},
               timeout=10, allow_redirects=False)
    assert r.status_code == 302
    assert me(local_hub, s).status_code == 403


def test_cookie_xsrf_comes_with_login(local_hub, local_user):
    """A page's script must be able to learn the X-XSRFToken value."""
    s = login_ok(local_hub, local_user, "right-pw")
    r = cookie_api(local_hub, s, "POST", f"/users/{local_user}/tokens",
                   json={"note": "from the browser"})
    assert r.status_code == 201, r.text


# ---- failed-login limiter ------------------------------------------------

def test_repeated_failures_throttled_then_released(start_hub):
    hub = start_hub("throttle", env={"SWARMHUB_LOGIN_WINDOW": "3s"})
    hub.make_user("victim", password="right-pw")
    for _ in range(5):
        _, r = login(hub, "victim", "wrong")
        assert r.status_code == 403
    _, r = login(hub, "victim", "right-pw")
    assert_login_refused(r, 429, "too many failed logins")
    time.sleep(3.5)
    _, r = login(hub, "victim", "right-pw")
    assert r.status_code == 302, r.text[:500]
    rows = hub.sql("SELECT count(*) FROM audit_log WHERE "
                   "action='login.failed' AND target='victim'")
    assert int(rows[0][0]) >= 5


def test_failures_for_one_name_do_not_lock_out_others(start_hub):
    """Five typos by one person must not lock everyone else behind the same
    address (an office NAT, or every user when the hub sits behind nginx
    without SWARMHUB_TRUSTED_PROXIES) out of the hub."""
    hub = start_hub("throttle-ip", env={"SWARMHUB_LOGIN_WINDOW": "60s"})
    hub.make_user("typo", password="pw1")
    hub.make_user("bystander", password="pw2")
    for _ in range(5):
        assert login(hub, "typo", "wrong")[1].status_code == 403
    _, r = login(hub, "bystander", "pw2")
    assert r.status_code == 302, (r.status_code, r.text[:300])


# ---- audit log ---------------------------------------------------------

def test_audit_log_rows(local_hub):
    name = uniq("aud")
    r = local_hub.api("POST", "/users", json={"usernames": [name]})
    assert r.status_code == 201
    local_hub.api("PATCH", f"/users/{name}", json={"password": "pw-a"})
    login(local_hub, name, "nope")
    login_ok(local_hub, name, "pw-a")
    rows = local_hub.sql(
        "SELECT action, actor, target, ip FROM audit_log WHERE "
        f"target = '{name}' OR detail::text LIKE '%{name}%' ORDER BY id")
    acts = [r[0] for r in rows]
    assert "user.create" in acts, rows
    assert "login.failed" in acts, rows
    assert "login" in acts, rows
    create = next(r for r in rows if r[0] == "user.create")
    assert create[1] == "admin-token", create
    ok = next(r for r in rows if r[0] == "login")
    assert ok[1] == name and ok[3] == "127.0.0.1", ok
    ts = local_hub.sql("SELECT count(*) FROM audit_log WHERE "
                       "ts > now() - interval '5 minutes' AND "
                       f"target = '{name}'")
    assert int(ts[0][0]) == len([r for r in rows if r[2] == name])


# ---- LDAP ------------------------------------------------------------

def test_ldap_alice_with_groups(ldap_hub):
    s, r = login(ldap_hub, "alice", "alicepw")
    assert r.status_code == 302, r.text[:500]
    u = me(ldap_hub, s).json()
    assert u["name"] == "alice" and u["admin"] is False
    assert "datascience" in u["groups"]
    assert "x<script>alert(1)</script>" in u["groups"]
    home = s.get(ldap_hub.url + "/hub/home", timeout=10)
    assert "<script>alert(1)" not in home.text


def test_ldap_wrong_password(ldap_hub):
    _, r = login(ldap_hub, "alice", "nope")
    assert_login_refused(r, 403, "invalid username or password")
    _, r = login(ldap_hub, "alice", "")
    assert_login_refused(r, 403)


def test_ldap_admin_via_group(ldap_hub):
    s = login_ok(ldap_hub, "carol", "carolpw")
    u = me(ldap_hub, s).json()
    assert u["admin"] is True
    assert "hub-admins" in u["groups"] and "analysts" in u["groups"]
    assert ldap_hub.api("GET", "/users", token="",
                        headers={}).status_code == 403
    r = s.get(ldap_hub.url + "/hub/api/users", timeout=10)
    assert r.status_code == 200


def test_ldap_posix_group_member(ldap_hub):
    s = login_ok(ldap_hub, "bob", "bobpw")
    assert "analysts" in me(ldap_hub, s).json()["groups"]


def test_ldap_not_in_allowed_group(ldap_hub):
    _, r = login(ldap_hub, "dave", "davepw")
    assert_login_refused(r, 403, "allowed group")
    assert ldap_hub.api("GET", "/users/dave").status_code == 404


def test_ldap_user_without_password_attr(ldap_hub):
    _, r = login(ldap_hub, "erin", "anything")
    assert_login_refused(r, 403)


@pytest.mark.parametrize("name", ["*", "alice)(uid=*", "alice*", "*)(|(uid=*",
                                  "alice,ou=People", "alice\\2a",
                                  "cn=admin,dc=example,dc=com", " * "])
def test_ldap_injection_refused(ldap_hub, name):
    for pw in ("alicepw", "*", "adminpw"):
        _, r = login(ldap_hub, name, pw)
        assert r.status_code in (400, 403), (name, r.status_code)
        assert "swarmhub-session=" not in " ".join(
            c for c in set_cookie_headers(r) if "Max-Age=0" not in c)
    assert ldap_hub.get("/hub/health").status_code == 200


def test_ldap_frank_trimmed_and_lowercased(start_hub):
    need_ldap()
    hub = start_hub("ldap-frank", env=ldap_env(
        SWARMHUB_LDAP_ALLOWED_GROUPS="frank-team,datascience"))
    s, r = login(hub, "  FRANK ", "frankpw")
    assert r.status_code == 302, r.text[:800]
    u = me(hub, s).json()
    assert u["name"] == "frank"
    assert "frank-team" in u["groups"]


def test_ldap_ldaps_and_starttls(start_hub):
    need_ldap()
    ca = os.environ.get("SWARMHUB_TEST_LDAP_CA", "")
    hub = start_hub("ldaps", env=ldap_env(
        SWARMHUB_LDAP_URI=os.environ.get("SWARMHUB_TEST_LDAPS_URI", ""),
        SWARMHUB_LDAP_CA_FILE=ca))
    assert login(hub, "alice", "alicepw")[1].status_code == 302
    hub2 = start_hub("starttls", env=ldap_env(SWARMHUB_LDAP_STARTTLS="1",
                                              SWARMHUB_LDAP_CA_FILE=ca))
    assert login(hub2, "bob", "bobpw")[1].status_code == 302


def test_ldap_search_then_bind(start_hub):
    need_ldap()
    hub = start_hub("ldap-search", env=ldap_env(
        SWARMHUB_LDAP_BIND_DN_TEMPLATE=None,
        SWARMHUB_LDAP_SEARCH_BASE=PEOPLE,
        SWARMHUB_LDAP_SEARCH_USER="cn=reader,dc=example,dc=com",
        SWARMHUB_LDAP_SEARCH_PASSWORD="readerpw"))
    assert login(hub, "alice", "alicepw")[1].status_code == 302
    _, r = login(hub, "alice", "bad")
    assert_login_refused(r, 403)
    _, r = login(hub, "*", "alicepw")
    assert r.status_code in (400, 403)


# The README's example for Active Directory, against the test slapd's
# AD-shaped branch (ou=Corp: sAMAccountName, userPrincipalName, groups
# nested in groups), over ldaps:// with the CA, the search password from a
# file. Kept in step with README.md "Active Directory".
CORP = "ou=Corp,dc=example,dc=com"


def ad_env(tmp_path, **over):
    pw = tmp_path / "ldap-search-password"
    pw.write_text("readerpw\n")
    return ldap_env(**{
        "SWARMHUB_LDAP_URI": os.environ.get("SWARMHUB_TEST_LDAPS_URI", ""),
        "SWARMHUB_LDAP_CA_FILE": os.environ.get("SWARMHUB_TEST_LDAP_CA", ""),
        "SWARMHUB_LDAP_BIND_DN_TEMPLATE": None,
        "SWARMHUB_LDAP_GROUP_BASE": None,
        "SWARMHUB_LDAP_SEARCH_BASE": CORP,
        "SWARMHUB_LDAP_SEARCH_FILTER":
            "(&(objectClass=user)(|(sAMAccountName={username})"
            "(userPrincipalName={username})))",
        "SWARMHUB_LDAP_USERNAME_ATTRIBUTE": "sAMAccountName",
        "SWARMHUB_LDAP_SEARCH_USER": "cn=reader,dc=example,dc=com",
        "SWARMHUB_LDAP_SEARCH_PASSWORD_FILE": str(pw),
        "SWARMHUB_LDAP_NESTED_GROUPS_DEPTH": "5",
        "SWARMHUB_LDAP_ALLOWED_GROUPS": f"CN=APP-Jupyter-Users,OU=Groups,"
                                        f"{CORP}",
        "SWARMHUB_LDAP_ADMIN_GROUPS": f"CN=APP-Jupyter-Admins,OU=Groups,"
                                      f"{CORP}",
        **over})


def test_ldap_active_directory_shape(start_hub, tmp_path):
    need_ldap()
    hub = start_hub("ldap-ad", env=ad_env(tmp_path))
    # the UPN, in any case: the hub's user is the sAMAccountName
    s, r = login(hub, "DScully@Corp.Example.com", "dscullypw")
    assert r.status_code == 302, r.text[:800]
    u = me(hub, s).json()
    assert u["name"] == "dscully", u
    # allowed through GG-Quant-Desk in GG-Risk in APP-Jupyter-Users, admin
    # through Loop-A in Loop-B (in Loop-A) in APP-Jupyter-Admins
    assert u["admin"] is True, u
    assert sorted(u["groups"]) == ["APP-Jupyter-Admins", "APP-Jupyter-Users",
                                   "GG-Quant-Desk", "GG-Risk", "Loop-A",
                                   "Loop-B"], u
    # the short name is the same user
    s2 = login_ok(hub, "dscully", "dscullypw")
    assert me(hub, s2).json()["name"] == "dscully"
    names = [x["name"] for x in hub.api("GET", "/users").json()]
    assert "dscully" in names and \
        not any(n.startswith("dscully@") for n in names), names
    _, r = login(hub, "dscully@corp.example.com", "wrong")
    assert_login_refused(r, 403, "invalid username or password")
    # Fox's groups nest 11 deep, none into APP-Jupyter-Users
    _, r = login(hub, "fmulder", "fmulderpw")
    assert_login_refused(r, 403, "allowed group")
    # and alice, outside ou=Corp, is not found there
    _, r = login(hub, "alice", "alicepw")
    assert_login_refused(r, 403, "invalid username or password")


def test_ldap_ad_settings_refused_at_start(start_hub, tmp_path):
    need_ldap()
    for over, words in (
            ({"SWARMHUB_LDAP_NESTED_GROUPS_DEPTH": "11"},
             "SWARMHUB_LDAP_NESTED_GROUPS_DEPTH"),
            ({"SWARMHUB_LDAP_BIND_DN_TEMPLATE": "uid={username}," + PEOPLE},
             "LDAP_USERNAME_ATTRIBUTE needs search-then-bind")):
        hub = start_hub("ldap-ad-bad", env=ad_env(tmp_path, **over),
                        wait=False)
        assert hub.proc.wait(20) != 0, over
        assert words in hub.stderr(), hub.stderr()[-1000:]


def ldap_modify(ldif):
    r = subprocess.run(
        ["ldapmodify", "-x", "-H", os.environ["SWARMHUB_TEST_LDAP_URI"],
         "-D", "cn=admin,dc=example,dc=com", "-w", "adminpw"],
        input=ldif, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_ldap_recheck_locks_out_removed_member(start_hub):
    need_ldap()
    hub = start_hub("ldap-recheck", env=ldap_env(
        SWARMHUB_LDAP_ALLOWED_GROUPS="datascience",
        SWARMHUB_AUTH_RECHECK="2s"))
    s = login_ok(hub, "alice", "alicepw")
    assert me(hub, s).status_code == 200
    dn = f"cn=datascience,{GROUPS}"
    try:
        ldap_modify(f"dn: {dn}\nchangetype: modify\ndelete: member\n"
                    f"member: uid=alice,{PEOPLE}\n")
        time.sleep(2)
        # the re-check runs in the background: the first request after
        # AUTH_RECHECK starts it and passes; refused once it has answered
        r = wait_for(lambda: me(hub, s), 10, "the session is refused",
                     interval=0.2, ok=lambda r: r.status_code != 200)
        assert r.status_code == 403, r.text
        r = s.get(hub.url + "/hub/home", timeout=10, allow_redirects=False)
        assert r.status_code == 302
        _, r = login(hub, "alice", "alicepw")
        assert_login_refused(r, 403, "allowed group")
    finally:
        ldap_modify(f"dn: {dn}\nchangetype: modify\nadd: member\n"
                    f"member: uid=alice,{PEOPLE}\n")
    assert login(hub, "alice", "alicepw")[1].status_code == 302


def test_ldap_admin_rights_follow_directory(start_hub):
    need_ldap()
    hub = start_hub("ldap-admin", env=ldap_env(SWARMHUB_AUTH_RECHECK="1s"))
    dn = f"cn=hub-admins,{GROUPS}"
    s = login_ok(hub, "bob", "bobpw")
    assert me(hub, s).json()["admin"] is False
    try:
        ldap_modify(f"dn: {dn}\nchangetype: modify\nadd: member\n"
                    f"member: uid=bob,{PEOPLE}\n")
        s = login_ok(hub, "bob", "bobpw")
        assert me(hub, s).json()["admin"] is True
        ldap_modify(f"dn: {dn}\nchangetype: modify\ndelete: member\n"
                    f"member: uid=bob,{PEOPLE}\n")
        time.sleep(1)
        wait_for(lambda: me(hub, s).json(), 10, "admin rights end",
                 interval=0.2, ok=lambda u: u["admin"] is False)
    finally:
        subprocess.run(
            ["ldapmodify", "-x", "-H", os.environ["SWARMHUB_TEST_LDAP_URI"],
             "-D", "cn=admin,dc=example,dc=com", "-w", "adminpw", "-c"],
            input=f"dn: {dn}\nchangetype: modify\ndelete: member\n"
                  f"member: uid=bob,{PEOPLE}\n",
            capture_output=True, text=True, timeout=30)


def test_ldap_recheck_revokes_api_tokens(start_hub):
    """Credentials follow the directory: a token of a user who left the
    allowed groups stops working at the next re-check, as sessions do."""
    need_ldap()
    hub = start_hub("ldap-token", env=ldap_env(
        SWARMHUB_LDAP_ALLOWED_GROUPS="datascience",
        SWARMHUB_AUTH_RECHECK="2s"))
    s = login_ok(hub, "alice", "alicepw")
    r = cookie_api(hub, s, "POST", "/users/alice/tokens",
                   json={"note": "a script"})
    assert r.status_code == 201, r.text
    auth = {"Authorization": "token " + r.json()["token"]}

    def as_token(path="/hub/api/user"):
        return requests.get(hub.url + path, headers=auth, timeout=10,
                            allow_redirects=False)

    assert as_token().status_code == 200
    # a member stays in: re-checks pass and the token keeps working
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4:
        assert as_token().status_code == 200
        time.sleep(0.25)
    dn = f"cn=datascience,{GROUPS}"
    try:
        ldap_modify(f"dn: {dn}\nchangetype: modify\ndelete: member\n"
                    f"member: uid=alice,{PEOPLE}\n")
        time.sleep(2)
        r = wait_for(as_token, 10, "the token is refused", interval=0.2,
                     ok=lambda r: r.status_code != 200)
        assert r.status_code == 403, r.text
        assert me(hub, s).status_code == 403
        # through the edge too
        assert as_token("/user/alice/").status_code == 403
        assert hub.sql("SELECT count(*) FROM api_tokens t JOIN users u ON "
                       "u.id = t.user_id WHERE u.name = 'alice'") == [["0"]]
    finally:
        ldap_modify(f"dn: {dn}\nchangetype: modify\nadd: member\n"
                    f"member: uid=alice,{PEOPLE}\n")
    assert "session.revoked" in hub.stderr()


def test_ldap_password_patch_refused(ldap_hub):
    login_ok(ldap_hub, "bob", "bobpw")
    r = ldap_hub.api("PATCH", "/users/bob", json={"password": "x"})
    assert r.status_code == 400 and "ldap" in r.json()["message"].lower()


def test_session_idle_and_absolute_expiry(start_hub):
    hub = start_hub("expiry", env={"SWARMHUB_SESSION_IDLE_TIMEOUT": "2s",
                                   "SWARMHUB_SESSION_MAX_AGE": "4s"})
    hub.make_user("sleepy", password="pw")
    s = login_ok(hub, "sleepy", "pw")
    time.sleep(2.5)
    assert me(hub, s).status_code == 403  # idle too long
    s = login_ok(hub, "sleepy", "pw")
    t0 = time.monotonic()
    for _ in range(3):  # stays active, but reaches the absolute limit
        time.sleep(0.9)
        assert me(hub, s).status_code == 200, time.monotonic() - t0
    time.sleep(4.3 - (time.monotonic() - t0))
    assert me(hub, s).status_code == 403


def test_ldap_server_down_is_503_not_403(start_hub):
    """A directory that does not answer is an outage, not a wrong password
    (and must not count as a failed login)."""
    from hubtest import free_port
    hub = start_hub("ldap-down", env=ldap_env(
        SWARMHUB_LDAP_URI=f"ldap://127.0.0.1:{free_port()}",
        SWARMHUB_LDAP_TIMEOUT="2", SWARMHUB_LOGIN_MAX_FAILURES="2"))
    for _ in range(3):
        t0 = time.monotonic()
        _, r = login(hub, "alice", "alicepw")
        assert r.status_code == 503, (r.status_code, r.text[:300])
        assert time.monotonic() - t0 < 10
    assert hub.alive()


def test_local_login_name_is_normalized(local_hub):
    name = local_hub.make_user(uniq("case"), password="pw-case")
    s, r = login(local_hub, "  " + name.upper() + " ", "pw-case")
    assert r.status_code == 302
    assert me(local_hub, s).json()["name"] == name


# ---- who may read /hub/metrics (METRICS_AUTH) -----------------------------

def test_metrics_need_an_admin_token(local_hub, local_user):
    r = local_hub.get("/hub/metrics")
    assert r.status_code == 401, r.text
    assert r.json()["status"] == 401
    tok = local_hub.make_token(local_user)
    r = local_hub.get("/hub/metrics",
                      headers={"Authorization": f"token {tok}"})
    assert r.status_code == 403 and r.json()["status"] == 403
    r = local_hub.get("/hub/metrics",
                      headers={"Authorization": "Bearer " + "0" * 64})
    assert r.status_code == 403
    # a session cookie is not a scraper's credential
    s = login_ok(local_hub, local_user, "right-pw")
    assert s.get(local_hub.url + "/hub/metrics", timeout=10
                 ).status_code == 401
    for h in ({"Authorization": f"token {local_hub.admin_token}"},
              {"Authorization": f"Bearer {local_hub.admin_token}"}):
        r = local_hub.get("/hub/metrics", headers=h)
        assert r.status_code == 200, r.text
        assert "jupyterhub_" in r.text or "swarmhub_" in r.text
    admin = local_hub.make_user(uniq("madm"), admin=True)
    tok = local_hub.make_token(admin)
    r = local_hub.get("/hub/metrics",
                      headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text


def test_metrics_auth_none_and_invalid(start_hub):
    hub = start_hub("metrics-open", env={"SWARMHUB_METRICS_AUTH": "none"})
    assert hub.get("/hub/metrics").status_code == 200
    bad = start_hub("metrics-bad", env={"SWARMHUB_METRICS_AUTH": "public"},
                    wait=False)
    assert bad.proc.wait(20) != 0
    assert "SWARMHUB_METRICS_AUTH" in bad.stderr()


# ---- a body only from callers who may send one -----------------------------

def send_headers_only(hub, head, wait=3):
    """Sends a request's head but none of the body it announces; returns
    (seconds to the answer, its status line or "" after wait seconds)."""
    t0 = time.monotonic()
    got = b""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as c:
        c.sendall(head.encode())
        c.settimeout(wait)
        try:
            while b"\r\n" not in got:
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
    return time.monotonic() - t0, got.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("path", ["/hub/api/users", "/hub/spawn",
                                  "/hub/api/users/x/tokens"])
def test_anonymous_body_refused_before_it_is_sent(local_hub, path):
    took, status = send_headers_only(local_hub, (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{local_hub.port}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 100000000\r\n\r\n"))
    assert status.split()[1] == "403", status
    assert took < 1, took
    # with a token the same request waits for its body
    took, status = send_headers_only(local_hub, (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{local_hub.port}\r\n"
        f"Authorization: token {local_hub.admin_token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{"),
        wait=1.5)
    assert status == "", status  # no answer while the body is incomplete
    assert local_hub.get("/hub/health").status_code == 200


def test_login_form_still_takes_its_body(local_hub, local_user):
    s = login_ok(local_hub, local_user, "right-pw")
    assert me(local_hub, s).status_code == 200

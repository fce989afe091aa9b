"""
test_pages.py - the hub's web pages in a real browser (headless Chromium,
Selenium, as in test_browser.py) and over plain HTTP, against a hub with
PostgreSQL, slapd (alice in datascience and in the group
`x<script>alert(1)</script>`, carol in hub-admins) and the spawner on the
local swarm (SWARMHUB_CONNECT=gwbridge, the tiny image
swarmhub/test-notebook:latest, homes in a local directory).

Needs: SWARMHUB_TEST_DB (+ _PG_DIR), SWARMHUB_TEST_LDAP_URI,
SWARMHUB_TEST_DOCKER_NETWORK ('tests/services/docker.sh start'), the image.
SWARMHUB_TEST_SKIP=docker (or ldap, postgres) skips instead of failing.
Screenshots: $SWARMHUB_TEST_OUT/pages-*.png.
"""
import html.parser
import os
import re
import shutil
import time
from urllib.parse import urlsplit

import pytest
import requests

from hubtest import (NB_CMD, PID, SHARED_ENV, TINY, Hub, all_by, by, chromium,
                     click_and_load, driver_log, ldap_env, limits, loaded,
                     login_ok, need_docker, need_ldap, remove_services, shot,
                     sign_in, wait, wait_for, write_profiles, xsrf_of)

HUB_ID = f"pages{PID}"
XSS_GROUP = "x<script>alert(1)</script>"
MARKUP_DESC = 'Tiny <b>bold</b> notebook <img src=x id="evil">'
HUB_NAME = "Data <Lab>"
LOGO = ("data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcv"
        "MjAwMC9zdmciIHZpZXdCb3g9IjAgMCAzMiAzMiI+PGNpcmNsZSBjeD0iMTYiIGN5PSIx"
        "NiIgcj0iMTQiIGZpbGw9IiNmNGEyNjEiLz48L3N2Zz4=")
CSP = "script-src 'self'"


# ---- the hub ---------------------------------------------------------------

def write_pages_profiles(path):
    common = limits(cpu=(0.1, 1, 0.5), mem_gb=(0.1, 2, 0.25))
    return write_profiles(path, {
        "tiny": {"image": TINY, "description": MARKUP_DESC,
                 "cmd": NB_CMD, "port": 8888},
        "crashy": {"image": TINY, "description": "exits at once",
                   "cmd": ["sh", "-c", "exit 3"]},
        "analyst": {"image": TINY, "description": "only for analysts",
                    "cmd": NB_CMD},
    }, {
        "default": {"images": ["tiny"], **common},
        "datascience": {"images": ["tiny", "crashy"], **common,
                        "gpus": 1,
                        "quota": {"servers": 5, "cpu": 4}},
        "analysts": {"images": ["analyst"], **common},
        XSS_GROUP: {"images": ["tiny"], **common},
    })


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    need_ldap()
    need_docker()
    d = tmp_path_factory.mktemp("pages")
    homes = d / "homes"
    homes.mkdir()
    env = ldap_env(**SHARED_ENV)
    env.update({
        "SWARMHUB_NETWORK": os.environ["SWARMHUB_TEST_DOCKER_NETWORK"],
        "SWARMHUB_CONNECT": "gwbridge",
        "SWARMHUB_HUB_ID": HUB_ID,
        "SWARMHUB_SERVICE_NAME_TEMPLATE": f"pg{PID}-{{user}}",
        "SWARMHUB_PROFILES": write_pages_profiles(d / "profiles.json"),
        "SWARMHUB_HOME": str(homes),
        "SWARMHUB_HOME_UID": str(os.getuid()),
        "SWARMHUB_HOME_GID": str(os.getgid()),
        "SWARMHUB_START_TIMEOUT": "20",
        "SWARMHUB_HTTP_TIMEOUT": "30",
        "SWARMHUB_RECONCILE_EVERY": "5",
        "SWARMHUB_USAGE_EVERY": "2",
        "SWARMHUB_HUB_NAME": HUB_NAME,
        "SWARMHUB_LOGO_URL": LOGO,
    })
    h = Hub("pages", env=env)
    yield h
    try:
        remove_services(HUB_ID, wait=True)
    finally:
        rc = h.cleanup()
        shutil.rmtree(homes, ignore_errors=True)
        assert rc == 0, f"swarmhub exited {rc}; log {h.log}"


def server_state(hub, name):
    r = hub.api("GET", f"/users/{name}")
    assert r.status_code == 200, r.text
    s = r.json()["servers"].get("")
    if not s:
        return "stopped"
    return "running" if s["ready"] else (s["pending"] or "pending")


def stop_and_wait(hub, name):
    hub.api("DELETE", f"/users/{name}/server")
    wait_for(lambda: server_state(hub, name) == "stopped", 40,
             f"{name}'s server to stop")


def start_and_wait(hub, name, options):
    r = hub.api("POST", f"/users/{name}/server", json=options)
    assert r.status_code == 202, (r.status_code, r.text)
    wait_for(lambda: server_state(hub, name) == "running", 60,
             f"{name}'s server to run:\n{hub.stderr()[-2000:]}")


# ---- the browser -------------------------------------------------------------

@pytest.fixture
def browser(request):
    with chromium(driver_log("chromedriver-pages", request),
                  browser_log=True) as d:
        yield d
        no_alert(d)
        bad = [e for e in d.get_log("browser") if e["level"] == "SEVERE"
               and "Content Security Policy" in e["message"]]
        assert not bad, f"CSP violations: {bad}"


def no_alert(d):
    from selenium.common.exceptions import NoAlertPresentException
    try:
        text = d.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"a script ran: alert({text!r})")


def text_of(d, css):
    """The element's text, "" while it is missing or being replaced (the
    page reloads)."""
    from selenium.common.exceptions import WebDriverException
    try:
        return by(d, css).text
    except WebDriverException:
        return ""


def path_of(d):
    return urlsplit(d.current_url).path


def home_state(d, hub):
    d.get(hub.url + "/hub/home")
    return by(d, "#state").text


# ---- HTML checks without a browser ------------------------------------------

class Controls(html.parser.HTMLParser):
    """Collects form controls, label targets and the <title>."""

    def __init__(self):
        super().__init__()
        self.controls, self.labelled, self.title = [], set(), None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "select", "textarea") and a.get("type") not in (
                "hidden", "submit", "button"):
            self.controls.append(a)
        if tag == "label" and a.get("for"):
            self.labelled.add(a["for"])
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title = (self.title or "") + data


def check_page(r, what):
    assert r.status_code < 500 or r.status_code == 503, (what, r.status_code)
    csp = r.headers.get("Content-Security-Policy", "")
    assert CSP in csp and "style-src 'self'" in csp, (what, csp)
    assert "unsafe-inline" not in csp
    p = Controls()
    p.feed(r.text)
    assert p.title and p.title.strip(), f"{what}: no <title>"
    unlabelled = [c for c in p.controls if c.get("id") not in p.labelled
                  and not c.get("aria-label")]
    assert not unlabelled, f"{what}: controls without a label: {unlabelled}"
    assert "<script>" not in r.text.replace(
        '<script src="/hub/static/app.js" defer></script>', ""), \
        f"{what}: an unescaped <script>"
    assert " style=" not in r.text and "<style" not in r.text, what
    return p


def ds_index(html_text):
    """The index of alice's datascience profile in the form (the order of
    her groups is the directory's)."""
    m = re.search(r'data-fieldset="pf-(\d+)" value="datascience"', html_text)
    assert m, "no datascience profile in the form"
    return int(m.group(1))


def session_of(hub, user):
    return login_ok(hub, user, user + "pw")


def test_pages_http_csp_titles_labels(hub):
    alice = session_of(hub, "alice")
    carol = session_of(hub, "carol")
    anon = requests.Session()
    pages = [(anon, "/hub/login"), (alice, "/hub/home"),
             (alice, "/hub/spawn"), (alice, "/hub/token"),
             (carol, "/hub/admin"), (carol, "/hub/admin?q=alice&sort=state"),
             (carol, "/hub/spawn/alice"), (alice, "/hub/nowhere"),
             (alice, "/hub/admin")]
    for s, path in pages:
        r = s.get(hub.url + path, timeout=15, allow_redirects=False)
        check_page(r, path)
    # the stylesheet and the script are served from the hub
    for path, ctype in (("/hub/static/style.css", "text/css"),
                        ("/hub/static/app.js", "text/javascript")):
        r = anon.get(hub.url + path, timeout=15)
        assert r.status_code == 200 and r.headers["Content-Type"] \
            .startswith(ctype), (path, r.status_code, r.headers)
    # hub name (escaped) and logo on the login page
    r = anon.get(hub.url + "/hub/login", timeout=15)
    assert "Data &lt;Lab&gt;" in r.text and 'src="data:image/svg+xml' \
        in r.text


def test_pages_http_xsrf_and_permissions(hub):
    alice = session_of(hub, "alice")
    r = alice.post(hub.url + "/hub/spawn", data={"profile": "default"},
                   allow_redirects=False, timeout=15)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    r = alice.post(hub.url + "/hub/spawn", data={"profile": "default",
                   "_xsrf": "0" * 64}, allow_redirects=False, timeout=15)
    assert r.status_code == 403, r.status_code
    assert server_state(hub, "alice") == "stopped"
    r = alice.post(hub.url + "/hub/home/stop", allow_redirects=False,
                   timeout=15)
    assert r.status_code == 403, r.status_code
    for path in ("/hub/admin", "/hub/spawn/carol", "/hub/spawn-pending/carol"):
        r = alice.get(hub.url + path, allow_redirects=False, timeout=15)
        assert r.status_code == 403, (path, r.status_code)
        check_page(r, path)
    # not signed in: to the login page, coming back here afterwards
    r = requests.get(hub.url + "/hub/admin", allow_redirects=False,
                     timeout=15)
    assert r.status_code == 302 and r.headers["Location"] == \
        "/hub/login?next=/hub/admin", r.headers
    # an API token is no page session: pages want the cookie
    tok = hub.make_token("alice")
    r = requests.get(hub.url + "/hub/home", allow_redirects=False,
                     headers={"Authorization": f"token {tok}"}, timeout=15)
    assert r.status_code == 302


def test_pages_spawn_validation_over_http(hub):
    """The form's POST keeps values and names the field, without a
    browser; a foreign profile is refused."""
    alice = session_of(hub, "alice")
    x = xsrf_of(alice)
    i = ds_index(alice.get(hub.url + "/hub/spawn", timeout=15).text)
    r = alice.post(hub.url + "/hub/spawn", allow_redirects=False, timeout=15,
                   data={"_xsrf": x, "profile": "datascience",
                         "image": "tiny", "cpu": "7", "mem_gb": "1.5"})
    assert r.status_code == 400, r.status_code
    assert f'id="cpu-{i}-error"' in r.text and "cpu must be between" in r.text
    assert 'value="7"' in r.text and 'value="1.5"' in r.text
    r = alice.post(hub.url + "/hub/spawn", allow_redirects=False, timeout=15,
                   data={"_xsrf": x, "profile": "analysts"})
    assert r.status_code == 403 and "not available" in r.text, r.status_code
    r = alice.post(hub.url + "/hub/spawn", allow_redirects=False, timeout=15,
                   data={"_xsrf": x, "profile": "datascience",
                         "mem_gb": "lots"})
    assert r.status_code == 400 and "mem_gb must be a number" in r.text
    assert server_state(hub, "alice") == "stopped"


# ---- in the browser ----------------------------------------------------------

def test_pages_login(browser, hub):
    browser.get(hub.url + "/hub/login")
    assert HUB_NAME in by(browser, "h1").text
    assert by(browser, ".brand img").get_attribute("src").startswith(
        "data:image/svg+xml")
    shot(browser, "login", "pages")
    by(browser, "#username").send_keys("alice")
    by(browser, "#password").send_keys("wrong")
    click_and_load(browser, "button[type=submit]")
    assert "invalid" in by(browser, ".error").text.lower()
    shot(browser, "login-error", "pages")


def test_pages_alice_start_and_stop(browser, hub):
    """Home, the spawn form (only alice's choices, the error on the field),
    the progress page up to the redirect to /user/alice/, home running,
    stop from home."""
    d = browser
    sign_in(d, hub, "alice", "alicepw", expect_path="/hub/home")
    assert by(d, "#state").text == "stopped"
    assert "alice" in by(d, "h1").text
    # the <script> group is shown as text, and ran nothing
    assert XSS_GROUP in by(d, "#groups").text
    no_alert(d)
    assert all_by(d, "a[href='/hub/admin']") == []
    shot(d, "home-stopped", "pages")

    click_and_load(d, "#start")
    assert path_of(d) == "/hub/spawn"
    radios = [r.get_attribute("value") for r in
              all_by(d, "input[name=profile]")]
    assert sorted(radios) == sorted(["datascience", XSS_GROUP, "default"]), \
        radios
    # the first of her groups is chosen; take datascience
    i = ds_index(d.page_source)
    o = len(radios) - 1
    by(d, f"label[for=profile-{i}]").click()
    assert by(d, "input[name=profile][value=datascience]").is_selected()
    # the datascience fieldset: its images, a GPU field, the quota
    fs = by(d, f"#pf-{i}")
    images = [i.get_attribute("value") for i in
              fs.find_elements("css selector", "input[name=image]")]
    assert images == ["tiny", "crashy"], images
    assert by(d, f"#image-{i}-0").is_selected()  # the profile's first image
    assert "analyst" not in d.page_source
    assert MARKUP_DESC in fs.text  # the markup is text
    assert all_by(d, "#evil") == [] and all_by(d, "form b") == []
    assert by(d, f"#cpu-{i}").get_attribute("max") == "1"
    assert by(d, f"#cpu-{i}").get_attribute("value") == "0.5"
    assert by(d, f"#gpus-{i}").get_attribute("max") == "1"
    assert "Servers" in by(d, f"#pf-{i} .quota").text
    assert not by(d, f"#pf-{o}").is_displayed()
    # switching the profile shows its own fields (app.js)
    by(d, f"label[for=profile-{o}]").click()
    assert by(d, f"#pf-{o}").is_displayed() and not by(d, f"#pf-{i}").is_displayed()
    assert by(d, f"#pf-{i}").get_attribute("disabled") is not None
    assert by(d, f"#image-{o}-0").is_selected()
    by(d, f"label[for=profile-{i}]").click()
    assert by(d, f"#pf-{i}").is_displayed()
    assert by(d, f"#image-{i}-0").is_selected() and \
        by(d, f"#image-{i}-0").get_attribute("name") == "image"
    shot(d, "spawn-form", "pages")

    # out of range: the server's message next to the CPU field, values kept
    cpu, mem = by(d, f"#cpu-{i}"), by(d, f"#mem_gb-{i}")
    cpu.clear()
    cpu.send_keys("5")
    mem.clear()
    mem.send_keys("1.5")
    d.execute_script("document.querySelector('form.spawn').noValidate = true")
    click_and_load(d, "form.spawn button[type=submit]")
    assert path_of(d) == "/hub/spawn"
    err = by(d, f"#cpu-{i}-error")
    assert "cpu must be between 0.1 and 1" in err.text, err.text
    field = by(d, f"#cpu-{i}")
    assert field.get_attribute("value") == "5"
    assert field.get_attribute("aria-invalid") == "true"
    assert f"cpu-{i}-error" in field.get_attribute("aria-describedby")
    assert by(d, f"#mem_gb-{i}").get_attribute("value") == "1.5"
    assert "cpu must be between" in by(d, "#form-error").text
    assert d.switch_to.active_element == field  # focus on the bad field
    # the error sits in the CPU field's own block
    assert by(d, f"#cpu-{i}").find_element(
        "xpath", "..").find_element("css selector", ".field-error") \
        .text == err.text
    shot(d, "spawn-error", "pages")

    # a valid start: the progress page, then /user/alice/
    cpu = by(d, f"#cpu-{i}")
    cpu.clear()
    cpu.send_keys("0.5")
    click_and_load(d, "form.spawn button[type=submit]")
    shot(d, "progress", "pages")
    assert path_of(d) in ("/hub/spawn-pending/alice", "/user/alice/"), \
        d.current_url
    wait(d, lambda x: path_of(x) == "/user/alice/", 60)
    assert server_state(hub, "alice") == "running"

    # home: running, with what was asked for
    assert home_state(d, hub) == "running"
    facts = by(d, "dl.facts").text
    assert "tiny" in facts and "0.5" in facts and "1.5 GiB" in facts, facts
    assert "datascience" in facts
    # the idle timeout that applies (CULL_TIMEOUT's default: 3000 s)
    assert "after 50 min idle" in facts, facts
    assert by(d, "#open").get_attribute("href").endswith("/user/alice/")
    shot(d, "home-running", "pages")
    d.set_window_size(390, 844)
    d.get(hub.url + "/hub/home")
    shot(d, "home-phone", "pages")
    d.set_window_size(1280, 900)
    d.get(hub.url + "/hub/home")

    # the form of a running server leads to it
    d.get(hub.url + "/hub/spawn")
    assert path_of(d) == "/user/alice/"

    # stop from home
    d.get(hub.url + "/hub/home")
    click_and_load(d, "#stop")
    assert path_of(d) == "/hub/home"
    wait(d, lambda x: home_state(x, hub) == "stopped", 40)
    assert "stopped by alice" in by(d, "#last-error").text
    shot(d, "home-stopped-after", "pages")


def test_pages_next_is_kept(hub):
    """`next` survives the login, the form's POST and the progress page,
    which leads there once the server runs."""
    r = requests.get(hub.url + "/hub/spawn/alice?next=/user/alice/tree",
                     allow_redirects=False, timeout=15)
    assert r.status_code == 302 and r.headers["Location"] == \
        "/hub/login?next=/hub/spawn/alice%3Fnext%3D/user/alice/tree"
    alice = session_of(hub, "alice")
    r = alice.post(hub.url + "/hub/spawn?next=/user/alice/tree",
                   allow_redirects=False, timeout=15,
                   data={"_xsrf": xsrf_of(alice), "profile": "default"})
    assert r.status_code == 302, (r.status_code, r.text[:500])
    assert r.headers["Location"] == \
        "/hub/spawn-pending/alice?next=/user/alice/tree"
    page = alice.get(hub.url + r.headers["Location"], timeout=15,
                     allow_redirects=False)
    if page.status_code == 200:
        assert 'data-next="/user/alice/tree"' in page.text
    wait_for(lambda: server_state(hub, "alice") == "running", 60,
             "alice's server to run")
    r = alice.get(hub.url + "/hub/spawn-pending/alice?next=/user/alice/tree",
                  allow_redirects=False, timeout=15)
    assert r.status_code == 302 and r.headers["Location"] == \
        "/user/alice/tree"
    # next is never another site
    r = alice.get(hub.url + "/hub/spawn-pending/alice?next=//evil.example/",
                  allow_redirects=False, timeout=15)
    assert r.headers["Location"] == "/user/alice/"
    stop_and_wait(hub, "alice")


def test_pages_start_failure_and_retry(browser, hub):
    d = browser
    sign_in(d, hub, "alice", "alicepw", expect_path="/hub/home")
    d.get(hub.url + "/hub/spawn")
    i = ds_index(d.page_source)
    by(d, f"label[for=profile-{i}]").click()
    by(d, f"label[for=image-{i}-1]").click()  # crashy
    click_and_load(d, "form.spawn button[type=submit]")
    wait(d, lambda x: by(x, "#failed").is_displayed(), 60)
    assert by(d, "#failed-msg").text
    retry = by(d, "#retry")
    assert urlsplit(retry.get_attribute("href")).path == "/hub/spawn"
    assert all_by(d, "#log li"), "no event in the log"
    shot(d, "progress-failed", "pages")
    retry.click()
    loaded(d)
    assert path_of(d) == "/hub/spawn"
    wait(d, lambda x: server_state(hub, "alice") == "stopped", 30)


def test_pages_admin_finds_and_stops_alice(browser, hub):
    d = browser
    # alice exists after her first login; start her server by the API
    session_of(hub, "alice")
    start_and_wait(hub, "alice", {"profile": "datascience", "image": "tiny",
                                  "cpu": 0.2, "mem_gb": 0.3})
    sign_in(d, hub, "carol", "carolpw", expect_path="/hub/home")
    assert by(d, "a[href='/hub/admin']")
    d.get(hub.url + "/hub/admin")
    by(d, "#q").send_keys("ali")
    click_and_load(d, "form.search button[type=submit]")
    assert "q=ali" in d.current_url
    rows = all_by(d, "#users tbody tr")
    names = [r.get_attribute("data-user") for r in rows]
    assert names == ["alice"], names
    row = rows[0]
    assert "running" in row.text and "0.2 CPU, 0.3 GiB" in row.text, row.text
    assert XSS_GROUP in row.text
    no_alert(d)
    # quota use: datascience has alice's server
    q = [r.text for r in all_by(d, "#quotas tbody tr")
         if r.text.startswith("datascience")]
    assert q and "1 of 5" in q[0] and "0.2 of 4" in q[0], q
    assert all_by(d, "#audit tbody tr"), "no audit entries"
    # what her server uses, from Docker's stats (USAGE_EVERY=2)
    for _ in range(40):
        used = text_of(d, "#users tr[data-user=alice] td.used")
        if re.match(r"^\d+\.\d\d CPU, \d", used):
            break
        time.sleep(0.5)
        d.refresh()
    assert re.match(r"^\d+\.\d\d CPU, \d+ MiB$", used), used
    shot(d, "admin", "pages")
    by(d, "#users tr[data-user=alice] button[data-action=stop]").click()
    wait(d, lambda x: "stopped" in text_of(x, "#flash"), 60)
    assert server_state(hub, "alice") == "stopped"
    assert "stopped" in by(d, "#users tr[data-user=alice] .badge").text
    shot(d, "admin-stopped", "pages")
    # sort and paging links keep the search
    d.get(hub.url + "/hub/admin?sort=state")
    assert by(d, "#sort").get_attribute("value") == "state"
    # the admin opens the spawn form for alice
    d.get(hub.url + "/hub/spawn/alice")
    assert "alice" in by(d, "h1").text
    assert urlsplit(by(d, "form.spawn").get_attribute("action")).path == \
        "/hub/spawn/alice"
    shot(d, "spawn-for-alice", "pages")


USED = re.compile(r'<tr data-user="alice">.*?<td class="used">(.*?)</td>',
                  re.S)
USED_NUMBERS = re.compile(r"^(?:(\d+\.\d\d)|&hellip;) CPU, "
                          r"(\d+(?:\.\d\d)?) (MiB|GiB)$")


def used_by_alice(hub, admin):
    """(cpu or None, memory in MiB) from alice's "Used" cell of the admin
    table, or the cell's text when it holds no numbers."""
    r = admin.get(hub.url + "/hub/admin?q=alice", timeout=15)
    assert r.status_code == 200, r.status_code
    m = USED.search(r.text)
    assert m, f"no Used cell for alice: {r.text[-3000:]}"
    n = USED_NUMBERS.match(m.group(1))
    if not n:
        return m.group(1)
    mb = float(n.group(2)) * (1024 if n.group(3) == "GiB" else 1)
    return (float(n.group(1)) if n.group(1) else None), mb


def cpu_at_least(hub, admin, cpu):
    """alice's (cpu, MB) once the table shows at least that CPU figure."""
    u = used_by_alice(hub, admin)
    return u if isinstance(u, tuple) and u[0] is not None and u[0] >= cpu \
        else None


def alice_container():
    from test_spawn import docker, filters  # the Docker API helpers
    st, v = docker("GET", "/containers/json?filters=" + filters(
        label=[f"swarmhub.hub={HUB_ID}", "swarmhub.user=alice"],
        status=["running"]))
    assert st == 200 and len(v) == 1, (st, v)
    return v[0]["Id"]


def spin(container, seconds):
    """Keeps one CPU busy inside the container for that long."""
    from test_spawn import docker
    st, v = docker("POST", f"/containers/{container}/exec", {
        "Cmd": ["timeout", str(seconds), "sh", "-c", "while :; do :; done"]})
    assert st == 201, (st, v)
    st, v = docker("POST", f"/exec/{v['Id']}/start", {"Detach": True})
    assert st == 200, (st, v)


def test_pages_admin_shows_usage_from_docker_stats(hub):
    """The admin table shows what alice's server uses, from Docker's stats
    of her container (USAGE_EVERY=2): memory at once, CPU from the second
    sample, and the CPU follows a busy loop run inside the container."""
    alice = session_of(hub, "alice")
    admin = session_of(hub, "carol")
    start_and_wait(hub, "alice", {"profile": "datascience", "image": "tiny",
                                  "cpu": 0.2, "mem_gb": 0.3})
    try:
        cpu_idle = wait_for(lambda: cpu_at_least(hub, admin, 0), 30,
                            "a CPU figure for alice in the admin table")
        # alice sees it on her home page too
        home = alice.get(hub.url + "/hub/home", timeout=15).text
        assert re.search(r'<dd id="used">\d+\.\d\d CPU, \d+ MiB</dd>',
                         home), home[-2000:]
        cpu, mb = cpu_idle
        # the test notebook is a small Python process, limited to 0.3 GiB
        assert 1 <= mb <= 0.3 * 1024, cpu_idle
        assert cpu < 0.15, f"idle server uses {cpu} CPU"
        # 0.2 CPU is the limit: a busy loop gets no more than that
        spin(alice_container(), 30)
        busy = wait_for(lambda: cpu_at_least(hub, admin, 0.12), 20,
                        "alice's busy loop in the admin table")
        assert busy[0] <= 0.3, f"{busy[0]} CPU is more than the 0.2 limit"
    finally:
        stop_and_wait(hub, "alice")
    assert used_by_alice(hub, admin) == "&mdash;"
    assert 'id="used"' not in alice.get(hub.url + "/hub/home",
                                        timeout=15).text


def test_pages_admin_add_and_set_admin(browser, hub):
    d = browser
    sign_in(d, hub, "carol", "carolpw", expect_path="/hub/home")
    d.get(hub.url + "/hub/admin")
    name = f"pg{PID}new"
    by(d, "#usernames").send_keys(name)
    by(d, "#add-users button[type=submit]").click()
    wait(d, lambda x: "Added 1" in text_of(x, "#flash"), 15)
    assert hub.api("GET", f"/users/{name}").status_code == 200
    d.get(hub.url + f"/hub/admin?q={name}")
    by(d, f"tr[data-user={name}] button[data-action=admin]").click()
    wait(d, lambda x: "now an administrator" in text_of(x, "#flash"), 15)
    assert hub.api("GET", f"/users/{name}").json()["admin"] is True


def test_pages_tokens(browser, hub):
    d = browser
    sign_in(d, hub, "alice", "alicepw", expect_path="/hub/home")
    by(d, "a[href='/hub/token']").click()
    loaded(d)
    assert path_of(d) == "/hub/token"
    by(d, "#note").send_keys("ci <b>job</b>")
    from selenium.webdriver.support.ui import Select
    Select(by(d, "#expires")).select_by_value("86400")
    by(d, "#token-form button[type=submit]").click()
    wait(d, lambda x: by(x, "#new-token").is_displayed(), 15)
    token = by(d, "#new-token-value").text
    assert re.fullmatch(r"[0-9a-f]{64}", token), token
    assert hub.api("GET", "/user", token=token).json()["name"] == "alice"
    shot(d, "token-created", "pages")
    # shown once: not on the page any more after a reload
    d.get(hub.url + "/hub/token")
    assert token not in d.page_source
    row = [r for r in all_by(d, "#tokens tbody tr")
           if "ci <b>job</b>" in r.text]
    assert row, "the new token is not listed"
    shot(d, "tokens", "pages")
    row[0].find_element("css selector", "button[data-action=revoke]").click()
    wait(d, lambda x: "revoked" in text_of(x, "#token-msg"), 15)
    assert hub.api("GET", "/user", token=token).status_code == 403
    d.get(hub.url + "/hub/token")
    assert "ci <b>job</b>" not in by(d, "#tokens").text


def test_pages_error_pages(browser, hub):
    d = browser
    sign_in(d, hub, "alice", "alicepw", expect_path="/hub/home")
    d.get(hub.url + "/hub/no-such-page")
    assert "Page not found" in by(d, "h1").text
    assert by(d, "a[href='/hub/home']")
    shot(d, "error-404", "pages")
    d.get(hub.url + "/hub/admin")
    assert "Administrators only" in by(d, "h1").text
    shot(d, "error-403", "pages")


def test_pages_spawning_off(local_hub):
    """A hub without the spawner says so on home and the spawn form."""
    from hubtest import HUBADMIN, HUBADMIN_PW
    s = login_ok(local_hub, HUBADMIN, HUBADMIN_PW)
    r = s.get(local_hub.url + "/hub/spawn", timeout=15)
    assert r.status_code == 503 and 'id="no-spawner"' in r.text
    check_page(r, "/hub/spawn without spawner")
    r = s.get(local_hub.url + "/hub/home", timeout=15)
    assert "not set up" in r.text and 'id="start"' not in r.text


def test_pages_admin_fast_with_many_users(hub):
    """10,000 users: the admin page (search, sort, a later page) stays
    fast."""
    names = [f"bulk{PID}x{i:05d}" for i in range(10000)]
    for i in range(0, len(names), 1000):
        r = hub.api("POST", "/users", json={"usernames": names[i:i + 1000]},
                    timeout=120)
        assert r.status_code == 201, (r.status_code, r.text[:300])
    carol = session_of(hub, "carol")
    for q in ("", "?sort=last_activity&page=150", "?q=x0999&sort=state",
              "?sort=state&page=100"):
        t0 = time.monotonic()
        r = carol.get(hub.url + "/hub/admin" + q, timeout=30)
        ms = (time.monotonic() - t0) * 1000
        assert r.status_code == 200
        assert ms < 500, f"/hub/admin{q} took {ms:.0f} ms"
    assert "Page 150 of" in carol.get(
        hub.url + "/hub/admin?page=150", timeout=30).text

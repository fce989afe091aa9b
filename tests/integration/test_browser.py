"""
test_browser.py - signing in with a real browser: headless Chromium driven
by Selenium (Debian: chromium, chromium-driver, python3-selenium; recipe in
INFRA.md section 5). Screenshots go to $SWARMHUB_TEST_OUT.
"""
import re
from urllib.parse import quote, urlsplit

import pytest

from hubtest import (PID, chromium, driver_log, need_ldap, shot, sign_in,
                     submit, uniq)

SHOTS = f"browser-{PID}"    # screenshots: browser-<pid>-<name>.png


@pytest.fixture
def browser(request):
    with chromium(driver_log("chromedriver", request),
                  window="1280,800") as d:
        yield d


def test_browser_local_login(browser, local_hub):
    from selenium.webdriver.common.by import By
    name = local_hub.make_user(uniq("web"), password="web-pw")
    sign_in(browser, local_hub, name, "web-pw")
    assert urlsplit(browser.current_url).path == "/hub/home"
    h1 = browser.find_element(By.TAG_NAME, "h1").text
    assert name in h1
    shot(browser, "local-home", SHOTS)
    # the session cookie is HttpOnly: scripts cannot read it; the XSRF
    # value is readable so that scripts can call the API
    cookies = browser.execute_script("return document.cookie")
    assert "swarmhub-session" not in cookies
    assert "_xsrf=" in cookies
    status = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const x = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))
                  .slice(6);
        fetch('/hub/api/users/' + arguments[0] + '/tokens', {method: 'POST',
              headers: {'X-XSRFToken': x, 'Content-Type': 'application/json'},
              body: '{"note": "from the page"}'})
            .then(r => done(r.status), e => done(String(e)));
    """, name)
    assert status == 201
    # logging out lands on the login page; home then asks to sign in again
    # (a form button: GET /hub/logout only shows a form)
    from selenium.webdriver.support.ui import WebDriverWait
    browser.find_element(By.CSS_SELECTOR, "nav form.logout button").click()
    WebDriverWait(browser, 15).until(
        lambda d: urlsplit(d.current_url).path == "/hub/login")
    browser.get(local_hub.url + "/hub/home")
    assert urlsplit(browser.current_url).path == "/hub/login"


def test_browser_wrong_password_shows_error(browser, local_hub):
    from selenium.webdriver.common.by import By
    name = local_hub.make_user(uniq("web"), password="web-pw")
    sign_in(browser, local_hub, name, "not-it")
    assert urlsplit(browser.current_url).path == "/hub/login"
    err = browser.find_element(By.CSS_SELECTOR, ".error").text
    assert "invalid username or password" in err.lower()
    shot(browser, "wrong-password", SHOTS)
    # the form is usable again right away
    browser.find_element(By.ID, "password").send_keys("web-pw")
    submit(browser)
    assert urlsplit(browser.current_url).path == "/hub/home"


def test_browser_ldap_login(browser, ldap_hub):
    from selenium.webdriver.common.by import By
    need_ldap()
    sign_in(browser, ldap_hub, "alice", "alicepw")
    assert urlsplit(browser.current_url).path == "/hub/home"
    assert "alice" in browser.find_element(By.TAG_NAME, "h1").text
    # the <script> group name must not run anywhere
    assert browser.execute_script("return window.__xss || null") is None
    shot(browser, "ldap-home", SHOTS)


def test_browser_ldap_refused_user(browser, ldap_hub):
    from selenium.webdriver.common.by import By
    sign_in(browser, ldap_hub, "dave", "davepw")
    shot(browser, "ldap-refused", SHOTS)
    assert urlsplit(browser.current_url).path == "/hub/login", \
        browser.current_url
    err = browser.find_element(By.CSS_SELECTOR, ".error").text
    assert "allowed group" in err.lower()
    shot(browser, "ldap-refused", SHOTS)


@pytest.fixture(scope="module")
def other_site():
    """An 'evil' web server on another loopback address: host:port."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<h1>evil</h1>")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.2", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.2:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("pattern", ["/\t/{}/", "/\n/{}/", "/\r/{}/",
                                     "//{}/", "/\\{}/", "http://{}/"])
def test_browser_next_stays_on_site(browser, local_hub, other_site, pattern):
    """After login the browser must not end up on another site, however
    `next` is spelled."""
    from selenium.common.exceptions import TimeoutException
    nxt = pattern.format(other_site)
    name = local_hub.make_user(uniq("web"), password="web-pw")
    try:
        sign_in(browser, local_hub, name, "web-pw", next=nxt, timeout=3)
    except TimeoutException:
        pass  # the CSP form-action 'self' blocked an off-site redirect
    host = urlsplit(browser.current_url).netloc
    shot(browser, "next-" + re.sub(r"[^a-z]+", "_", repr(pattern)), SHOTS)
    assert host == f"127.0.0.1:{local_hub.port}", (nxt, browser.current_url)


@pytest.mark.parametrize("pattern", ["/\t/{}/", "/\n/{}/", "//{}/",
                                     "/\\{}/", "http://{}/"])
def test_browser_signed_in_login_link_stays_on_site(browser, local_hub,
                                                    other_site, pattern):
    """A signed-in user following a link to /hub/login?next=... (a GET, so
    no CSP form-action protects it) must stay on the hub."""
    from selenium.common.exceptions import TimeoutException
    name = local_hub.make_user(uniq("web"), password="web-pw")
    sign_in(browser, local_hub, name, "web-pw")
    nxt = pattern.format(other_site)
    try:
        browser.get(local_hub.url + "/hub/login?next=" + quote(nxt, safe=""))
    except TimeoutException:
        pass
    shot(browser, "link-" + re.sub(r"[^a-z]+", "_", repr(pattern)), SHOTS)
    host = urlsplit(browser.current_url).netloc
    assert host == f"127.0.0.1:{local_hub.port}", (nxt, browser.current_url)

"""
test_e2e_default.py - the default path of `make up`: the stack deployed by
scripts/up.sh with compose/swarmhub.env.example as it is (local accounts,
SWARMHUB_HOME empty) and the profiles up.sh writes (tests/e2e/default.sh
deploys it). A newcomer signs in at the printed address as admin with the
printed password, reads that files are not kept, presses Start, submits
the form and is in a running notebook; timed from the start of `make up`.

Environment: E2E_HTTPS_URL, E2E_CA, E2E_ADMIN_PASSWORD_FILE, E2E_T0 (epoch
seconds when up.sh started), SWARMHUB_TEST_OUT.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
if not os.environ.get("E2E_ADMIN_PASSWORD_FILE"):
    pytest.skip("run through tests/e2e/default.sh", allow_module_level=True)
from hubtest import chromium, shot  # noqa: E402
from test_e2e import HTTPS, OUT, by, loaded, wait_page  # noqa: E402

PASSWORD = Path(os.environ["E2E_ADMIN_PASSWORD_FILE"]).read_text().strip()
T0 = float(os.environ["E2E_T0"])


@pytest.fixture(scope="module")
def d():
    with chromium(OUT / "e2e-default-chromedriver.log", page_load_timeout=60,
                  args=("--ignore-certificate-errors",)) as drv:
        yield drv


def admin_service():
    r = subprocess.run(["docker", "service", "ls", "--filter",
                        "label=swarmhub.hub=swarmhub", "--filter",
                        "label=swarmhub.user=admin", "--format", "{{.ID}}"],
                       capture_output=True, text=True, check=True)
    return r.stdout.split()


def signed_in_home(d):
    """Signs in as admin and opens the home page. Chromium aborts a load
    (here: the login's answer, whose cookie is then lost) with
    ERR_NETWORK_CHANGED while Docker adds a new stack's interfaces: a
    person would sign in again, and so does this, up to 4 times."""
    for _ in range(4):
        d.delete_all_cookies()
        try:
            d.get(HTTPS + "/hub/login")
            d.find_element(by("ID"), "username").send_keys("admin")
            d.find_element(by("ID"), "password").send_keys(PASSWORD)
            d.find_element(by("CSS_SELECTOR"), "button[type=submit]").click()
        except Exception:
            time.sleep(2)
            continue
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "/hub/login" not in d.current_url and loaded(d):
                d.get(HTTPS + "/hub/home")
                if d.find_elements(by("ID"), "start"):
                    return
            time.sleep(0.3)
    wait_page(d, lambda x: x.find_elements(by("ID"), "start"),
              what="home page with Start after signing in as admin")


def test_admin_starts_a_notebook_with_the_example_env(d):
    signed_in_home(d)
    note = d.find_elements(by("ID"), "no-home")
    assert note and note[0].is_displayed() and \
        "Files are not kept" in note[0].text, d.page_source[:3000]
    shot(d, "default-01-home", "e2e", OUT)
    d.find_element(by("ID"), "start").click()
    wait_page(d, lambda x: "/hub/spawn" in x.current_url and loaded(x)
              and x.find_elements(by("CSS_SELECTOR"), "form.spawn"),
              what="spawn form from Start", reload_url=HTTPS + "/hub/spawn")
    shot(d, "default-02-spawn-form", "e2e", OUT)
    d.find_element(by("CSS_SELECTOR"),
                   "form.spawn button[type=submit]").click()
    wait_page(d, lambda x: "/user/admin/tree" in x.current_url and loaded(x)
              and x.find_elements(by("ID"), "notebook_list"),
              timeout=180, what="the notebook's tree after Start",
              reload_url=HTTPS + "/hub/spawn-pending/admin")
    took = time.time() - T0
    shot(d, "default-03-notebook-tree", "e2e", OUT)
    (OUT / "e2e-default-timing.txt").write_text(
        f"make up (example env) to a running notebook in the browser: "
        f"{took:.0f} s\n")
    print(f"make up to a running notebook: {took:.0f} s")
    ids = admin_service()
    assert len(ids) == 1, ids
    spec = json.loads(subprocess.run(
        ["docker", "service", "inspect", ids[0]], capture_output=True,
        text=True, check=True).stdout)[0]["Spec"]
    assert not spec["TaskTemplate"]["ContainerSpec"].get("Mounts"), \
        "HOME is empty in the example env: no home mount expected"

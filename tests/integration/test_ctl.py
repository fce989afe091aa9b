"""
test_ctl.py - bin/swarmhubctl against a running hub.

The hub is given by SWARMHUB_TEST_HUB_URL and SWARMHUB_TEST_ADMIN_TOKEN.
Without them the hub tests fail, unless SWARMHUB_TEST_SKIP names "hub"
(e.g. SWARMHUB_TEST_SKIP=hub,ldap), which skips them. Tests that need no
hub (help, usage errors, an unreachable URL) always run.
Users are named ctl<pid><letter> and removed at the end, so reruns work.

    SWARMHUB_TEST_HUB_URL=http://127.0.0.1:8000 \
    SWARMHUB_TEST_ADMIN_TOKEN=... /usr/bin/python3 -m pytest tests/integration/test_ctl.py
"""
import json
import os
import re
import socket
import subprocess

import pytest
import requests

from hubtest import PID, ROOT

CTL = os.environ.get("SWARMHUB_CTL", str(ROOT / "bin" / "swarmhubctl"))

COMMANDS = [
    ["users", "list"], ["users", "add"], ["users", "remove"],
    ["users", "set-admin"], ["users", "set-password"],
    ["servers", "list"], ["servers", "start"], ["servers", "stop"],
    ["tokens", "list"], ["tokens", "create"], ["tokens", "revoke"],
    ["images", "pull"],
]


def run(args, token=None, url=None, stdin=None):
    """Runs swarmhubctl with a clean SWARMHUB_* environment."""
    if not os.access(CTL, os.X_OK):
        pytest.fail(f"{CTL} is not built: run 'make bin/swarmhubctl'",
                    pytrace=False)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWARMHUB_")}
    if token is not None:
        env["SWARMHUB_TOKEN"] = token  # not on the command line
    argv = [CTL] + (["--url", url] if url else []) + list(args)
    return subprocess.run(argv, env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


def skip_requested():
    return "hub" in re.split(r"[,\s]+", os.environ.get("SWARMHUB_TEST_SKIP",
                                                        ""))


@pytest.fixture(scope="module")
def hub():
    """(url, admin token) of the hub under test; removes test users after."""
    url = os.environ.get("SWARMHUB_TEST_HUB_URL", "").rstrip("/")
    token = os.environ.get("SWARMHUB_TEST_ADMIN_TOKEN", "")
    if not url or not token:
        if skip_requested():
            pytest.skip("SWARMHUB_TEST_SKIP=hub and no hub given "
                        "(SWARMHUB_TEST_HUB_URL, SWARMHUB_TEST_ADMIN_TOKEN)")
        pytest.fail("these tests need a running hub: set "
                    "SWARMHUB_TEST_HUB_URL and SWARMHUB_TEST_ADMIN_TOKEN "
                    "(start one with 'make run'), or set "
                    "SWARMHUB_TEST_SKIP=hub to skip them", pytrace=False)
    try:
        requests.get(url + "/hub/api", timeout=5)
    except requests.RequestException as ex:
        pytest.fail(f"the hub at {url} is not reachable: {ex}",
                    pytrace=False)
    yield url, token
    for letter in "abcdefgh":
        requests.delete(f"{url}/hub/api/users/ctl{PID}{letter}",
                        headers=auth(token), timeout=10)


def auth(token):
    return {"Authorization": f"token {token}"}


def user_model(hub, name):
    url, token = hub
    r = requests.get(f"{url}/hub/api/users/{name}", headers=auth(token),
                     timeout=10)
    return r.status_code, (r.json() if r.content else None)


def ctl(hub, *args, stdin=None):
    url, token = hub
    return run(args, token=token, url=url, stdin=stdin)


# ---- no hub needed -------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["-h"], ["users", "--help"],
                                  ["servers", "--help"], ["tokens", "--help"]]
                         + [c + ["--help"] for c in COMMANDS])
def test_help_exits_0_on_stdout(args):
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: swarmhubctl")
    assert r.stderr == ""


def test_program_help_documents_commands_and_exit_codes():
    out = run(["--help"]).stdout
    for c in COMMANDS:
        assert " ".join(c) in out
    assert "Exit status" in out and "2 usage error" in out


@pytest.mark.parametrize("args,what", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["users", "frobnicate"], "unknown command 'users frobnicate'"),
    (["users", "list", "--no-such-option"], "unknown option '--no-such-option'"),
    (["--no-such-option", "users", "list"], "unknown option"),
    (["users", "add"], "missing argument"),
    (["users", "set-admin", "x", "maybe"], "on or off"),
    ([], "missing command"),
    (["users"], "missing command"),
])
def test_usage_errors_exit_2(args, what):
    # A token so that nothing fails for want of one; no hub is contacted.
    r = run(args, token="t", url="http://127.0.0.1:9")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("swarmhubctl: ")
    assert what in r.stderr
    assert r.stderr.count("\n") == 1


def test_unreachable_url_exits_1_with_one_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = f"secret{PID}"
    r = run(["users", "list"], token=secret, url=f"http://127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("swarmhubctl: list users: ")
    assert r.stderr.count("\n") == 1
    assert secret not in r.stderr


# ---- against the hub ---------------------------------------------------

def test_users_add_list_set_admin_remove(hub):
    a, b = f"ctl{PID}a", f"ctl{PID}b"

    r = ctl(hub, "users", "add", a, b)
    assert r.returncode == 0, r.stderr
    assert a in r.stdout and b in r.stdout
    assert user_model(hub, a)[0] == 200

    r = ctl(hub, "users", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADMIN", "GROUPS", "SERVER",
                                "LAST-ACTIVITY"]
    row = next(l for l in lines if l.split()[0] == a)
    assert row.split()[1] == "no"

    r = ctl(hub, "users", "list", "--json")
    assert r.returncode == 0, r.stderr
    users = {u["name"]: u for u in json.loads(r.stdout)}
    assert a in users and b in users and users[a]["admin"] is False

    r = ctl(hub, "users", "set-admin", a, "on")
    assert r.returncode == 0, r.stderr
    assert user_model(hub, a)[1]["admin"] is True
    r = ctl(hub, "--json", "users", "list")
    assert {u["name"]: u for u in json.loads(r.stdout)}[a]["admin"] is True
    r = ctl(hub, "users", "set-admin", a, "off")
    assert r.returncode == 0, r.stderr
    assert user_model(hub, a)[1]["admin"] is False

    r = ctl(hub, "users", "remove", a, b)
    assert r.returncode == 0, r.stderr
    assert user_model(hub, a)[0] == 404
    assert user_model(hub, b)[0] == 404
    r = ctl(hub, "users", "list", "--json")
    assert a not in {u["name"] for u in json.loads(r.stdout)}


def test_users_add_admin_flag(hub):
    c = f"ctl{PID}c"
    r = ctl(hub, "users", "add", "--admin", c)
    assert r.returncode == 0, r.stderr
    assert user_model(hub, c)[1]["admin"] is True


def test_users_add_duplicate_shows_hub_message(hub):
    url, token = hub
    d = f"ctl{PID}d"
    assert ctl(hub, "users", "add", d).returncode == 0
    r = ctl(hub, "users", "add", d)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("swarmhubctl: ")
    # The hub's own words for the same request.
    h = requests.post(f"{url}/hub/api/users", headers=auth(token),
                      json={"usernames": [d], "admin": False}, timeout=10)
    assert h.status_code == 409
    assert h.json()["message"] in r.stderr


def test_users_remove_missing_fails(hub):
    r = ctl(hub, "users", "remove", f"ctl{PID}h")
    assert r.returncode == 1
    assert f"ctl{PID}h" in r.stderr


def test_tokens_create_use_revoke(hub):
    url, _ = hub
    e = f"ctl{PID}e"
    note = f"ctl-test-{PID}"
    assert ctl(hub, "users", "add", e).returncode == 0

    r = ctl(hub, "tokens", "create", e, "--note", note, "--expires-in", "1h")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token and "\n" not in token and " " not in token
    me = requests.get(f"{url}/hub/api/user", headers=auth(token), timeout=10)
    assert me.status_code == 200 and me.json()["name"] == e

    r = ctl(hub, "tokens", "list", e, "--json")
    assert r.returncode == 0, r.stderr
    ids = [t["id"] for t in json.loads(r.stdout)["api_tokens"]
           if t.get("note") == note]
    assert len(ids) == 1
    r = ctl(hub, "tokens", "list", e)
    assert r.returncode == 0 and note in r.stdout

    r = ctl(hub, "tokens", "revoke", e, str(ids[0]))
    assert r.returncode == 0, r.stderr
    me = requests.get(f"{url}/hub/api/user", headers=auth(token), timeout=10)
    assert me.status_code in (401, 403)
    r = run(["tokens", "list"], token=token, url=url)
    assert r.returncode == 1 and token not in r.stderr


def test_tokens_list_defaults_to_token_owner(hub):
    url, _ = hub
    f = f"ctl{PID}f"
    assert ctl(hub, "users", "add", f).returncode == 0
    token = ctl(hub, "tokens", "create", f).stdout.strip()
    r = run(["tokens", "list", "--json"], token=token, url=url)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["api_tokens"]) >= 1

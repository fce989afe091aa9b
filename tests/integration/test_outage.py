"""
test_outage.py - PostgreSQL goes away under a running hub and comes back.

The module runs its own PostgreSQL (tests/services/postgres.sh start on a
fresh directory, stopped at the end), so stopping it harms no other test
and the run order does not matter.
"""
import time

import pytest

from hubtest import Hub, login, own_postgres, pg_service, uniq


@pytest.fixture(scope="module")
def own_pg():
    with own_postgres() as d:
        yield d


def json_503(r, *words):
    assert r.status_code == 503, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == 503 and body["message"]
    for w in words:
        assert w in body["message"].lower(), body
    return body


def test_postgres_outage_and_recovery(own_pg):
    hub = Hub("outage", env={"SWARMHUB_DB_POOL": "2"})
    try:
        name = hub.make_user(uniq("out"), password="pw-out")
        tok = hub.make_token(name)
        later = uniq("later")
        pg_service("stop", own_pg)
        try:
            # the health check is cached for a moment
            deadline = time.monotonic() + 3
            while (hub.get("/hub/health").status_code == 200 and
                   time.monotonic() < deadline):
                time.sleep(0.2)
            body = json_503(hub.get("/hub/health"))
            assert any(w in body["message"].lower()
                       for w in ("database", "postgres")), body
            r = hub.api("POST", "/users", json={"usernames": [later]})
            body = json_503(r)
            assert any(w in body["message"].lower()
                       for w in ("database", "postgres")), body
            # reads come from memory
            r = hub.api("GET", "/user", token=tok)
            assert r.status_code == 200 and r.json()["name"] == name
            assert hub.api("GET", f"/users/{name}").status_code == 200
            # a login needs the database: a clear 503 page, not a crash
            _, r = login(hub, name, "pw-out")
            assert r.status_code == 503, r.status_code
            assert r.headers["Content-Type"].startswith("text/html")
            r = hub.api("POST", f"/users/{name}/tokens", json={})
            json_503(r)
            assert hub.alive()
            time.sleep(1)
            assert hub.alive()
        finally:
            pg_service("start", own_pg)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if hub.get("/hub/health").status_code == 200:
                break
            time.sleep(0.25)
        else:
            pytest.fail("/hub/health not 200 within 10 s of PostgreSQL "
                        "coming back:\n" + hub.stderr()[-2000:])
        # the failed create left nothing behind and can be retried
        assert hub.api("GET", f"/users/{later}").status_code == 404
        r = hub.api("POST", "/users", json={"usernames": [later]})
        assert r.status_code == 201, r.text
        s, r = login(hub, name, "pw-out")
        assert r.status_code == 302
        assert hub.sql(f"SELECT count(*) FROM users WHERE name='{later}'") \
            == [["1"]]
    finally:
        assert hub.cleanup() == 0

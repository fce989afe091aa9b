"""
conftest.py - the fixtures that start real swarmhub daemons for the pytest
integration tests; the helpers they use (Hub, login, the databases, Docker,
the browser, ...) are in hubtest.py, which the test modules import.

At teardown a hub gets SIGTERM and must exit 0 (KILL after 10 s, which
fails the test).

Environment (exported by tests/run.sh):
  SWARMHUB_TEST_DB        postgresql://hub:hubpw@127.0.0.1:PORT/hubdb
  SWARMHUB_TEST_PG_DIR    the cluster's directory (sockdir, port)
  SWARMHUB_TEST_LDAP_URI, SWARMHUB_TEST_LDAPS_URI, SWARMHUB_TEST_LDAP_CA
  SWARMHUB_BIN_DIR        where bin/swarmhub is (default: <repo>/bin)
  SWARMHUB_TEST_OUT       where logs and screenshots go
  SWARMHUB_TEST_SKIP      comma list: postgres, ldap (skip instead of fail)

Fixtures:
  local_hub    session: AUTH=local; an admin "hubadmin"/HUBADMIN_PW exists
  ldap_hub     session: AUTH=ldap against the test slapd
  start_hub    factory: start_hub(label, env={...}, db=None, wait=True)
               -> Hub, stopped (exit 0 asserted) at the end of the test
  swarm        session: the 3-node test swarm (clusterhub.py), shared by
               every cluster suite of the run; images: SWARMHUB_TEST_IMAGES
               of clusterhub.IMAGES (suites load more with swarm["load"]).
               Modules using it run after all others (tests/run.sh starts
               the cluster in the background meanwhile).
Helpers (hubtest.py): login(hub, user, password, next=None) ->
  (requests.Session, response of the POST); xsrf_of(session); api(...) on Hub.
"""
import os

import pytest

from clusterhub import swarm_session
from hubtest import HUBADMIN, HUBADMIN_PW, SHARED_ENV, Hub, ldap_env, \
    need_ldap, skipped


def _finish(hub):
    rc = hub.cleanup()
    assert rc == 0, (f"swarmhub ({hub.label}) exited {rc} on SIGTERM "
                     f"(None: had to be killed); log {hub.log}:\n"
                     f"{hub.stderr()[-2000:] if hub.log.exists() else ''}")


@pytest.fixture(scope="session")
def local_hub():
    hub = Hub("local", env=dict(SHARED_ENV))
    hub.make_user(HUBADMIN, admin=True, password=HUBADMIN_PW)
    yield hub
    _finish(hub)


@pytest.fixture(scope="session")
def ldap_hub():
    need_ldap()
    hub = Hub("ldap", env=ldap_env(**SHARED_ENV))
    yield hub
    _finish(hub)


def pytest_collection_modifyitems(session, config, items):
    """The modules using the multi-node `swarm` run last, in their order:
    tests/run.sh starts that cluster in the background, and everything
    else runs meanwhile. Whole modules move, so module fixtures still see
    their tests together."""
    cluster = {i.module for i in items if "swarm" in i.fixturenames}
    items[:] = [i for i in items if i.module not in cluster] + \
               [i for i in items if i.module in cluster]


@pytest.fixture(scope="session")
def swarm():
    with swarm_session() as sw:
        yield sw


@pytest.fixture
def start_hub():
    """start_hub(label, env=None, db=None, wait=True, argv=()) -> Hub."""
    hubs = []

    def start(label, env=None, db=None, wait=True, argv=()):
        hubs.append(Hub(label, env=env, db=db, wait=wait, argv=argv))
        return hubs[-1]

    yield start
    bad = []
    for h in hubs:
        running = h.alive()  # hubs that already exited were checked by the test
        rc = h.cleanup()
        if running and rc != 0:
            bad.append(f"{h.label}: exit {rc} on SIGTERM ({h.log})")
    assert not bad, "; ".join(bad)


@pytest.fixture(autouse=True, scope="module")
def _hub_for_ctl(request):
    """test_ctl.py expects SWARMHUB_TEST_HUB_URL/_ADMIN_TOKEN: point them at
    the shared local hub (unless the caller gave a hub of its own)."""
    if not request.module.__name__.endswith("test_ctl"):
        yield
        return
    if os.environ.get("SWARMHUB_TEST_HUB_URL") or (
            not os.environ.get("SWARMHUB_TEST_DB") and skipped("postgres")):
        yield
        return
    hub = request.getfixturevalue("local_hub")
    os.environ["SWARMHUB_TEST_HUB_URL"] = hub.url
    os.environ["SWARMHUB_TEST_ADMIN_TOKEN"] = hub.admin_token
    yield
    os.environ.pop("SWARMHUB_TEST_HUB_URL", None)
    os.environ.pop("SWARMHUB_TEST_ADMIN_TOKEN", None)

# jupyterhub_config.py - JupyterHub 3.0 (Debian) as the peer of swarmhub in
# tests/bench/hub_api.py. Everything comes from the environment, set by
# hub_api.py:
#   JH_BENCH_DIR       working directory (cookie secret, proxy pid file)
#   JH_BENCH_DB        SQLAlchemy URL of its own PostgreSQL database
#   JH_BENCH_TOKEN     API token of the admin service "bench"
#   JH_BENCH_PORT      public port of configurable-http-proxy (the usual URL)
#   JH_BENCH_API_PORT  configurable-http-proxy's REST API port
#   JH_BENCH_HUB_PORT  the hub's own port (what the proxy forwards /hub/ to)
# Nothing is spawned: DummyAuthenticator, no single-user servers.
import os

c = get_config()  # noqa: F821 (injected by traitlets)

env = os.environ
workdir = env["JH_BENCH_DIR"]

c.JupyterHub.bind_url = "http://127.0.0.1:%s" % env["JH_BENCH_PORT"]
c.JupyterHub.hub_bind_url = "http://127.0.0.1:%s" % env["JH_BENCH_HUB_PORT"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%s" % env["JH_BENCH_API_PORT"]
c.ConfigurableHTTPProxy.should_start = True
c.ConfigurableHTTPProxy.auth_token = env["JH_BENCH_TOKEN"] + "-proxy"
c.ConfigurableHTTPProxy.pid_file = os.path.join(workdir, "jupyterhub-proxy.pid")

c.JupyterHub.db_url = env["JH_BENCH_DB"]
c.JupyterHub.cookie_secret_file = os.path.join(workdir, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(workdir, "jupyterhub.pid")

c.JupyterHub.authenticator_class = "jupyterhub.auth.DummyAuthenticator"
c.JupyterHub.services = [
    {"name": "bench", "api_token": env["JH_BENCH_TOKEN"], "admin": True},
]

# JupyterHub >= 2 caps every list at api_page_max_limit (default 200) even
# without the pagination Accept header. The benchmark asks for the whole
# list of 10,000 users, so lift the cap; ?limit=200 still pages.
c.JupyterHub.api_page_max_limit = 1000000
c.JupyterHub.api_page_default_limit = 1000000

# Shipped defaults otherwise (log level INFO, request log on), except that
# no servers exist to check or cull.
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

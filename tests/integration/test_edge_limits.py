"""
test_edge_limits.py - the hub's port under a connection flood, against the
real hub (bin/swarmhub with PostgreSQL, its fd limit lowered).

Flood clients are separate processes (one process cannot hold more fds
than the 20,000 hard limit), each bound to its own loopback source address
(127.0.0.x), so MAX_CONNECTIONS_PER_ADDRESS applies as to real clients;
a probe from 127.0.0.1 asks /hub/health all along.
"""
import multiprocessing
import os
import re
import resource
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

import hubtest
from hubtest import DIRECT, Hub, rss_kb


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sanitized():
    """The hub under test is built with AddressSanitizer (make asan)."""
    return b"__asan_init" in Path(hubtest.hub_binary()).read_bytes()


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def hub_with_fd_limit(tmp_path, monkeypatch, label, limit, env):
    """A hub whose hard RLIMIT_NOFILE is limit (it raises soft to hard),
    set by prlimit, which execs the hub (same pid)."""
    wrapper = tmp_path / f"swarmhub-nofile-{limit}"
    wrapper.write_text("#!/bin/sh\nexec prlimit --nofile=%d:%d %s \"$@\"\n"
                       % (limit, limit, hubtest.hub_binary()))
    wrapper.chmod(0o755)
    monkeypatch.setattr(hubtest, "hub_binary", lambda: wrapper)
    hub = Hub(label, env=env)
    monkeypatch.undo()
    limits = Path(f"/proc/{hub.proc.pid}/limits").read_text()
    assert re.search(r"Max open files\s+%d\s+%d" % (limit, limit), limits), \
        limits
    return hub


def flood(src, port, n, hold_s, done, counts):
    """Opens n connections from src and holds them hold_s seconds (or until
    done is set); counts[0] += connections the hub took (handshake done),
    counts[1] += of those, reset by the hub (at once: often before connect
    returns), counts[2] += connects that failed otherwise."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    # the attackers are other machines in real life: here they get no
    # more CPU than they need to flood, so the hub's answers are measured
    os.nice(19)
    socks, opened, failed, early, errs = [], 0, 0, 0, {}
    for _ in range(n):
        s = socket.socket()
        try:
            s.bind((src, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            opened += 1
            socks.append(s)
        except ConnectionResetError:
            opened += 1
            early += 1
            s.close()
        except OSError as e:
            failed += 1
            errs[str(e)] = errs.get(str(e), 0) + 1
            s.close()
    time.sleep(0.5)
    reset = early
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                reset += 1
        except BlockingIOError:
            pass
        except OSError:
            reset += 1
    with counts.get_lock():
        counts[0] += opened
        counts[1] += reset
        counts[2] += failed
    if errs:
        print(f"flood {src}: connect errors {errs}", flush=True)
    done.wait(hold_s)
    for s in socks:
        s.close()


class Probe(threading.Thread):
    """GET /hub/health on a new connection every 50 ms; keeps latencies."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.lat, self.errors = url, [], []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = DIRECT.get(self.url + "/hub/health", timeout=5,
                               headers={"Connection": "close"})
                if r.status_code != 200:
                    self.errors.append(r.status_code)
            except requests.RequestException as e:
                self.errors.append(repr(e))
            self.lat.append(time.monotonic() - t0)
            self.stop.wait(0.05)


def start_flood(port, sources, per_source, hold_s, done, counts):
    procs = [multiprocessing.Process(target=flood, args=(
        src, port, per_source, hold_s, done, counts)) for src in sources]
    for p in procs:
        p.start()
    return procs


def test_flood_keeps_health_answering_and_returns_to_baseline(tmp_path,
                                                              monkeypatch):
    hub = hub_with_fd_limit(tmp_path, monkeypatch, "flood", 2048, {
        "SWARMHUB_MAX_CONNECTIONS_PER_ADDRESS": "50"})
    try:
        pid = hub.proc.pid
        log0 = len(hub.stderr())
        for _ in range(20):      # warm up: pools, threads, first allocations
            DIRECT.get(hub.url + "/hub/health", timeout=5)
        base_fds, base_rss = fds(pid), rss_kb(pid)
        probe = Probe(hub.url)
        probe.start()
        ctx = multiprocessing.get_context("fork")
        done, counts = ctx.Event(), ctx.Array("l", 3)
        # 5,000 idle connections from ten addresses (500 each, 50 allowed)
        idle = start_flood(hub.port, [f"127.0.0.{10 + i}" for i in range(10)],
                           500, 60, done, counts)
        time.sleep(4)
        held = fds(pid) - base_fds
        # then 20,000 more attempts from four other addresses
        more = start_flood(hub.port, [f"127.0.0.{30 + i}" for i in range(4)],
                           5000, 1, threading.Event(), counts)
        for p in more:
            p.join(120)
        done.set()
        for p in idle:
            p.join(60)
        probe.stop.set()
        probe.join(10)
        assert counts[0] + counts[2] == 25000
        assert counts[2] < 250, f"{counts[2]} connects failed"
        # 10 x 50 idle ones held, everything else refused at once
        assert 490 <= held <= 560, f"hub held {held} extra fds"
        assert counts[0] - counts[1] <= 14 * 50 + 20, \
            f"{counts[0]} taken, only {counts[1]} refused"
        assert not probe.errors, probe.errors[:5]
        assert len(probe.lat) > 20
        # Within 100 ms; on a shared 2-core machine a probe may lose the CPU
        # now and then (2 % allowed), but never wait for a SYN retry (1 s).
        lat = sorted(probe.lat)
        slow = [x for x in lat if x >= 0.1]
        what = (f"{len(lat)} probes: median {lat[len(lat) // 2] * 1000:.1f} "
                f"ms, slowest {[round(x * 1000) for x in lat[-5:]]} ms")
        print("flood: /hub/health " + what)
        assert len(slow) <= len(lat) // 50 and lat[-1] < 1.0, what
        log = hub.stderr()[log0:]
        lines = [ln for ln in log.splitlines() if "event=edge." in ln]
        assert len(lines) < 80, f"{len(lines)} edge log lines:\n" + \
            "\n".join(lines[:20])
        assert "suppressed=" in log, "refusals not counted in the log"
        # back to baseline
        deadline = time.monotonic() + 10
        while fds(pid) > base_fds + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert fds(pid) <= base_fds + 2, (fds(pid), base_fds)
        if not sanitized():     # ASan's quarantine keeps freed memory
            assert rss_kb(pid) < base_rss + 4096, (rss_kb(pid), base_rss)
        r = DIRECT.get(hub.url + "/hub/health", timeout=5)
        assert r.status_code == 200
    finally:
        assert hub.cleanup() == 0, hub.stderr()[-2000:]


def test_out_of_fds_backs_off_instead_of_spinning(tmp_path, monkeypatch):
    """MAX_CONNECTIONS set above what the fd limit fits: accept fails with
    EMFILE; the hub rests instead of spinning and logs about one line a
    second, then serves again when the connections go."""
    hub = hub_with_fd_limit(tmp_path, monkeypatch, "emfile", 320, {
        "SWARMHUB_MAX_CONNECTIONS": "5000",
        "SWARMHUB_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    try:
        pid = hub.proc.pid
        assert "event=edge.limit_above_fds" in hub.stderr()
        ctx = multiprocessing.get_context("fork")
        done, counts = ctx.Event(), ctx.Array("l", 3)
        procs = start_flood(hub.port, ["127.0.0.50"], 600, 30, done, counts)
        time.sleep(3)
        log0 = len(hub.stderr())
        cpu0 = cpu_s(pid)
        time.sleep(3)
        cpu = cpu_s(pid) - cpu0
        log = hub.stderr()[log0:]
        done.set()
        for p in procs:
            p.join(60)
        n = log.count("event=edge.accept_failed")
        assert 1 <= n <= 6, f"{n} accept_failed lines in 3 s"
        assert cpu < 0.5, f"hub used {cpu:.2f} s of CPU in 3 s out of fds"
        deadline = time.monotonic() + 10
        ok = False
        while not ok and time.monotonic() < deadline:
            try:
                ok = DIRECT.get(hub.url + "/hub/health",
                                timeout=2).status_code == 200
            except requests.RequestException:
                time.sleep(0.2)
        assert ok, "the hub did not serve again after the flood"
    finally:
        assert hub.cleanup() == 0, hub.stderr()[-2000:]


@pytest.mark.parametrize("timeout_s", [2])
def test_idle_keepalive_client_closed(timeout_s):
    hub = Hub("idle", env={"SWARMHUB_CLIENT_IDLE_TIMEOUT": str(timeout_s)})
    try:
        s = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
        s.sendall(b"GET /hub/health HTTP/1.1\r\nHost: h\r\n\r\n")
        t0 = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        assert data.startswith(b"HTTP/1.1 200"), data
        rest = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                rest += chunk
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        assert timeout_s - 0.5 <= took <= timeout_s + 2, took
        s.close()
    finally:
        assert hub.cleanup() == 0, hub.stderr()[-2000:]

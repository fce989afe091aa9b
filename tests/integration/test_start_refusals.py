"""
test_start_refusals.py - a real hub with spawning on (the test swarm's
network, a valid profiles file) refuses, at start, settings that could
never start a server: it exits 1 with the setting and the fix on stderr
instead of failing at a user's first Start. And HOME empty starts (servers
without a home), with the home page saying that files are not kept.
"""
import pytest

from hubtest import NET, limits, login_ok, need_docker, \
    write_notebook_profiles, write_profiles


def spawn_on(tmp_path, **over):
    env = {"SWARMHUB_NETWORK": NET(), "SWARMHUB_CONNECT": "gwbridge",
           "SWARMHUB_HUB_ID": "refusal-test",
           "SWARMHUB_PROFILES": write_notebook_profiles(
               tmp_path / "profiles.json", real=False)}
    env.update(over)
    return env


CASES = [
    ({"SWARMHUB_HOME_MOUNT": "volume"},
     "SWARMHUB_HOME_MOUNT=volume mounts NFS volumes and needs "
     "SWARMHUB_HOME=nfs://server/export"),
    ({"SWARMHUB_HOME": "nfs://127.0.0.1/export"},
     "SWARMHUB_HOME_MOUNT=bind needs SWARMHUB_HOME_BIND_ROOT"),
    ({"SWARMHUB_HOME_BIND_ROOT": "srv/homes"},
     "SWARMHUB_HOME_BIND_ROOT: 'srv/homes' is not an absolute path"),
    ({"SWARMHUB_HOME_TARGET": "work"},
     "SWARMHUB_HOME_TARGET: 'work' is not an absolute path"),
    ({"SWARMHUB_SHARED_DIR": "shared"}, "SWARMHUB_SHARED_DIR needs homes"),
    ({"SWARMHUB_START_TIMEOUT": "0"},
     "SWARMHUB_START_TIMEOUT must be at least 1 second"),
    ({"SWARMHUB_HOME_MOUNT": "nfs"}, "'nfs' is not bind or volume"),
    ({"SWARMHUB_NETWORK": "no-such-net-for-refusals"},
     "network 'no-such-net-for-refusals' does not exist"),
]


@pytest.mark.parametrize("over, words", CASES,
                         ids=[next(iter(c[0])) for c in CASES])
def test_refused_at_start(start_hub, tmp_path, over, words):
    need_docker()
    hub = start_hub("refusal", spawn_on(tmp_path, **over), wait=False)
    hub.proc.wait(30)
    assert hub.proc.returncode == 1, hub.stderr()[-2000:]
    assert words in hub.stderr(), hub.stderr()[-2000:]


def test_no_home_starts_and_says_files_are_not_kept(start_hub, tmp_path):
    need_docker()
    hub = start_hub("nohome", spawn_on(tmp_path))
    hub.make_user("nohomeuser", password="nohome-pw-1")
    s = login_ok(hub, "nohomeuser", "nohome-pw-1")
    home = s.get(hub.url + "/hub/home", timeout=10).text
    assert 'id="no-home"' in home and "Files are not kept" in home, \
        home[:3000]
    assert 'id="start"' in home


def test_missing_image_is_a_warning_at_start(start_hub, tmp_path):
    """An image of the profiles that is not on this node: the hub starts
    (another node or a registry may have it) and says so in its log."""
    need_docker()
    profiles = write_profiles(
        tmp_path / "missing.json",
        {"gone": {"image": "swarmhub/no-such-image:1", "port": 8888}},
        {"default": {"images": ["gone"], **limits((0.1, 1, 0.5),
                                                  (0.1, 1, 0.25))}})
    hub = start_hub("missing-image",
                    spawn_on(tmp_path, SWARMHUB_PROFILES=profiles))
    assert hub.alive()
    log = hub.stderr()
    assert "event=spawner.image_missing" in log and \
        "image=swarmhub/no-such-image:1" in log, log[-2000:]

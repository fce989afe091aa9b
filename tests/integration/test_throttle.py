"""
test_throttle.py - the failed-login limiter (hub/ratelimit.c) against a
real hub: failures for other names, including names that shared alice's
slot in the old direct-mapped table, never reset alice's count, and a
client cannot escape the per-address count by writing X-Forwarded-For or
X-Real-IP itself.

Client address contract: the edge computes the address (the TCP peer; from
a trusted proxy the right-most X-Forwarded-For entry not written by a
trusted proxy; TRUSTED_PROXIES=* trusts the one peer in front and takes the
entry it added), passes it to the hub as X-Real-IP, always overwriting the
client's, and the hub counts failures per that address and logs it.
"""
import secrets

from hubtest import login, uniq

MAX = 5                 # LOGIN_MAX_FAILURES
PER_ADDRESS = 4 * MAX   # an address gets four times the failures of a name
THROTTLED = "too many failed logins"


def old_slot(key):
    """The slot key had in the old table: FNV-1a 64, | 1, % 4096."""
    h = 1469598103934665603
    for b in key.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return (h | 1) % 4096


def colliding_names(name, n):
    """n names whose "u:" keys shared name's slot in the old table."""
    want, out, i = old_slot("u:" + name), [], 0
    while len(out) < n:
        cand = f"c{i}"
        if old_slot("u:" + cand) == want:
            out.append(cand)
        i += 1
    return out


def throttled(r):
    return r.status_code == 429 and THROTTLED in r.text.lower()


def addr(i):
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def audit_ips(hub, target):
    rows = hub.sql("SELECT DISTINCT ip FROM audit_log WHERE "
                   f"action = 'login.failed' AND target = '{target}'")
    return {r[0] for r in rows}


def test_other_names_never_reset_a_name(start_hub):
    """Interleave guesses at alice with failures for names that collided
    with her in the old table and many others, each request from its own
    address (a trusted proxy in front says so), so only the per-name count
    can stop the guessing. The old table let this guess forever."""
    hub = start_hub("throttle-names", env={
        "SWARMHUB_LOGIN_MAX_FAILURES": str(MAX),
        "SWARMHUB_LOGIN_WINDOW": "10m",
        "SWARMHUB_TRUSTED_PROXIES": "127.0.0.1"})
    alice = "alice"
    hub.make_user(alice, password="right-pw")
    others = colliding_names(alice, 4) + [uniq("n") for _ in range(40)]
    seq, guesses, refused = 0, 0, 0
    for rnd in range(3 * MAX):
        seq += 1
        _, r = login(hub, alice, f"guess{rnd}",
                     headers={"X-Forwarded-For": addr(seq)})
        if r.status_code == 403:
            guesses += 1
        else:
            assert throttled(r), (r.status_code, r.text[:500])
            refused += 1
        for name in others[rnd * 3 % len(others):][:3] + others[:2]:
            seq += 1
            _, r = login(hub, name, "wrong",
                         headers={"X-Forwarded-For": addr(seq)})
            assert r.status_code in (403, 429), (r.status_code, r.text[:300])
    assert guesses == MAX, f"{guesses} guesses at alice were let through"
    seq += 1
    _, r = login(hub, alice, "right-pw",
                 headers={"X-Forwarded-For": addr(seq)})
    assert throttled(r), ("even the right password waits out the window",
                          r.status_code, r.text[:300])
    ips = audit_ips(hub, alice)
    assert len(ips) == MAX and "127.0.0.1" not in ips, (
        "each failure is logged with the address the proxy vouched for", ips)


def test_forged_forwarding_headers_do_not_escape_the_address(start_hub):
    """No trusted proxy: whatever X-Forwarded-For and X-Real-IP a client
    writes, its failures count against the TCP peer."""
    hub = start_hub("throttle-forged", env={
        "SWARMHUB_LOGIN_MAX_FAILURES": str(MAX),
        "SWARMHUB_LOGIN_WINDOW": "10m"})
    bystander = hub.make_user(uniq("by"), password="by-pw")
    names = [uniq("f") for _ in range(PER_ADDRESS)]
    for i, name in enumerate(names):
        _, r = login(hub, name, "wrong", headers={
            "X-Forwarded-For": f"{addr(i)}, {addr(1000 + i)}",
            "X-Real-IP": addr(2000 + i)})
        assert r.status_code == 403, (i, r.status_code, r.text[:300])
    _, r = login(hub, bystander, "by-pw", headers={
        "X-Forwarded-For": addr(5000), "X-Real-IP": addr(5001)})
    assert throttled(r), ("the address is over its limit", r.status_code,
                          r.text[:300])
    assert audit_ips(hub, names[0]) == {"127.0.0.1"}
    assert audit_ips(hub, names[-1]) == {"127.0.0.1"}


def test_forged_left_entries_behind_one_trusted_proxy(start_hub):
    """TRUSTED_PROXIES=*: the proxy in front appends the address it was
    called from; entries to its left are the client's own words and must
    not count, so varying them does not escape the address's limit."""
    hub = start_hub("throttle-xff", env={
        "SWARMHUB_LOGIN_MAX_FAILURES": str(MAX),
        "SWARMHUB_LOGIN_WINDOW": "10m",
        "SWARMHUB_TRUSTED_PROXIES": "*"})
    bystander = hub.make_user(uniq("by"), password="by-pw")
    client = "192.0.2.7"
    names = [uniq("x") for _ in range(PER_ADDRESS)]
    for i, name in enumerate(names):
        forged = f"{addr(i)}, {secrets.randbelow(250) + 1}.1.2.3"
        _, r = login(hub, name, "wrong", headers={
            "X-Forwarded-For": f"{forged}, {client}",
            "X-Real-IP": addr(3000 + i)})
        assert r.status_code == 403, (i, r.status_code, r.text[:300])
    _, r = login(hub, bystander, "by-pw", headers={
        "X-Forwarded-For": f"{addr(9999)}, {client}"})
    assert throttled(r), ("forged left-most entries escaped the count",
                          r.status_code, r.text[:300])
    assert audit_ips(hub, names[0]) == {client}
    # another client behind the same proxy is not held up
    _, r = login(hub, bystander, "by-pw",
                 headers={"X-Forwarded-For": "192.0.2.8"})
    assert r.status_code == 302, (r.status_code, r.text[:300])


def test_parallel_guesses_are_counted_before_they_are_checked(start_hub):
    """Thirty guesses at once, each from its own address: an attempt is
    counted before its password is checked, so no more than the limit get
    an answer other than 429 (before, all thirty passed the check while
    none had been counted yet). The right password afterwards is refused
    too, and a successful login does not count against its address."""
    import concurrent.futures

    hub = start_hub("throttle-burst", env={
        "SWARMHUB_LOGIN_MAX_FAILURES": str(MAX),
        "SWARMHUB_LOGIN_WINDOW": "10m",
        "SWARMHUB_TRUSTED_PROXIES": "127.0.0.1"})
    hub.make_user("carol", password="carol-pw")
    hub.make_user("dan", password="dan-pw")
    for i in range(2 * PER_ADDRESS):    # successes never throttle an address
        _, r = login(hub, "dan", "dan-pw",
                     headers={"X-Forwarded-For": "10.9.9.9"})
        assert r.status_code == 302, (i, r.status_code, r.text[:300])

    def guess(i):
        _, r = login(hub, "carol", f"guess{i}",
                     headers={"X-Forwarded-For": addr(1000 + i)})
        return r

    with concurrent.futures.ThreadPoolExecutor(30) as ex:
        answers = list(ex.map(guess, range(30)))
    checked = [r for r in answers if r.status_code == 403]
    assert all(r.status_code == 403 or throttled(r) for r in answers), \
        [(r.status_code, r.text[:100]) for r in answers]
    assert len(checked) <= MAX, f"{len(checked)} parallel guesses checked"
    _, r = login(hub, "carol", "carol-pw",
                 headers={"X-Forwarded-For": addr(2000)})
    assert throttled(r), (r.status_code, r.text[:300])

"""Login throttling as a pure function of (client, name, time): doubling delays per client, a per-name delay that
only clients which failed themselves feel, forgetting, and bounded tables."""

from __future__ import annotations

import pytest

from notify.security import LoginThrottle, ThrottlePolicy, client_address, client_key

T0 = 1_750_000_000.0


def throttle(**policy: float) -> LoginThrottle:
    return LoginThrottle(ThrottlePolicy(**policy), users=["dana", "niall"])  # type: ignore[arg-type]


def test_each_failure_doubles_the_clients_wait_up_to_the_cap() -> None:
    t = throttle(initial_delay_s=1, max_delay_s=60)
    now = T0
    waits = []
    for _ in range(9):
        assert t.check("10.0.0.1", "dana", now) is None
        t.failed("10.0.0.1", "dana", now)
        refusal = t.check("10.0.0.1", "dana", now)
        assert refusal is not None and refusal.scope == "client"
        waits.append(refusal.retry_after_s)
        now += refusal.retry_after_s
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_wait_is_refused_until_it_is_over_and_audited_once() -> None:
    t = throttle()
    t.failed("10.0.0.1", "dana", T0)
    t.failed("10.0.0.1", "dana", T0 + 1)  # second failure: 2 s from T0 + 1
    first = t.check("10.0.0.1", "dana", T0 + 1.5)
    again = t.check("10.0.0.1", "other-name", T0 + 2.5)
    assert first is not None and first.first and first.retry_after_s == 1.5
    assert again is not None and not again.first and again.retry_after_s == 0.5
    assert t.check("10.0.0.1", "dana", T0 + 3) is None
    t.failed("10.0.0.1", "dana", T0 + 3)
    third = t.check("10.0.0.1", "dana", T0 + 3)
    assert third is not None and third.first and third.retry_after_s == 4  # a new wait: audited again


def test_a_clean_client_is_never_throttled_however_often_the_name_failed() -> None:
    t = throttle(user_free_failures=5)
    for n in range(200):  # a botnet: every address fails once on dana
        t.failed(f"10.0.{n // 250}.{n % 250}", "dana", T0 + n * 0.01)
    assert t.check("192.168.1.20", "dana", T0 + 2) is None  # the manager, from a clean machine
    # ... while an attacker's address that failed before waits for the name's own delay
    refusal = t.check("10.0.0.7", "dana", T0 + 2 + 60)
    assert refusal is not None and refusal.scope == "user" and refusal.retry_after_s > 0


def test_the_names_delay_starts_after_its_free_failures() -> None:
    t = throttle(initial_delay_s=1, user_free_failures=3)
    for n in range(3):
        t.failed(f"10.0.0.{n}", "dana", T0)
    assert t.check("10.0.0.1", "dana", T0 + 10) is None  # 3 failures: no delay for the name yet
    t.failed("10.0.0.3", "dana", T0 + 10)
    refusal = t.check("10.0.0.1", "dana", T0 + 10.5)
    assert refusal is not None and refusal.scope == "user" and refusal.retry_after_s == 0.5
    assert t.check("10.0.0.1", "niall", T0 + 10.5) is None  # other names are not slowed


def test_failures_are_forgotten_after_a_quiet_period() -> None:
    t = throttle(initial_delay_s=1, max_delay_s=900, forget_after_s=3600)
    for n in range(12):
        t.failed("10.0.0.1", "dana", T0 + n * 900)
    last = T0 + 11 * 900
    assert t.check("10.0.0.1", "dana", last + 899) is not None
    assert not t.is_clean("10.0.0.1", last + 3599)
    assert t.is_clean("10.0.0.1", last + 3600) and t.check("10.0.0.1", "dana", last + 3600) is None
    t.failed("10.0.0.1", "dana", last + 3600)
    refusal = t.check("10.0.0.1", "dana", last + 3600)
    assert refusal is not None and refusal.retry_after_s == 1  # counting starts again


def test_a_record_outlives_the_longest_wait() -> None:
    t = throttle(initial_delay_s=100, max_delay_s=1000, forget_after_s=10)
    t.failed("10.0.0.1", "dana", T0)
    t.failed("10.0.0.1", "dana", T0 + 100)
    assert t.check("10.0.0.1", "dana", T0 + 150) is not None  # not forgotten after 10 s mid-wait


def test_tables_stay_bounded_under_a_spray_of_names_and_addresses() -> None:
    t = throttle(max_clients=100, max_unknown_names=50)
    for n in range(20_000):
        t.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", f"name-{n}", T0 + n)
    assert t.sizes() == (100, 50)
    t.failed("10.9.9.9", "dana", T0 + 20_000)  # configured users are tracked beside the bounded tables
    assert t.sizes() == (100, 50)


def test_expired_records_are_pruned_when_a_failure_is_recorded() -> None:
    t = throttle(forget_after_s=3600, max_delay_s=900)
    for n in range(30):
        t.failed(f"10.0.0.{n}", f"name-{n}", T0)
    assert t.sizes() == (30, 30)
    t.failed("10.0.1.1", "someone", T0 + 3600)
    assert t.sizes() == (1, 1)


def test_a_success_resets_nothing_so_an_own_account_cannot_clear_a_clients_record() -> None:
    t = throttle()
    t.failed("10.0.0.1", "dana", T0)
    assert t.check("10.0.0.1", "niall", T0 + 0.5) is not None  # even for the attacker's own account


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same subscriber's /64
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("", "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_client_keys(remote: str | None, key: str) -> None:
    assert client_key(remote) == key


PROXY = frozenset({"10.1.1.1", "10.1.1.2"})


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "address"),
    [
        ("203.0.113.7", "198.51.100.1", frozenset(), "203.0.113.7"),  # no proxy trusted: the header is ignored
        ("203.0.113.7", "198.51.100.1", PROXY, "203.0.113.7"),  # not from the proxy: ignored
        ("10.1.1.1", "198.51.100.1", PROXY, "198.51.100.1"),
        ("10.1.1.1", "6.6.6.6, 198.51.100.1", PROXY, "198.51.100.1"),  # the client's own entry is not believed
        ("10.1.1.1", "6.6.6.6, 198.51.100.1, 10.1.1.2", PROXY, "198.51.100.1"),  # through both proxies
        ("10.1.1.1", "", PROXY, "10.1.1.1"),
    ],
)
def test_client_address_behind_trusted_proxies(
    remote: str, forwarded: str, trusted: frozenset[str], address: str
) -> None:
    assert client_address(remote, forwarded, trusted) == address

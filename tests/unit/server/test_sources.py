"""Budgets per source and server-wide, on a fake clock."""

from __future__ import annotations

import pytest

from voxlive.server.budget import Budget
from voxlive.server.sources import (
    SERVER_BURST_S,
    SERVER_RATE_PER_S,
    SHARE_FLOOR_PER_S,
    Allowance,
    Sources,
)


def test_connections_of_one_source_share_its_rate() -> None:
    sources = Sources(rate_per_s=10, burst=4, server_rate_per_s=1e9)
    a, b = sources.open("10.0.0.1"), sources.open("10.0.0.1")
    other = sources.open("10.0.0.2")
    assert [a.charge(0.0, 0), b.charge(0.0, 0), a.charge(0.0, 0), b.charge(0.0, 0)] == [0.0] * 4
    assert b.charge(0.0, 0) == pytest.approx(0.1)  # the source's burst is spent, by both
    assert other.charge(0.0, 0) == 0.0  # another address has its own


def test_many_connections_each_get_a_share_of_the_server_rate_never_below_the_floor() -> None:
    sources = Sources(rate_per_s=1e9, burst=1e9, server_rate_per_s=100, share_floor_per_s=10,
                      new_budget=lambda: Budget(rate_per_s=1000, burst=1))  # fmt: skip
    first = sources.open("a")
    assert sources.share() == 100
    first.charge(0.0, 0)
    assert first.charge(0.0, 0) == pytest.approx(1 / 100)  # alone: the server's whole rate
    others = [sources.open(str(i)) for i in range(4)]
    assert sources.share() == 20  # 100 over five connections
    assert first.charge(0.0, 0) == pytest.approx(2 / 20)
    others += [sources.open(str(i)) for i in range(100)]
    assert sources.share() == 10  # the floor: an honest stream is never starved
    for allowance in [first, *others]:
        allowance.close()
    assert sources.tracked == 0 and sources.share() == 100


def test_a_source_is_forgotten_when_its_last_connection_closes_and_close_is_idempotent() -> None:
    sources = Sources()
    a, b = sources.open("x"), sources.open("x")
    a.close()
    a.close()
    assert sources.tracked == 1
    b.close()
    assert sources.tracked == 0


def _free(allowance: Allowance, now: float) -> int:
    """Messages ``allowance`` may send at ``now`` before it must wait."""
    sent = 0
    while allowance.charge(now, 0) == 0.0:
        sent += 1
    return sent


def test_fresh_connections_from_many_sources_spend_a_tenth_of_a_second_of_the_server_at_once() -> (
    None
):
    sources = Sources()  # the defaults: 4000 units/s for the server
    flood = [sources.open(f"10.0.0.{i % 8}") for i in range(48)]  # the attack suite's 8 addresses
    for allowance in flood:
        allowance.charge(0.0, 0)  # connected; then all save up for a second
    at_once = sum(_free(a, 1.0) for a in flood)
    # the server's burst, SERVER_BURST_S of its rate, where fixed bursts gave 8 sources x 2000
    # (a little less: a message that must wait is charged too, and read after its wait)
    assert sources.server_burst() == SERVER_RATE_PER_S * SERVER_BURST_S == 400
    assert 0.9 * 400 <= at_once <= 400
    assert sources.connection_burst() == SHARE_FLOOR_PER_S * SERVER_BURST_S  # 10 each


def test_many_addresses_do_not_add_to_the_servers_burst() -> None:
    sources = Sources()
    flood = [sources.open(f"10.0.{i // 250}.{i % 250}") for i in range(512)]  # one each
    for allowance in flood:
        allowance.charge(0.0, 0)
    assert 0.9 * 400 <= sum(_free(a, 1.0) for a in flood) <= 400  # not 512 x a source's burst


def _greedy(sources: Sources, reconnect_every_s: float) -> int:
    """Messages one address gets read in a second, sending as fast as it is read and opening a
    new connection (its only one) every ``reconnect_every_s``."""
    now, sent, allowance = 0.0, 0, sources.open("10.9.9.9")
    opened = now
    while now < 1.0:
        if now - opened >= reconnect_every_s:
            allowance.close()
            allowance, opened = sources.open("10.9.9.9"), now
        now += allowance.charge(now, 0)
        sent += 1
    return sent


def test_reconnecting_buys_an_address_nothing_beyond_its_rate() -> None:
    steady = _greedy(Sources(), reconnect_every_s=2.0)
    churning = _greedy(Sources(), reconnect_every_s=0.02)  # 50 connects a second, as allowed
    # one connection: its burst (400) and its own 1000/s; churning: the source's 2000/s and the
    # 10 units a new source starts with, 50 times (the old full buckets let it read ~10,000)
    assert steady == pytest.approx(1400, abs=5) and churning <= 2000 + 50 * 10 + 5


def test_a_lone_connection_keeps_a_tenth_of_a_second_of_the_server_as_its_burst() -> None:
    sources = Sources()
    alone = sources.open("a")
    alone.charge(0.0, 0)
    assert _free(alone, 1.0) == SERVER_RATE_PER_S * SERVER_BURST_S  # 400: 8 s of an honest stream
    assert alone.charge(2.0, 0) == 0.0  # refilled at its rate


def test_a_connections_burst_shrinks_with_its_share_and_grows_back() -> None:
    sources = Sources(share_floor_per_s=10)
    first = sources.open("a")
    assert sources.connection_burst() == 400
    others = [sources.open(str(i)) for i in range(999)]
    assert sources.connection_burst() == 1.0  # 10/s x 0.1 s, never below one unit
    first.charge(0.0, 0)
    assert first.charge(0.0, 0) > 0.0  # nothing saved beyond the burst
    for allowance in others:
        allowance.close()
    assert sources.connection_burst() == 400
    assert _free(first, 10.0) == 400  # saved up again, to the lone burst

"""Budgets per source and server-wide, on a fake clock."""

from __future__ import annotations

import pytest

from voxlive.server.budget import Budget
from voxlive.server.sources import Sources


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

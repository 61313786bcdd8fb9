"""The attack suite (python -m voxlive.bench.attacks) against a fresh server process per attack,
the attacker in a child process of its own from another loopback address: an honest live
stream beside each attack keeps every result and its p95 within 2x + 50 ms of its own
unattacked value, liveness probes every 200 ms from the attacker's start (when fresh budgets
are full) all answer, their median within 100 ms and the slowest within 150 ms, and the
server's memory grows by a bounded amount (the attacker runs niced: its CPU is not the
server's). The README's security section has the numbers of a full run."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxlive.bench.attacks import ATTACKS, measure
from voxlive.bench.serving import serve_subprocess
from voxlive.bench.tool_tables import ATTACK_MEDIAN_PROBE_MS, ATTACK_PROBE_MS, ATTACK_RSS_MIB

SECONDS = 6.0


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_an_attack_spares_the_honest_stream_the_probes_and_the_memory(
    attack: str, tmp_path: Path
) -> None:
    flags = ["--model", "pitch", "--gate", "none"]
    async with serve_subprocess(attack, flags, tmp_path / "serve.log") as target:
        assert target.process is not None
        o = await measure(attack, target.http, target.process.pid, SECONDS)
    print(f"\n{o}")
    assert o.connections >= 1  # the attack ran
    assert o.honest_results == o.honest_results_alone > 0  # every window answered
    assert o.honest_p95_attacked_ms <= 2 * o.honest_p95_alone_ms + 50
    assert o.failed_probes == 0
    assert o.median_probe_ms <= ATTACK_MEDIAN_PROBE_MS and o.slowest_probe_ms <= ATTACK_PROBE_MS
    assert o.rss_growth_mib <= ATTACK_RSS_MIB

"""The fleet (bench/fleet.py) against a real server on a free loopback port: two spawned worker
processes run their share of the streams, each naming its own client address to a server that
trusts the load generator as a proxy; their counts merge into one judged row per run, and the
capacity search runs on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import DATA, running_server
from voxlive.bench import fleet
from voxlive.bench.fleet import FleetOptions


@pytest.mark.slow
async def test_two_processes_drive_a_server_and_the_search_merges_their_runs(
    tmp_path: Path,
) -> None:
    async with running_server(trusted_proxies=("127.0.0.1",)) as srv:
        options = FleetOptions(
            url=srv.ws_url, audio=(str(DATA / "female_speech.wav"), str(DATA / "male_speech.wav")),
            procs=2, streams=2, seconds=4.0, warmup_s=1.0, forwarded_for=True,
            find_capacity=True, capacity_limit=4, p95_ms=1000.0, quiet=True,
            out=tmp_path / "fleet.json",
        )  # fmt: skip
        doc = await fleet.bench(options)
    assert json.loads((tmp_path / "fleet.json").read_text())["runs"] == doc["runs"]
    assert [r["streams"] for r in doc["runs"]] == [2, 4]
    assert doc["capacity"] == {"server": 4} and doc["capacity_complete"] is True
    for run in doc["runs"]:
        n = run["streams"]
        assert run["procs"] == 2 and run["start_skew_ms"] < 1000
        assert run["errors"] == 0 and run["failed_streams"] == [] and run["dropped_windows"] == 0
        # n streams x 3 counted seconds at 2 results/s, plus each stream's final tail window
        assert 6 * n <= run["results"] <= 6 * n + 2 * n
        assert 0 < run["server_p50_ms"] <= run["server_p95_ms"] <= run["server_p99_ms"]
        assert run["client_p95_ms"] > 0 and run["model_calls"] > 0
        assert run["client_cpu_pct"] > 0  # the workers' CPU, counted
    assert doc["server"]["model"] == "pitch" and doc["server"]["hop_ms"] == 500
    assert doc["provenance"]["settings"]["options"]["procs"] == 2
    assert "capacity[server]: 4 streams" in fleet.summary(doc)

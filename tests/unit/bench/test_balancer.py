"""The balancer bench's pure parts (bench/balancer.py): the rendered HAProxy config with agent
checks and a stats socket, HAProxy's stat CSV, and the percentiles it prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from voxlive.bench.balancer import RENDER, parse_stat, percentiles, render


def test_each_front_with_an_agent_port_gets_an_agent_check() -> None:
    cfg = render("127.0.0.1:8000", ["10.0.0.5:8001:8101", "10.0.0.6:8001"], Path("/run/h.sock"))
    assert "    server front1 10.0.0.5:8001 agent-check agent-port 8101 agent-inter 1s\n" in cfg
    assert "    server front2 10.0.0.6:8001\n" in cfg  # no agent: health checks only
    assert "uri /readyz?strict=1" in cfg and "weight 100" in cfg
    assert cfg.startswith("#") and "global\n    stats socket /run/h.sock level admin\n" in cfg


@pytest.mark.parametrize("front", ["10.0.0.5", "10.0.0.5:x", "10.0.0.5:8001:y", "[::1]:8001"])
def test_render_refuses_a_front_it_cannot_read(front: str) -> None:
    done = subprocess.run([str(RENDER), ":8000", front], capture_output=True, text=True)
    assert done.returncode == 2 and front in done.stderr


def test_parse_stat_reads_the_fronts_status() -> None:
    csv = (
        "# pxname,svname,qcur,status,weight\n"
        "voxlive,FRONTEND,,OPEN,\n"
        "fronts,front1,0,UP,44\n"
        "fronts,front2,0,DRAIN,0\n"
        "fronts,front3,0,DOWN,100\n"
        "fronts,BACKEND,0,UP,44\n"
    )
    assert parse_stat(csv) == {"front1": "UP", "front2": "DRAIN", "front3": "DOWN"}
    assert parse_stat("") == {}


def test_percentiles_in_ms() -> None:
    assert percentiles([float(v) for v in range(1, 101)]) == {
        "p50_ms": 50.5,
        "p95_ms": 95.0,
        "n": 100,
    }
    assert percentiles([]) == {"p50_ms": None, "p95_ms": None, "n": 0}

"""What bench reads from a server's /metrics (bench/scrape.py): batch sizes and window
outcomes, the difference of two scrapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voxlive.bench.scrape import (
    CpuSample,
    Snapshot,
    batch_histogram,
    machine_cpu_s,
    parse,
    tree_cpu_by_role,
    tree_cpu_s,
)
from voxlive.metrics import Metrics


# ---- the server's metrics --------------------------------------------------------------------
def test_batch_histogram_is_the_difference_of_two_scrapes() -> None:
    before = Snapshot(batch_buckets={"1.0": 5.0, "2.0": 5.0, "4.0": 6.0, "+Inf": 6.0})
    after = Snapshot(batch_buckets={"1.0": 15.0, "2.0": 18.0, "4.0": 20.0, "+Inf": 20.0})
    assert batch_histogram(before, after) == {"<=1": 10, "<=2": 3, "<=4": 1}


def test_batch_sizes_and_outcomes_are_read_from_the_metrics_a_server_exposes() -> None:
    metrics = Metrics()
    for size in (1, 3, 3):
        metrics.batch_size.observe(size)
    metrics.windows.labels(outcome="shed").inc(2)
    snap = parse(metrics.render().decode())
    assert (snap.batch_count, snap.batch_sum) == (3, 7)
    assert batch_histogram(Snapshot(), snap) == {"<=1": 1, "<=3": 2}
    assert snap.windows_since(Snapshot(), "shed") == 2 and snap.rss_mib > 0


def _stat(root: Path, pid: int, ppid: int, utime: int, stime: int, name: str = "python") -> None:
    (root / str(pid)).mkdir()
    fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 10
    (root / str(pid) / "stat").write_text(f"{pid} ({name}) " + " ".join(fields))


def test_tree_cpu_sums_a_process_and_its_descendants_only(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    _stat(tmp_path, 10, 1, 100, 50)  # the server
    _stat(tmp_path, 11, 10, 30, 0, name="raylet ) x")  # its child (a name with ") ")
    _stat(tmp_path, 12, 11, 20, 0)  # a grandchild (a replica)
    _stat(tmp_path, 13, 1, 999, 0)  # not in the tree
    (tmp_path / "self").mkdir()
    assert tree_cpu_s(10, str(tmp_path)) == (100 + 50 + 30 + 20) / tick
    assert tree_cpu_s(12, str(tmp_path)) == 20 / tick
    assert tree_cpu_s(99, str(tmp_path)) is None  # gone
    assert tree_cpu_s(10, str(tmp_path / "missing")) is None


def test_tree_cpu_by_role_tells_replicas_from_rays_own_processes(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    _stat(tmp_path, 10, 1, 100, 0)  # the front
    _stat(tmp_path, 11, 10, 30, 0, name="raylet")
    _stat(tmp_path, 12, 11, 20, 5)  # a replica, the raylet's child
    (tmp_path / "12" / "cmdline").write_bytes(b"ray::ServeReplica:voxlive:VoxliveModel\0")
    _stat(tmp_path, 13, 11, 7, 0)  # the Serve controller
    (tmp_path / "13" / "cmdline").write_bytes(b"ray::ServeController\0")
    _stat(tmp_path, 14, 1, 999, 0)  # not in the tree
    (tmp_path / "14" / "cmdline").write_bytes(b"ray::ServeReplica:other\0")
    roles = tree_cpu_by_role(10, str(tmp_path))
    assert roles == {"front": 100 / tick, "replicas": 25 / tick, "ray": 37 / tick}
    assert tree_cpu_s(10, str(tmp_path)) == 162 / tick


def test_machine_cpu_counts_busy_time_of_every_core(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    (tmp_path / "stat").write_text("cpu  100 5 20 900 50 1 2 3 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n")
    assert machine_cpu_s(str(tmp_path)) == (100 + 5 + 20 + 1 + 2 + 3) / tick
    (tmp_path / "stat").write_text("intr 1 2 3\n")
    assert machine_cpu_s(str(tmp_path)) is None
    assert machine_cpu_s(str(tmp_path / "missing")) is None


def test_cpu_shares_are_percent_of_one_core_over_the_wall_time() -> None:
    before = CpuSample({"front": 1.0, "replicas": 2.0, "ray": 0.5}, 100.0, 3.0)
    after = CpuSample({"front": 2.0, "replicas": 5.0, "ray": 0.7}, 108.0, 4.0)
    shares = after.shares(before, 4.0)
    assert shares == pytest.approx(
        {"tree": 105.0, "replicas": 75.0, "ray": 5.0, "client": 25.0, "machine": 200.0}
    )
    alone = CpuSample(None, None, 4.0).shares(CpuSample(None, None, 3.0), 2.0)
    assert alone == {"tree": None, "replicas": None, "ray": None, "client": 50.0, "machine": None}

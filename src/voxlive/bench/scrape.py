"""What a server says about itself: its ``/metrics`` (Prometheus text) and its capacity gauge.

``voxlive bench`` scrapes before and after each run and reports the difference: model calls and
their batch sizes (the ``voxlive_batch_size`` histogram), windows by outcome, CPU; peak RSS is
sampled during the run. The in-process harness (:mod:`voxlive.bench.pipeline`) reads the same
histogram from its own :class:`~voxlive.metrics.Metrics`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    """One reading of ``/metrics``; the counters are totals since the server started."""

    cpu_s: float = 0.0  # process CPU time
    rss_mib: float = 0.0  # resident memory now
    batch_buckets: Mapping[str, float] = field(default_factory=dict)  # "le" -> calls of <= le
    batch_sum: float = 0.0  # windows in all model calls
    batch_count: float = 0.0  # model calls
    windows: Mapping[str, float] = field(default_factory=dict)  # outcome -> windows

    def windows_since(self, before: Snapshot, outcome: str) -> int:
        """Windows with ``outcome`` ("classified", "gated", "shed", …) between two readings."""
        return int(self.windows.get(outcome, 0) - before.windows.get(outcome, 0))


def parse(text: str) -> Snapshot:
    """A snapshot from Prometheus exposition text (what ``GET /metrics`` returns)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, Any] = {"batch_buckets": {}, "windows": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "process_cpu_seconds_total":
                found["cpu_s"] = s.value
            elif s.name == "process_resident_memory_bytes":
                found["rss_mib"] = s.value / 2**20
            elif s.name == "voxlive_batch_size_bucket":
                found["batch_buckets"][s.labels["le"]] = s.value
            elif s.name == "voxlive_batch_size_sum":
                found["batch_sum"] = s.value
            elif s.name == "voxlive_batch_size_count":
                found["batch_count"] = s.value
            elif s.name == "voxlive_windows_total":
                found["windows"][s.labels["outcome"]] = s.value
    return Snapshot(**found)


def scrape(http: str) -> Snapshot:
    """``GET http + "/metrics"``, parsed. Blocking."""
    import httpx

    return parse(httpx.get(http + "/metrics", timeout=5).text)


def batch_histogram(before: Snapshot, after: Snapshot) -> dict[str, int]:
    """Model calls by batch size bucket ("<=1", "<=2", ...) between two readings."""
    hist, below = {}, 0.0
    for le in sorted(after.batch_buckets, key=float):
        cumulative = after.batch_buckets[le] - before.batch_buckets.get(le, 0.0)
        if cumulative - below > 0:
            bucket = "<=" + (le if le != "+Inf" else "inf").removesuffix(".0")
            hist[bucket] = int(cumulative - below)
        below = cumulative
    return hist


def gauge(http: str) -> dict[str, Any]:
    """The server's capacity gauge (/readyz ``capacity``); empty when it has none. Blocking."""
    import httpx

    with contextlib.suppress(Exception):
        found: dict[str, Any] = httpx.get(http + "/readyz", timeout=5).json().get("capacity", {})
        return found
    return {}


def tree_cpu_s(pid: int, proc: str = "/proc") -> float | None:
    """CPU seconds (user + system) of process ``pid`` and every live descendant, from Linux's
    ``/proc``: a server with ``--engine ray`` and no ``--ray-address`` starts a local Ray
    (its GCS, raylet, Serve controller and model replicas are its descendants), so this is the
    whole engine's CPU where the server's own ``/metrics`` show the front's. ``None`` where
    ``/proc`` cannot be read (not Linux, or ``pid`` gone)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and ")"
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        children.setdefault(ppid, []).append(int(name))
        cpu[int(name)] = (utime + stime) / tick
    if pid not in cpu:
        return None
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total

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


REPLICA_TITLE = "ray::ServeReplica"  # how Ray titles a Serve replica's process (its cmdline)


def tree_cpu_by_role(pid: int, proc: str = "/proc") -> dict[str, float] | None:
    """CPU seconds (user + system) of process ``pid`` and every live descendant, from Linux's
    ``/proc``, by role: ``front`` (``pid`` itself), ``replicas`` (Ray Serve replicas, told by
    their process title) and ``ray`` (every other descendant: a server with ``--engine ray``
    and no ``--ray-address`` starts a local Ray, whose GCS, raylet, Serve controller and agents
    are its descendants). So the whole engine's CPU is seen where the server's own ``/metrics``
    show the front's. ``None`` where ``/proc`` cannot be read (not Linux, or ``pid`` gone)."""
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
    roles = {"front": cpu[pid], "replicas": 0.0, "ray": 0.0}
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        roles["replicas" if _is_replica(proc, p) else "ray"] += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return roles


def _is_replica(proc: str, pid: int) -> bool:
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            return f.read(len(REPLICA_TITLE)).decode("ascii", "replace") == REPLICA_TITLE
    except OSError:
        return False


def tree_cpu_s(pid: int, proc: str = "/proc") -> float | None:
    """The CPU seconds of :func:`tree_cpu_by_role`, all roles together."""
    roles = tree_cpu_by_role(pid, proc)
    return None if roles is None else sum(roles.values())


def machine_cpu_s(proc: str = "/proc") -> float | None:
    """CPU seconds every core of the machine has spent busy (not idle or waiting on I/O) since
    boot, from ``/proc/stat``: with the load generator's and the server's own, what else the
    machine ran. ``None`` where it cannot be read."""
    import os

    try:
        with open(f"{proc}/stat", encoding="ascii") as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    ticks = [int(x) for x in first[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far of the server's processes by role (None: not bench's child), of the
    whole machine, and of this process (the load generator)."""

    roles: dict[str, float] | None
    machine: float | None
    client: float

    @classmethod
    def take(cls, pid: int | None) -> CpuSample:
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        roles = None if pid is None else tree_cpu_by_role(pid)
        return cls(roles, machine_cpu_s(), own.ru_utime + own.ru_stime)

    def shares(self, before: CpuSample, wall_s: float) -> dict[str, float | None]:
        """Percent of one core each used between ``before`` and this sample, ``wall_s`` apart:
        ``tree`` (the server's processes), ``replicas``, ``ray`` (Ray's own), ``client`` and
        ``machine`` (everything, of ``100 × cores``)."""

        def pct(now: float | None, then: float | None) -> float | None:
            return None if now is None or then is None else 100 * (now - then) / wall_s

        out: dict[str, float | None] = dict.fromkeys(("tree", "replicas", "ray"))
        if self.roles is not None and before.roles is not None:
            out["tree"] = pct(sum(self.roles.values()), sum(before.roles.values()))
            for role in ("replicas", "ray"):
                out[role] = pct(self.roles[role], before.roles[role])
        out["client"] = pct(self.client, before.client)
        out["machine"] = pct(self.machine, before.machine)
        return out

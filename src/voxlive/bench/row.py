"""One run of ``voxlive bench`` as a typed row, the table it prints and the medians of rounds.

:meth:`Row.to_dict` is the row as the JSON report (``runs``) holds it: the keys that
BENCHMARKS.md and ``docs/benchmarks/*.json`` use. Latencies are in ms; a percentile is ``None``
when no result of that kind arrived.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VsCeiling:
    """A real-time run's load against the same round's ceiling (audio-s of model work per s)."""

    ceiling_audio_s_per_s: float  # what the model does flat out, best batch size
    model_load_audio_s_per_s: float  # what N live streams offer it (every window to the model)
    pct_of_ceiling: float  # the second as % of the first
    # What did reach the model (the gate keeps quiet windows away): answered, shed or dropped
    # model windows per second, as % of the ceiling.
    model_pct_of_ceiling: float


@dataclass(frozen=True)
class Row:
    """What one load run against one server measured (see :func:`voxlive.bench.run.measure`)."""

    target: str  # the server's name: "base", a --compare variant, or "server" with --url
    streams: int  # N
    seconds: float  # audio each stream sent
    flat_out: bool
    results: int  # results counted (after the warm-up), gated ones included
    results_per_stream_per_s: float
    ambient_share: float  # of the results
    # latency of the windows that reached the model: the server's (last sample to result
    # sent) and the client's (last sample sent to result received)
    server_p50_ms: float | None
    server_p95_ms: float | None
    server_p99_ms: float | None
    client_p50_ms: float | None
    client_p95_ms: float | None
    client_p99_ms: float | None
    model_results: int
    gated_results: int  # settled by the gate without the model, timed apart
    gated_p50_ms: float | None
    gated_p95_ms: float | None
    gated_client_p95_ms: float | None
    dropped_windows: int  # lost windows, as the streams' `end` messages count them
    shed_windows: int  # of those, shed as too stale (server's /metrics)
    overwritten_windows: int  # of those, overwritten in a full buffer (/metrics "dropped")
    gauge_streams: float | None  # the server's capacity gauge after the run (/readyz)
    gauge_load_streams: float | None
    dropped_audio_s: float
    errors: int  # error messages received
    failed_streams: tuple[str, ...]  # streams refused or broken, with why
    audio_s_per_s: float  # audio sent by all streams per wall second
    model_calls: int
    mean_batch: float | None  # windows per model call; None without calls
    batch_sizes: Mapping[str, int]  # model calls by batch size bucket ("<=1", "<=2", ...)
    server_cpu_pct: float  # of one core
    server_rss_mib: float  # peak during the run
    wall_s: float
    vs_ceiling: VsCeiling | None = None  # None: flat out, or no ceiling measured
    delivered_within_max_lag: bool | None = None  # both p95s within max_lag_ms; None: no bound
    # of one core: the server and every process it started (a local Ray's, replicas included);
    # None when bench did not start the server
    tree_cpu_pct: float | None = None
    # of one core, the same run (issue 27): of the tree, Ray Serve replicas and Ray's own
    # processes (GCS, raylet, controller, agents); the load generator (bench itself); and the
    # whole machine (of 100 x cores: what else ran shows as machine - tree - client)
    replica_cpu_pct: float | None = None
    ray_cpu_pct: float | None = None
    client_cpu_pct: float | None = None
    machine_cpu_pct: float | None = None
    # Graded degradation vs shedding (#25): results received within max_lag_ms of their window's
    # last sample (client side), per second, and the share of the counted audio their windows
    # cover; None when not measured
    fresh_results_per_s: float | None = None
    fresh_coverage: float | None = None
    # streams the server paced (cut further apart: graded degradation) during the run; a run
    # with any is not held at full service, so it does not pass
    paced_streams: int = 0

    @property
    def drops_reported(self) -> bool:
        """Every lost window reached its stream's ``end`` (shed or overwritten, per /metrics)."""
        return self.dropped_windows == self.shed_windows + self.overwritten_windows

    def to_dict(self) -> dict[str, Any]:
        """The row as the JSON report holds it (``vs_ceiling``'s figures inline)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        vs, delivered = out.pop("vs_ceiling"), out.pop("delivered_within_max_lag")
        out["failed_streams"] = list(self.failed_streams)
        out["batch_sizes"] = dict(self.batch_sizes)
        if vs is not None:
            out.update(dataclasses.asdict(vs))
        if delivered is not None:
            out["delivered_within_max_lag"] = delivered
        out["drops_reported"] = self.drops_reported
        return out


COLUMNS = [  # (heading, report key, format)
    ("target", "target", "{}"),
    ("N", "streams", "{}"),
    ("res/st/s", "results_per_stream_per_s", "{:.2f}"),
    ("p50", "server_p50_ms", "{:.0f}"),
    ("p95", "server_p95_ms", "{:.0f}"),
    ("p99", "server_p99_ms", "{:.0f}"),
    ("cli p95", "client_p95_ms", "{:.0f}"),
    ("% ceil", "pct_of_ceiling", "{:.0f}"),
    ("model %", "model_pct_of_ceiling", "{:.0f}"),
    ("gauge", "gauge_streams", "{:.1f}"),
    ("audio-s/s", "audio_s_per_s", "{:.1f}"),
    ("drops", "dropped_windows", "{}"),
    ("shed", "shed_windows", "{}"),
    ("gated", "gated_results", "{}"),
    ("err", "errors", "{}"),
    ("batch", "mean_batch", "{:.2f}"),
    ("cpu %", "server_cpu_pct", "{:.0f}"),
    ("tree %", "tree_cpu_pct", "{:.0f}"),
    ("ray %", "ray_cpu_pct", "{:.0f}"),
    ("client %", "client_cpu_pct", "{:.0f}"),
    ("host %", "machine_cpu_pct", "{:.0f}"),
    ("rss MiB", "server_rss_mib", "{:.0f}"),
    ("fresh/s", "fresh_results_per_s", "{:.1f}"),  # graded degradation (#25)
    ("covered", "fresh_coverage", "{:.0%}"),
    ("paced", "paced_streams", "{}"),
]


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Runs (:meth:`Row.to_dict`) or medians as a table, right-aligned; "-" for no figure."""

    def cell(row: Mapping[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        return "-" if value is None else fmt.format(value)

    body = [[cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in rows]
    heads = [h for h, _, _ in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(heads, *body, strict=False)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def median_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Per (target, N) measured more than once: the median of every numeric figure (a partial
    row, as a dict, with ``rounds``)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.target, row.streams), []).append(row.to_dict())
    out = []
    for (target, n), group in groups.items():
        if len(group) < 2:
            continue
        med: dict[str, Any] = {"target": target, "streams": n, "rounds": len(group)}
        for key, value in group[0].items():
            numbers = [float(v) for g in group if isinstance(v := g.get(key), int | float)]
            if not isinstance(value, bool) and len(numbers) == len(group):
                med[key] = float(np.median(numbers))
        out.append(med)
    return out

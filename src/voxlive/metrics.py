"""Prometheus metrics. One registry per server instance, so tests can run several side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)


class _Capacity(Protocol):
    @property
    def streams(self) -> float | None: ...
    @property
    def load_streams(self) -> float: ...


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters voxlive exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.streams_open = Gauge("voxlive_streams_open", "WebSocket streams open now", registry=r)
        self.streams_total = Counter("voxlive_streams", "WebSocket streams accepted", registry=r)
        self.streams_refused = Counter(
            "voxlive_streams_refused", "WebSocket streams refused", ["reason"], registry=r
        )
        self.windows = Counter(
            "voxlive_windows",
            "windows by outcome: classified, gated (ambient), failed, dropped (audio overwritten), "
            "shed (a live window whose result would have come later than max_lag_ms)",
            ["outcome"],
            registry=r,
        )
        self.dropped_audio = Counter(
            "voxlive_dropped_audio_seconds",
            "audio dropped (overwritten or shed) because inference fell behind",
            registry=r,
        )
        self.results_unsent = Counter(
            "voxlive_results_unsent",
            "results dropped because a client did not read them",
            registry=r,
        )
        self.client_errors = Counter(
            "voxlive_client_errors", "error messages sent to clients", ["code"], registry=r
        )
        self.worker_crashes = Counter(
            "voxlive_worker_crashes",
            "batcher or VAD runner tasks that stopped on their own (each closes every stream)",
            ["worker"], registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "voxlive_batch_size", "windows per model call",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "voxlive_queue_wait_seconds", "time from a window being ready to its model call",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_time = Histogram(
            "voxlive_inference_seconds", "model call duration per batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.result_latency = Histogram(
            "voxlive_result_latency_seconds", "time from a window's last sample to its result",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

        self.capacity_streams = Gauge(
            "voxlive_capacity_streams",
            "live streams (at the current window/hop) the model could serve flat out, estimated "
            "from measured call times; NaN before the first call",
            registry=r,
        )
        self.load_streams = Gauge(
            "voxlive_load_streams",
            "windows offered to the model per second now (served and shed), in streams",
            registry=r,
        )

        # Graded degradation (pipeline/degrade.py): live streams cut further apart under pressure.
        self.live_hop = Gauge(
            "voxlive_live_hop_ms",
            "the hop live streams are cut at now, ms: the configured hop, wider while the server "
            "is busy (--degrade-max-hop-ms)",
            registry=r,
        )
        self.streams_paced = Gauge(
            "voxlive_streams_paced",
            "live streams whose windows are cut at a wider hop than the configured one now (graded "
            "degradation under load; not the 'degraded' status of a fallback model)",
            registry=r,
        )
        self.hop_changes = Counter(
            "voxlive_hop_changes",
            "steps of the live streams' hop, 'wider' (the server got busy) or 'narrower'",
            ["direction"],
            registry=r,
        )

        self.load = Gauge(
            "voxlive_load",
            "what the load balancer routes by, 0 idle to 1 full: the larger of the capacity "
            "gauge's utilization and open streams / max_streams (the agent drains at "
            "--agent-drain-at)",
            registry=r,
        )

    def bind_capacity(self, gauge: Callable[[], _Capacity]) -> None:
        """Read the capacity gauges from ``gauge`` at every scrape."""

        def streams() -> float:
            value = gauge().streams
            return float("nan") if value is None else value

        self.capacity_streams.set_function(streams)
        self.load_streams.set_function(lambda: gauge().load_streams)

    def bind_paced(self, count: Callable[[], int]) -> None:
        """Read the number of paced live streams from ``count`` at every scrape."""
        self.streams_paced.set_function(lambda: float(count()))

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""One typed, frozen configuration built once at startup.

Every field is settable as a command-line flag (``--window-ms``) and as an environment variable
(``VOXLIVE_WINDOW_MS``); the flag wins (parsing: :mod:`voxlive.settings_sources`). Units are in
the names. Validation errors name the key and the bad value in one line. A choice among a few
values is a ``Literal`` (the aliases below): the CLI's choices come from the type, and mypy
(``strict_equality``) refuses a comparison with a value the type lacks
(``settings.engine == "rey"``). The fields come in sections (server, model, Ray, …): the
argument groups of ``voxlive serve --help``, the headings of the README's table.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from voxlive.errors import ConfigError

Fallback = Literal["pitch", "never"]
Device = Literal["auto", "cpu", "cuda"]
Backend = Literal["auto", "torch", "onnx"]
Quantize = Literal["none", "int8"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Engine = Literal["local", "ray"]
GateKind = Literal["vad", "rms", "none"]
StatusAccess = Literal["public", "token"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _section(title: str) -> Callable[[Any, str], Any]:
    """The field maker of one section: ``_model(default, help)``."""
    return lambda default, help: field(default=default, metadata={"help": help, "section": title})


_server, _model, _ray = _section("server"), _section("model"), _section("Ray")
_windows, _gate = _section("windows and batching"), _section("gate")
_limits, _access = _section("limits"), _section("access")
_uploads, _timeouts = _section("uploads"), _section("timeouts")
_routing = _section("routing")


@dataclass(frozen=True)
class Settings:
    # ---- server ----------------------------------------------------------------------------
    host: str = _server("127.0.0.1", "interface to listen on (0.0.0.0 for all)")
    port: int = _server(8000, "TCP port (0: any free port)")
    web_dir: str = _server(
        "",
        "built web app served at / (empty: the one inside the installed package, else a source "
        "checkout's web/dist; ignored when missing)",
    )
    log_level: LogLevel = _server("info", "log level")

    # ---- model -----------------------------------------------------------------------------
    model: str = _model(
        "auto",
        "'auto' (default wav2vec2 model, else the pitch fallback), 'pitch' (offline F0 "
        "classifier), a Hugging Face model id, or a local folder made with save_pretrained",
    )
    fallback: Fallback = _model(
        "pitch",
        "with --model auto: 'pitch' serves the built-in pitch classifier (loudly, /readyz "
        "'degraded') when the default model cannot be had (not cached, hub unreachable); "
        "'never' stops startup instead",
    )
    labels: tuple[str, ...] = _model((), "comma-separated label names in class-index order")
    device: Device = _model("auto", "where the model runs")
    threads: int = _model(
        0, "model intra-op threads, torch or ONNX Runtime (0: the library's default, one per core)"
    )
    backend: Backend = _model(
        "auto",
        "how a transformers model runs: 'auto' (ONNX Runtime fp32 on CPU, exported and cached on "
        "first start, PyTorch if that fails; PyTorch on CUDA), 'torch' (PyTorch, CPU or CUDA) or "
        "'onnx' (exported once to the cache, served by ONNX Runtime on CPU)",
    )
    quantize: Quantize = _model(
        "none",
        "'int8': dynamic int8 quantisation of the linear layers (needs --backend onnx; never "
        "chosen for you); `voxlive bench` reports what it gives on your machine",
    )
    dtype: Dtype = _model(
        "auto",
        "PyTorch's number type for weights and activations: 'auto' (float16 on CUDA, float32 on "
        "CPU) or the one named; ONNX Runtime runs float32 ('auto' or 'float32' only)",
    )
    cache_dir: str = _model(
        "", "where exported models are cached (empty: $XDG_CACHE_HOME/voxlive or ~/.cache/voxlive)"
    )
    pitch_threshold_hz: float = _model(160.0, "pitch model: median F0 below this is male, Hz")
    engine: Engine = _model(
        "local",
        "where the model runs: 'local' (in this process) or 'ray' (a Ray Serve deployment; this "
        "process keeps the streams and sends windows to it)",
    )

    # ---- Ray (engine 'ray') ----------------------------------------------------------------
    ray_address: str = _ray(
        "", "ray engine: the Ray cluster to join (e.g. 10.0.0.5:6379); empty: a local instance"
    )
    ray_min_replicas: int = _ray(1, "ray engine: fewest model replicas (autoscaling)")
    ray_max_replicas: int = _ray(1, "ray engine: most model replicas (autoscaling)")
    ray_target_ongoing_requests: float = _ray(
        1.0, "ray engine: batches in flight per replica (queued too) that autoscaling aims for"
    )
    ray_cpus_per_replica: float = _ray(1.0, "ray engine: CPUs reserved by each replica")
    ray_gpus_per_replica: float = _ray(0.0, "ray engine: GPUs reserved by each replica")

    # ---- windows and batching --------------------------------------------------------------
    window_ms: int = _windows(1000, "length of each classified window, ms")
    hop_ms: int = _windows(500, "step between window starts, ms (window - hop = overlap)")
    smoothing: int = _windows(4, "majority vote over this many recent labels (1: off)")
    buffer_ms: int = _windows(
        4000,
        "audio each stream may hold unclassified, ms; when inference falls behind, the oldest "
        "windows are dropped (counted and reported) so latency stays bounded",
    )
    max_batch: int = _windows(8, "most windows per model call, across all streams")
    max_wait_ms: float = _windows(
        30.0, "longest a ready window waits for more windows to fill a batch, ms"
    )
    latency_budget_ms: float = _windows(
        250.0,
        "latency the batcher plans for, from a window's last sample to its result, ms: it waits "
        "to fill a batch only while the model call can still finish within it",
    )
    max_lag_ms: int = _windows(
        1000,
        "a live window whose result can no longer be sent within this long of its last sample "
        "is shed (skipped, counted and reported as dropped) instead of answered late, ms; "
        "lossless streams (files, clients that ask) are never shed (0: never shed)",
    )
    degrade_max_hop_ms: int = _windows(
        1000,
        "before shedding: while the model is busy, live streams' windows are cut further apart, "
        "the hop doubling up to this, ms, and narrowed again once the pressure has stayed low "
        "for 10 s; each stream is told (a 'pace' message); lossless streams never. Past "
        "--window-ms windows no longer touch (0 or at most --hop-ms: off)",
    )

    # ---- gate ------------------------------------------------------------------------------
    gate: GateKind = _gate(
        "vad",
        "what decides a window has no speech and is 'ambient' without calling the model: "
        "'vad' (Silero VAD, per-stream state), 'rms' (level below --gate-rms), 'none'",
    )
    gate_rms: float = _gate(
        0.01, "rms gate: windows with RMS level below this (full scale 1.0) are 'ambient'"
    )
    vad_threshold: float = _gate(0.5, "vad gate: a 32 ms chunk is speech at this probability")
    vad_min_speech_ms: int = _gate(
        100, "vad gate: a window with less speech than this is 'ambient', ms"
    )

    # ---- limits ----------------------------------------------------------------------------
    max_streams: int = _limits(64, "most concurrent WebSocket streams; more are refused (1013)")
    max_connections: int = _limits(
        512,
        "most open sockets (HTTP and WebSocket, before and after authentication); a connection "
        "past it is closed at once. Keep the process's file-descriptor limit (ulimit -n) at "
        "least 128 above it",
    )
    max_connections_per_source: int = _limits(
        64,
        "most open sockets from one client address (a trusted proxy's own are not counted); "
        "past it that address's oldest idle socket is closed, else the new one (0: no limit)",
    )
    max_frame_bytes: int = _limits(
        262_144, "largest accepted WebSocket message, bytes (close 1009); 8 s of 16 kHz PCM16"
    )
    max_speed: float = _limits(
        20.0,
        "fastest a stream may send audio, × real time, after a 1 s burst; a faster client is "
        "slowed by TCP back-pressure, nothing is dropped (0: no limit)",
    )
    live_ahead_ms: int = _limits(
        5000,
        "how far ahead of real time a live stream may send (its client's catch-up after a "
        "network blip), ms; then it is held to real time by TCP back-pressure, so it costs "
        "what one live stream costs. Lossless streams are held to --max-speed instead "
        "(0: live streams too)",
    )
    max_stream_ms: int = _limits(
        0, "longest a stream may stay connected, ms; then it is flushed and closed (0: no limit)"
    )
    max_replay_ms: int = _limits(
        5_000,
        "audio a stream resumed with a token may send ahead of real time (its replay since the "
        "last ack), ms; beyond it the stream is read at real-time pace (replay_too_long)",
    )
    max_unsent_results: int = _limits(
        256, "results held for a client that does not read; the oldest are dropped beyond this"
    )

    # ---- access ----------------------------------------------------------------------------
    token: str = _access(
        "",
        "shared secret clients must present (start message 'token', ?token=, or "
        "'Authorization: Bearer' for HTTP); empty: no authentication. Prefer the env variable",
    )
    cluster_secret: str = _access(
        "",
        "secret the fronts of a cluster share to sign resume tokens (any front can rebuild a "
        "stream from its token; at least 16 characters); empty: a random one per process, so "
        "tokens resume on the front that issued them only. Prefer the env variable",
    )
    status_access: StatusAccess = _access(
        "public",
        "who may read /readyz and /metrics: 'public', or 'token' (Authorization: Bearer with "
        "the server's token); /healthz stays open for liveness probes",
    )
    allowed_hosts: tuple[str, ...] = _access(
        (),
        "comma-separated Host header values the server answers ('*': any; '*.example.org' "
        "patterns); empty: localhost names when listening on a loopback address, else any. "
        "Guards against DNS rebinding: set it to your public names when exposing the server",
    )
    trusted_proxies: tuple[str, ...] = _access(
        (),
        "comma-separated addresses (or networks, 10.0.0.0/8) of reverse proxies whose "
        "X-Forwarded-For names the client: per-client budgets then count that client; empty: "
        "none, the peer's own address is the client",
    )
    allowed_origins: tuple[str, ...] = _access(
        (),
        "comma-separated browser origins allowed to open /audio and POST /classify ('*': any); "
        "empty: same origin and localhost only. Clients that send no Origin (non-browsers) are "
        "always allowed",
    )

    # ---- uploads (POST /classify) ----------------------------------------------------------
    max_upload_bytes: int = _uploads(52_428_800, "largest POST /classify body, bytes (413)")
    max_upload_ms: int = _uploads(
        600_000,
        "longest audio a POST /classify file may hold, ms; checked from the file's header "
        "before decoding, and again while decoding (400 too_long)",
    )
    max_uploads: int = _uploads(2, "most POST /classify requests at once; more get 503 busy")
    upload_timeout_ms: int = _uploads(
        60_000,
        "a POST /classify body must arrive within this long, ms (408); so must its decoding",
    )
    min_upload_bytes_per_s: int = _uploads(
        16_384,
        "slowest pace of a POST /classify body after its first 2 s, bytes/s: a slower body is "
        "answered 408 and frees what it held (0: only --upload-timeout-ms)",
    )

    # ---- timeouts --------------------------------------------------------------------------
    inference_timeout_ms: int = _timeouts(
        30_000, "a model call running longer fails its batch's windows, ms; the batcher goes on"
    )
    worker_restarts: int = _timeouts(
        1, "restarts of a crashed batcher or VAD runner (after 1 s, 2 s, …); then `serve` exits 1"
    )
    header_timeout_ms: int = _timeouts(
        10_000,
        "a client must send its request's headers within this long of connecting (or of the "
        "previous response), ms; idle and half-open sockets are closed after it",
    )
    auth_timeout_ms: int = _timeouts(
        5_000,
        "with a token set: a stream must send a start message carrying it within this long of "
        "connecting, ms (close 1008); until then it holds no stream slot",
    )
    idle_timeout_ms: int = _timeouts(
        60_000, "close a stream that sends nothing for this long, ms (0: never)"
    )
    resume_grace_ms: int = _timeouts(
        10_000,
        "a stream whose client vanished is kept this long, ms, so the client can resume it "
        "(same stream_id, seq and stream time) after a network blip (0: never)",
    )
    drain_timeout_ms: int = _timeouts(
        10_000,
        "on shutdown (SIGTERM), how long open streams get to receive their pending results, ms",
    )

    # ---- routing (a load balancer in front of several fronts) ------------------------------
    agent_port: int = _routing(
        0,
        "TCP port of the HAProxy agent-check agent, which answers each connection with this "
        "front's headroom ('up ready 73%', 'up drain', 'down') and closes (0: off)",
    )
    agent_drain_at: float = _routing(
        0.9,
        "load (the larger of the capacity gauge's utilization and streams / max_streams) at "
        "which the agent says 'drain' and /readyz?strict=1 turns 503, so no new stream is "
        "routed here (0 < x <= 1)",
    )

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"{key}: expected {expected}, got {getattr(self, key)!r}")

        for f in dataclasses.fields(self):  # first: the cross-field checks below assume them
            if options := choices(f.name):
                need(getattr(self, f.name) in options, f.name, f"one of {', '.join(options)}")
        need(0 <= self.port <= 65535, "port", "0..65535 (0: any free port)")
        need(self.threads >= 0, "threads", ">= 0")
        need(100 <= self.window_ms <= 30_000, "window_ms", "100..30000 ms")
        need(10 <= self.hop_ms <= self.window_ms, "hop_ms", f"10..window_ms ({self.window_ms}) ms")
        need(self.ray_min_replicas >= 0, "ray_min_replicas", ">= 0")
        need(self.ray_max_replicas >= max(self.ray_min_replicas, 1), "ray_max_replicas",
             f">= max(1, ray_min_replicas ({self.ray_min_replicas}))")  # fmt: skip
        need(self.ray_target_ongoing_requests > 0, "ray_target_ongoing_requests", "> 0")
        need(self.ray_cpus_per_replica >= 0, "ray_cpus_per_replica", ">= 0")
        need(self.ray_gpus_per_replica >= 0, "ray_gpus_per_replica", ">= 0")
        need(1 <= self.max_batch <= 256, "max_batch", "1..256")
        need(0 <= self.max_wait_ms <= 10_000, "max_wait_ms", "0..10000 ms")
        need(10 <= self.latency_budget_ms <= 60_000, "latency_budget_ms", "10..60000 ms")
        need(self.max_lag_ms == 0 or 100 <= self.max_lag_ms <= 600_000, "max_lag_ms",
             "0 (never shed) or 100..600000 ms")  # fmt: skip
        need(0 <= self.degrade_max_hop_ms <= 60_000, "degrade_max_hop_ms", "0..60000 ms (0: off)")
        need(self.inference_timeout_ms >= 100, "inference_timeout_ms", ">= 100 ms")
        need(0 <= self.worker_restarts <= 100, "worker_restarts", "0..100")
        need(self.window_ms + self.hop_ms <= self.buffer_ms <= 600_000, "buffer_ms",
             f"window_ms + hop_ms ({self.window_ms + self.hop_ms})..600000 ms")  # fmt: skip
        need(0 <= self.gate_rms < 1, "gate_rms", "0 <= gate_rms < 1")
        need(0 < self.vad_threshold < 1, "vad_threshold", "0 < vad_threshold < 1")
        need(0 <= self.vad_min_speech_ms <= self.window_ms, "vad_min_speech_ms",
             f"0..window_ms ({self.window_ms}) ms")  # fmt: skip
        need(1 <= self.smoothing <= 100, "smoothing", "1..100 windows")
        need(40 <= self.pitch_threshold_hz <= 1000, "pitch_threshold_hz", "40..1000 Hz")
        need(self.max_streams >= 1, "max_streams", ">= 1")
        need(self.max_connections_per_source >= 0, "max_connections_per_source", ">= 0")
        need(all(_network(t) for t in self.trusted_proxies), "trusted_proxies",
             "'*', IP addresses or networks (10.0.0.0/8)")  # fmt: skip
        need(self.max_connections >= self.max_streams, "max_connections",
             f">= max_streams ({self.max_streams})")  # fmt: skip
        wild = [h for h in self.allowed_hosts if h != "*" and "*" in h.removeprefix("*.")]
        need(not wild, "allowed_hosts", "'*', host names or '*.domain' patterns")
        need(100 <= self.header_timeout_ms <= 600_000, "header_timeout_ms", "100..600000 ms")
        need(100 <= self.auth_timeout_ms <= 600_000, "auth_timeout_ms", "100..600000 ms")
        need(self.max_frame_bytes >= 1024, "max_frame_bytes", ">= 1024 bytes")
        need(self.max_upload_bytes >= 1024, "max_upload_bytes", ">= 1024 bytes")
        need(1_000 <= self.max_upload_ms <= 86_400_000, "max_upload_ms", "1000..86400000 ms")
        need(self.max_uploads >= 1, "max_uploads", ">= 1")
        need(self.upload_timeout_ms >= 1_000, "upload_timeout_ms", ">= 1000 ms")
        need(self.min_upload_bytes_per_s >= 0, "min_upload_bytes_per_s", ">= 0 bytes/s")
        need(self.max_unsent_results >= 1, "max_unsent_results", ">= 1")
        need(0 <= self.drain_timeout_ms <= 600_000, "drain_timeout_ms", "0..600000 ms")
        need(0 <= self.agent_port <= 65535, "agent_port", "0..65535 (0: off)")
        need(0 < self.agent_drain_at <= 1, "agent_drain_at", "0 < agent_drain_at <= 1")
        need(self.idle_timeout_ms >= 0, "idle_timeout_ms", ">= 0 ms")
        need(0 <= self.resume_grace_ms <= 3_600_000, "resume_grace_ms", "0..3600000 ms")
        need(0 <= self.max_replay_ms <= 60_000, "max_replay_ms", "0..60000 ms")
        if 0 < len(self.cluster_secret) < 16:  # the value itself stays out of the message
            raise ConfigError(f"cluster_secret: expected empty or at least 16 characters, got "
                              f"{len(self.cluster_secret)}")  # fmt: skip
        need(self.max_speed == 0 or self.max_speed >= 1, "max_speed", "0 (no limit) or >= 1")
        need(0 <= self.live_ahead_ms <= 600_000, "live_ahead_ms", "0..600000 ms")
        need(self.max_stream_ms >= 0, "max_stream_ms", ">= 0 ms (0: no limit)")
        need(bool(self.model.strip()), "model", "a model name")
        need(
            self.status_access == "public" or bool(self.token), "status_access",
            "'public' unless a token is set (VOXLIVE_TOKEN)",
        )  # fmt: skip
        need(self.quantize == "none" or self.backend == "onnx", "quantize",
             "'none' unless backend is 'onnx'")  # fmt: skip
        need(self.backend != "onnx" or self.device != "cuda", "device",
             "'cpu' or 'auto' with backend 'onnx' (ONNX Runtime runs on CPU here)")  # fmt: skip
        need(self.backend != "onnx" or self.dtype in ("auto", "float32"), "dtype",
             "'auto' or 'float32' with backend 'onnx' (ONNX Runtime runs float32)")  # fmt: skip

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _network(text: str) -> bool:
    try:
        return text == "*" or bool(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return False


@functools.cache
def field_types() -> dict[str, Any]:
    """Each setting's type, resolved (the annotations are strings here)."""
    return typing.get_type_hints(Settings)


def choices(name: str) -> tuple[str, ...]:
    """The values setting ``name`` takes when its type is a ``Literal``; empty for any other."""
    kind = field_types()[name]
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else ()


def sections() -> dict[str, tuple[str, ...]]:
    """The settings by section, in order: ``{"server": ("host", "port", …), "model": …}``."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(Settings):
        out[f.metadata["section"]] = (*out.get(f.metadata["section"], ()), f.name)
    return out

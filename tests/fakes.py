"""Test doubles shared by the unit and integration tests (and handy for micro-benchmarks): clocks
that move only when told (and the event loop's clock made virtual), a fake classifier, a tiny
random wav2vec2 saved to disk, a fake WebSocket and a fake transport."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voxlive.bench.ceiling import BatchSpeed, Ceiling
from voxlive.bench.row import Row
from voxlive.inference.base import Classifier, ModelInfo


class Clock:
    """A monotonic clock that moves only when told: ``clock.t = 1.5``."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Timers:
    """The running loop, but with a clock that moves only when told: timers set with
    ``call_later`` run in :meth:`advance`."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._now = 0.0
        self._timers: list[asyncio.TimerHandle] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    def time(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timer = asyncio.TimerHandle(self._now + delay, callback, args, self._loop)
        self._timers.append(timer)
        return timer

    def advance(self, to: float) -> None:
        self._now = to
        for timer in sorted(self._timers, key=lambda t: t.when()):
            if timer.when() <= to:
                self._timers.remove(timer)
                if not timer.cancelled():
                    timer._run()


class FakeClassifier:
    """A :class:`Classifier` whose scores are ``(1 - mean, mean)`` of each window (so a constant
    signal at level v scores v for the second label), or ``row`` for every window when given.

    ``latency_s`` per call and ``per_window_s`` per window are spent sleeping on the caller's
    thread; a batch holding a window whose mean is close to ``fail_when`` raises. It records the
    batch sizes, each batch's window means and the threads it ran on.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        per_window_s: float = 0.0,
        fail_when: float | None = None,
        row: tuple[float, ...] | None = None,
        labels: tuple[str, ...] = ("a", "b"),
        sample_rate: int = 1000,
    ) -> None:
        self.latency_s = latency_s
        self.per_window_s = per_window_s
        self.fail_when = fail_when
        self.row = row
        self._info = ModelInfo("fake", "fake", labels, sample_rate)
        self.batches: list[int] = []
        self.means: list[list[float]] = []
        self.threads: set[str] = set()

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def windows(self) -> int:
        """Windows classified so far."""
        return sum(self.batches)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(batch))
        time.sleep(self.latency_s + self.per_window_s * len(batch))
        means = batch.mean(axis=1)
        self.means.append([round(float(m), 3) for m in means])
        if self.fail_when is not None and np.any(np.isclose(means, self.fail_when)):
            raise RuntimeError("boom")
        if self.row is not None:
            return np.tile(np.asarray(self.row, np.float32), (len(batch), 1))
        return np.stack([1 - means, means], axis=1)

    def warmup(self, window_samples: int) -> None:
        pass

    def close(self) -> None:
        pass


class Slowed:
    """Another classifier made to cost ``per_window_s`` more per window (to saturate it)."""

    def __init__(self, inner: Classifier, per_window_s: float) -> None:
        self.inner = inner
        self.per_window_s = per_window_s

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    def predict(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.per_window_s * len(batch))
        return self.inner.predict(batch)

    def warmup(self, window_samples: int) -> None:
        self.inner.warmup(window_samples)

    def close(self) -> None:
        self.inner.close()


class Transport(asyncio.Transport):
    """The asyncio transport under a uvicorn protocol: records what is written, whether it was
    closed or aborted, and what was written by the time it was aborted. ``get_write_buffer_size``
    is what the peer has not read yet: everything written since the last :meth:`peer_reads`."""

    def __init__(self, peer: str = "127.0.0.1") -> None:
        super().__init__()
        self.peer = peer
        self.paused = False
        self.aborted = False
        self.closing = False
        self.written = b""
        self.written_at_abort: bytes | None = None
        self.protocol: Any = None
        self._read_upto = 0

    def abort(self) -> None:
        self.aborted = True
        self.closing = True
        if self.written_at_abort is None:
            self.written_at_abort = self.written

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def peer_reads(self) -> bytes:
        """What the peer reads now: everything written since it last read."""
        data, self._read_upto = self.written[self._read_upto :], len(self.written)
        return data

    def get_write_buffer_size(self) -> int:
        return len(self.written) - self._read_upto

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.peer, 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class Address(NamedTuple):
    host: str
    port: int


class FakeWebSocket:
    """What the server uses of a Starlette WebSocket: ASGI messages in (given at construction, or
    fed with :meth:`text`, :meth:`audio` and :meth:`vanish`; :meth:`receive` waits for the next,
    forever once there are none), and a record of what the server sent, denied and how it
    closed."""

    def __init__(
        self,
        *messages: dict[str, Any],
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        client: str = "127.0.0.1",
    ) -> None:
        self.client = Address(client, 50_000)
        self.headers = headers or {}
        self.query_params = query or {}
        self.application_state = WebSocketState.CONNECTING
        self.sent: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.denied: tuple[int, dict[str, Any]] | None = None
        self.closed = asyncio.Event()
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in messages:
            self._inbox.put_nowait(message)

    async def accept(self) -> None:
        self.application_state = WebSocketState.CONNECTED

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def send_text(self, text: str) -> None:
        if self.application_state is WebSocketState.DISCONNECTED:
            raise WebSocketDisconnect(1006)
        self.sent.append(json.loads(text))

    async def send_denial_response(self, response: Any) -> None:
        """A refusal before the upgrade: recorded as the HTTP status and the JSON body."""
        self.denied = (response.status_code, json.loads(response.body))
        self.application_state = WebSocketState.DISCONNECTED
        self.closed.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_code, self.close_reason = code, reason
        self.application_state = WebSocketState.DISCONNECTED
        self.closed.set()

    def text(self, obj: Any) -> None:
        self._inbox.put_nowait(
            {"type": "websocket.receive", "text": obj if isinstance(obj, str) else json.dumps(obj)}
        )

    def audio(self, data: bytes) -> None:
        self._inbox.put_nowait({"type": "websocket.receive", "bytes": data})

    def vanish(self) -> None:
        self._inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


def save_tiny_wav2vec2(path: Path, labels: tuple[str, ...] = ("LABEL_0", "LABEL_1")) -> Path:
    """Save a small randomly initialised wav2vec2 classifier (the real architecture, labels in
    class-index order) and its feature extractor into ``path`` with save_pretrained; returns
    ``path``. Random weights: honest for plumbing and speed, says nothing about accuracy."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )  # fmt: skip
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
        return_attention_mask=False,
    ).save_pretrained(path)  # fmt: skip
    return path


class VirtualClock:
    """The running loop's clock made virtual, for timings that must be exact: time stands still
    while callbacks are ready to run and jumps to the next timer when the loop would wait for
    it, so every timer fires at exactly its deadline. Waits with no timer (for a thread or a
    socket) stay real, and a thread's work takes no virtual time. A loop that keeps turning at
    one instant (a wait of 0, again and again) is stopped after ``spin_limit`` turns: the task
    that entered the block is cancelled and the block raises RuntimeError. Use ``with
    VirtualClock() as clock:`` in a coroutine; after the block the loop's clock runs in real time
    again from where the virtual one stopped (never backwards)."""

    def __init__(self, spin_limit: int = 10_000) -> None:
        self.loop = asyncio.get_running_loop()
        self._real = type(self.loop).time.__get__(self.loop)
        self.now = self._real()
        self.spin_limit = spin_limit
        self._spins = 0
        self._spun: str | None = None
        self._task = asyncio.current_task()
        self._offset: float | None = None  # after the block: real time + this

    def time(self) -> float:
        return self.now if self._offset is None else self._real() + self._offset

    def _select(self, timeout: float | None) -> Any:
        if timeout is None or timeout > 0:
            self._spins = 0
            if timeout is None:  # no timer: wait for real (a thread's answer, a socket)
                return self._real_select(None)
            self.now += timeout
        else:
            self._spins += 1
            if self._spins == self.spin_limit and self._task is not None:
                self._spun = f"the loop turned {self.spin_limit} times at one instant"
                self._task.cancel(self._spun)
        return self._real_select(0)

    def __enter__(self) -> VirtualClock:
        selector: Any = self.loop._selector  # type: ignore[attr-defined]
        self._real_select = selector.select
        selector.select = self._select
        self.loop.time = self.time  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.loop._selector.select  # type: ignore[attr-defined]
        self._offset = self.now - self._real()
        if self._spun is not None:
            raise RuntimeError(f"virtual clock: {self._spun}, without letting time pass")


def bench_row(
    n: int, p95: float | None, drops: int = 0, client_p95: float | None = -1.0, **changes: Any
) -> Row:
    """A ``voxlive bench`` report row with made-up numbers: ``n`` streams, every latency
    percentile ``p95``, ``drops`` windows dropped (all shed), and any field changed."""
    row = Row(
        target="t", streams=n, seconds=10.0, flat_out=False, results=40,
        results_per_stream_per_s=2.0, ambient_share=0.0, server_p50_ms=p95, server_p95_ms=p95,
        server_p99_ms=p95, client_p50_ms=None,
        client_p95_ms=p95 if client_p95 == -1.0 else client_p95, client_p99_ms=None,
        model_results=40, gated_results=0, gated_p50_ms=None, gated_p95_ms=None,
        gated_client_p95_ms=None, dropped_windows=drops, shed_windows=drops,
        overwritten_windows=0, gauge_streams=None, gauge_load_streams=None, dropped_audio_s=0.0,
        errors=0, failed_streams=(), audio_s_per_s=float(n), model_calls=20, mean_batch=2.0,
        batch_sizes={"<=2": 20}, server_cpu_pct=50.0, server_rss_mib=300.0, wall_s=10.0,
    )  # fmt: skip
    return dataclasses.replace(row, **changes)


def bench_ceiling(audio_s_per_s: float) -> Ceiling:
    """A measured ceiling with made-up numbers: ``audio_s_per_s`` at its best batch (2)."""
    return Ceiling(backend="onnx", device="cpu", sample_rate=16_000, window_ms=1000, hop_ms=500,
                   audio_s_per_s=audio_s_per_s, best_batch=2,
                   by_batch=(BatchSpeed(2, 200.0, audio_s_per_s),), measured_s=3.0)  # fmt: skip


class Overlap(FakeClassifier):
    """Records the most calls ever in progress at once (``most``), the calls finished and the
    threads they ran on."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0
        self.finished = 0
        self.ran_on: set[threading.Thread] = set()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.ran_on.add(threading.current_thread())
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        try:
            return super().predict(batch)
        finally:
            with self._lock:
                self._now -= 1
                self.finished += 1

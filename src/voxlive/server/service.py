"""The long-lived state of a running server: settings, model, batcher, open connections.

The lifespan owns it: :meth:`Service.start` begins loading the model in a worker thread (so
``/healthz`` answers at once and ``/readyz`` turns ready only after warm-up) and
:meth:`Service.stop` shuts down in a fixed order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from voxlive.inference.base import Classifier
from voxlive.metrics import Metrics
from voxlive.pipeline.assembly import Pipeline, assemble, load_classifier
from voxlive.pipeline.batcher import Batcher, Wiring
from voxlive.pipeline.stream import Stream, StreamConfig
from voxlive.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed", "stopping"]


class Connection(Protocol):
    """What the service needs of an open connection (the server's ``Connection``)."""

    def shutdown(self, drain_s: float) -> None: ...


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        classifier: Classifier | None = None,
        loader: Callable[[Settings], Classifier] = load_classifier,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.classifier = classifier
        self.pipeline: Pipeline | None = None  # assembled once the model is loaded
        self.status: Status = "loading"
        self.error: str | None = None
        self.connections: set[Connection] = set()
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        # Streams whose client vanished, kept for resume_grace_ms: id -> (stream, expiry timer).
        self._detached: dict[str, tuple[Stream, asyncio.TimerHandle]] = {}
        self._loader = loader
        self._on_fatal = on_fatal
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def batcher(self) -> Batcher | None:
        return self.pipeline.batcher if self.pipeline is not None else None

    def stream_config(self) -> StreamConfig:
        assert self.pipeline is not None
        return self.pipeline.config

    def describe(self) -> dict[str, Any]:
        """What /readyz reports."""
        out: dict[str, Any] = {"status": self.status}
        if self.error:
            out["error"] = self.error
        if self.classifier is not None:
            info = self.classifier.info
            out.update(
                model=info.name, backend=info.backend, labels=list(info.labels),
                device=info.device, sample_rate=info.sample_rate, fallback=info.fallback,
            )  # fmt: skip
        out.update(
            window_ms=self.settings.window_ms, hop_ms=self.settings.hop_ms,
            streams_open=len(self.connections), max_streams=self.settings.max_streams,
        )  # fmt: skip
        return out

    async def start(self) -> None:
        self._task = asyncio.create_task(self._load(), name="voxlive-load")

    async def _load(self) -> None:
        try:
            if self.classifier is None:
                self.classifier = await asyncio.to_thread(self._loader, self.settings)
            clf = self.classifier
            self.pipeline = await asyncio.to_thread(
                assemble, self.settings, classifier=clf, metrics=self.metrics
            )
            self.pipeline.start()
            self.status = "ready"
            info = clf.info
            log.info(
                "ready: model=%s backend=%s device=%s labels=%s window=%dms hop=%dms",
                info.name, info.backend, info.device, ",".join(info.labels),
                self.settings.window_ms, self.settings.hop_ms,
            )  # fmt: skip
            if info.fallback:
                log.warning("FALLBACK IN USE: %s", info.fallback)
        except Exception as exc:
            self.status = "failed"
            self.error = str(exc)
            log.error("startup failed: %s", exc)
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._no_connections.clear()
        self.metrics.streams_open.inc()
        self.metrics.streams_total.inc()

    def closed(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.metrics.streams_open.dec()
        if not self.connections:
            self._no_connections.set()

    def detach(self, stream: Stream) -> None:
        """Keep a stream whose client vanished, still classifying, until it is resumed or
        ``resume_grace_ms`` passes (then it is dropped like any closed stream)."""
        if isinstance(stream.listener, Wiring):
            stream.listener.on_results = None  # nobody reads until it is resumed
        grace_s = self.settings.resume_grace_ms / 1000
        timer = asyncio.get_running_loop().call_later(grace_s, self._expire, stream.id)
        self._detached[stream.id] = (stream, timer)

    def resume(self, stream_id: str) -> Stream | None:
        """Take back a detached stream by its id; ``None`` if unknown or expired."""
        entry = self._detached.pop(stream_id, None)
        if entry is None:
            return None
        entry[1].cancel()
        return entry[0]

    def _expire(self, stream_id: str) -> None:
        entry = self._detached.pop(stream_id, None)
        if entry is not None:
            self.release(entry[0])

    def release(self, stream: Stream) -> None:
        if self.pipeline is not None:
            self.pipeline.close_stream(stream)
        else:
            stream.close()

    async def drain(self, timeout_s: float) -> None:
        """Unready, refuse new streams, and let open streams flush and close (1001).

        Returns when every stream has closed or ``timeout_s`` has passed. Safe to call twice.
        """
        self.status = "stopping"
        for stream_id in list(self._detached):
            self._detached[stream_id][1].cancel()
            self._expire(stream_id)
        if self.connections:
            log.info("draining %d stream(s), at most %.1f s", len(self.connections), timeout_s)
        for conn in list(self.connections):
            conn.shutdown(timeout_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._no_connections.wait()

    async def stop(self) -> None:
        """Lifespan end: drain what is left (briefly), then stop the batcher."""
        await self.drain(1.0)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.pipeline is not None:
            await self.pipeline.close()
        close = getattr(self.classifier, "close", None)  # e.g. the Ray engine's connection
        if close is not None:
            await asyncio.to_thread(close)

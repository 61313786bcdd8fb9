"""The long-lived state of a running server: settings, the pipeline, the stream registry.

The lifespan owns it: :meth:`Service.start` begins loading the model in a worker thread (so
``/healthz`` answers at once and ``/readyz`` turns ready only after warm-up) and
:meth:`Service.stop` shuts down in a fixed order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from voxlive import __version__
from voxlive.inference.base import Classifier
from voxlive.metrics import Metrics
from voxlive.pipeline.assembly import Pipeline, assemble, load_classifier
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.worker import LoopWorker
from voxlive.server.agent import Agent
from voxlive.server.registry import Client, Registry
from voxlive.server.sources import Sources
from voxlive.server.uploads import Uploads
from voxlive.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed", "stopping"]
WORKER_RESTART_BACKOFF_S = 1.0  # before a crashed worker's first restart; doubles for each next
WORKER_FAILED = "the server's model worker failed; reconnect to start a new stream"


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
        self.registry = Registry(settings, self.metrics)
        self.uploads = Uploads(settings)
        self.sources = Sources()  # message budgets per client address and server-wide
        self._loader = loader
        self._on_fatal = on_fatal
        self._task: asyncio.Task[None] | None = None
        self._restarts = 0  # crashed workers restarted so far
        self._restart_task: asyncio.Task[None] | None = None
        self.draining = False  # SIGTERM heard: the agent says drain before the listeners close
        self.metrics.load.set_function(self.load)
        self.agent: Agent | None = None
        if settings.agent_port:
            self.agent = Agent(self, settings.host, settings.agent_port, settings.agent_drain_at)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def batcher(self) -> Batcher | None:
        return self.pipeline.batcher if self.pipeline is not None else None

    @property
    def degraded(self) -> bool:
        """Ready, but a fallback model serves (``--model auto`` could not have its model)."""
        return self.ready and self.classifier is not None and bool(self.classifier.info.fallback)

    @property
    def connections(self) -> set[Client]:
        return self.registry.connections

    def load(self) -> float:
        """0.0 idle … 1.0 full: the larger of the capacity gauge's utilization and the stream
        slots taken (open streams / ``max_streams``). What the agent and ``/readyz?strict=1``
        route by."""
        slots = len(self.connections) / self.settings.max_streams
        if self.pipeline is None:
            return slots
        return max(slots, self.pipeline.capacity().utilization or 0.0)

    @property
    def has_room(self) -> bool:
        """Ready, not draining, and below ``agent_drain_at``: new streams are welcome here."""
        return self.ready and not self.draining and self.load() < self.settings.agent_drain_at

    def begin_drain(self) -> None:
        """SIGTERM: from now on the agent says ``drain`` (no new streams are routed here); the
        drain itself (:meth:`drain`) follows. Safe from a signal handler: it sets a flag.

        The drain moves live streams that asked for acks: each gets a fresh ``ack`` (its resume
        token), ``moving`` and close 1012, once the listeners are closed (uvicorn's loop sees
        the signal within 0.1 s), so its client's reconnect finds another front."""
        self.draining = True

    def describe(self) -> dict[str, Any]:
        """What /readyz reports. ``status`` is ``degraded`` while a fallback model serves."""
        out: dict[str, Any] = {"status": "degraded" if self.degraded else self.status}
        if self.error:
            out["error"] = self.error
        if self.classifier is not None:
            info = self.classifier.info
            out.update(
                model=info.name, backend=info.backend, labels=list(info.labels),
                device=info.device, dtype=info.dtype, sample_rate=info.sample_rate,
                fallback=info.fallback,
            )  # fmt: skip
            if info.backend_fallback:
                out["backend_fallback"] = info.backend_fallback
        st = self.settings
        out.update(
            window_ms=st.window_ms, hop_ms=st.hop_ms,
            streams_open=len(self.connections), max_streams=st.max_streams,
            load=round(self.load(), 3), room=self.has_room,
            config={"version": __version__, "smoothing": st.smoothing, "gate": st.gate,
                    "gate_rms": st.gate_rms, "vad_threshold": st.vad_threshold,
                    "vad_min_speech_ms": st.vad_min_speech_ms,
                    "pitch_threshold_hz": st.pitch_threshold_hz},
        )  # fmt: skip
        if self.pipeline is not None:
            out["capacity"] = self.pipeline.capacity().as_dict()
            out["live_hop_ms"] = self.pipeline.live_hop_ms()  # wider than hop_ms while paced
        return out

    async def start(self) -> None:
        if self.agent is not None:
            await self.agent.start()
        self._task = asyncio.create_task(self._load(), name="voxlive-load")

    async def _load(self) -> None:
        try:
            if self.classifier is None:
                self.classifier = await asyncio.to_thread(self._loader, self.settings)
            clf = self.classifier
            self.pipeline = await asyncio.to_thread(
                assemble, self.settings, classifier=clf, metrics=self.metrics
            )
            for worker in self.pipeline.workers():
                worker.on_crash = self._worker_crashed
            self.pipeline.start()
            self.registry.pipeline = self.pipeline
            self.status = "ready"
            info = clf.info
            log.info(
                "ready: model=%s backend=%s device=%s dtype=%s labels=%s window=%dms hop=%dms",
                info.name, info.backend, info.device, info.dtype, ",".join(info.labels),
                self.settings.window_ms, self.settings.hop_ms,
            )  # fmt: skip
            if info.fallback:
                log.warning("FALLBACK IN USE: %s", info.fallback)
            if info.backend_fallback:
                log.warning("BACKEND FALLBACK IN USE (%s): %s", info.backend, info.backend_fallback)
        except Exception as exc:
            self.status = "failed"
            self.error = str(exc)
            log.error("startup failed: %s", exc, exc_info=exc)
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def _worker_crashed(self, worker: LoopWorker, exc: BaseException) -> None:
        """A batcher or VAD runner task ended on its own (it logged the traceback): every
        stream it served would stall. Say so (``/readyz`` 503, the crash metric), close every
        stream with 1011 (uploads in progress answer 503), and restart the worker after a
        backoff while ``worker_restarts`` allows; past that the server stays failed and
        ``on_fatal`` hears it (``voxlive serve`` exits non-zero, so a supervisor restarts the
        process)."""
        self.metrics.worker_crashes.labels(worker.name).inc()
        if self.status == "stopping":
            return
        self.status = "failed"
        self.error = f"the {worker.name} worker stopped: {type(exc).__name__}: {exc}"
        self.registry.fail_all(WORKER_FAILED)
        self.uploads.fail_all()
        limit = self.settings.worker_restarts
        if self._restarts >= limit:
            log.critical(
                "the %s worker stopped and is not restarted (%d restart(s) allowed, "
                "--worker-restarts): the server stays failed", worker.name, limit,
            )  # fmt: skip
            if self._on_fatal is not None:
                self._on_fatal(exc)
            return
        backoff_s = WORKER_RESTART_BACKOFF_S * 2**self._restarts
        self._restarts += 1
        log.warning(
            "restarting the %s worker in %.1f s (restart %d of %d)",
            worker.name, backoff_s, self._restarts, limit,
        )  # fmt: skip
        self._restart_task = asyncio.create_task(self._restart(worker, backoff_s))

    async def _restart(self, worker: LoopWorker, backoff_s: float) -> None:
        await asyncio.sleep(backoff_s)
        if self.status != "failed":  # stopping meanwhile
            return
        worker.start()
        self.status, self.error = "ready", None
        log.warning("the %s worker restarted; ready again", worker.name)

    async def drain(self, timeout_s: float) -> None:
        """Unready, refuse new streams, and let open streams flush and close (1001).

        Returns when every stream has closed or ``timeout_s`` has passed. Safe to call twice.
        """
        self.status = "stopping"
        await asyncio.gather(self.registry.drain(timeout_s), self.uploads.drain(timeout_s))

    async def stop(self) -> None:
        """Lifespan end: drain what is left (briefly), then stop the batcher."""
        await self.drain(1.0)
        for task in (self._task, self._restart_task):
            if task is not None and not task.done():
                task.cancel()
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.classifier is not None:  # e.g. the Ray engine's connection
            await asyncio.to_thread(self.classifier.close)
        if self.agent is not None:
            await self.agent.stop()

"""The composition root: the one place a pipeline is assembled.

:func:`assemble` picks the engine (in-process or Ray Serve), loads the classifier, warms it up,
and builds the batcher with its VAD runner; the server (:class:`voxlive.server.service.Service`),
``voxlive classify`` and every benchmark call it, and nothing else builds a :class:`Batcher`
for them. :class:`Pipeline` is what they get back: it opens streams wired to its batcher and
classifies whole recordings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxlive.audio.vad import SileroVad
from voxlive.errors import ModelLoadError
from voxlive.inference.base import Classifier, ModelInfo
from voxlive.inference.loader import load_local
from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher, check_output
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.offline import Classified, classify_samples
from voxlive.pipeline.overload import Capacity
from voxlive.pipeline.pace import Pace
from voxlive.pipeline.stream import Stream
from voxlive.pipeline.worker import LoopWorker
from voxlive.settings import Settings


def load_classifier(settings: Settings) -> Classifier:
    """The classifier for ``settings.engine``: in this process (``local``, see
    :func:`~voxlive.inference.loader.load_local`), or a client of a Ray Serve deployment whose
    replicas each load it that way (``ray``). Blocking: call it from a worker thread in a
    server."""
    if settings.engine == "ray":
        from voxlive.inference.ray_serve import RayClassifier  # imports Ray only when chosen

        return RayClassifier(settings)
    return load_local(settings)


def stream_config(settings: Settings, info: ModelInfo) -> StreamConfig:
    """Per-stream options from the settings and the model that serves."""
    s = settings
    return StreamConfig(
        sample_rate=info.sample_rate, window_ms=s.window_ms, hop_ms=s.hop_ms,
        buffer_ms=s.buffer_ms, labels=info.labels, gate=s.gate, gate_rms=s.gate_rms,
        vad_threshold=s.vad_threshold, vad_min_speech_ms=s.vad_min_speech_ms,
        smoothing=s.smoothing, max_unsent=s.max_unsent_results, max_lag_ms=s.max_lag_ms,
    )  # fmt: skip


def make_batcher(
    settings: Settings, classifier: Classifier, metrics: Metrics | None = None
) -> Batcher:
    """The batcher for these settings, with the VAD runner when the gate is ``vad``.

    Blocking (loads the VAD model): call it from a worker thread in a server.
    """
    s = settings
    vad = SileroVad(classifier.info.sample_rate) if s.gate == "vad" else None
    # The Ray engine batches here too, one request per batch; a call per replica in flight
    # keeps every replica busy (Serve's router picks the replica).
    in_flight = s.ray_max_replicas if s.engine == "ray" else 1
    return Batcher(
        classifier, max_batch=s.max_batch, max_wait_ms=s.max_wait_ms,
        latency_budget_ms=s.latency_budget_ms, timeout_s=s.inference_timeout_ms / 1000,
        metrics=metrics, vad=vad, in_flight=in_flight, pace=make_pace(s, classifier, metrics),
    )  # fmt: skip


def make_pace(settings: Settings, classifier: Classifier, metrics: Metrics | None) -> Pace | None:
    """Graded degradation of live streams for these settings; ``None`` when it is off
    (``degrade_max_hop_ms`` at most ``hop_ms``)."""
    s = settings
    if s.degrade_max_hop_ms <= s.hop_ms:
        return None
    window = classifier.info.sample_rate * s.window_ms // 1000
    return Pace(s.hop_ms, s.degrade_max_hop_ms, window, max_lag_ms=s.max_lag_ms, metrics=metrics)


@dataclass
class Pipeline:
    """A classifier behind its batcher, and the per-stream options they serve.

    Call :meth:`start` inside a running event loop before opening streams, and :meth:`close`
    when done.
    """

    settings: Settings
    classifier: Classifier
    batcher: Batcher
    config: StreamConfig
    metrics: Metrics | None = None

    def capacity(self) -> Capacity:
        """The capacity gauge for live streams at the configured window and hop."""
        return self.batcher.capacity(self.config.window, self.config.hop_ms / 1000)

    def live_hop_ms(self) -> int:
        """The hop live streams are cut at now, ms: the configured one, wider while paced."""
        pace = self.batcher.pace
        return self.config.hop_ms if pace is None else pace.hop_ms

    def workers(self) -> list[LoopWorker]:
        """The tasks that serve every stream: the batcher, and the VAD runner when there is one
        (each supervised: see :class:`~voxlive.pipeline.worker.LoopWorker`)."""
        vad = self.batcher.vad
        return [self.batcher] if vad is None else [self.batcher, vad]

    def start(self) -> None:
        """Start the batcher and VAD runner tasks. Idempotent."""
        self.batcher.start()

    async def close(self) -> None:
        """Stop the batcher and VAD runner and release their threads. Idempotent."""
        await self.batcher.close()

    def open_stream(self, stream_id: str) -> tuple[Stream, StreamHooks]:
        """A new stream registered with the batcher, and its listener: set
        ``hooks.on_results`` to hear when results are ready. Give it back with
        :meth:`close_stream`."""
        hooks = StreamHooks(self.batcher)
        stream = Stream(stream_id, self.config, listener=hooks, metrics=self.metrics)
        self.batcher.add(stream)
        return stream, hooks

    def close_stream(self, stream: Stream) -> None:
        """Unregister and close a stream (late results are ignored). Idempotent."""
        self.batcher.remove(stream)
        stream.close()

    async def classify(self, samples: np.ndarray) -> Classified:
        """A whole recording (mono float32 at the model rate) → its stream's messages."""
        return await classify_samples(self.batcher, samples, self.config, self.metrics)


def _seed_costs(classifier: Classifier, batcher: Batcher, window: int) -> None:
    """Time one call per batch size the batcher will use and teach its cost model."""
    rng = np.random.default_rng(0)
    # 1, 2, 4, … up to max_batch itself (256, the largest allowed, included)
    sizes = sorted(
        {min(2**k, batcher.max_batch) for k in range(batcher.max_batch.bit_length() + 1)}
    )
    labels = classifier.info.labels
    for size in sizes:
        batch = 0.1 * rng.standard_normal((size, window)).astype(np.float32)
        started = time.perf_counter()
        probs = classifier.predict(batch)
        batcher.cost.observe(size, window, time.perf_counter() - started)
        try:
            check_output(probs, size, len(labels))
        except ValueError as exc:
            raise ModelLoadError(
                f"{classifier.info.name}: {exc}; the labels are {', '.join(labels)} (from the "
                "model's config, or --labels): pass one label per class the model outputs"
            ) from None


def assemble(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    loader: Callable[[Settings], Classifier] = load_classifier,
    metrics: Metrics | None = None,
    warm_up: bool = True,
) -> Pipeline:
    """Load the classifier (unless given) with ``loader``, warm it up, and build the batcher: a
    pipeline ready to :meth:`~Pipeline.start`. Warming up runs the model once at each batch size
    the batcher will use (1, 2, 4, … ``max_batch``) and seeds the batcher's cost model with the
    times, so the first live windows after a start are planned and served like later ones.

    Blocking (loads models): call it from a worker thread in a server.
    """
    if classifier is None:
        classifier = loader(settings)
    window = classifier.info.sample_rate * settings.window_ms // 1000
    if warm_up:
        classifier.warmup(window)
    batcher = make_batcher(settings, classifier, metrics)
    if warm_up:
        _seed_costs(classifier, batcher, window)
    config = stream_config(settings, classifier.info)
    pipeline = Pipeline(settings, classifier, batcher, config, metrics)
    if metrics is not None:
        metrics.bind_capacity(pipeline.capacity)
        metrics.bind_paced(batcher.paced_streams)
    return pipeline

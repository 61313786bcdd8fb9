"""The service's lifecycle: loading in the background, ready (and what it logs), a failed load
reported to /readyz and to on_fatal, a fallback model announced, and stop closing what it
opened."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest

from tests.fakes import FakeClassifier
from tests.helpers import MS, eventually
from voxlive.inference.base import Classifier, ModelInfo
from voxlive.server.service import Service
from voxlive.settings import Settings

SETTINGS = Settings(model="pitch", web_dir="/nonexistent", gate="rms", window_ms=200, hop_ms=100)


class Closing(FakeClassifier):
    def __init__(self, fallback: str | None = None) -> None:
        super().__init__(sample_rate=16_000)
        self._info = ModelInfo("fake", "fake", ("a", "b"), 16_000, "cpu", fallback)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


async def test_a_loaded_service_is_ready_says_so_and_stop_closes_the_classifier(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clf = Closing()
    loaded: list[Settings] = []

    def loader(s: Settings) -> Classifier:
        loaded.append(s)
        return clf

    service = Service(SETTINGS, loader=loader)
    assert service.status == "loading" and not service.ready and service.batcher is None
    assert service.describe() == {"status": "loading", "window_ms": 200, "hop_ms": 100,
                                  "streams_open": 0, "max_streams": 64}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="voxlive.server.service"):
        await service.start()
        await eventually(lambda: service.ready, "a ready service")
    assert loaded == [SETTINGS] and service.classifier is clf
    assert service.batcher is service.pipeline.batcher is not None  # type: ignore[union-attr]
    assert service.registry.pipeline is service.pipeline
    assert "ready: model=fake backend=fake device=cpu labels=a,b window=200ms hop=100ms" in (
        caplog.messages
    )
    assert not any("FALLBACK" in m for m in caplog.messages)
    await service.stop()
    assert service.status == "stopping" and clf.closed == 1


async def test_a_fallback_model_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    service = Service(SETTINGS, classifier=Closing(fallback="the model could not be downloaded"))
    with caplog.at_level(logging.INFO, logger="voxlive.server.service"):
        await service.start()
        await eventually(lambda: service.ready, "a ready service")
    await service.stop()
    assert "FALLBACK IN USE: the model could not be downloaded" in caplog.messages
    assert service.describe()["fallback"] == "the model could not be downloaded"


async def test_a_failed_load_is_reported_and_fatal(caplog: pytest.LogCaptureFixture) -> None:
    fatal: list[BaseException] = []

    def loader(s: Settings) -> Classifier:
        raise RuntimeError("no such model")

    service = Service(SETTINGS, loader=loader, on_fatal=fatal.append)
    with caplog.at_level(logging.INFO, logger="voxlive.server.service"):
        await service.start()
        await eventually(lambda: service.status == "failed", "a failed load")
    assert service.error == "no such model" and not service.ready
    assert service.describe()["error"] == "no such model"
    assert [str(e) for e in fatal] == ["no such model"]
    assert "startup failed: no such model" in caplog.messages
    [record] = [r for r in caplog.records if r.getMessage() == "startup failed: no such model"]
    assert record.exc_info is not None and str(record.exc_info[1]) == "no such model"
    await service.stop()


async def test_the_pipeline_counts_into_the_service_s_metrics() -> None:
    service = Service(SETTINGS, classifier=Closing())
    await service.start()
    await eventually(lambda: service.ready, "a ready service")
    assert service.pipeline is not None
    await service.pipeline.classify(np.full(16_000, 0.25, np.float32))
    await service.stop()
    text = service.metrics.render().decode()
    assert 'voxlive_windows_total{outcome="classified"}' in text
    assert 'voxlive_windows_total{outcome="classified"} 0.0' not in text


async def test_loading_runs_as_a_named_task_and_stop_while_loading_cancels_it() -> None:
    release = threading.Event()
    clf = Closing()

    def loader(s: Settings) -> Classifier:
        assert release.wait(10_000 * MS)
        return clf

    service = Service(SETTINGS, loader=loader)
    await service.start()
    assert "voxlive-load" in {t.get_name() for t in asyncio.all_tasks()}  # shows in task dumps
    await asyncio.sleep(10 * MS)
    await service.stop()
    release.set()
    await asyncio.sleep(100 * MS)
    assert service.pipeline is None  # the load was abandoned: nothing assembled after stop
    assert service.status == "stopping"


async def test_a_service_never_started_stops_cleanly() -> None:
    service = Service(SETTINGS, classifier=Closing())
    await service.stop()
    assert service.status == "stopping"


async def test_stop_drains_streams_for_a_second_and_cuts_uploads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Service(SETTINGS, classifier=Closing())
    asked: list[float] = []
    real = service.registry.drain

    async def drain(timeout_s: float) -> None:
        asked.append(timeout_s)
        await real(timeout_s)

    monkeypatch.setattr(service.registry, "drain", drain)
    assert service.uploads.enter()  # an upload that will not finish
    await asyncio.wait_for(service.stop(), 5_000 * MS)
    assert asked == [1.0]
    assert service.uploads.cut.is_set()  # it answers 503 now

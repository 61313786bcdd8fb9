"""The service's lifecycle: loading in the background, ready (and what it logs), a failed load
reported to /readyz and to on_fatal, a fallback model announced, and stop closing what it
opened."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest

import voxlive
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
    described = service.describe()
    assert described.pop("config") == {
        "version": voxlive.__version__, "smoothing": 4, "gate": "rms", "gate_rms": 0.01,
        "vad_threshold": 0.5, "vad_min_speech_ms": 100, "pitch_threshold_hz": 160.0,
    }  # fmt: skip
    assert described == {"status": "loading", "window_ms": 200, "hop_ms": 100,
                         "streams_open": 0, "max_streams": 64, "load": 0.0,
                         "room": False}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="voxlive.server.service"):
        await service.start()
        await eventually(lambda: service.ready, "a ready service")
    assert loaded == [SETTINGS] and service.classifier is clf
    assert service.batcher is service.pipeline.batcher is not None  # type: ignore[union-attr]
    assert service.registry.pipeline is service.pipeline
    assert (
        "ready: model=fake backend=fake device=cpu dtype=float32 labels=a,b window=200ms hop=100ms"
        in (caplog.messages)
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


class Client:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def shutdown(self, drain_s: float) -> None:
        pass

    def fail(self, message: str) -> None:
        self.failures.append(message)


def _crash(service: Service, message: str = "boom") -> None:
    """Make the running batcher's task fail outside the model call, as a planning bug would."""
    batcher = service.batcher
    assert batcher is not None

    def broken(now: float) -> float | None:
        del batcher.wait_s  # once: the restarted task plans as before
        raise RuntimeError(message)

    batcher.wait_s = broken  # type: ignore[method-assign]
    batcher.notify()


async def test_a_crashed_worker_fails_the_service_tells_everyone_and_is_restarted_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from voxlive.server import service as service_module

    monkeypatch.setattr(service_module, "WORKER_RESTART_BACKOFF_S", 0.2)
    fatal: list[BaseException] = []
    service = Service(SETTINGS, classifier=Closing(), on_fatal=fatal.append)
    await service.start()
    await eventually(lambda: service.ready, "a ready service")
    client = Client()
    service.registry.opened(client)
    broken = service.uploads.broken
    with caplog.at_level(logging.INFO, logger="voxlive.server.service"):
        _crash(service)
        await eventually(lambda: service.status == "failed", "a failed service")
        assert service.error == "the voxlive-model worker stopped: RuntimeError: boom"
        assert client.failures == [service_module.WORKER_FAILED] and broken.is_set()
        assert service.metrics.worker_crashes.labels("voxlive-model")._value.get() == 1
        await asyncio.sleep(100 * MS)
        assert service.status == "failed"  # still within the backoff
        await eventually(lambda: service.ready, "ready again after the backoff")
        assert service.error is None and service.batcher is not None and service.batcher.running
        assert "restarting the voxlive-model worker in 0.2 s (restart 1 of 1)" in caplog.messages
        assert "the voxlive-model worker restarted; ready again" in caplog.messages
        assert fatal == []
        _crash(service, "again")  # no restart left: failed for good, and fatal
        await eventually(lambda: bool(fatal), "on_fatal told")
    assert service.status == "failed" and str(fatal[0]) == "again"
    assert (
        "the voxlive-model worker stopped and is not restarted (1 restart(s) allowed, "
        "--worker-restarts): the server stays failed"
    ) in caplog.messages
    [critical] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical.name == "voxlive.server.service"
    await asyncio.sleep(300 * MS)
    assert service.status == "failed" and not service.batcher.running
    assert service.metrics.worker_crashes.labels("voxlive-model")._value.get() == 2
    await service.stop()


async def test_each_restart_waits_twice_as_long_as_the_one_before(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from voxlive.server import service as service_module

    monkeypatch.setattr(service_module, "WORKER_RESTART_BACKOFF_S", 0.1)
    service = Service(SETTINGS.replace(worker_restarts=2), classifier=Closing())
    await service.start()
    await eventually(lambda: service.ready, "a ready service")
    with caplog.at_level(logging.WARNING, logger="voxlive.server.service"):
        for _ in range(2):
            _crash(service)
            await eventually(lambda: service.status == "failed", "a failed service")
            await eventually(lambda: service.ready, "ready again")
    restarts = [m for m in caplog.messages if m.startswith("restarting")]
    assert restarts == [
        "restarting the voxlive-model worker in 0.1 s (restart 1 of 2)",
        "restarting the voxlive-model worker in 0.2 s (restart 2 of 2)",
    ]
    await service.stop()


async def test_a_crash_while_stopping_is_counted_but_changes_nothing_and_stop_cancels_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voxlive.server import service as service_module

    monkeypatch.setattr(service_module, "WORKER_RESTART_BACKOFF_S", 0.2)
    service = Service(SETTINGS, classifier=Closing())
    await service.start()
    await eventually(lambda: service.ready, "a ready service")
    _crash(service)
    await eventually(lambda: service.status == "failed", "a failed service")
    await service.stop()  # within the backoff: the restart is cancelled
    assert service.status == "stopping"
    await asyncio.sleep(300 * MS)
    assert service.status == "stopping"
    # a worker ending while stopping (not by close) is counted, nothing else
    other = Service(SETTINGS, classifier=Closing())
    await other.start()
    await eventually(lambda: other.ready, "a ready service")
    client = Client()
    other.registry.opened(client)
    other.status = "stopping"
    _crash(other)
    await eventually(
        lambda: other.metrics.worker_crashes.labels("voxlive-model")._value.get() == 1, "counted"
    )
    assert other.status == "stopping" and other.error is None and client.failures == []
    await other.stop()


async def test_a_backend_fallback_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    clf = Closing()
    clf._info = ModelInfo("fake", "transformers", ("a", "b"), 16_000,
                          backend_fallback="ONNX Runtime could not serve it")  # fmt: skip
    service = Service(SETTINGS, classifier=clf)
    with caplog.at_level(logging.INFO, logger="voxlive.server.service"):
        await service.start()
        await eventually(lambda: service.ready, "a ready service")
    await service.stop()
    assert (
        "BACKEND FALLBACK IN USE (transformers): ONNX Runtime could not serve it" in caplog.messages
    )
    assert service.describe()["backend_fallback"] == "ONNX Runtime could not serve it"
    assert "backend_fallback" not in Service(SETTINGS, classifier=Closing()).describe()


# ---- routing: the load the agent reports, room, and the drain flag -------------------------------
class _Conn:
    def shutdown(self, drain_s: float) -> None: ...

    def fail(self, message: str) -> None: ...


async def test_load_is_the_larger_of_slots_and_utilization_and_room_ends_at_drain_at() -> None:
    service = Service(SETTINGS.replace(max_streams=4, agent_drain_at=0.5), classifier=Closing())
    await service.start()
    await eventually(lambda: service.ready, "a ready service")
    try:
        assert service.load() == 0.0 and service.has_room
        service.registry.opened(_Conn())
        assert service.load() == 0.25 and service.has_room  # one of four slots
        service.registry.opened(_Conn())
        assert service.load() == 0.5 and not service.has_room  # at agent_drain_at
        assert service.describe()["room"] is False
    finally:
        await service.stop()


async def test_begin_drain_leaves_no_room_while_still_ready() -> None:
    service = Service(SETTINGS, classifier=Closing())
    await service.start()
    await eventually(lambda: service.ready, "a ready service")
    try:
        service.begin_drain()
        assert service.ready and service.draining and not service.has_room
    finally:
        await service.stop()


async def test_the_agent_answers_while_serving_and_stops_with_the_service() -> None:
    from voxlive.bench.serving import free_port

    port = free_port()
    service = Service(SETTINGS.replace(agent_port=port), classifier=Closing())
    await service.start()

    async def ask() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        line = await reader.read()
        writer.close()
        return line.decode()

    assert (await ask()).startswith(("down #loading", "up ready"))
    await eventually(lambda: service.ready, "a ready service")
    assert await ask() == "up ready 100%\n"
    await service.drain(0.1)
    assert await ask() == "up drain #stopping\n"  # through the drain, until the lifespan ends
    await service.stop()
    with pytest.raises(OSError):
        await ask()

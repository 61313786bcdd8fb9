"""The composition root: settings become stream options and a batcher, the classifier is warmed
up for one window, and a whole recording goes through the same stream + batcher pipeline."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from tests.fakes import FakeClassifier
from tests.helpers import MS, eventually
from voxlive.errors import ModelLoadError
from voxlive.inference.base import Classifier
from voxlive.metrics import Metrics
from voxlive.pipeline import assembly
from voxlive.pipeline.assembly import assemble, make_batcher, stream_config
from voxlive.server.service import Service
from voxlive.settings import Settings


class Warmed(FakeClassifier):
    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.warmed: list[int] = []

    def warmup(self, window_samples: int) -> None:
        self.warmed.append(window_samples)


def _settings(**changes: object) -> Settings:
    return Settings(model="pitch", web_dir="/nonexistent", gate="rms").replace(**changes)


def test_stream_options_come_from_the_settings_and_the_model() -> None:
    s = _settings(window_ms=300, hop_ms=150, buffer_ms=2_000, gate="rms", gate_rms=0.02,
                  vad_threshold=0.7, vad_min_speech_ms=90, smoothing=5, max_unsent_results=9)  # fmt: skip
    clf = FakeClassifier(labels=("x", "y", "z"), sample_rate=8_000)
    cfg = stream_config(s, clf.info)
    assert (cfg.sample_rate, cfg.window_ms, cfg.hop_ms, cfg.buffer_ms) == (8_000, 300, 150, 2_000)
    assert (cfg.labels, cfg.gate, cfg.gate_rms) == (("x", "y", "z"), "rms", 0.02)
    assert (cfg.vad_threshold, cfg.vad_min_speech_ms, cfg.smoothing, cfg.max_unsent) == (
        0.7, 90, 5, 9
    )  # fmt: skip


def test_the_batcher_takes_its_bounds_from_the_settings() -> None:
    s = _settings(max_batch=6, max_wait_ms=40, latency_budget_ms=300, inference_timeout_ms=2_500)
    b = make_batcher(s, FakeClassifier())
    assert (b.max_batch, b.max_wait_s, b.budget_s, b.timeout_s) == (6, 0.04, 0.3, 2.5)
    assert b.vad is None


def test_with_ray_the_front_batches_as_in_process_with_a_call_per_replica_in_flight() -> None:
    s = _settings(engine="ray", max_batch=6, max_wait_ms=40, ray_max_replicas=3)
    b = make_batcher(s, FakeClassifier())
    assert (b.max_batch, b.max_wait_s, b.in_flight) == (6, 0.04, 3)
    assert make_batcher(_settings(ray_max_replicas=3), FakeClassifier()).in_flight == 1


def test_the_vad_gate_gets_a_vad_runner_at_the_model_rate() -> None:
    b = make_batcher(_settings(gate="vad"), FakeClassifier(sample_rate=16_000))
    assert b.vad is not None and b.vad.vad.sample_rate == 16_000


def test_assemble_loads_warms_up_for_one_window_and_builds_the_pipeline() -> None:
    clf = Warmed(sample_rate=8_000)
    loaded: list[Settings] = []

    def loader(s: Settings) -> Classifier:
        loaded.append(s)
        return clf

    s = _settings(window_ms=250, hop_ms=100)
    p = assemble(s, loader=loader)
    assert loaded == [s] and p.classifier is clf and clf.warmed == [2_000]
    assert p.config == stream_config(s, clf.info) and p.settings is s
    given = Warmed()
    q = assemble(s, classifier=given, warm_up=False, loader=loader)
    assert q.classifier is given and given.warmed == [] and loaded == [s]


async def test_a_pipeline_opens_streams_wired_to_its_batcher_and_closes_them() -> None:
    p = assemble(_settings(window_ms=200, hop_ms=100), classifier=FakeClassifier())
    p.start()
    try:
        stream, hooks = p.open_stream("s1")
        assert stream.id == "s1" and stream.listener is hooks
        assert p.batcher._streams == {"s1": stream}
        p.close_stream(stream)
        p.close_stream(stream)  # idempotent
        assert stream.closed and p.batcher._streams == {}
    finally:
        await p.close()


async def test_a_long_recording_is_classified_whole_without_drops() -> None:
    # 1000 Hz model: 12 s is far more than the 1 s buffer, so only back-pressure saves it
    s = _settings(window_ms=200, hop_ms=100, buffer_ms=1_000, max_batch=4, gate="none")
    clf = FakeClassifier()
    p = assemble(s, classifier=clf)
    p.start()
    try:
        x = np.repeat(np.linspace(0.0, 1.0, 120, dtype=np.float32), 100)  # a ramp, 100 ms steps
        messages = (await p.classify(x)).messages
        empty = await p.classify(np.zeros(0, np.float32))
        out = [m for m in messages if m["type"] != "segment"]  # segments: tested on their own
    finally:
        await p.close()
    assert [m["seq"] for m in out] == list(range(119))  # windows at 0, 100 … 11800 ms
    assert [m["start_ms"] for m in out] == [100.0 * k for k in range(119)]
    assert all(m["type"] == "result" and m["dropped_ms"] == 0 for m in out)
    means = [m["scores"]["b"] for m in out]
    assert means == sorted(means) and means[-1] > means[0]  # each window its own audio
    assert empty.messages == [] and empty.end["windows"] == 0
    assert p.batcher._streams == {}  # the recording's stream is gone


# ---- warm-up, metrics and the engine (mutation testing found these untested) ------------------
def test_warm_up_times_every_batch_size_up_to_max_batch() -> None:
    """1, 2, 4, … and max_batch itself, so the first live calls are planned from real times:
    also for 256, the largest max_batch allowed."""
    for max_batch, sizes in ((6, [1, 2, 4, 6]), (256, [1, 2, 4, 8, 16, 32, 64, 128, 256])):
        clf = FakeClassifier(latency_s=1 * MS)
        p = assemble(_settings(window_ms=100, hop_ms=100, max_batch=max_batch), classifier=clf)
        assert clf.batches == sizes
        for size in sizes:  # each call taught the cost model (about a millisecond each)
            assert 0.0 < p.batcher.cost.estimate(size, 100) < 1.0


def test_warm_up_feeds_the_model_quiet_noise_the_same_at_every_start() -> None:
    """Float32 windows as the Classifier contract says, noise at about 0.1 rms (a quiet
    speech level, not silence that a model could shortcut), the same batches every time."""
    inputs: list[list[np.ndarray]] = [[], []]
    for seen in inputs:

        class Recording(FakeClassifier):
            def predict(self, batch: np.ndarray, seen: list[np.ndarray] = seen) -> np.ndarray:
                seen.append(batch.copy())
                return super().predict(batch)

        assemble(_settings(window_ms=100, hop_ms=100, max_batch=4), classifier=Recording())
    first, again = inputs
    assert [b.shape for b in first] == [(1, 100), (2, 100), (4, 100)]
    for batch, same in zip(first, again, strict=True):
        assert batch.dtype == np.float32
        assert 0.05 < float(np.sqrt(np.mean(batch**2))) < 0.2
        np.testing.assert_array_equal(batch, same)


async def test_the_metrics_reach_the_batcher_the_streams_and_files() -> None:
    metrics = Metrics()
    s = _settings(window_ms=100, hop_ms=100, max_batch=4, max_lag_ms=500)
    p = assemble(s, classifier=FakeClassifier(), metrics=metrics, warm_up=False)
    assert p.config.max_lag_ms == 500
    p.start()
    try:
        await p.classify(np.full(2000, 0.5, np.float32))  # a file: 20 windows
        stream, _ = p.open_stream("live")
        stream.push(np.zeros(300, np.float32))  # three quiet windows: gated
        gauge = p.capacity()
    finally:
        p.close_stream(stream)
        await p.close()
    value = metrics.registry.get_sample_value
    assert value("voxlive_windows_total", {"outcome": "classified"}) == 20
    assert value("voxlive_windows_total", {"outcome": "gated"}) == 3
    assert value("voxlive_batch_size_sum") == 20
    best = p.batcher.cost.best_rate(100)
    assert best is not None and gauge.windows_per_s == best
    assert gauge.streams == pytest.approx(best * 0.1)  # one 100 ms window per stream per hop
    assert gauge.load_streams > 0
    assert value("voxlive_capacity_streams") == pytest.approx(p.capacity().streams)


def test_the_engine_setting_picks_where_the_model_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[tuple[str, Settings]] = []

    class RayClassifier:
        def __init__(self, settings: Settings) -> None:
            loaded.append(("ray", settings))

    ray_serve = types.ModuleType("voxlive.inference.ray_serve")
    ray_serve.RayClassifier = RayClassifier  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "voxlive.inference.ray_serve", ray_serve)
    monkeypatch.setattr(assembly, "load_local", lambda s: loaded.append(("local", s)) or "clf")
    local, ray = _settings(), _settings(engine="ray")
    assert assembly.load_classifier(local) == "clf"
    assert isinstance(assembly.load_classifier(ray), RayClassifier)
    assert loaded == [("local", local), ("ray", ray)]


def test_a_model_of_the_wrong_width_stops_startup_at_warm_up() -> None:
    """Two columns for three labels (a wrong ``--labels``, or a model whose head does not match
    its config): found once at load, not in every stream's first result."""
    three = FakeClassifier(labels=("a", "b", "c"))  # scores two columns
    with pytest.raises(ModelLoadError) as err:
        assemble(_settings(max_batch=2), classifier=three)
    assert str(err.value) == (
        "fake: model output: expected 3 columns (one per label), got 2; the labels are a, b, c "
        "(from the model's config, or --labels): pass one label per class the model outputs"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_the_workers_are_the_batcher_and_the_vad_runner_when_there_is_one() -> None:
    plain = assemble(_settings(gate="rms"), classifier=FakeClassifier(), warm_up=False)
    assert plain.workers() == [plain.batcher]
    vad = assemble(_settings(gate="vad"), classifier=FakeClassifier(sample_rate=16_000),
                   warm_up=False)  # fmt: skip
    assert vad.batcher.vad is not None and vad.workers() == [vad.batcher, vad.batcher.vad]


async def test_a_service_whose_model_has_the_wrong_width_fails_to_start() -> None:
    fatal: list[BaseException] = []
    service = Service(_settings(), classifier=FakeClassifier(labels=("a", "b", "c")),
                      on_fatal=fatal.append)  # fmt: skip
    await service.start()
    await eventually(lambda: service.status == "failed", "a failed start")
    assert (
        service.error is not None and "expected 3 columns (one per label), got 2" in service.error
    )
    assert len(fatal) == 1
    await service.stop()


def test_the_capacity_gauge_reads_unknown_not_zero_before_the_first_model_call() -> None:
    """0 would tell a balancer "full"; before any call the honest answer is "unknown"."""
    metrics = Metrics()
    pipeline = assemble(_settings(), classifier=FakeClassifier(), metrics=metrics, warm_up=False)
    service = Service(_settings())
    service.pipeline, service.classifier = pipeline, pipeline.classifier
    gauge = service.describe()["capacity"]
    assert gauge["streams"] is None and gauge["utilization"] is None
    assert '"streams": null' in json.dumps(gauge)
    assert gauge["load_streams"] == 0.0
    scraped = metrics.render().decode()
    assert "voxlive_capacity_streams NaN" in scraped.splitlines()

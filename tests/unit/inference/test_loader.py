"""Loading a local model (inference/loader.py): the backend picked from the settings, backend
auto (ONNX on CPU, PyTorch when the export disagrees, and saying so), the pitch fallback only
when the model cannot be had, labels in the model's class order, and the hub probe."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import save_tiny_wav2vec2
from voxlive.errors import ModelLoadError
from voxlive.inference import onnx as onnx_backend
from voxlive.inference.loader import load_local
from voxlive.pipeline.assembly import assemble
from voxlive.server.service import Service
from voxlive.settings import Settings


def test_a_named_model_that_cannot_load_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"could not load model .*--model pitch"):
        load_local(Settings(model=str(tmp_path / "missing")))


def _no_model(monkeypatch: pytest.MonkeyPatch, *, cached: bool, reachable: bool) -> list[str]:
    """The default model's availability faked; returns the loads attempted."""
    import voxlive.inference.loader as loader

    attempts: list[str] = []

    def load(model: str, settings: Settings, local_only: bool = False) -> None:
        attempts.append(model)
        raise RuntimeError("the cached weights are truncated")

    monkeypatch.setattr(loader, "model_cached", lambda model: cached)
    monkeypatch.setattr(loader, "hub_reachable", lambda timeout_s=3.0: reachable)
    monkeypatch.setattr(loader, "_load_transformers", load)
    return attempts


def test_auto_falls_back_to_pitch_only_when_the_model_cannot_be_had(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = _no_model(monkeypatch, cached=False, reachable=False)
    clf = load_local(Settings(model="auto"))
    assert clf.info.backend == "pitch" and attempts == []
    assert clf.info.fallback is not None
    assert "not in the local Hugging Face cache and the hub is unreachable" in clf.info.fallback


def test_fallback_never_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_model(monkeypatch, cached=False, reachable=False)
    with pytest.raises(ModelLoadError, match="--fallback never"):
        load_local(Settings(model="auto", fallback="never"))


@pytest.mark.parametrize(("cached", "reachable"), [(True, False), (True, True), (False, True)])
def test_other_load_failures_stop_startup_with_their_cause(
    monkeypatch: pytest.MonkeyPatch, cached: bool, reachable: bool
) -> None:
    """A cached model that fails to load (or a download that does) is not 'offline': the real
    cause is reported, never rewritten into a fallback."""
    attempts = _no_model(monkeypatch, cached=cached, reachable=reachable)
    with pytest.raises(ModelLoadError, match="the cached weights are truncated"):
        load_local(Settings(model="auto"))
    assert attempts == ["7wolf/wav2vec2-base-gender-classification"]


def test_hub_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from voxlive.inference.loader import hub_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub_reachable()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_reachable(timeout_s=1)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # closed now
    assert not hub_reachable(timeout_s=1)


def test_the_loader_picks_the_backend_from_the_settings(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(model=str(tiny_model_dir), backend="onnx", quantize="int8",
                        cache_dir=str(tmp_path), labels=("low", "high"))  # fmt: skip
    clf = load_local(settings)
    assert clf.info.backend == "onnx-int8" and clf.info.labels == ("low", "high")


def test_backend_auto_serves_onnx_fp32_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model=str(tiny_model_dir), cache_dir=str(tmp_path))
    assert settings.backend == "auto"  # the default
    clf = load_local(settings)
    assert clf.info.backend == "onnx" and clf.info.device == "cpu"
    assert list((tmp_path / "onnx").glob("*/model.onnx"))  # exported into the cache given


def test_backend_auto_on_cpu_with_a_half_type_serves_pytorch(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """ONNX Runtime runs float32 only: a half type named with --backend auto asks for PyTorch
    (nothing is exported), and the default dtype on CPU is float32."""
    settings = Settings(model=str(tiny_model_dir), cache_dir=str(tmp_path), dtype="bfloat16")
    clf = load_local(settings)
    assert (clf.info.backend, clf.info.dtype) == ("transformers", "bfloat16")
    assert not list(tmp_path.glob("onnx/*/model.onnx"))
    torch_clf = load_local(settings.replace(backend="torch", dtype="auto"))
    assert (torch_clf.info.backend, torch_clf.info.dtype) == ("transformers", "float32")


def test_backend_auto_falls_back_to_pytorch_and_says_why(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(onnx_backend, "FP32_TOLERANCE", -1.0)  # the real agreement check fails
    clf = load_local(Settings(model=str(tiny_model_dir), cache_dir=str(tmp_path)))
    assert clf.info.backend == "transformers"
    assert "BACKEND FALLBACK: --backend auto: not serving" in caplog.text
    assert clf.info.backend_fallback is not None
    assert "ModelLoadError: ONNX export of" in clf.info.backend_fallback
    assert "expected logits within -1 (relative) of PyTorch" in clf.info.backend_fallback
    # --backend onnx stops instead
    with pytest.raises(ModelLoadError, match="expected logits within -1"):
        load_local(Settings(model=str(tiny_model_dir), cache_dir=str(tmp_path), backend="onnx"))


def test_the_default_model_with_a_failing_export_check_serves_with_pytorch_and_says_so(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """``--model auto`` (the default) too: a failed ONNX check is no model failure."""
    import voxlive.inference.loader as loader

    monkeypatch.setattr(loader, "DEFAULT_MODEL", str(tiny_model_dir))
    monkeypatch.setattr(loader, "model_cached", lambda model: True)
    monkeypatch.setattr(onnx_backend, "FP32_TOLERANCE", -1.0)
    settings = Settings(model="auto", cache_dir=str(tmp_path))
    service = Service(settings)
    with caplog.at_level(logging.WARNING):
        clf = load_local(settings)
    service.classifier = clf
    assert clf.info.backend == "transformers" and clf.info.fallback is None
    described = service.describe()
    assert described["backend"] == "transformers"
    assert "expected logits within -1" in described["backend_fallback"]
    assert "BACKEND FALLBACK" in caplog.text


def test_backend_auto_on_a_missing_model_fails_as_pytorch_would(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_local(Settings(model=str(tmp_path / "missing"), cache_dir=str(tmp_path)))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize(
    "labels",
    [("speech", "music"), tuple(f"LABEL_{i}" for i in range(12))],
    ids=["speech-music", "twelve-LABEL_n"],
)
async def test_labels_follow_the_model_s_class_index_not_alphabetical_order(
    labels: tuple[str, ...], backend: str, tmp_path: Path
) -> None:
    """Column i of the model's output is class i: ``{0: "speech", 1: "music"}`` stays in that
    order (not music, speech), and LABEL_10 comes after LABEL_9 (not after LABEL_1)."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    path = save_tiny_wav2vec2(tmp_path / "model", labels)
    settings = Settings(model=str(path), backend=backend, cache_dir=str(tmp_path / "cache"),
                        gate="none", window_ms=1000, hop_ms=1000, smoothing=1)  # fmt: skip
    clf = load_local(settings)
    assert clf.info.labels == labels
    audio = (0.1 * np.random.default_rng(1).standard_normal((1, 16_000))).astype(np.float32)
    extractor = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModelForAudioClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        inputs = extractor(list(audio), sampling_rate=16_000, return_tensors="pt")
        expected = torch.softmax(model(**inputs).logits, dim=-1).numpy()
    np.testing.assert_allclose(clf.predict(audio), expected, atol=1e-4)
    # A stream's result names each column by its class: scores[labels[i]] is column i.
    pipeline = assemble(settings, classifier=clf, warm_up=False)
    pipeline.start()
    try:
        classified = await pipeline.classify(audio[0])
        [result] = [m for m in classified.messages if m["type"] == "result"]
    finally:
        await pipeline.close()
    assert list(result["scores"]) == list(labels)
    np.testing.assert_allclose([result["scores"][n] for n in labels], expected[0], atol=1e-4)
    assert result["label"] == labels[int(np.argmax(expected[0]))]

"""The ONNX Runtime backend, exported from a tiny random wav2vec2 loaded by path."""

import logging
from pathlib import Path

import numpy as np
import pytest

from voxlive.errors import ConfigError, ModelLoadError
from voxlive.inference import onnx as onnx_backend
from voxlive.inference.hf import TransformersClassifier
from voxlive.inference.loader import load_local
from voxlive.inference.onnx import OnnxClassifier
from voxlive.server.service import Service
from voxlive.settings import Settings


def _windows(n: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal((n, 16_000))).astype(np.float32)


def test_export_matches_pytorch_and_is_cached(tiny_model_dir: Path, tmp_path: Path) -> None:
    clf = OnnxClassifier(str(tiny_model_dir), cache_dir=tmp_path)
    assert clf.info.backend == "onnx" and clf.info.labels == ("LABEL_0", "LABEL_1")
    assert clf.path.is_file() and clf.path.is_relative_to(tmp_path / "onnx")
    assert clf.report["fp32_max_logit_diff"] <= onnx_backend.FP32_TOLERANCE
    reference = TransformersClassifier(str(tiny_model_dir), device="cpu")
    x = _windows(3)
    np.testing.assert_allclose(clf.predict(x), reference.predict(x), atol=1e-4)
    # Other window lengths and batch sizes use the same graph (dynamic axes).
    assert clf.predict(_windows(5)[:, :3200]).shape == (5, 2)

    stamp = clf.path.stat().st_mtime_ns
    again = OnnxClassifier(str(tiny_model_dir), cache_dir=tmp_path)
    assert again.path == clf.path and again.path.stat().st_mtime_ns == stamp  # not re-exported
    assert list((tmp_path / "onnx").iterdir()) == [clf.path.parent]


def test_int8_is_a_separate_cached_model_with_an_agreement_report(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    clf = OnnxClassifier(str(tiny_model_dir), quantize="int8", cache_dir=tmp_path)
    assert clf.info.backend == "onnx-int8" and clf.path.name == "model.int8.onnx"
    assert 0 <= clf.report["int8_label_agreement"] <= 1
    assert clf.report["int8_max_prob_diff"] < 0.5
    probs = clf.predict(_windows(4))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    alone = np.concatenate([clf.predict(w[None]) for w in _windows(4)])
    np.testing.assert_allclose(alone, probs, atol=1e-4)


def test_an_export_that_disagrees_with_pytorch_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_backend, "FP32_TOLERANCE", -1.0)
    with pytest.raises(ModelLoadError, match=r"expected logits within -1 \(relative\) of PyTorch"):
        OnnxClassifier(str(tiny_model_dir), cache_dir=tmp_path)
    assert not list((tmp_path / "onnx").glob("*/*.onnx"))  # nothing half-made left in the cache


def test_the_loader_picks_the_backend_from_the_settings(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(model=str(tiny_model_dir), backend="onnx", quantize="int8",
                        cache_dir=str(tmp_path), labels=("low", "high"))  # fmt: skip
    clf = load_local(settings)
    assert clf.info.backend == "onnx-int8" and clf.info.labels == ("low", "high")


def test_settings_refuse_int8_without_onnx_and_onnx_on_cuda() -> None:
    with pytest.raises(ConfigError, match="quantize: expected 'none' unless backend is 'onnx'"):
        Settings(quantize="int8")
    with pytest.raises(ConfigError, match="device: expected 'cpu' or 'auto' with backend 'onnx'"):
        Settings(backend="onnx", device="cuda")


def test_backend_auto_serves_onnx_fp32_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model=str(tiny_model_dir), cache_dir=str(tmp_path))
    assert settings.backend == "auto"  # the default
    clf = load_local(settings)
    assert clf.info.backend == "onnx" and clf.info.device == "cpu"
    assert list((tmp_path / "onnx").glob("*/model.onnx"))  # exported into the cache given


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

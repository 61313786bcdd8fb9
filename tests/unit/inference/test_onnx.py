"""The ONNX Runtime backend (inference/onnx.py), exported from a tiny random wav2vec2 loaded by
path: the export agrees with PyTorch and is cached, int8 is a model of its own, and an export
that disagrees is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxlive.errors import ModelLoadError
from voxlive.inference import onnx as onnx_backend
from voxlive.inference.hf import TransformersClassifier
from voxlive.inference.onnx import OnnxClassifier


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

"""The transformers backend (inference/hf.py), with a tiny random wav2vec2 loaded through
from_pretrained(path): generic labels named, scores independent of batch mates, labels
resolved, the number type chosen per device and a half type run on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxlive.errors import ConfigError
from voxlive.inference.hf import (
    DEFAULT_MODEL,
    TransformersClassifier,
    pick_dtype,
    resolve_labels,
)


def test_loads_by_path_and_names_generic_labels(tiny_model_dir: Path) -> None:
    clf = TransformersClassifier(str(tiny_model_dir), labels=("low", "high"), device="cpu")
    assert clf.info.labels == ("low", "high") and clf.info.sample_rate == 16_000
    probs = clf.predict(np.random.default_rng(0).standard_normal((3, 8000)).astype(np.float32))
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_scores_do_not_depend_on_batch_mates(tiny_model_dir: Path) -> None:
    clf = TransformersClassifier(str(tiny_model_dir), device="cpu")
    rng = np.random.default_rng(1)
    windows = (0.2 * rng.standard_normal((5, 16_000))).astype(np.float32)
    alone = np.concatenate([clf.predict(w[None]) for w in windows])
    together = clf.predict(windows)
    np.testing.assert_allclose(alone, together, atol=1e-4)


def test_label_resolution() -> None:
    generic = {0: "LABEL_0", 1: "LABEL_1"}
    assert resolve_labels(DEFAULT_MODEL, generic, None) == ("male", "female")
    assert resolve_labels("some/model", generic, None) == ("LABEL_0", "LABEL_1")
    assert resolve_labels("x", {0: "cat", 1: "dog"}, None) == ("cat", "dog")
    with pytest.raises(ConfigError, match="expected 2 names for model x, got 3"):
        resolve_labels("x", generic, ("a", "b", "c"))


def test_auto_dtype_is_float16_on_cuda_and_float32_on_cpu() -> None:
    assert pick_dtype("auto", "cuda") == "float16"
    assert pick_dtype("auto", "cpu") == "float32"
    for named in ("float32", "float16", "bfloat16"):  # a type named is taken on either device
        assert pick_dtype(named, "cpu") == pick_dtype(named, "cuda") == named  # type: ignore[arg-type]


def test_the_default_on_cpu_is_float32(tiny_model_dir: Path) -> None:
    import torch

    clf = TransformersClassifier(str(tiny_model_dir), device="cpu")
    assert clf.info.dtype == "float32"
    assert {p.dtype for p in clf.model.parameters()} == {torch.float32}


def test_bfloat16_runs_on_cpu_and_answers_float32(tiny_model_dir: Path) -> None:
    """The weights in bfloat16, the features cast to it, the probabilities back in float32 and
    close to float32's (bfloat16 keeps about 3 significant digits)."""
    import torch

    rng = np.random.default_rng(2)
    windows = (0.2 * rng.standard_normal((3, 16_000))).astype(np.float32)
    full = TransformersClassifier(str(tiny_model_dir), device="cpu", dtype="float32")
    half = TransformersClassifier(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert half.info.dtype == "bfloat16"
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    probs = half.predict(windows)
    assert probs.dtype == np.float32 and probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, full.predict(windows), atol=0.05)

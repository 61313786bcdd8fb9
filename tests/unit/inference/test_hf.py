"""The transformers backend, with a tiny random wav2vec2 loaded through from_pretrained(path)."""

from pathlib import Path

import numpy as np
import pytest

from voxlive.errors import ConfigError, ModelLoadError
from voxlive.inference.hf import DEFAULT_MODEL, TransformersClassifier, resolve_labels
from voxlive.inference.loader import load_local
from voxlive.settings import Settings


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


def test_a_named_model_that_cannot_load_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"could not load model .*--model pitch"):
        load_local(Settings(model=str(tmp_path / "missing")))


def _no_model(monkeypatch: pytest.MonkeyPatch, *, cached: bool, reachable: bool) -> list[str]:
    """The default model's availability faked; returns the loads attempted."""
    import voxlive.inference.loader as loader

    attempts: list[str] = []

    def load(model: str, settings: Settings, local_only: bool = False) -> None:
        attempts.append(model)
        raise RuntimeError("ONNX export check: expected logits within 1e-3, got 0.5")

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
    with pytest.raises(ModelLoadError, match="ONNX export check: expected logits"):
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

"""Loading a local model (inference/loader.py): the backend picked from the settings, backend
auto (ONNX on CPU, PyTorch when the export disagrees), the pitch fallback only when the model
cannot be had, and the hub probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxlive.errors import ModelLoadError
from voxlive.inference import onnx as onnx_backend
from voxlive.inference.loader import load_local
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


def test_backend_auto_falls_back_to_pytorch_and_says_why(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(onnx_backend, "FP32_TOLERANCE", -1.0)  # the agreement check fails
    clf = load_local(Settings(model=str(tiny_model_dir), cache_dir=str(tmp_path)))
    assert clf.info.backend == "transformers"
    assert "backend auto: not serving" in caplog.text and "expected logits within" in caplog.text


def test_backend_auto_on_a_missing_model_fails_as_pytorch_would(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_local(Settings(model=str(tmp_path / "missing"), cache_dir=str(tmp_path)))

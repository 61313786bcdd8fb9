"""Loading the in-process classifier named by the settings, including the offline fallback.

Which engine serves (in-process or Ray Serve) is chosen by the composition root,
:mod:`voxlive.pipeline.assembly`; a Ray Serve replica loads its model with :func:`load_local`.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from voxlive.errors import ConfigError, ModelLoadError
from voxlive.inference.base import Classifier
from voxlive.inference.hf import DEFAULT_MODEL, TransformersClassifier
from voxlive.inference.pitch import PitchClassifier
from voxlive.settings import Settings

log = logging.getLogger(__name__)


def _load_transformers(model: str, settings: Settings, local_only: bool = False) -> Classifier:
    s = settings
    labels = s.labels or None
    cache_dir = Path(s.cache_dir) if s.cache_dir else None  # where ONNX exports are kept
    if s.backend == "auto":
        from voxlive.inference.onnx import load_auto

        log.info("loading %s (backend auto, device=%s)", model, s.device)
        return load_auto(
            model, labels=labels, device=s.device, threads=s.threads, cache_dir=cache_dir,
            local_files_only=local_only, dtype=s.dtype,
        )  # fmt: skip
    if s.backend == "onnx":
        from voxlive.inference.onnx import OnnxClassifier

        log.info("loading %s (transformers → ONNX Runtime, quantize=%s)", model, s.quantize)
        return OnnxClassifier(
            model, labels=labels, quantize=s.quantize, threads=s.threads, cache_dir=cache_dir,
            local_files_only=local_only,
        )  # fmt: skip
    log.info("loading %s (transformers, device=%s, dtype=%s)", model, s.device, s.dtype)
    return TransformersClassifier(
        model, labels=labels, device=s.device, threads=s.threads, local_files_only=local_only,
        dtype=s.dtype,
    )  # fmt: skip


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) accepts a TCP connection; honours
    ``HF_HUB_OFFLINE``. Lets ``auto`` fall back in seconds instead of retrying for a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def model_cached(model: str) -> bool:
    """Whether ``model`` (a hub id) is in the local Hugging Face cache (its config, at least)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)


def _load_default(settings: Settings) -> Classifier:
    """The default model: from the local cache, else downloaded. Falls back to the built-in
    pitch classifier only when the model cannot be had at all (not cached, hub unreachable) and
    ``--fallback pitch``; any other failure (a broken cache, an ONNX export that fails its
    check, a bad setting) stops startup with its real cause."""
    cached = model_cached(DEFAULT_MODEL)
    if not cached and not hub_reachable():
        reason = (
            f"{DEFAULT_MODEL} is not in the local Hugging Face cache and the hub is unreachable"
        )
        if settings.fallback == "never":
            raise ModelLoadError(f"{reason}; --fallback never, so not starting")
        reason += (
            "; using the built-in pitch classifier. Download the model once with network "
            "access, or pass --model."
        )
        log.warning("FALLBACK: %s", reason)
        return PitchClassifier(settings.pitch_threshold_hz, fallback=reason)
    if not cached:
        log.info("downloading %s from the Hugging Face hub (cached for next time)", DEFAULT_MODEL)
    try:
        return _load_transformers(DEFAULT_MODEL, settings, local_only=cached)
    except (ConfigError, ModelLoadError):
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"could not load {DEFAULT_MODEL} ({'cached' if cached else 'downloading'}): "
            f"{type(exc).__name__}: {exc}. Clear it from the Hugging Face cache to download it "
            "again, or pass --model."
        ) from exc


def load_local(settings: Settings) -> Classifier:
    """Load the model named by ``settings.model`` in this process.

    ``pitch`` is the built-in classifier; ``auto`` is the default wav2vec2 model, with the pitch
    fallback only when that model cannot be had (see :func:`_load_default`); anything else is a
    model id or a local folder and a failure to load it is a :class:`ModelLoadError`.
    """
    if settings.model == "pitch":
        return PitchClassifier(settings.pitch_threshold_hz)
    if settings.model == "auto":
        return _load_default(settings)
    try:
        return _load_transformers(settings.model, settings)
    except ConfigError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"could not load model {settings.model!r}: {type(exc).__name__}: {exc}. "
            "Pass a Hugging Face model id that is reachable or cached, a local folder made with "
            "save_pretrained, or --model pitch for the offline classifier."
        ) from exc

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
    if s.backend == "auto":
        from voxlive.inference.onnx import load_auto

        log.info("loading %s (backend auto, device=%s)", model, s.device)
        return load_auto(
            model, labels=s.labels or None, device=s.device, threads=s.threads,
            cache_dir=Path(s.cache_dir) if s.cache_dir else None, local_files_only=local_only,
        )  # fmt: skip
    if s.backend == "onnx":
        from voxlive.inference.onnx import OnnxClassifier

        log.info("loading %s (transformers → ONNX Runtime, quantize=%s)", model, s.quantize)
        return OnnxClassifier(
            model, labels=s.labels or None, quantize=s.quantize, threads=s.threads,
            cache_dir=Path(s.cache_dir) if s.cache_dir else None, local_files_only=local_only,
        )  # fmt: skip
    log.info("loading %s (transformers, device=%s)", model, s.device)
    return TransformersClassifier(
        model, labels=s.labels or None, device=s.device, threads=s.threads,
        local_files_only=local_only,
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


def _load_default(settings: Settings) -> Classifier:
    """The default model from the local cache, else downloaded when the hub is reachable."""
    try:
        return _load_transformers(DEFAULT_MODEL, settings, local_only=True)
    except ConfigError:
        raise
    except Exception:
        if not hub_reachable():
            raise OSError(
                "not in the local cache and the Hugging Face hub is unreachable"
            ) from None
        log.info("downloading %s from the Hugging Face hub (cached for next time)", DEFAULT_MODEL)
        return _load_transformers(DEFAULT_MODEL, settings)


def load_local(settings: Settings) -> Classifier:
    """Load the model named by ``settings.model`` in this process.

    ``pitch`` is the built-in classifier; ``auto`` tries the default wav2vec2 model and falls back
    to ``pitch`` (loudly) when it cannot be loaded; anything else is a model id or a local folder
    and a failure to load it is a :class:`ModelLoadError`.
    """
    if settings.model == "pitch":
        return PitchClassifier(settings.pitch_threshold_hz)
    if settings.model == "auto":
        try:
            return _load_default(settings)
        except ConfigError:
            raise
        except Exception as exc:
            reason = (
                f"could not load {DEFAULT_MODEL} ({type(exc).__name__}: {exc}); using the "
                "built-in pitch classifier. Download the model once with network access, or "
                "pass --model."
            )
            log.warning("FALLBACK: %s", reason)
            return PitchClassifier(settings.pitch_threshold_hz, fallback=reason)
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

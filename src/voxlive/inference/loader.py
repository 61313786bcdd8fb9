"""Choosing and loading the classifier named by the settings, including the offline fallback."""

from __future__ import annotations

import logging

from voxlive.errors import ConfigError, ModelLoadError
from voxlive.inference.base import Classifier
from voxlive.inference.hf import DEFAULT_MODEL, TransformersClassifier
from voxlive.inference.pitch import PitchClassifier
from voxlive.settings import Settings

log = logging.getLogger(__name__)


def _load_transformers(model: str, settings: Settings) -> Classifier:
    log.info("loading %s (transformers, device=%s)", model, settings.device)
    return TransformersClassifier(
        model, labels=settings.labels or None, device=settings.device, threads=settings.threads
    )


def load_classifier(settings: Settings) -> Classifier:
    """Load the model named by ``settings.model``.

    ``pitch`` is the built-in classifier; ``auto`` tries the default wav2vec2 model and falls back
    to ``pitch`` (loudly) when it cannot be loaded; anything else is a model id or a local folder
    and a failure to load it is a :class:`ModelLoadError`.
    """
    if settings.model == "pitch":
        return PitchClassifier(settings.pitch_threshold_hz)
    if settings.model == "auto":
        try:
            return _load_transformers(DEFAULT_MODEL, settings)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to load means "use the fallback"
            reason = (
                f"could not load {DEFAULT_MODEL} ({type(exc).__name__}); using the built-in "
                "pitch classifier. Download the model once with network access, or pass --model."
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

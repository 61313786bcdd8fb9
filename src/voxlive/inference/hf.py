"""Hugging Face transformers backend: any audio-classification model id or local folder."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from voxlive.errors import ConfigError
from voxlive.inference.base import ModelInfo
from voxlive.settings import Device, Dtype

TorchDtype = Literal["float32", "float16", "bfloat16"]

DEFAULT_MODEL = "7wolf/wav2vec2-base-gender-classification"
# The default model's config names its labels LABEL_0/LABEL_1; the reference's own experiments
# showed 0 = male, 1 = female.
BUILTIN_LABELS: dict[str, tuple[str, ...]] = {DEFAULT_MODEL: ("male", "female")}
_GENERIC = re.compile(r"^LABEL_\d+$")


def resolve_labels(
    model: str, id2label: dict[int, str], override: Sequence[str] | None
) -> tuple[str, ...]:
    """Label names in class-index order: ``override``, else the config's, else built-in names."""
    n = len(id2label)
    names = tuple(id2label[i] for i in range(n))
    if override:
        if len(override) != n:
            raise ConfigError(f"labels: expected {n} names for model {model}, got {len(override)}")
        return tuple(override)
    if all(_GENERIC.match(name) for name in names) and model in BUILTIN_LABELS:
        return BUILTIN_LABELS[model]
    return names


def pick_device(device: Device) -> Literal["cpu", "cuda"]:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: expected a visible CUDA GPU for 'cuda', got none (torch.cuda)")
    return device


def pick_dtype(dtype: Dtype, device: Literal["cpu", "cuda"]) -> TorchDtype:
    """The number type the model runs in on ``device``: ``auto`` is float16 on CUDA (its tensor
    cores) and float32 on CPU; any other is taken as named."""
    if dtype == "auto":
        return "float16" if device == "cuda" else "float32"
    return dtype


class TransformersClassifier:
    """``AutoModelForAudioClassification`` with the model's own feature extractor, in the number
    type :func:`pick_dtype` chooses: the features are cast to it on the way in and the logits
    back to float32 on the way out (softmax in float32)."""

    def __init__(
        self,
        model_id: str,
        *,
        labels: Sequence[str] | None = None,
        device: Device = "auto",
        threads: int = 0,
        local_files_only: bool = False,
        dtype: Dtype = "auto",
    ) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = pick_device(device)
        dtype_name = pick_dtype(dtype, self._device)
        self._dtype = getattr(torch, dtype_name)
        self._extractor: Any = AutoFeatureExtractor.from_pretrained(  # type: ignore[no-untyped-call, unused-ignore]
            model_id, local_files_only=local_files_only
        )
        model: Any = AutoModelForAudioClassification.from_pretrained(
            model_id, local_files_only=local_files_only
        )
        self._model = model.to(device=self._device, dtype=self._dtype).eval()
        id2label = {int(k): str(v) for k, v in self._model.config.id2label.items()}
        self._info = ModelInfo(
            name=model_id,
            backend="transformers",
            labels=resolve_labels(model_id, id2label, labels),
            sample_rate=int(self._extractor.sampling_rate),
            device=self._device,
            dtype=dtype_name,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def note_backend_fallback(self, reason: str) -> None:
        """Serving in place of the backend ``--backend auto`` tried first, because ``reason``."""
        self._info = dataclasses.replace(self._info, backend_fallback=reason)

    @property
    def model(self) -> Any:
        """The PyTorch module (for export)."""
        return self._model

    @property
    def extractor(self) -> Any:
        """The model's feature extractor (turns raw audio into ``input_values``)."""
        return self._extractor

    def predict(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        inputs = self._extractor(
            list(batch), sampling_rate=self._info.sample_rate, return_tensors="pt"
        )
        inputs = {  # the features in the model's type; masks and ids keep theirs
            k: v.to(self._device, self._dtype) if v.is_floating_point() else v.to(self._device)
            for k, v in inputs.items()
        }
        with torch.inference_mode():
            logits = self._model(**inputs).logits.float()
        probs: np.ndarray = torch.softmax(logits, dim=-1).cpu().numpy()
        return probs

    def warmup(self, window_samples: int) -> None:
        rng = np.random.default_rng(0)
        for batch in (1, 2):
            self.predict(0.1 * rng.standard_normal((batch, window_samples)).astype(np.float32))

    def close(self) -> None:
        """Nothing to release: the model is memory, freed with this object."""

"""ONNX Runtime backend: the transformers model exported once, optionally int8-quantised.

The model is loaded through the same ``from_pretrained`` path as the PyTorch backend, exported
with dynamic batch and time axes into a cache keyed by the model, its revision and the export
settings, checked against PyTorch, and then served by ONNX Runtime (the PyTorch copy is freed).

``quantize="int8"`` applies ONNX Runtime's dynamic quantisation to the MatMul/Gemm weights only:
the linear layers are 60 % of wav2vec2's compute and quantise well, while quantising the
convolutional feature encoder made it about 3× slower on CPUs measured for this project.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from voxlive import __version__
from voxlive.errors import ConfigError, ModelLoadError
from voxlive.inference.base import Classifier, ModelInfo
from voxlive.inference.hf import TransformersClassifier, pick_device, resolve_labels
from voxlive.settings import Device, Dtype, Quantize

log = logging.getLogger(__name__)

OPSET = 17
# fp32 ONNX vs PyTorch: largest allowed difference of any logit on the check batch, relative to
# the largest logit's size (at least 1). Exported graphs agree to ~1e-6; 1e-3 leaves room for
# other CPUs' kernels while catching a wrong graph.
FP32_TOLERANCE = 1e-3
QUANTIZE_CHOICES = ("none", "int8")


def default_cache_dir() -> Path:
    """``$VOXLIVE_CACHE_DIR`` (so processes started without the flag, such as Ray replicas or a
    test run, share it), else ``$XDG_CACHE_HOME/voxlive``, else ``~/.cache/voxlive``."""
    if os.environ.get("VOXLIVE_CACHE_DIR"):
        return Path(os.environ["VOXLIVE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voxlive"


def _model_digest(model_id: str, config: Any) -> str:
    """What identifies the weights: the hub revision, else the local files' names/sizes/mtimes."""
    revision = getattr(config, "_commit_hash", None)
    if revision:
        return f"{model_id}@{revision}"
    path = Path(model_id)
    parts = [str(path.resolve())]
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file():
                st = f.stat()
                parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def cache_key(model_id: str, config: Any, quantize: str) -> str:
    """The cache folder's name: the weights (see :func:`_model_digest`) and how they were
    exported."""
    import torch

    text = "|".join(
        [_model_digest(model_id, config), quantize, f"opset{OPSET}", torch.__version__, __version__]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def check_inputs(sample_rate: int) -> np.ndarray:
    """A deterministic speech-like check batch: voiced harmonics at two pitches plus noise."""
    t = np.arange(sample_rate) / sample_rate
    rng = np.random.default_rng(0)
    rows = []
    for f0 in (110.0, 220.0):
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
        rows.append(0.1 * tone + 0.01 * rng.standard_normal(t.size))
    return np.asarray(rows, dtype=np.float32)


def _logits_only(model: Any) -> Any:
    """The HF model as a module mapping input_values → logits and nothing else (for export)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_values: torch.Tensor) -> torch.Tensor:
            return self.model(input_values=input_values).logits  # type: ignore[no-any-return]

    return LogitsOnly().eval()


def _export(model: Any, sample_rate: int, path: Path) -> None:
    import torch

    example = torch.zeros(2, sample_rate)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _logits_only(model), (example,), str(path), input_names=["input_values"],
            output_names=["logits"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"input_values": {0: "batch", 1: "time"}, "logits": {0: "batch"}},
        )  # fmt: skip


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Do not spin idle worker threads: the event loop and the VAD share these cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """See the module docstring. CPU only (ONNX Runtime's CPU execution provider)."""

    def __init__(
        self,
        model_id: str,
        *,
        labels: tuple[str, ...] | None = None,
        quantize: Quantize = "none",
        threads: int = 0,
        cache_dir: Path | None = None,
        local_files_only: bool = False,
    ) -> None:
        if quantize not in QUANTIZE_CHOICES:
            raise ValueError(f"quantize: expected one of {QUANTIZE_CHOICES}, got {quantize!r}")
        from transformers import AutoConfig, AutoFeatureExtractor

        # Config and feature extractor only: the PyTorch weights are loaded just to export.
        config: Any = AutoConfig.from_pretrained(model_id, local_files_only=local_files_only)
        self._extractor: Any = AutoFeatureExtractor.from_pretrained(  # type: ignore[no-untyped-call, unused-ignore]
            model_id, local_files_only=local_files_only
        )
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        folder = (cache_dir or default_cache_dir()) / "onnx" / cache_key(model_id, config, quantize)
        self.path = folder / ("model.int8.onnx" if quantize == "int8" else "model.onnx")
        meta_path = folder / "meta.json"
        if self.path.is_file() and meta_path.is_file():
            log.info("ONNX model from cache: %s", self.path)
            self.report = json.loads(meta_path.read_text())
        else:
            log.info(
                "exporting %s to ONNX for ONNX Runtime into %s (once: later starts load it "
                "from there; about 10-30 s for a wav2vec2-base on a 2-core CPU)…", model_id, folder
            )  # fmt: skip
            torch_clf = TransformersClassifier(
                model_id, device="cpu", threads=threads, local_files_only=local_files_only
            )
            self.report = self._export_and_check(torch_clf, folder, quantize)
        self._session = session(self.path, threads or (os.cpu_count() or 1))
        self._info = ModelInfo(
            name=model_id, backend="onnx-int8" if quantize == "int8" else "onnx",
            labels=resolve_labels(model_id, id2label, labels),
            sample_rate=int(self._extractor.sampling_rate), device="cpu",
        )  # fmt: skip

    def _export_and_check(
        self, torch_clf: TransformersClassifier, folder: Path, quantize: Quantize
    ) -> dict[str, Any]:
        """Export, check against PyTorch, quantise; write the model and meta.json atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        rate = torch_clf.info.sample_rate
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            fp32 = Path(tmp) / "model.onnx"
            _export(torch_clf.model, rate, fp32)
            inputs = self._features(check_inputs(rate))
            logits = self._torch_logits(torch_clf, inputs)
            got = session(fp32, 1).run(None, {"input_values": inputs})[0]
            diff = float(np.abs(got - logits).max() / max(1.0, float(np.abs(logits).max())))
            if not diff <= FP32_TOLERANCE:
                raise ModelLoadError(
                    f"ONNX export of {torch_clf.info.name}: expected logits within "
                    f"{FP32_TOLERANCE:g} (relative) of PyTorch, got a difference of {diff:.3g}. "
                    "Use --backend torch for this model."
                )
            expected = _softmax(logits)
            meta: dict[str, Any] = {"model": torch_clf.info.name, "quantize": quantize,
                                    "fp32_max_logit_diff": diff}  # fmt: skip
            built = fp32
            if quantize == "int8":
                built = Path(tmp) / "model.int8.onnx"
                _quantize(fp32, built)
                q = _softmax(session(built, 1).run(None, {"input_values": inputs})[0])
                meta["int8_max_prob_diff"] = float(np.abs(q - expected).max())
                meta["int8_label_agreement"] = float(
                    np.mean(q.argmax(axis=1) == expected.argmax(axis=1))
                )
            os.replace(built, self.path)  # atomic: other processes see all or nothing
            meta["export_s"] = round(time.monotonic() - started, 2)
            (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        log.info("exported %s to %s (%s)", torch_clf.info.name, self.path, meta)
        return meta

    def _features(self, batch: np.ndarray) -> np.ndarray:
        values = self._extractor(
            list(batch), sampling_rate=int(self._extractor.sampling_rate), return_tensors="np"
        )["input_values"]
        return np.ascontiguousarray(values, dtype=np.float32)

    @staticmethod
    def _torch_logits(torch_clf: TransformersClassifier, inputs: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = torch_clf.model(input_values=torch.from_numpy(inputs)).logits
        out: np.ndarray = logits.float().numpy()
        return out

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, batch: np.ndarray) -> np.ndarray:
        logits = self._session.run(None, {"input_values": self._features(batch)})[0]
        return _softmax(logits.astype(np.float32))

    def warmup(self, window_samples: int) -> None:
        rng = np.random.default_rng(0)
        for batch in (1, 2):
            self.predict(0.1 * rng.standard_normal((batch, window_samples)).astype(np.float32))

    def close(self) -> None:
        """Nothing to release: the ONNX Runtime session is freed with this object."""


def load_auto(
    model_id: str,
    *,
    labels: tuple[str, ...] | None = None,
    device: Device = "auto",
    threads: int = 0,
    cache_dir: Path | None = None,
    local_files_only: bool = False,
    dtype: Dtype = "auto",
) -> Classifier:
    """``--backend auto``: PyTorch on CUDA (in ``dtype``: float16 for ``auto``) and on CPU with a
    ``dtype`` other than float32 (asked for by name); else ONNX Runtime fp32 (exported and
    checked on first start, then from the cache), or PyTorch when the export or its agreement
    check fails: loudly (a ``BACKEND FALLBACK`` warning, and ``info.backend_fallback`` says why,
    which ``/readyz`` reports). A model that cannot be found at all raises as PyTorch would."""
    from transformers import AutoConfig

    if pick_device(device) != "cpu" or dtype not in ("auto", "float32"):
        return TransformersClassifier(
            model_id, labels=labels, device=device, threads=threads,
            local_files_only=local_files_only, dtype=dtype,
        )  # fmt: skip
    AutoConfig.from_pretrained(model_id, local_files_only=local_files_only)  # is it there at all?
    try:
        return OnnxClassifier(
            model_id, labels=labels, threads=threads, cache_dir=cache_dir,
            local_files_only=local_files_only,
        )  # fmt: skip
    except ConfigError:
        raise
    except Exception as exc:
        reason = f"ONNX Runtime could not serve it ({type(exc).__name__}: {exc})"
        log.warning(
            "BACKEND FALLBACK: --backend auto: not serving %s with ONNX Runtime: %s; serving "
            "with PyTorch instead (slower on CPU). /readyz says so (backend_fallback); "
            "--backend torch skips the attempt, --backend onnx stops startup instead.",
            model_id, reason,
        )  # fmt: skip
        clf = TransformersClassifier(
            model_id, labels=labels, device="cpu", threads=threads,
            local_files_only=local_files_only,
        )  # fmt: skip
        clf.note_backend_fallback(reason)
        return clf

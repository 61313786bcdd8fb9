"""The model's flat-out ceiling: audio-seconds classified per wall second, best batch size.

``voxlive bench`` measures it in the same run as the load (before it, with the servers idle), so
every figure it reports can be stated against the machine it ran on: capacity in streams and as
% of this ceiling, and, for ONNX fp32, what int8 would buy here. The model is loaded as a server
loads it and fed windows at its own sample rate (the recordings are decoded at that rate).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxlive.inference.base import Classifier
from voxlive.settings import Settings

BATCHES = (1, 2, 4)


@dataclass(frozen=True)
class BatchSpeed:
    """The model at one batch size."""

    batch: int
    ms_per_call: float
    audio_s_per_s: float  # audio classified per wall second


@dataclass(frozen=True)
class Ceiling:
    """The best of :data:`BATCHES` for one model, backend and window (JSON: :meth:`to_dict`)."""

    backend: str  # as the model reports it: "onnx", "onnx-int8", "torch", "pitch", ...
    device: str
    sample_rate: int  # the model's own, Hz: the windows it was timed on
    window_ms: int
    hop_ms: int
    audio_s_per_s: float  # at the best batch size
    best_batch: int
    by_batch: tuple[BatchSpeed, ...]
    measured_s: float  # how long measuring took

    @property
    def streams(self) -> float:
        """Live streams the model serves flat out: one sends window/hop audio-s per second."""
        return self.audio_s_per_s * self.hop_ms / self.window_ms

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "streams": self.streams}


def model_throughput(
    clf: Classifier, audio: np.ndarray, batches: Sequence[int], window_s: float, min_s: float
) -> list[BatchSpeed]:
    """Per batch size: ms per call and audio-seconds per wall second (each shape warmed up once,
    then timed for at least ``min_s`` seconds and 3 calls). ``audio`` is at the model's rate."""
    rate = clf.info.sample_rate
    n = int(window_s * rate)
    rows = []
    for b in batches:
        starts = (np.arange(b) * rate // 3) % (len(audio) - n)
        batch = np.stack([audio[s : s + n] for s in starts])
        clf.predict(batch)  # warm up this shape
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_s or calls < 3:
            clf.predict(batch)
            calls += 1
        wall = time.perf_counter() - t0
        rows.append(BatchSpeed(b, 1000 * wall / calls, b * window_s * calls / wall))
    return rows


def ceiling(
    settings: Settings, files: Sequence[str], pause_ms: int = 0, min_s: float = 3.0
) -> Ceiling:
    """Load the model ``settings`` name in this process (as a server would) and measure its
    ceiling at batch 1, 2 and 4 of ``window_ms`` windows cut from ``files`` (with ``pause_ms``
    of quiet after each, as the load plays them) decoded at the model's rate. Blocking (seconds
    to minutes: a first ONNX export included)."""
    from voxlive.bench.load import program
    from voxlive.pipeline.assembly import load_classifier

    clf = load_classifier(settings.replace(engine="local"))
    started = time.monotonic()
    try:
        audio = program(files, pause_ms, clf.info.sample_rate)
        rows = model_throughput(clf, audio, BATCHES, settings.window_ms / 1000, min_s)
    finally:
        clf.close()
    best = max(rows, key=lambda r: r.audio_s_per_s)
    return Ceiling(
        backend=clf.info.backend, device=clf.info.device, sample_rate=clf.info.sample_rate,
        window_ms=settings.window_ms, hop_ms=settings.hop_ms, audio_s_per_s=best.audio_s_per_s,
        best_batch=best.batch, by_batch=tuple(rows),
        measured_s=round(time.monotonic() - started, 1),
    )  # fmt: skip


def stream_cost(settings: Settings) -> float:
    """Audio-seconds of model work per second of one live stream (every window to the model)."""
    return settings.window_ms / settings.hop_ms


def int8_hint(fp32: Ceiling, int8: Ceiling) -> str:
    """What int8 would buy on this machine, in one line."""
    ratio = int8.audio_s_per_s / fp32.audio_s_per_s
    return (
        f"int8 (--backend onnx --quantize int8) would give {int8.audio_s_per_s:.1f} "
        f"audio-s/s here, {ratio:.2f}x the fp32 {fp32.audio_s_per_s:.1f} "
        f"(about {0.8 * int8.streams:.1f} vs {0.8 * fp32.streams:.1f} live streams at 80 % "
        "of the ceiling); check its labels on your recordings first (voxlive.bench.agreement)"
    )


def main() -> None:
    """``python -m voxlive.bench.ceiling``: the ceilings of the CPU backends (PyTorch fp32, ONNX
    fp32, ONNX int8) measured alternately in one process, ``--rounds`` times."""
    import argparse
    import json
    import os
    import platform
    import sys
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m voxlive.bench.ceiling", description=main.__doc__)
    p.add_argument("--model", required=True, help="model id or save_pretrained folder")
    p.add_argument("--audio", nargs="+", required=True, metavar="FILE")
    p.add_argument("--cache-dir", default="", help="ONNX export cache (default: voxlive's)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-results") / "ceilings.json")
    args = p.parse_args()
    from voxlive.bench import provenance

    base = Settings(model=args.model, cache_dir=args.cache_dir)
    kinds = {
        "torch": base.replace(backend="torch"),
        "onnx": base.replace(backend="onnx"),
        "onnx-int8": base.replace(backend="onnx", quantize="int8"),
    }
    began = provenance.begin({"audio": args.audio, "rounds": args.rounds, "kinds": kinds})
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": "python -m voxlive.bench.ceiling " + " ".join(sys.argv[1:]),
        "rounds": [],
    }
    for _ in range(args.rounds):
        measured = {kind: ceiling(s, args.audio) for kind, s in kinds.items()}
        out["rounds"].append({kind: c.to_dict() for kind, c in measured.items()})
        print({kind: round(c.audio_s_per_s, 2) for kind, c in measured.items()})
    out = {"provenance": began.end(), **out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

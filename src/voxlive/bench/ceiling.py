"""The model's flat-out ceiling: audio-seconds classified per wall second, best batch size.

``voxlive bench`` measures it in the same run as the load (before it, with the servers idle), so
every figure it reports can be stated against the machine it ran on: capacity in streams and as
% of this ceiling, and, for ONNX fp32, what int8 would buy here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from voxlive.inference.base import Classifier
from voxlive.settings import Settings

RATE = 16_000
BATCHES = (1, 2, 4)


def model_throughput(
    clf: Classifier,
    audio: np.ndarray,
    batches: list[int],
    window_s: float,
    min_s: float,
) -> list[dict[str, float]]:
    """Per batch size: ms per call and audio-seconds per wall second (each shape warmed up once,
    then timed for at least ``min_s`` seconds and 3 calls)."""
    n = int(window_s * RATE)
    rows = []
    for b in batches:
        starts = (np.arange(b) * RATE // 3) % (len(audio) - n)
        batch = np.stack([audio[s : s + n] for s in starts])
        clf.predict(batch)  # warm up this shape
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_s or calls < 3:
            clf.predict(batch)
            calls += 1
        wall = time.perf_counter() - t0
        rows.append(
            {
                "batch": b,
                "ms_per_call": 1000 * wall / calls,
                "audio_s_per_s": b * window_s * calls / wall,
            }
        )
    return rows


def ceiling(settings: Settings, audio: np.ndarray, min_s: float = 3.0) -> dict[str, Any]:
    """Load the model ``settings`` name in this process (as a server would) and measure its
    ceiling at batch 1, 2 and 4 of ``window_ms`` windows. Blocking (seconds to minutes: a first
    ONNX export included)."""
    from voxlive.pipeline.assembly import load_classifier

    clf = load_classifier(settings.replace(engine="local"))
    window_s = settings.window_ms / 1000
    started = time.monotonic()
    rows = model_throughput(clf, audio, list(BATCHES), window_s, min_s)
    best = max(rows, key=lambda r: r["audio_s_per_s"])
    clf.close()
    return {
        "backend": clf.info.backend, "device": clf.info.device,
        "window_ms": settings.window_ms, "hop_ms": settings.hop_ms,
        "audio_s_per_s": best["audio_s_per_s"], "best_batch": best["batch"],
        # A live stream sends window/hop audio-seconds to the model per second of audio.
        "streams": best["audio_s_per_s"] * settings.hop_ms / settings.window_ms,
        "by_batch": rows, "measured_s": round(time.monotonic() - started, 1),
    }  # fmt: skip


def stream_cost(settings: Settings) -> float:
    """Audio-seconds of model work per second of one live stream (every window to the model)."""
    return settings.window_ms / settings.hop_ms


def int8_hint(fp32: dict[str, Any], int8: dict[str, Any]) -> str:
    """What int8 would buy on this machine, in one line."""
    ratio = int8["audio_s_per_s"] / fp32["audio_s_per_s"]
    return (
        f"int8 (--backend onnx --quantize int8) would give {int8['audio_s_per_s']:.1f} "
        f"audio-s/s here, {ratio:.2f}x the fp32 {fp32['audio_s_per_s']:.1f} "
        f"(about {0.8 * int8['streams']:.1f} vs {0.8 * fp32['streams']:.1f} live streams at 80 % "
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

    from voxlive.bench.load import program

    p = argparse.ArgumentParser(prog="python -m voxlive.bench.ceiling", description=main.__doc__)
    p.add_argument("--model", required=True, help="model id or save_pretrained folder")
    p.add_argument("--audio", nargs="+", required=True, metavar="FILE")
    p.add_argument("--cache-dir", default="", help="ONNX export cache (default: voxlive's)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-results") / "ceilings.json")
    args = p.parse_args()
    audio = program(args.audio, 0)
    base = Settings(model=args.model, cache_dir=args.cache_dir)
    kinds = {
        "torch": base.replace(backend="torch"),
        "onnx": base.replace(backend="onnx"),
        "onnx-int8": base.replace(backend="onnx", quantize="int8"),
    }
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": "python -m voxlive.bench.ceiling " + " ".join(sys.argv[1:]),
        "rounds": [],
    }
    for _ in range(args.rounds):
        out["rounds"].append({kind: ceiling(s, audio) for kind, s in kinds.items()})
        print({k: round(v["audio_s_per_s"], 2) for k, v in out["rounds"][-1].items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

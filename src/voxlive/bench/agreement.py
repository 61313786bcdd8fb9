"""How far the ONNX backends move the model's output on real speech.

Classifies every window (default 1 s every 0.5 s) of the given recordings with PyTorch fp32,
ONNX Runtime fp32 and ONNX Runtime int8 (voxlive's own backends, the model loaded by path or
id) and prints the largest probability difference against PyTorch and how often the label
changes. Prints numbers; asserts nothing.

    PYTHONPATH=src python -m voxlive.bench.agreement --model /tmp/w2v2 tests/data/*_speech.wav

A random-weight model (what this project's machines can build) shows the numerics of the export
and the quantisation, not what they do to a trained model's decisions: run it on the real model
before relying on int8.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from voxlive.audio.decode import decode_file
from voxlive.pipeline.assembly import load_classifier
from voxlive.settings import Settings


def windows(files: list[str], rate: int, window_ms: int, hop_ms: int) -> np.ndarray:
    out = []
    win, hop = rate * window_ms // 1000, rate * hop_ms // 1000
    for path in files:
        audio = decode_file(path, rate)
        out += [audio[i : i + win] for i in range(0, len(audio) - win + 1, hop)]
    return np.stack(out).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--window-ms", type=int, default=1000)
    p.add_argument("--hop-ms", type=int, default=500)
    p.add_argument("--cache-dir", type=Path, default=None)
    args = p.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="voxlive-agreement-"))
    # Loaded as a server loads them (the composition root's loader), one backend at a time.
    base = Settings(model=args.model, device="cpu", cache_dir=str(cache))
    reference = load_classifier(base.replace(backend="torch"))
    batch = windows(args.files, reference.info.sample_rate, args.window_ms, args.hop_ms)
    expected = np.concatenate(
        [reference.predict(batch[i : i + 8]) for i in range(0, len(batch), 8)]
    )
    report: dict[str, dict[str, float]] = {}
    for quantize in ("none", "int8"):
        clf = load_classifier(base.replace(backend="onnx", quantize=quantize))
        got = np.concatenate([clf.predict(batch[i : i + 8]) for i in range(0, len(batch), 8)])
        report[clf.info.backend] = {
            "windows": len(batch),
            "max_prob_diff": float(np.abs(got - expected).max()),
            "mean_prob_diff": float(np.abs(got - expected).mean()),
            "label_changes": int(np.sum(got.argmax(1) != expected.argmax(1))),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

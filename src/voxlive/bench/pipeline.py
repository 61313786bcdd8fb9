"""Benchmark: model throughput and live-stream capacity of the in-process pipeline.

Builds a full-size wav2vec2-base audio classifier with random weights (the default model's
architecture, so the same compute), saves it with save_pretrained and loads it through voxlive's
own transformers backend. Then:

1. model throughput: audio-seconds classified per wall second at several batch sizes;
2. live capacity: N simulated streams push real speech in 100 ms chunks at real-time pace into
   voxlive Streams feeding one Batcher; reports result latency p50/p95/p99 (from the window's last
   sample to its result), drops and batch sizes, and the largest N with p95 <= 250 ms and no drops.

Prints numbers; asserts nothing. Needs numpy, torch, transformers and prometheus-client only
(runs on the GPU machine without the server's dependencies):

    PYTHONPATH=src python -m voxlive.bench.pipeline --device cpu
    PYTHONPATH=src python -m voxlive.bench.pipeline --device cuda --batches 1,8,32,64 --max-batch 64
    PYTHONPATH=src python -m voxlive.bench.pipeline --device cuda --dtype float16 --skip-live
    PYTHONPATH=src python -m voxlive.bench.pipeline --save-model /tmp/w2v2  # for: serve --model

The pipeline is assembled by :func:`voxlive.pipeline.assembly.assemble` from the same
:class:`~voxlive.settings.Settings` a server would use (no gate, so every window reaches the
model); the capacity search is ``voxlive bench``'s (:func:`voxlive.bench.capacity.find_capacity`)
and batch sizes are read from the pipeline's own metrics, as ``voxlive bench`` reads a server's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import tempfile
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.bench import provenance
from voxlive.bench.capacity import find_capacity, passed
from voxlive.bench.ceiling import model_throughput
from voxlive.bench.load import RATE
from voxlive.bench.scrape import Snapshot, batch_histogram, parse
from voxlive.inference.base import Classifier
from voxlive.metrics import Metrics
from voxlive.pipeline.assembly import assemble
from voxlive.pipeline.stream import Stream
from voxlive.protocol.frames import decode_wav
from voxlive.settings import Dtype, Settings

P95_MS = 250.0  # the latency goal of a passing live run


# A tiny wav2vec2 (the shape of tests/fakes.py's): `--save-model DIR --tiny` writes one for a
# CPU smoke run of the GPU script (scripts/gpu-bench.sh --cpu-smoke), not for any speed figure
TINY: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": (32,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
}  # fmt: skip


def build_model(path: Path, tiny: bool = False) -> None:
    """A random-weight wav2vec2-base audio classifier (``tiny``: :data:`TINY`'s shape), saved
    with save_pretrained into ``path``."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    config = Wav2Vec2Config(  # type: ignore[call-arg]  # num_labels is a PretrainedConfig kwarg
        num_labels=2,
        id2label={0: "LABEL_0", 1: "LABEL_1"},
        label2id={"LABEL_0": 0, "LABEL_1": 1},
        **(TINY if tiny else {}),
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(  # type: ignore[no-untyped-call]
        sampling_rate=RATE, do_normalize=True, return_attention_mask=False
    ).save_pretrained(path)


def speech(data_dir: Path) -> np.ndarray:
    parts = []
    for name in ("female_speech.wav", "male_speech.wav"):
        samples, rate = decode_wav((data_dir / name).read_bytes())
        assert rate == RATE
        parts.append(samples[:, 0])
    return np.concatenate(parts).astype(np.float32)


def bench_settings(args: argparse.Namespace, model_dir: str) -> Settings:
    """The server settings this benchmark stands for (no gate: every window reaches the model)."""
    return Settings(
        model=model_dir, labels=("male", "female"), device=args.device, dtype=args.dtype,
        window_ms=args.window_ms, hop_ms=args.hop_ms, max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms, buffer_ms=4000, gate="none", smoothing=4,
    )  # fmt: skip


@dataclass(frozen=True)
class LiveRun:
    """N in-process streams at real-time pace: what they got (latency in ms, from a window's
    last sample to its result being ready)."""

    streams: int
    results: int  # counted (after each stream's first 2 s)
    dropped_windows: int
    errors: int  # windows whose model call failed
    p50_ms: float
    server_p95_ms: float | None  # None: no result
    p99_ms: float
    mean_batch: float  # windows per model call (0.0: no call)
    batch_sizes: dict[str, int]  # model calls by batch size bucket, from the metrics
    failed_streams: tuple[str, ...] = ()  # in process, no stream is refused
    paced_streams: int = 0  # the harness runs with graded degradation off (see live_run)

    @property
    def client_p95_ms(self) -> float | None:
        """In process the client pops results the moment they are ready: the server's view."""
        return self.server_p95_ms


async def live_run(
    clf: Classifier, audio: np.ndarray, n_streams: int, seconds: float, settings: Settings
) -> LiveRun:
    """``n_streams`` streams push ``audio`` (at the model's rate) in 100 ms chunks at real-time
    pace for ``seconds``; batch sizes are read from the pipeline's own metrics."""
    metrics = Metrics()
    # What the model and batcher hold at the normal hop: graded degradation off (shedding stays)
    settings = dataclasses.replace(settings, degrade_max_hop_ms=0)
    pipeline = assemble(settings, classifier=clf, warm_up=False, metrics=metrics)
    latencies: list[float] = []
    warmup_ms = 2000.0  # results of each stream's first 2 s are not counted (cold caches)

    def collector(stream_box: list[Stream]) -> Any:
        def on_ready() -> None:  # what the server's sender does: pop as soon as results are ready
            for m in stream_box[0].pop_messages():
                if m["type"] == "result" and m["start_ms"] >= warmup_ms:
                    latencies.append(m["latency_ms"])

        return on_ready

    streams = []
    for i in range(n_streams):
        box: list[Stream] = []
        stream, hooks = pipeline.open_stream(f"s{i}")
        hooks.on_results = collector(box)
        box.append(stream)
        streams.append(stream)
    pipeline.start()
    chunk = clf.info.sample_rate // 10
    offsets = [(i * 7919 * 16) % len(audio) for i in range(n_streams)]  # desynchronised speech

    async def feed(i: int, stream: Stream) -> None:
        t0 = time.monotonic() + i * 0.1 / n_streams  # spread stream phases over one chunk
        for k in range(int(seconds * 10)):
            await asyncio.sleep(max(0.0, t0 + k * 0.1 - time.monotonic()))
            pos = (offsets[i] + k * chunk) % (len(audio) - chunk)
            stream.push(audio[pos : pos + chunk])

    try:
        await asyncio.gather(*(feed(i, s) for i, s in enumerate(streams)))
        await asyncio.sleep(1.0)
    finally:
        await pipeline.close()
    batches = parse(metrics.render().decode())
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return LiveRun(
        streams=n_streams, results=len(latencies),
        dropped_windows=sum(s.stats.dropped_windows for s in streams),
        errors=sum(s.stats.failed for s in streams),
        p50_ms=float(np.percentile(lat, 50)),
        server_p95_ms=float(np.percentile(lat, 95)) if latencies else None,
        p99_ms=float(np.percentile(lat, 99)),
        mean_batch=batches.batch_sum / batches.batch_count if batches.batch_count else 0.0,
        batch_sizes=batch_histogram(Snapshot(), batches),
    )  # fmt: skip


async def live_capacity(
    clf: Classifier, audio: np.ndarray, args: argparse.Namespace, settings: Settings
) -> tuple[int, list[LiveRun]]:
    """The largest number of live streams with p95 <= 250 ms, no drops and no errors."""

    async def run(n: int) -> LiveRun:
        r = await live_run(clf, audio, n, args.seconds, settings)
        print(
            f"  {n:4d} streams: p50 {r.p50_ms:7.1f}  p95 {r.server_p95_ms or 0:7.1f}  "
            f"p99 {r.p99_ms:7.1f} ms  drops {r.dropped_windows:4d}  "
            f"mean batch {r.mean_batch:5.2f}  {'ok' if passed(r, P95_MS) else 'FAIL'}",
            flush=True,
        )
        return r

    return await find_capacity(run, 1, args.max_streams, P95_MS)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--dtype", default="float32", choices=typing.get_args(Dtype),
        help="the model's number type (float32, as the figures before --dtype; auto: float16 "
        "on CUDA)",
    )  # fmt: skip
    p.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[3] / "tests" / "data"
    )
    p.add_argument("--batches", default="1,2,4,8,16")
    p.add_argument("--min-seconds", type=float, default=3.0, help="timing per batch size")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each live run")
    p.add_argument("--window-ms", type=int, default=1000)
    p.add_argument("--hop-ms", type=int, default=500)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=30.0)
    p.add_argument("--max-streams", type=int, default=512)
    p.add_argument("--skip-live", action="store_true")
    p.add_argument(
        "--save-model",
        type=Path,
        help="only write the random wav2vec2-base to this folder and exit",
    )
    p.add_argument(
        "--tiny", action="store_true", help="with --save-model: a tiny wav2vec2 (smoke tests)"
    )
    p.add_argument("--out", type=Path, default=Path("bench-results") / "pipeline.json")
    args = p.parse_args()

    import torch

    if args.save_model:
        build_model(args.save_model, tiny=args.tiny)
        kind = "tiny wav2vec2" if args.tiny else "wav2vec2-base"
        print(f"wrote a random-weight {kind} classifier to {args.save_model}")
        return
    audio = speech(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        build_model(Path(tmp))
        settings = bench_settings(args, tmp)
        clf = assemble(settings, warm_up=False).classifier  # loaded as the server loads it
    began = provenance.begin({"args": vars(args), "settings": settings})
    device_name = (
        torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu"
    )
    print(
        f"wav2vec2-base (random weights), torch {torch.__version__}, "
        f"device {args.device} ({device_name}), "
        f"{torch.get_num_threads()} threads"
    )
    rows = model_throughput(
        clf,
        audio,
        [int(b) for b in args.batches.split(",")],
        args.window_ms / 1000,
        args.min_seconds,
    )
    print("\nmodel throughput, 1 s windows")
    print(f"{'batch':>6} {'ms/call':>9} {'audio-s/s':>10}")
    for r in rows:
        print(f"{r.batch:6d} {r.ms_per_call:9.1f} {r.audio_s_per_s:10.1f}")
    result: dict[str, Any] = {
        "device": args.device,
        "device_name": device_name,
        "torch": torch.__version__,
        "throughput": [asdict(r) for r in rows],
    }
    if not args.skip_live:
        print(
            f"\nlive capacity: window {args.window_ms} ms, hop {args.hop_ms} ms, "
            f"max batch {args.max_batch}, max wait {args.max_wait_ms} ms, "
            f"{args.seconds:g} s per run, p95 <= 250 ms and no drops"
        )
        capacity, runs = asyncio.run(live_capacity(clf, audio, args, settings))
        print(f"capacity: {capacity} streams")
        result.update(
            capacity=capacity,
            runs=[asdict(r) for r in runs],
            settings=vars(args) | {"data": str(args.data), "out": str(args.out)},
        )
    result = {"provenance": began.end(), **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

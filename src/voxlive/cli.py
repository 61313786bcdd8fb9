"""Command line: ``voxlive serve`` and ``voxlive classify``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from voxlive import __version__
from voxlive.errors import ConfigError, FrameError, ModelLoadError
from voxlive.protocol.messages import SegmentMessage, StreamMessage
from voxlive.settings import Settings, add_arguments, build, flag

log = logging.getLogger("voxlive")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxlive", description="Real-time audio classification over WebSockets."
    )
    parser.add_argument("--version", action="version", version=f"voxlive {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve ws://HOST:PORT/audio and the HTTP API")
    add_arguments(serve)
    classify = sub.add_parser("classify", help="classify audio files and print the timeline")
    classify.add_argument("files", nargs="+", metavar="FILE", help="WAV, FLAC, OGG or MP3")
    classify.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    add_arguments(classify)
    _bench_parser(sub)
    return parser


def _bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="drive a server with N concurrent streams; report latency, drops, batches, CPU, RSS",
        description="Without --url, starts `voxlive serve` with the server flags below on a free "
        "loopback port. Prints a table and writes JSON.",
    )
    b = bench.add_argument_group("load")
    b.add_argument("--url", help="drive this running server (ws://HOST:PORT/audio) instead")
    b.add_argument(
        "--audio",
        nargs="+",
        required=True,
        metavar="FILE",
        help="recordings each stream loops (any format `classify` reads)",
    )
    b.add_argument(
        "--pause-ms",
        type=int,
        default=0,
        help="quiet noise after each recording, ms (models conversation)",
    )
    b.add_argument(
        "--streams", type=int, default=1, help="concurrent streams (start, for --find-capacity)"
    )
    b.add_argument("--seconds", type=float, default=20.0, help="audio each stream sends")
    b.add_argument(
        "--warmup-s",
        type=float,
        default=2.0,
        help="results for windows ending before this are not counted",
    )
    b.add_argument("--chunk-ms", type=int, default=50, help="audio per frame, ms")
    b.add_argument(
        "--flat-out",
        action="store_true",
        help="send as fast as the server accepts (throughput), not in real time",
    )
    b.add_argument(
        "--find-capacity",
        action="store_true",
        help="search the largest N with p95 <= --p95-ms, no drops, no errors",
    )
    b.add_argument("--capacity-limit", type=int, default=256, help="largest N to try")
    b.add_argument("--p95-ms", type=float, default=250.0, help="latency goal for a pass")
    b.add_argument(
        "--compare",
        action="append",
        metavar="FLAGS",
        help="also run a server with these extra flags, e.g. '--max-batch 1' "
        "(repeatable); the same load runs against each, alternating",
    )
    b.add_argument(
        "--repeat", type=int, default=1, help="rounds over the servers (the median is reported)"
    )
    b.add_argument(
        "--at-ceiling",
        type=float,
        metavar="FRACTION",
        help="instead of --streams: N = FRACTION x the same-run ceiling in live streams (floor)",
    )
    b.add_argument(
        "--times",
        type=float,
        action="append",
        metavar="K",
        help="with --at-ceiling: also run K x N streams (repeatable), e.g. 2 for 2x overload",
    )
    b.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip measuring the model's flat-out ceiling in this process before the load",
    )
    b.add_argument(
        "--no-int8-hint",
        action="store_true",
        help="skip measuring what int8 would give when the model runs as ONNX fp32",
    )
    b.add_argument("--out", default="bench-results/bench.json", help="JSON report path")
    b.add_argument("--quiet", action="store_true", help="no progress bar or per-run lines")
    add_arguments(bench.add_argument_group("server (when bench starts it)"))


def server_flags(args: dict[str, Any]) -> list[str]:
    """The settings given on the command line, as ``voxlive serve`` flags."""
    import dataclasses

    out: list[str] = []
    for f in dataclasses.fields(Settings):
        if args.get(f.name) is not None:
            out += [flag(f.name), str(args[f.name])]
    return out


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings) -> int:

    from voxlive.server.app import create_app
    from voxlive.server.runner import Server, uvicorn_config

    exit_code = 0
    server: Server | None = None

    def on_fatal(exc: BaseException) -> None:
        nonlocal exit_code
        exit_code = 1
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=on_fatal)
    config = uvicorn_config(app, settings)
    server = Server(config, app.state.service)
    log.info(
        "voxlive %s on http://%s:%d (WebSocket /audio)", __version__, settings.host, settings.port
    )
    server.run()
    return exit_code


def _clock(ms: float) -> str:
    """``ms`` as m:ss.s (audio time)."""
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def _table(name: str, messages: Sequence[StreamMessage]) -> str:
    """Every window, then the segments of the smoothed label."""
    lines = [f"{name}", f"{'start_s':>8} {'end_s':>8}  {'label':<10} {'conf':>5}  smoothed"]
    segments: list[SegmentMessage] = []
    for r in messages:
        if r["type"] == "segment":
            segments.append(r)
            continue
        if r["type"] == "error":
            lines.append(
                f"{r['start_ms'] / 1000:8.2f} {r['end_ms'] / 1000:8.2f}  error: {r['message']}"
            )
            continue
        lines.append(
            f"{r['start_ms'] / 1000:8.2f} {r['end_ms'] / 1000:8.2f}  {r['label']:<10} "
            f"{r['confidence']:5.2f}  {r['smoothed']}"
        )
    lines.append("segments")
    for seg in segments:
        span = f"{_clock(seg['start_ms'])}–{_clock(seg['end_ms'])}"
        lines.append(
            f"  {span:<15} {seg['label']:<10} {seg['confidence']:5.2f}  ({seg['windows']} windows)"
        )
    return "\n".join(lines)


async def _classify(settings: Settings, files: Sequence[str], as_json: bool) -> int:
    from voxlive.audio.decode import decode_file
    from voxlive.pipeline.assembly import assemble

    pipeline = await asyncio.to_thread(assemble, settings, warm_up=False)
    classifier = pipeline.classifier
    if classifier.info.fallback:
        print(f"warning: {classifier.info.fallback}", file=sys.stderr)
    pipeline.start()
    status = 0
    try:
        for path in files:
            try:
                samples = await asyncio.to_thread(decode_file, path, classifier.info.sample_rate)
            except (FrameError, OSError) as exc:
                print(f"{path}: {getattr(exc, 'message', exc)}", file=sys.stderr)
                status = 1
                continue
            results = (await pipeline.classify(samples)).messages
            if as_json:
                for r in results:
                    row = {k: v for k, v in r.items() if k not in ("latency_ms", "dropped_ms")}
                    print(json.dumps({"file": path, **row}))
            else:
                print(_table(path, results))
    finally:
        await pipeline.close()
        await asyncio.to_thread(classifier.close)  # e.g. a local Ray instance it started
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    try:
        settings = build(args, os.environ)
    except ConfigError as exc:
        print(f"voxlive: bad setting: {exc}", file=sys.stderr)
        return 2
    _logging(settings.log_level)
    try:
        if args["command"] == "serve":
            return serve(settings)
        if args["command"] == "bench":
            from voxlive.bench.run import bench

            return asyncio.run(bench(argparse.Namespace(**args), server_flags(args)))
        return asyncio.run(_classify(settings, args["files"], args["json"]))
    except (ModelLoadError, ConfigError) as exc:
        print(f"voxlive: {exc}", file=sys.stderr)
        return 1

"""Command line: ``voxlive serve``, ``voxlive classify``, ``voxlive stream`` (a client: its
parser and loop are in :mod:`voxlive.client.command`) and ``voxlive bench`` (whose options and
parser live beside it, in :mod:`voxlive.bench.options`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from voxlive import __version__
from voxlive.bench.options import Options as BenchOptions
from voxlive.bench.options import add_parser as add_bench_parser
from voxlive.bench.options import options as bench_options
from voxlive.client import command as stream_command
from voxlive.errors import ConfigError, FrameError, ModelLoadError
from voxlive.protocol.messages import SegmentMessage, StreamMessage
from voxlive.settings import LogLevel, Settings
from voxlive.settings_sources import add_arguments, build

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
    stream_command.add_parser(sub)
    add_bench_parser(sub)
    return parser


def _logging(level: LogLevel) -> None:
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
    argv = list(sys.argv[1:] if argv is None else argv)
    namespace = _parser().parse_args(argv)
    if namespace.command == "stream":  # a client: the server's settings are not its own
        return stream_command.run(namespace)
    args = vars(namespace)
    try:
        settings = build(args, os.environ)
        bench: BenchOptions | None = None
        if args["command"] == "bench":
            bench = bench_options(args, settings, os.environ, argv)
    except ConfigError as exc:
        print(f"voxlive: bad setting: {exc}", file=sys.stderr)
        return 2
    _logging(settings.log_level)
    try:
        if args["command"] == "serve":
            return serve(settings)
        if bench is not None:
            from voxlive.bench.run import bench as run_bench

            return asyncio.run(run_bench(bench))
        return asyncio.run(_classify(settings, args["files"], args["json"]))
    except (ModelLoadError, ConfigError) as exc:
        print(f"voxlive: {exc}", file=sys.stderr)
        return 1

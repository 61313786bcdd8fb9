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
from voxlive.settings import Settings, add_arguments, build

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
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings) -> int:
    import uvicorn

    from voxlive.server.app import create_app
    from voxlive.server.runner import Server

    exit_code = 0
    server: Server | None = None

    def on_fatal(exc: BaseException) -> None:
        nonlocal exit_code
        exit_code = 1
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn closes frames past this with 1009 itself; smaller oversize frames get our
        # error message first (see max_frame_bytes).
        ws_max_size=max(16 * 1024 * 1024, 4 * settings.max_frame_bytes),
        timeout_graceful_shutdown=5,  # after voxlive's own drain (drain_timeout_ms)
    )
    server = Server(config, app.state.service)
    log.info(
        "voxlive %s on http://%s:%d (WebSocket /audio)", __version__, settings.host, settings.port
    )
    server.run()
    return exit_code


def _table(name: str, results: Sequence[dict[str, Any]]) -> str:
    lines = [f"{name}", f"{'start_s':>8} {'end_s':>8}  {'label':<10} {'conf':>5}  smoothed"]
    for r in results:
        if r["type"] == "error":
            lines.append(
                f"{r['start_ms'] / 1000:8.2f} {r['end_ms'] / 1000:8.2f}  error: {r['message']}"
            )
            continue
        lines.append(
            f"{r['start_ms'] / 1000:8.2f} {r['end_ms'] / 1000:8.2f}  {r['label']:<10} "
            f"{r['confidence']:5.2f}  {r['smoothed']}"
        )
    return "\n".join(lines)


async def _classify(settings: Settings, files: Sequence[str], as_json: bool) -> int:
    from voxlive.audio.decode import decode_file
    from voxlive.inference.loader import load_classifier
    from voxlive.pipeline.offline import classify_samples
    from voxlive.server.service import make_batcher, stream_config

    classifier = await asyncio.to_thread(load_classifier, settings)
    if classifier.info.fallback:
        print(f"warning: {classifier.info.fallback}", file=sys.stderr)
    config = stream_config(settings, classifier.info)
    batcher = make_batcher(settings, classifier)
    batcher.start()
    status = 0
    try:
        for path in files:
            try:
                samples = await asyncio.to_thread(decode_file, path, classifier.info.sample_rate)
            except (FrameError, OSError) as exc:
                print(f"{path}: {getattr(exc, 'message', exc)}", file=sys.stderr)
                status = 1
                continue
            results = await classify_samples(batcher, samples, config)
            if as_json:
                for r in results:
                    r = {k: v for k, v in r.items() if k not in ("latency_ms", "dropped_ms")}
                    print(json.dumps({"file": path, **r}))
            else:
                print(_table(path, results))
    finally:
        await batcher.close()
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
        return asyncio.run(_classify(settings, args["files"], args["json"]))
    except (ModelLoadError, ConfigError) as exc:
        print(f"voxlive: {exc}", file=sys.stderr)
        return 1

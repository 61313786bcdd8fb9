"""``voxlive stream FILE... --url URL``: stream files to a server as a live client would, print
what comes back, resume on its own after a drop, end with a summary per file."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from voxlive.client.replay import DEFAULT_REPLAY_MS, Backoff
from voxlive.client.session import StreamOptions, stream
from voxlive.errors import FrameError


def add_parser(sub: Any) -> None:
    """``voxlive stream``'s flags (each is in the README)."""
    p = sub.add_parser("stream", help="stream audio files to a server, resuming after drops")
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV, FLAC, OGG or MP3")
    p.add_argument("--url", action="append", required=True, metavar="URL",
                   help="ws://HOST:PORT/audio; repeat it for fronts to try in turn")  # fmt: skip
    pace = p.add_mutually_exclusive_group()
    live = "send at real-time pace as a live stream (windows may be shed)"
    pace.add_argument("--realtime", action="store_true", help=live)
    every = "every window classified, as fast as the server takes it (default)"
    pace.add_argument("--lossless", action="store_true", help=every)
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--token", help="the server's shared secret (default: $VOXLIVE_TOKEN)")
    p.add_argument("--max-replay-ms", type=int, default=DEFAULT_REPLAY_MS,
                   help="audio kept to replay after a drop, ms")  # fmt: skip
    p.add_argument("--give-up-ms", type=int, default=Backoff().give_up_ms,
                   help="stop reconnecting after this long without a stream, ms")  # fmt: skip


def _clock(ms: float) -> str:
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def line(msg: Mapping[str, Any], offset_ms: float = 0.0) -> str | None:
    """One message for people (``None``: nothing worth a line); ``offset_ms``: where the
    stream's time 0 lies in the file (after a refused resume started a new stream)."""
    kind = msg["type"]
    start, end = msg.get("start_ms", 0) + offset_ms, msg.get("end_ms", 0) + offset_ms
    span = f"{_clock(start)}–{_clock(end)}"
    if kind == "result":
        return f"{span:<15} {msg['label']:<10} {msg['confidence']:5.2f}  smoothed {msg['smoothed']}"
    if kind == "segment":
        return f"segment {span} {msg['label']} {msg['confidence']:.2f} ({msg['windows']} windows)"
    if kind == "error":
        where = f"{span} " if "seq" in msg else ""
        return f"error {where}{msg['code']}: {msg['message']}"
    if kind == "ready":
        resumed = " (resumed)" if msg["resumed"] else ""
        return f"stream {msg['stream_id']}{resumed}: {msg['model']} on {msg['backend']}"
    if kind == "pace":
        why = "the server is busy" if msg["reason"] == "busy" else "back to normal"
        return f"a window every {msg['hop_ms']} ms from here on: {why}"
    if kind == "reconnecting":
        return f"reconnecting to {msg['url']} in {msg['delay_ms']:.0f} ms ({msg['reason']})"
    if kind == "resumed":
        how = "the same stream" if msg["same_stream"] else "a NEW stream (its times start at 0)"
        return f"resumed on {msg['url']} after {msg['outage_ms']:.0f} ms: {how}"
    if kind == "summary":
        head = "done" if msg["ok"] else f"FAILED: {msg['failure']}"
        return (
            f"{head}: {msg['windows']} windows: {msg['answered']} answered, {msg['failed']} "
            f"failed, {msg['shed']} shed, {msg['lost']} lost; {msg['resumes']} resumes, "
            f"{msg['refusals']} refusals"
        )
    return None


async def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    opts = StreamOptions(
        lossless=not args.realtime,
        token=args.token if args.token is not None else environ.get("VOXLIVE_TOKEN"),
        max_replay_ms=args.max_replay_ms,
        backoff=Backoff(give_up_ms=args.give_up_ms),
    )
    status = 0
    for path in args.files:
        ok, offset_ms = False, 0.0
        try:
            async for msg in stream(args.url, path, options=opts):
                ok = msg["type"] == "summary" and bool(msg["ok"])
                offset_ms = msg["offset_ms"] if msg["type"] == "resumed" else offset_ms
                if args.json:
                    print(json.dumps({"file": path, **msg}), flush=True)
                elif (text := line(msg, offset_ms)) is not None:
                    print(f"{path}  {text}", flush=True)
        except (FrameError, OSError) as exc:
            print(f"{path}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        status = status or (0 if ok else 1)
    return status


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """``voxlive stream``: 0 when every file's stream ended, else 1."""
    bad = [u for u in args.url if not u.startswith(("ws://", "wss://"))]
    if bad:
        print(f"voxlive: bad setting: --url: expected ws://HOST:PORT/audio, got {bad[0]}",
              file=sys.stderr)  # fmt: skip
        return 2
    for name in ("max_replay_ms", "give_up_ms"):
        if getattr(args, name) <= 0:
            print(f"voxlive: bad setting: {name}: expected > 0 ms, got {getattr(args, name)}",
                  file=sys.stderr)  # fmt: skip
            return 2
    return asyncio.run(_run(args, os.environ if environ is None else environ))


def main(argv: Sequence[str]) -> int:
    """For tests: parse ``argv`` (after ``stream``) and run."""
    parser = argparse.ArgumentParser(prog="voxlive")
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(["stream", *argv]))

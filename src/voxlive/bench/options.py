"""``voxlive bench``'s options: the argument parser, and one frozen :class:`Options` built from
it once (validated, with the server's settings), which the rest of the bench reads."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxlive.errors import ConfigError
from voxlive.settings import Settings
from voxlive.settings_sources import add_arguments, flag


@dataclass(frozen=True)
class Options:
    """What ``voxlive bench`` was asked to do. Times are in the units their names say."""

    audio: tuple[str, ...]  # recordings each stream loops
    settings: Settings  # the server's settings (flags and VOXLIVE_* variables), the ceiling's too
    server_flags: tuple[str, ...]  # the settings given as flags, for `voxlive serve`
    url: str | None = None  # drive this server instead of starting one
    pause_ms: int = 0  # quiet noise after each recording
    conversation: int = 0  # ms; > 0: each server also runs conversation streams (this much noise)
    streams: int = 1  # N (the first N tried by find_capacity)
    seconds: float = 20.0  # audio each stream sends per run
    warmup_s: float = 2.0  # results for windows ending before this are not counted
    chunk_ms: int = 50  # audio per WebSocket frame
    flat_out: bool = False  # send as fast as the server accepts, not in real time
    find_capacity: bool = False
    capacity_limit: int = 256
    p95_ms: float = 250.0  # latency goal of a passing run
    compare: tuple[str, ...] = ()  # extra flags of each more server to start
    repeat: int = 1  # rounds over the servers
    at_ceiling: float | None = None  # N = this fraction of the ceiling in live streams
    times: tuple[float, ...] = ()  # with at_ceiling: also K x N streams
    measure_ceiling: bool = True
    hint_int8: bool = True  # when the model runs as ONNX fp32, what int8 would give
    out: Path = Path("bench-results/bench.json")  # the JSON report; server logs go beside it
    quiet: bool = False
    token: str = ""  # sent in each stream's start (VOXLIVE_TOKEN)
    command: str = "voxlive bench"  # as typed, for the report

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"bench {key}: expected {expected}, got {_shown(self, key)}")

        need(bool(self.audio), "--audio", "at least one file")
        need(self.pause_ms >= 0, "--pause-ms", ">= 0 ms")
        need(self.conversation >= 0, "--conversation", ">= 0 ms")
        need(not (self.conversation and self.pause_ms), "--pause-ms",
             "0 with --conversation (continuous streams beside conversation ones)")  # fmt: skip
        need(self.streams >= 1, "--streams", ">= 1")
        need(self.seconds > 0, "--seconds", "> 0 s")
        need(0 <= self.warmup_s < self.seconds, "--warmup-s", f"0..--seconds ({self.seconds:g})")
        need(10 <= self.chunk_ms <= 1000, "--chunk-ms", "10..1000 ms")
        need(self.capacity_limit >= self.streams, "--capacity-limit",
             f">= --streams ({self.streams})")  # fmt: skip
        need(self.p95_ms > 0, "--p95-ms", "> 0 ms")
        need(self.repeat >= 1, "--repeat", ">= 1")
        need(self.at_ceiling is None or self.at_ceiling > 0, "--at-ceiling", "> 0")
        need(self.at_ceiling is None or (self.measure_ceiling and self.url is None),
             "--at-ceiling", "a ceiling to measure (no --url, no --no-ceiling)")  # fmt: skip
        need(not self.times or self.at_ceiling is not None, "--times", "--at-ceiling with it")
        need(all(k > 0 for k in self.times), "--times", "> 0")

    @property
    def ceiling_wanted(self) -> bool:
        """Measure the model's ceiling in this process: only for servers bench starts."""
        return self.measure_ceiling and self.url is None

    @property
    def counted_s(self) -> float:
        """Audio per stream whose results count (after the warm-up), seconds."""
        return self.seconds - self.warmup_s


def _shown(options: Options, key: str) -> str:
    value = getattr(options, key.removeprefix("--").replace("-", "_"), None)
    return repr(list(value) if isinstance(value, tuple) else value)


def server_flags(args: Mapping[str, Any]) -> list[str]:
    """The settings given on the command line, as ``voxlive serve`` flags."""
    out: list[str] = []
    for f in dataclasses.fields(Settings):
        if args.get(f.name) is not None:
            out += [flag(f.name), str(args[f.name])]
    return out


def options(
    args: Mapping[str, Any], settings: Settings, environ: Mapping[str, str], argv: Sequence[str]
) -> Options:
    """The options from parsed arguments (:func:`add_parser`'s), the server's ``settings`` built
    from the same arguments, the environment and the command line as typed (for the report).
    Raises :class:`~voxlive.errors.ConfigError` naming the flag and the bad value."""
    a = args
    return Options(
        audio=tuple(a["audio"]), settings=settings, server_flags=tuple(server_flags(a)),
        url=a["url"], pause_ms=a["pause_ms"], conversation=a["conversation"] or 0,
        streams=a["streams"], seconds=a["seconds"],
        warmup_s=a["warmup_s"], chunk_ms=a["chunk_ms"], flat_out=a["flat_out"],
        find_capacity=a["find_capacity"], capacity_limit=a["capacity_limit"], p95_ms=a["p95_ms"],
        compare=tuple(a["compare"] or ()), repeat=a["repeat"], at_ceiling=a["at_ceiling"],
        times=tuple(a["times"] or ()), measure_ceiling=not a["no_ceiling"],
        hint_int8=not a["no_int8_hint"], out=Path(a["out"]), quiet=a["quiet"],
        token=environ.get("VOXLIVE_TOKEN", ""), command="voxlive " + shlex.join(argv),
    )  # fmt: skip


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``voxlive bench`` in the CLI's subcommands (``sub``: ``add_subparsers()``'s result)."""
    bench: argparse.ArgumentParser = sub.add_parser(
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
        "--conversation",
        type=int,
        metavar="MS",
        help="also run conversation streams beside the continuous ones, against each server: "
        "each recording followed by MS of quiet room noise (e.g. 5000); with --find-capacity "
        "prints conversation capacity / continuous capacity",
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
    add_arguments(bench, "when bench starts the server: {}")
    return bench

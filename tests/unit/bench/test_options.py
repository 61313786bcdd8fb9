"""``voxlive bench``'s options (bench/options.py): built once, frozen, with the server settings
they were given; bad ones refused naming the flag and the value."""

from __future__ import annotations

import dataclasses

import pytest

from tests.helpers import bench_options
from voxlive import cli


# ---- options and plan ------------------------------------------------------------------------
def test_options_are_built_once_with_the_server_settings_they_were_given() -> None:
    o = bench_options("--streams", "3", "--max-batch", "4", "--compare", "--max-batch 1")
    assert (o.streams, o.audio, o.compare, o.token) == (3, ("a.wav",), ("--max-batch 1",), "s3cret")
    assert o.settings.max_batch == 4 and o.server_flags == ("--max-batch", "4")
    assert (
        o.command
        == "voxlive bench --audio a.wav --streams 3 --max-batch 4 --compare '--max-batch 1'"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.streams = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "ws://h/audio", "--at-ceiling", "0.8"],
         "bench --at-ceiling: expected a ceiling to measure (no --url, no --no-ceiling), got 0.8"),
        (["--seconds", "2", "--warmup-s", "2"], "bench --warmup-s: expected 0..--seconds (2), got 2.0"),
        (["--times", "2"], "bench --times: expected --at-ceiling with it, got [2.0]"),
        (["--streams", "0"], "bench --streams: expected >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_naming_the_flag_and_the_value(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--audio", "a.wav", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"voxlive: bad setting: {message}"

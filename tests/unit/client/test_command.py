"""``voxlive stream``'s lines for people and its refusal of bad flags."""

from __future__ import annotations

import pytest

from voxlive.client.command import line, main
from voxlive.client.tally import Summary


def test_lines_for_people() -> None:
    summary = Summary(ok=True, windows=10, answered=9, shed=1, resumes=1).event()
    assert line(summary) == (
        "done: 10 windows: 9 answered, 0 failed, 1 shed, 0 lost; 1 resumes, 0 refusals"
    )
    failed = Summary(failure="gave up reconnecting: closed 1006").event()
    assert line(failed) is not None and line(failed).startswith("FAILED: gave up")  # type: ignore[union-attr]
    assert line({"type": "resumed", "url": "ws://b/audio", "stream_id": "s", "same_stream": True,
                 "replay_from": 0, "outage_ms": 120.4}) == (
        "resumed on ws://b/audio after 120 ms: the same stream")  # fmt: skip
    assert line({"type": "ack", "samples": 0, "seq": 0, "token": "t"}) is None
    assert line({"type": "pace", "hop_ms": 1000, "normal_hop_ms": 500, "reason": "busy"}) == (
        "a window every 1000 ms from here on: the server is busy")  # fmt: skip
    assert line({"type": "pace", "hop_ms": 500, "normal_hop_ms": 500, "reason": "normal"}) == (
        "a window every 500 ms from here on: back to normal")  # fmt: skip


def test_bad_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x.wav", "--url", "ws://h/audio", "--max-replay-ms", "0"]) == 2
    assert "max_replay_ms: expected > 0 ms, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["x.wav", "--url", "ws://h/audio", "--realtime", "--lossless"])


def test_every_flag_is_in_the_readme() -> None:
    import argparse
    from pathlib import Path

    from voxlive.client.command import add_parser

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = [o for a in sub.choices["stream"]._actions for o in a.option_strings if o != "-h"]
    assert [f for f in flags if f != "--help" and f"| `{f}" not in readme] == []


def test_a_url_that_is_not_a_websocket_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x.wav", "--url", "http://h:8000/audio"]) == 2
    assert (
        "--url: expected ws://HOST:PORT/audio, got http://h:8000/audio" in capsys.readouterr().err
    )


def test_a_new_streams_times_are_shifted_to_the_files() -> None:
    from voxlive.protocol import messages as m

    seg = dict(m.segment(label="male", start_ms=0, end_ms=1500, confidence=0.9, windows=2))
    assert line(seg, offset_ms=2_000) == "segment 0:02.0–0:03.5 male 0.90 (2 windows)"

"""The server's messages (protocol/messages.py): compact JSON that refuses NaN, fields
rounded as documented, and the golden messages in spec/vectors built exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import golden_messages
from voxlive.protocol import messages


# ---- server messages: JSON and rounding ------------------------------------------------------
def test_messages_are_compact_json_and_refuse_nan() -> None:
    assert messages.encode({"type": "x", "a": [1, 2]}) == '{"type":"x","a":[1,2]}'
    with pytest.raises(ValueError):
        messages.encode({"type": "x", "v": float("nan")})


def test_result_fields_are_rounded_to_microseconds_and_scores_to_six_places() -> None:
    r = messages.result(seq=3, start_ms=1.23456, end_ms=2.34567, label="a", confidence=0.1234567,
                        scores={"a": 0.1234567, "b": 0.87654321}, smoothed="a", gated=False,
                        latency_ms=5.55555, dropped_ms=7.77777)  # fmt: skip
    assert r == {
        "type": "result", "seq": 3, "start_ms": 1.235, "end_ms": 2.346, "label": "a",
        "class": "a", "confidence": 0.123457, "scores": {"a": 0.123457, "b": 0.876543},
        "smoothed": "a", "gated": False, "latency_ms": 5.556, "dropped_ms": 7.778,
    }  # fmt: skip


def test_error_end_and_ready_fields() -> None:
    assert messages.error("c", "m", seq=0, start_ms=1.23456, end_ms=0.0004) == {
        "type": "error", "code": "c", "message": "m", "seq": 0, "start_ms": 1.235, "end_ms": 0.0,
    }  # fmt: skip
    assert messages.error("c", "m") == {"type": "error", "code": "c", "message": "m"}
    end = messages.end(stream_id="s", duration_ms=1.23456, windows=1, results=1, gated=0,
                       failed=0, dropped_windows=0, dropped_ms=2.34567)  # fmt: skip
    assert (end["duration_ms"], end["dropped_ms"]) == (1.235, 2.346)
    ready = messages.ready(stream_id="s", model="m", backend="b", labels=("x",), fallback=None,
                           window_ms=1, hop_ms=1, sample_rate=1, model_sample_rate=1,
                           smoothing=1)  # fmt: skip
    assert ready["resumed"] is False and ready["labels"] == ["x"]


def test_segment_and_error_times_are_rounded_to_microseconds() -> None:
    seg = messages.segment(label="a", start_ms=1.23456, end_ms=2.34567, confidence=0.5, windows=2)
    assert (seg["start_ms"], seg["end_ms"]) == (1.235, 2.346)
    assert messages.error("c", "m", end_ms=2.34567)["end_ms"] == 2.346


def test_a_pace_is_busy_while_wider_than_the_normal_hop() -> None:
    assert messages.pace(hop_ms=2000, normal_hop_ms=500)["reason"] == "busy"
    assert messages.pace(hop_ms=500, normal_hop_ms=500) == {
        "type": "pace", "hop_ms": 500, "normal_hop_ms": 500, "reason": "normal",
    }  # fmt: skip


def test_end_counts_no_dropped_results_or_errors_unless_told() -> None:
    end = messages.end(stream_id="s", duration_ms=1, windows=1, results=1, gated=0, failed=0,
                       dropped_windows=0, dropped_ms=0)  # fmt: skip
    assert (end["dropped_results"], end["dropped_errors"]) == (0, 0)


# ---- the golden server messages (spec/vectors) ---------------------------------------------------
def _build(msg: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in msg.items() if k not in ("type", "class")}
    kind = msg["type"]
    if kind == "error":
        return dict(messages.error(fields.pop("code"), fields.pop("message"), **fields))
    builder = {
        "ready": messages.ready, "result": messages.result, "segment": messages.segment,
        "end": messages.end, "ack": messages.ack,
        "moving": lambda reason, **kw: messages.moving(**kw),
        "pace": lambda reason, **kw: messages.pace(**kw),  # the reason follows from the hops
    }[kind]  # fmt: skip
    return dict(builder(**fields))


@pytest.mark.parametrize("vector", golden_messages("server"), ids=lambda v: v["name"])
def test_server_messages_match_the_builders(vector: dict[str, Any]) -> None:
    built = _build(vector["message"])
    assert built == vector["message"]
    assert json.loads(messages.encode(built)) == vector["message"]

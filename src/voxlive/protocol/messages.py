"""Server → client message builders and the JSON encoding. Pure; golden examples in spec/vectors.

Every message is a JSON object with a ``type``. The builders are the only place message shapes are
defined, so the documentation (docs/protocol.md), the golden vectors and the browser's types can be
checked against them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict


class ReadyMessage(TypedDict):
    type: Literal["ready"]
    stream_id: str
    model: str
    backend: str
    labels: list[str]
    fallback: str | None
    window_ms: int
    hop_ms: int
    sample_rate: int
    model_sample_rate: int
    smoothing: int
    resumed: bool
    replay_from: NotRequired[int]  # a token resume: input frames to replay audio from


class AckMessage(TypedDict):
    """Audio before ``samples`` (input sample frames since the stream began) is answered up to
    ``seq``; ``token`` resumes the stream from there on any front sharing the secret."""

    type: Literal["ack"]
    samples: int
    seq: int
    token: str


class MovingMessage(TypedDict):
    """This front is shutting down (SIGTERM): the ``ack`` just before it is the stream's newest
    token; the connection closes with 1012 next, and the client resumes on another front at once
    (after ``retry_after_ms``)."""

    type: Literal["moving"]
    reason: Literal["shutdown"]
    retry_after_ms: int


PaceReason = Literal["busy", "normal"]


class PaceMessage(TypedDict):
    """A live stream's windows are cut ``hop_ms`` apart from the next result on: wider than
    ``normal_hop_ms`` (``ready``'s) while the server is busy (fewer results, each still fresh),
    and back to it (``reason`` ``normal``) when it is not. Sent in window order, before the
    first result of a window cut at the new hop."""

    type: Literal["pace"]
    hop_ms: int
    normal_hop_ms: int
    reason: PaceReason


# Functional syntax: "class" (it repeats "label" for the reference client) is a Python keyword.
ResultMessage = TypedDict(
    "ResultMessage",
    {
        "type": Literal["result"],
        "seq": int,
        "start_ms": float,
        "end_ms": float,
        "label": str,
        "class": str,
        "confidence": float,
        "scores": dict[str, float],
        "smoothed": str,
        "gated": bool,
        "latency_ms": float,
        "dropped_ms": float,
    },
)


class ErrorMessage(TypedDict, total=False):
    type: Literal["error"]
    code: str
    message: str
    reason: str  # resume_failed: why (see docs/protocol.md)
    seq: int
    start_ms: float
    end_ms: float
    retry_after_ms: int  # a refused stream (close 1013): try again after this long


class EndMessage(TypedDict):
    type: Literal["end"]
    stream_id: str
    duration_ms: float
    windows: int
    results: int
    gated: int
    failed: int
    dropped_windows: int
    dropped_ms: float
    dropped_results: int
    dropped_errors: int


class SegmentMessage(TypedDict):
    """A closed run of one smoothed label: sent when the smoothed label changes and at the end."""

    type: Literal["segment"]
    label: str
    start_ms: float
    end_ms: float
    confidence: float
    windows: int


# What the server sends for a stream's windows, in seq order.
WindowMessage = ResultMessage | ErrorMessage
# A stream's outbox: its window messages in seq order, segments between them (they carry no seq).
StreamMessage = ResultMessage | ErrorMessage | SegmentMessage
ServerMessage = (
    ReadyMessage
    | ResultMessage
    | ErrorMessage
    | SegmentMessage
    | EndMessage
    | AckMessage
    | MovingMessage
    | PaceMessage
)


def ready(
    *,
    stream_id: str,
    model: str,
    backend: str,
    labels: Sequence[str],
    fallback: str | None,
    window_ms: int,
    hop_ms: int,
    sample_rate: int,
    model_sample_rate: int,
    smoothing: int,
    resumed: bool = False,
) -> ReadyMessage:
    return {
        "type": "ready",
        "stream_id": stream_id,
        "model": model,
        "backend": backend,
        "labels": list(labels),
        "fallback": fallback,
        "window_ms": window_ms,
        "hop_ms": hop_ms,
        "sample_rate": sample_rate,
        "model_sample_rate": model_sample_rate,
        "smoothing": smoothing,
        "resumed": resumed,
    }


def result(
    *,
    seq: int,
    start_ms: float,
    end_ms: float,
    label: str,
    confidence: float,
    scores: Mapping[str, float],
    smoothed: str,
    gated: bool,
    latency_ms: float,
    dropped_ms: float,
) -> ResultMessage:
    """A classified window. ``class`` repeats ``label`` for the reference client."""
    return {
        "type": "result",
        "seq": seq,
        "start_ms": round(start_ms, 3),
        "end_ms": round(end_ms, 3),
        "label": label,
        "class": label,
        "confidence": round(confidence, 6),
        "scores": {k: round(float(v), 6) for k, v in scores.items()},
        "smoothed": smoothed,
        "gated": gated,
        "latency_ms": round(latency_ms, 3),
        "dropped_ms": round(dropped_ms, 3),
    }


def error(
    code: str,
    message: str,
    *,
    seq: int | None = None,
    start_ms: float | None = None,
    end_ms: float | None = None,
    retry_after_ms: int | None = None,
    reason: str | None = None,
) -> ErrorMessage:
    msg: ErrorMessage = {"type": "error", "code": code, "message": message}
    if retry_after_ms is not None:
        msg["retry_after_ms"] = retry_after_ms
    if reason is not None:
        msg["reason"] = reason
    if seq is not None:
        msg["seq"] = seq
    if start_ms is not None:
        msg["start_ms"] = round(start_ms, 3)
    if end_ms is not None:
        msg["end_ms"] = round(end_ms, 3)
    return msg


def segment(
    *, label: str, start_ms: float, end_ms: float, confidence: float, windows: int
) -> SegmentMessage:
    """``label`` held from ``start_ms`` to ``end_ms`` (stream audio time) over ``windows``
    windows; ``confidence``: the mean probability of ``label`` over those windows."""
    return {
        "type": "segment",
        "label": label,
        "start_ms": round(start_ms, 3),
        "end_ms": round(end_ms, 3),
        "confidence": round(confidence, 6),
        "windows": windows,
    }


def end(
    *,
    stream_id: str,
    duration_ms: float,
    windows: int,
    results: int,
    gated: int,
    failed: int,
    dropped_windows: int,
    dropped_ms: float,
    dropped_results: int = 0,
    dropped_errors: int = 0,
) -> EndMessage:
    return {
        "type": "end",
        "stream_id": stream_id,
        "duration_ms": round(duration_ms, 3),
        "windows": windows,
        "results": results,
        "gated": gated,
        "failed": failed,
        "dropped_windows": dropped_windows,
        "dropped_ms": round(dropped_ms, 3),
        "dropped_results": dropped_results,
        "dropped_errors": dropped_errors,
    }


def ack(*, samples: int, seq: int, token: str) -> AckMessage:
    return {"type": "ack", "samples": samples, "seq": seq, "token": token}


def moving(*, retry_after_ms: int = 0) -> MovingMessage:
    return {"type": "moving", "reason": "shutdown", "retry_after_ms": retry_after_ms}


def pace(*, hop_ms: int, normal_hop_ms: int) -> PaceMessage:
    """Windows ``hop_ms`` apart from now on; ``reason`` is ``busy`` while that is wider than
    ``normal_hop_ms``, else ``normal``."""
    reason: PaceReason = "busy" if hop_ms > normal_hop_ms else "normal"
    return {"type": "pace", "hop_ms": hop_ms, "normal_hop_ms": normal_hop_ms, "reason": reason}


def encode(message: Mapping[str, Any]) -> str:
    """Serialise a message as compact JSON text."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)

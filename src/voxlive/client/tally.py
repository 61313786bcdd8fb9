"""What a resuming client knows about its stream, and the summary it ends with. Pure, no I/O.

:class:`Tally` reads every server message once: it keeps the newest resume token, the last
``seq`` received, and says which messages are new (a resume may bring a result or a segment
again; each is passed on once). Its :meth:`Tally.summary` counts the windows answered, shed
(dropped by the server, and said so) and lost (never answered, and not accounted for by the
server: audio lost in a failed resume, or a ``seq`` never received).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from voxlive.protocol.messages import ServerMessage


class ResumedEvent(TypedDict):
    """The client's own message: the stream goes on on ``url`` after ``outage_ms`` without a
    connection (``same_stream`` false: the resume was refused and a new stream started)."""

    type: Literal["resumed"]
    url: str
    stream_id: str
    same_stream: bool
    replay_from: int  # the input frame the replay started at
    outage_ms: float  # from noticing the drop to this stream's ready
    offset_ms: float  # where this stream's time 0 lies in the source (0 for the same stream)


class ReconnectingEvent(TypedDict):
    """The client's own message: the connection to ``url`` is gone (``reason``); the next try
    is in ``delay_ms``."""

    type: Literal["reconnecting"]
    url: str
    reason: str
    attempt: int
    delay_ms: float


class SummaryEvent(TypedDict):
    """The last message of :func:`voxlive.client.stream`: see :class:`Summary`."""

    type: Literal["summary"]
    ok: bool
    failure: str | None
    windows: int
    answered: int
    failed: int
    shed: int
    lost: int
    resumes: int
    refusals: int
    duration_ms: float


ClientMessage = ServerMessage | ResumedEvent | ReconnectingEvent | SummaryEvent


@dataclass
class Summary:
    """How a stream went. ``windows = answered + failed + shed + lost`` always holds:
    ``answered``: results received (gated windows included), ``failed``: window errors,
    ``shed``: windows the server dropped or shed and counted (its ``end``), ``lost``: windows
    never answered that no ``end`` accounts for. ``ok``: the stream ended with ``end`` after the
    client's ``stop``; else ``failure`` says why."""

    ok: bool = False
    failure: str | None = None
    windows: int = 0
    answered: int = 0
    failed: int = 0
    shed: int = 0
    lost: int = 0
    resumes: int = 0
    refusals: int = 0
    duration_ms: float = 0.0

    def event(self) -> SummaryEvent:
        return {"type": "summary", **asdict(self)}  # type: ignore[typeddict-item]


@dataclass
class _Epoch:
    """One server stream (a refused resume starts another)."""

    stream_id: str
    seqs: set[int] = field(default_factory=set)
    answered: int = 0
    failed: int = 0
    end: dict[str, Any] | None = None
    hop_ms: float = 500.0
    dropped_ms: float = 0.0
    segment_end_ms: float = -math.inf


class Tally:
    """Reads the server's messages for one client stream; see the module docstring."""

    def __init__(self) -> None:
        self.token: str | None = None  # the newest ack's resume token
        self.acked_samples = 0  # the newest ack's samples
        self.epochs: list[_Epoch] = []
        self.lost_windows = 0  # estimated from the audio a failed resume could not replay
        self.resumes = 0
        self.refusals = 0
        self.up = False  # a ready came on the current connection
        self.fresh_restart = False  # the next stream starts over at frame 0 (no token yet)

    @property
    def stream_id(self) -> str | None:
        return self.epochs[-1].stream_id if self.epochs else None

    @property
    def last_seq(self) -> int | None:
        """The highest ``seq`` received on the current stream (``None``: none yet)."""
        return max(self.epochs[-1].seqs) if self.epochs and self.epochs[-1].seqs else None

    @property
    def ended(self) -> bool:
        return bool(self.epochs) and self.epochs[-1].end is not None

    def resume_failed(self, lost_frames: int, rate: int) -> None:
        """A resume was refused: a new stream starts; the audio between the old stream's ack and
        where the replay starts (``lost_frames``) is lost, counted in hops."""
        self.token = None
        if self.epochs:
            hop = self.epochs[-1].hop_ms
            self.lost_windows += math.ceil(lost_frames * 1000 / rate / hop) if lost_frames else 0

    def read(self, msg: dict[str, Any]) -> bool:
        """Take ``msg`` into account; true when it is new to whoever reads the stream (acks and
        repeats are not)."""
        kind = msg.get("type")
        if kind == "ready":
            if not self.epochs or self.epochs[-1].stream_id != msg["stream_id"]:
                epoch = _Epoch(msg["stream_id"], hop_ms=float(msg["hop_ms"]))
                if self.fresh_restart and self.epochs and self.epochs[-1].end is None:
                    # the same audio from frame 0 again: the same windows, the same seqs
                    old = self.epochs.pop()
                    epoch.seqs, epoch.answered, epoch.failed = old.seqs, old.answered, old.failed
                    epoch.segment_end_ms = old.segment_end_ms
                self.epochs.append(epoch)
            return True
        if kind == "ack":
            self.token, self.acked_samples = msg["token"], int(msg["samples"])
            return False
        if not self.epochs:
            return True  # an error before ready (a refusal)
        epoch = self.epochs[-1]
        if kind in ("result", "error") and "seq" in msg:
            if msg["seq"] in epoch.seqs:
                return False
            epoch.seqs.add(msg["seq"])
            if kind == "result":
                epoch.answered += 1
                epoch.dropped_ms = max(epoch.dropped_ms, float(msg["dropped_ms"]))
            else:
                epoch.failed += 1
            return True
        if kind == "segment":
            if msg["end_ms"] <= epoch.segment_end_ms:
                return False  # closed again by a window classified again after a resume
            epoch.segment_end_ms = msg["end_ms"]
            return True
        if kind == "end":
            epoch.end = msg
        return True

    def summary(self, ok: bool, failure: str | None = None) -> Summary:
        out = Summary(ok=ok, failure=failure, resumes=self.resumes, refusals=self.refusals)
        for epoch in self.epochs:
            out.answered += epoch.answered
            out.failed += epoch.failed
            if epoch.end is not None:
                end = epoch.end
                out.windows += end["windows"]
                out.shed += end["dropped_windows"] + end["dropped_results"]
                out.duration_ms += end["duration_ms"]
            else:  # no end: what the results said, the windows after the last one unknown
                shed = round(epoch.dropped_ms / epoch.hop_ms)  # shed windows take no seq
                out.shed += shed
                out.windows += max(max(epoch.seqs, default=-1) + 1, len(epoch.seqs)) + shed
        out.windows += self.lost_windows
        out.lost = out.windows - out.answered - out.failed - out.shed
        return out

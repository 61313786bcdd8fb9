"""The protocol's message order, per stream: client frames in, typed events out. No I/O.

States: ``awaiting_start`` → ``streaming`` → ``stopped``. A binary frame in ``awaiting_start``
starts the stream implicitly with the default (or query-parameter) format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from voxlive.errors import FormatError, FrameError, MessageError, StateError
from voxlive.protocol.frames import (
    AudioFormat,
    decode_pcm,
    decode_wav,
    is_wav,
    make_format,
    shown,
)

# Control messages are a few hundred bytes; a larger text frame is refused before it is parsed.
MAX_TEXT_BYTES = 4096

START_KEYS = frozenset(
    {"type", "sample_rate", "encoding", "channels", "token", "stream_id", "last_seq", "lossless",
     "acks", "resume_token", "replay_from"}
)  # fmt: skip
FLAGS = {"true": True, "1": True, "false": False, "0": False}  # boolean query parameters


class OrderState(Enum):
    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Started:
    """The stream's format is fixed; the server answers with ``ready``."""

    format: AudioFormat
    token: str | None = None
    stream_id: str | None = None
    last_seq: int | None = None  # when resuming: the last seq the client received
    lossless: bool = False  # back-pressure instead of shedding stale windows (files)
    acks: bool = False  # send ``ack`` messages with resume tokens (any-front resume)
    resume_token: str | None = None  # resume on any front from this token's checkpoint
    replay_from: int | None = None  # input frame of the first audio sent (default: the ack's)


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio: float32 samples of shape (frames, channels) at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """The client sent ``stop``: flush, send ``end``, close 1000."""


Event = Started | Audio | Stopped


def parse_start(obj: dict[str, Any], default: AudioFormat) -> Started:
    """Validate a ``start`` message (or query parameters of the same keys)."""
    unknown = sorted(set(obj) - START_KEYS)
    if unknown:
        raise FormatError(f"start: expected keys among {sorted(START_KEYS)}, got unknown {unknown}")
    fmt = make_format(
        obj.get("sample_rate", default.sample_rate),
        obj.get("encoding", default.encoding),
        obj.get("channels", default.channels),
    )
    token, stream_id, resume = obj.get("token"), obj.get("stream_id"), obj.get("resume_token")
    for key, value in (("token", token), ("stream_id", stream_id), ("resume_token", resume)):
        if value is not None and not isinstance(value, str):
            raise FormatError(f"start: expected {key} to be a string, got {type(value).__name__}")
    last_seq = obj.get("last_seq")
    if last_seq is not None and (
        isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < -1
    ):
        raise FormatError(f"start: expected last_seq to be an integer >= -1, got {shown(last_seq)}")
    replay_from = obj.get("replay_from")
    if replay_from is not None and (
        isinstance(replay_from, bool) or not isinstance(replay_from, int) or replay_from < 0
    ):
        raise FormatError(f"start: expected replay_from to be an integer >= 0, got "
                          f"{shown(replay_from)}")  # fmt: skip
    lossless, acks = obj.get("lossless", False), obj.get("acks", False)
    for key, flag in (("lossless", lossless), ("acks", acks)):
        if not isinstance(flag, bool):
            raise FormatError(f"start: expected {key} to be true or false, got {shown(flag)}")
    return Started(fmt, token, stream_id, last_seq, lossless, acks or resume is not None, resume,
                   replay_from)  # fmt: skip


def parse_query(params: dict[str, str], default: AudioFormat) -> Started | None:
    """Read start keys from URL query parameters; ``None`` when none are given."""
    keys = {k: v for k, v in params.items() if k in START_KEYS and k != "type"}
    if not keys:
        return None
    obj: dict[str, Any] = dict(keys)
    for key in ("sample_rate", "channels", "last_seq", "replay_from"):
        if key in obj:
            try:
                obj[key] = int(obj[key])
            except ValueError:
                raise FormatError(f"{key}: expected an integer, got {shown(obj[key])}") from None
    for key in ("lossless", "acks"):
        if key in obj:
            if obj[key] not in FLAGS:
                raise FormatError(f"{key}: expected true or false, got {shown(obj[key])}")
            obj[key] = FLAGS[obj[key]]
    return parse_start(obj, default)


class MessageOrder:
    """Turns client frames into events, enforcing the message order.

    ``default`` is the format used when audio arrives without a ``start``; ``preset`` is a start
    already given through query parameters (then a later ``start`` message is an error).
    """

    def __init__(self, default: AudioFormat, preset: Started | None = None) -> None:
        self.state = OrderState.AWAITING_START
        self.format = default
        # The input rate of the stream's audio, fixed by its first frame (WAV frames carry their
        # own): a stream that switched rates would restart the resampler on every frame.
        self.audio_rate: int | None = None
        if preset is not None:
            self.state = OrderState.STREAMING
            self.format = preset.format

    def receive_text(self, text: str) -> list[Event]:
        """Handle a text frame. Raises a ClientError subclass on bad input."""
        # Characters <= bytes: only a short text is encoded to count its bytes exactly.
        size = len(text) if len(text) > MAX_TEXT_BYTES else len(text.encode("utf-8", "replace"))
        if size > MAX_TEXT_BYTES:
            raise MessageError(
                f"expected a control message of at most {MAX_TEXT_BYTES} bytes, "
                f"got at least {size} bytes",
                code="message_too_large",
            )
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):  # JSONDecodeError, or an integer of > 4300 digits
            raise MessageError(
                f"expected a JSON object, got text that is not JSON ({len(text)} chars)",
                code="bad_json",
            ) from None
        if not isinstance(obj, dict):
            raise MessageError(f"expected a JSON object, got {type(obj).__name__}")
        kind = obj.get("type")
        if kind == "start":
            if self.state is not OrderState.AWAITING_START:
                raise StateError(
                    f"expected audio frames or stop while {self.state.value}, got a second start"
                )
            started = parse_start(obj, self.format)
            self.format = started.format
            self.state = OrderState.STREAMING
            return [started]
        if kind == "stop":
            if self.state is OrderState.STOPPED:
                raise StateError("expected nothing after stop, got another stop")
            events: list[Event] = []
            if self.state is OrderState.AWAITING_START:
                events.append(Started(self.format))
            self.state = OrderState.STOPPED
            events.append(Stopped())
            return events
        if not isinstance(kind, str):
            raise MessageError(f"expected a string 'type' field, got {shown(kind)}")
        raise MessageError(
            f"expected type 'start' or 'stop', got {kind[:40]!r}", code="unknown_type"
        )

    def receive_bytes(self, data: bytes) -> list[Event]:
        """Handle a binary frame: raw PCM in the stream's format, or a complete WAV file."""
        if self.state is OrderState.STOPPED:
            raise StateError("expected nothing after stop, got an audio frame")
        # Decoded before any state changes: a bad first frame spoils itself, not the start.
        audio = decode_frame(data, self.format)
        if self.audio_rate is None:
            self.audio_rate = audio.sample_rate
        elif audio.sample_rate != self.audio_rate:
            raise FrameError(
                f"expected audio at the stream's {self.audio_rate} Hz, got a WAV frame at "
                f"{audio.sample_rate} Hz (start a new stream to change rates)",
                code="rate_changed",
            )
        events: list[Event] = []
        if self.state is OrderState.AWAITING_START:
            self.state = OrderState.STREAMING
            events.append(Started(self.format))
        events.append(audio)
        return events


def decode_frame(data: bytes, fmt: AudioFormat) -> Audio:
    """Decode one binary frame. WAV frames describe themselves; anything else is raw PCM."""
    if is_wav(data):
        try:
            samples, rate = decode_wav(data)
        except FormatError as exc:  # a bad WAV frame spoils that frame, not the stream
            raise FrameError(exc.message, code="unsupported_format") from None
        return Audio(samples, rate)
    return Audio(decode_pcm(data, fmt), fmt.sample_rate)

"""Resume tokens: where a stream stands, signed so that any front sharing the secret can rebuild it.

Pure: no I/O, no clock (``now_ms`` is handed in), no randomness (the caller picks the nonce).

A token is ``v1.<payload>.<mac>``: the payload is compact JSON in unpadded base64url, the MAC is
HMAC-SHA256 (:mod:`hmac`, :mod:`hashlib`) with the fronts' shared secret over ``v1.<payload>``,
compared in constant time (:func:`hmac.compare_digest`). The payload names the stream, its wire
format, the window grid it was cut on (model rate, window and hop in samples: a front with
another model cannot continue it), a :class:`Checkpoint` (where its audio and results stand and
the smoothing and segment state needed to continue them), an expiry (Unix ms) and a nonce.

The token is not encrypted: it carries nothing the client did not already receive (its own
results' labels and counts). It is a bearer credential for *continuing* one stream: whoever
holds it can replay audio into a new stream with that id and those counters; it grants no access
to anything a front holds. Limits: at most :data:`MAX_TOKEN_CHARS` characters, checked before
any decoding; at most :data:`MAX_RECENT` smoothing labels of at most :data:`MAX_LABEL_CHARS`
characters. Verification raises only :class:`TokenError`, with a ``reason`` among
:data:`TokenReason`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from voxlive.errors import ClientError, FormatError
from voxlive.protocol.frames import AudioFormat, make_format

VERSION = "v1"
MAX_TOKEN_CHARS = 2048
MAX_RECENT = 64  # smoothing labels kept (the --smoothing window; settings allow fewer)
MAX_LABEL_CHARS = 64
NONCE_CHARS = 32  # 16 random bytes, hex

TokenReason = Literal["malformed", "forged", "expired"]


class TokenError(ClientError):
    """A resume token that cannot be used: ``reason`` says why (``malformed``: not a token of
    this version; ``forged``: its signature does not match the secret; ``expired``)."""

    code = "resume_failed"

    def __init__(self, reason: TokenReason, message: str) -> None:
        super().__init__(message)
        self.reason: TokenReason = reason


@dataclass(frozen=True, slots=True)
class OpenSegment:
    """The segment still open at the checkpoint (see :mod:`voxlive.pipeline.segments`)."""

    label: str
    start_ms: float
    end_ms: float
    confidence_sum: float
    windows: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a stream stands once every window before ``position`` has been answered and its
    message handed to the client. Counters cover exactly those windows, so a front that goes on
    from here and adds its own keeps ``end``'s sum: windows = results + gated + failed +
    dropped_windows + dropped_results."""

    position: int  # stream time, samples at the model rate: where the next window starts
    input_offset: int  # input sample frames the client sent before ``position``: replay from here
    next_seq: int  # seq of the next message
    windows: int = 0
    classified: int = 0
    gated: int = 0
    failed: int = 0
    dropped_windows: int = 0
    unsent_dropped: int = 0
    recent: tuple[str, ...] = ()  # the smoother's last raw labels, oldest first
    smoothed: str | None = None  # the smoother's current label
    segment: OpenSegment | None = None


@dataclass(frozen=True, slots=True)
class ResumeToken:
    stream_id: str
    format: AudioFormat  # the stream's start (or query) format
    input_rate: int  # Hz of the audio received (WAV frames fix their own rate)
    lossless: bool
    grid: tuple[int, int, int]  # model sample rate, window and hop in samples
    checkpoint: Checkpoint
    expires_ms: int  # Unix ms
    nonce: str  # hex; unique per token issued


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def sign(token: ResumeToken, secret: bytes) -> str:
    """The token's text: ``v1.<payload>.<mac>``."""
    cp, fmt = token.checkpoint, token.format
    seg = cp.segment
    payload = {
        "id": token.stream_id,
        "fmt": [fmt.sample_rate, fmt.encoding, fmt.channels, token.input_rate, token.lossless],
        "grid": list(token.grid),
        "at": [cp.position, cp.input_offset, cp.next_seq],
        "n": [
            cp.windows,
            cp.classified,
            cp.gated,
            cp.failed,
            cp.dropped_windows,
            cp.unsent_dropped,
        ],
        "sm": [list(cp.recent), cp.smoothed],
        "seg": None
        if seg is None
        else [seg.label, seg.start_ms, seg.end_ms, seg.confidence_sum, seg.windows],
        "exp": token.expires_ms,
        "nonce": token.nonce,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    signed = f"{VERSION}.{body}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


def verify(text: object, secret: bytes, now_ms: int) -> ResumeToken:
    """The token ``text`` stands for, once its signature and expiry are checked; raises
    :class:`TokenError` for anything else (never another exception)."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TOKEN_CHARS or not text.isascii():
        size = len(text) if isinstance(text, str) else 0
        raise TokenError(
            "malformed", f"expected a resume token of 1..{MAX_TOKEN_CHARS} ASCII characters, "
            f"got {type(text).__name__} of {size}"
        )  # fmt: skip
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TokenError("malformed", f"expected a token '{VERSION}.<payload>.<mac>'")
    try:
        mac = _unb64(parts[2])
    except (ValueError, binascii.Error):
        raise TokenError("malformed", "expected a base64url signature") from None
    if not hmac.compare_digest(mac, _mac(secret, f"{parts[0]}.{parts[1]}")):
        raise TokenError("forged", "the token's signature does not match this cluster's secret")
    try:
        token = _parse(json.loads(_unb64(parts[1])))
    except (ValueError, TypeError, KeyError, IndexError, binascii.Error, FormatError):
        # Signed by a front with the secret, yet unreadable here: another version of voxlive.
        raise TokenError(
            "malformed", "a signed token whose payload this front cannot read"
        ) from None
    if token.expires_ms <= now_ms:
        ago_s = (now_ms - token.expires_ms) / 1000
        raise TokenError(
            "expired", f"expected an unexpired token, got one expired {ago_s:.1f} s ago"
        )
    return token


def _int(value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected an integer >= {low}, got {value!r}")
    return value


def _label(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_LABEL_CHARS:
        raise ValueError("expected a label")
    return value


def _parse(obj: Any) -> ResumeToken:
    rate, encoding, channels, input_rate, lossless = obj["fmt"]
    position, input_offset, next_seq = (_int(v) for v in obj["at"])
    counts = [_int(v) for v in obj["n"]]
    recent, smoothed = obj["sm"]
    if not isinstance(recent, list) or len(recent) > MAX_RECENT or len(counts) != 6:
        raise ValueError("expected smoothing state and six counters")
    seg = obj["seg"]
    segment = None
    if seg is not None:
        label, start_ms, end_ms, conf, windows = seg
        if not all(isinstance(v, int | float) for v in (start_ms, end_ms, conf)):
            raise ValueError("expected a segment's times and confidence as numbers")
        segment = OpenSegment(_label(label), float(start_ms), float(end_ms), float(conf),
                              _int(windows, 1))  # fmt: skip
    grid = tuple(_int(v, 1) for v in obj["grid"])
    stream_id, nonce = obj["id"], obj["nonce"]
    if not isinstance(stream_id, str) or not isinstance(nonce, str) or len(grid) != 3:
        raise ValueError("expected a stream id, a nonce and a grid")
    if not isinstance(lossless, bool):
        raise ValueError("expected lossless to be a boolean")
    windows, classified, gated, failed, dropped, unsent = counts
    checkpoint = Checkpoint(
        position, input_offset, next_seq, windows, classified, gated, failed, dropped, unsent,
        recent=tuple(_label(v) for v in recent),
        smoothed=None if smoothed is None else _label(smoothed), segment=segment,
    )  # fmt: skip
    return ResumeToken(
        stream_id=stream_id, format=make_format(rate, encoding, channels),
        input_rate=_int(input_rate, 1), lossless=lossless, grid=(grid[0], grid[1], grid[2]),
        checkpoint=checkpoint, expires_ms=_int(obj["exp"]), nonce=nonce,
    )  # fmt: skip

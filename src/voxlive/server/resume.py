"""Resume on any front: acks that carry signed tokens, and the rules for redeeming them.

A stream whose client asked for acks (``start`` key ``acks``) gets an ``ack`` after every batch
of results its sender writes: the input frame its client may replay from, the last ``seq``
covered, and a token (:mod:`voxlive.protocol.resume_token`) signed with the secret the fronts
share (``cluster_secret``; random per process when unset, so tokens then resume on their own
front only). A client whose connection drops reconnects to any front with the newest token and
replays its audio from the ack's ``samples``.

Redeeming a token, in this order (each refusal is a ``resume_failed`` with its ``reason``; the
connection then starts a new stream, and nothing else is touched):

1. ``malformed`` / ``forged`` / ``expired``: the text, the HMAC, the expiry (``resume_grace_ms``
   after it was issued).
2. ``mismatch``: the ``start`` names another ``stream_id`` than the token (a token lifted from
   another stream's client), or another format, or this front cuts another window grid.
3. ``replayed``: this front already took this token (each token resumes once per front; the
   nonce cache holds :data:`NONCE_CACHE` tokens until they expire, the oldest giving way first,
   and an evicted token is older than every one kept).
4. the stream is detached here: same-front resume (preferred; nothing is rebuilt).
5. the stream is open here on another connection, still streaming, and this is the newest
   token its connection sent: that connection is most likely half-open (its client saw the
   drop, the server not yet), so it hands the stream over and closes, and this is a same-front
   resume. ``live``: any other token of a stream open here (an older copy, or a stream already
   ending): the open stream is left alone.
6. ``busy``: more rebuilds than :data:`REBUILD_RATE_PER_S` a second after a burst of
   ``max_streams`` (a resume storm after a front died): retry after a moment.
7. ``gap``: the client's ``replay_from`` is later than the token's offset (it no longer holds the
   audio in between: those windows cannot be replayed).
8. otherwise a new stream with the token's id is rebuilt from its checkpoint.

A token used on two fronts at once cannot be seen by either (they share nothing but the
secret): each then continues its own copy of the stream for whoever sends it audio. That harms
no other stream, and tokens expire after ``resume_grace_ms``.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from voxlive.pipeline.stream import Stream
from voxlive.protocol import messages
from voxlive.protocol.messages import AckMessage, MovingMessage
from voxlive.protocol.order import MessageOrder, Started
from voxlive.protocol.resume_token import NONCE_CHARS, ResumeToken, TokenError, sign, verify
from voxlive.server.budget import TokenBucket
from voxlive.settings import Settings

NONCE_CACHE = 4096  # tokens remembered as used, per front
REBUILD_RATE_PER_S = 50.0  # any-front rebuilds a second, server-wide, after a burst of max_streams

ResumeReason = Literal[
    "malformed", "forged", "expired", "mismatch", "replayed", "live", "busy", "gap", "unknown"
]


class ResumeRefused(Exception):
    """A resume that cannot be granted: ``reason`` (stable, sent to the client) and a message."""

    def __init__(self, reason: ResumeReason, message: str) -> None:
        super().__init__(message)
        self.reason: ResumeReason = reason
        self.message = message


class Resumes:
    """The front's secret, the tokens it has taken, and the rebuild budget. Event loop only.

    ``now_ms`` (Unix ms) and ``now`` (monotonic seconds) are handed in: tests use a fake clock.
    """

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.cluster_secret.encode("utf-8") or secrets.token_bytes(32)
        self._ttl_ms = max(settings.resume_grace_ms, 1)
        self._seen: OrderedDict[str, int] = OrderedDict()  # nonce → its token's expiry
        self._rebuilds = TokenBucket(REBUILD_RATE_PER_S, settings.max_streams)
        self.newest: dict[str, str] = {}  # stream id → its newest ack's nonce (open streams)

    def ack(self, stream: Stream, order: MessageOrder, now_ms: int) -> AckMessage:
        """An ``ack`` for where ``stream`` stands now (call right after its results were sent);
        ``order``: its connection's, for the format and the rate of the audio received."""
        fmt = order.format
        input_rate = order.audio_rate or fmt.sample_rate
        cp = stream.checkpoint(input_rate)
        cfg = stream.config
        token = ResumeToken(
            stream_id=stream.id, format=fmt, input_rate=input_rate, lossless=stream.lossless,
            grid=(cfg.sample_rate, cfg.window, cfg.hop), checkpoint=cp,
            expires_ms=now_ms + self._ttl_ms, nonce=secrets.token_hex(NONCE_CHARS // 2),
        )  # fmt: skip
        text = sign(token, self._secret)
        self.newest[stream.id] = token.nonce
        return messages.ack(samples=cp.input_offset, seq=cp.next_seq - 1, token=text)

    def after(
        self, stream: Stream, order: MessageOrder, answered: bool, *, moving: bool
    ) -> list[AckMessage | MovingMessage]:
        """What a stream with acks gets after its sender wrote what was ready: an ``ack`` when
        results were among it (``answered``); when the front is shutting down (``moving``) a
        fresh ``ack`` in any case, then ``moving`` (close 1012 follows)."""
        if not (answered or moving):
            return []
        out: list[AckMessage | MovingMessage] = [self.ack(stream, order, int(time.time() * 1000))]
        return [*out, messages.moving()] if moving else out

    def check(self, started: Started, grid: tuple[int, int, int], now_ms: int) -> ResumeToken:
        """Steps 1–3 of the module docstring for ``started.resume_token``; raises
        :class:`ResumeRefused`. Does not take the token (:meth:`take`)."""
        try:
            token = verify(started.resume_token, self._secret, now_ms)
        except TokenError as exc:
            raise ResumeRefused(exc.reason, exc.message) from None
        if started.stream_id and started.stream_id != token.stream_id:
            raise ResumeRefused("mismatch", "expected the token of the stream named by "
                                "stream_id, got another stream's token")  # fmt: skip
        if (started.format, started.lossless, grid) != (token.format, token.lossless, token.grid):
            raise ResumeRefused("mismatch", "expected the token's format and window grid, got "
                                f"{started.format} on grid {grid}")  # fmt: skip
        self._forget(now_ms)
        if token.nonce in self._seen:
            raise ResumeRefused("replayed", "expected a token not used before on this front")
        return token

    def take(self, token: ResumeToken) -> None:
        """Remember ``token`` as used (bounded: the oldest gives way)."""
        self._seen[token.nonce] = token.expires_ms
        while len(self._seen) > NONCE_CACHE:
            self._seen.popitem(last=False)

    def may_rebuild(self, now: float) -> bool:
        """Whether one more any-front rebuild fits the budget now (spends it if so)."""
        return self._rebuilds.grant(now, 1) == 1

    def _forget(self, now_ms: int) -> None:
        while self._seen and next(iter(self._seen.values())) <= now_ms:
            self._seen.popitem(last=False)


@dataclass(slots=True)
class Replay:
    """A connection's side of a token resume: its client replays audio (at ``input_rate``
    Hz) from ``replay_from`` (input frames); the first ``skip`` frames of it the stream already
    has. ``credit_s``: seconds of that replay read ahead of real time (``max_replay_ms``)."""

    skip: int = 0
    replay_from: int | None = None
    credit_s: float = 0.0
    input_rate: int | None = None
    over: bool = False  # the replay went past its credit (reported once)

    def past_credit(self, lossless: bool) -> tuple[str, str] | None:
        """The error to send, the first time the reader of a live stream is held back on a
        replay's account (a lossless stream's pace is ``max_speed``, not the replay's)."""
        if self.credit_s <= 0 or self.over or lossless:
            return None
        self.over = True
        return "replay_too_long", (
            f"expected at most {self.credit_s * 1000:.0f} ms of replayed audio ahead of real "
            "time; the rest is read at real-time pace"
        )

    def trim(self, mono: np.ndarray) -> np.ndarray:
        """``mono`` without the frames the stream already has."""
        cut = min(self.skip, len(mono))
        self.skip -= cut
        return mono[cut:]

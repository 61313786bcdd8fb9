"""What one client may make the server do: allowances counted for rejected input too. Pure: the
caller passes the time.

Every message costs the event loop something before it is known to be good (receiving it,
decoding it, answering an error), so the allowance counts messages, not only decoded audio
(``max_speed`` does that):

- **rate**: a token bucket of ``rate_per_s`` message units per second with a ``burst``; a
  message costs one unit plus one per 64 KiB it carries. A client over its rate is not
  refused: the reader waits (:meth:`Budget.charge` says how long), which is TCP back-pressure,
  so a flood slows the flooder alone.
- **bad messages**: input that earns an ``error`` (undecodable frames, bad JSON, wrong order)
  counts against ``bad_limit`` per ``bad_window_s`` (``bad_before_auth`` before the stream has
  authenticated); past it the connection is closed (1008, ``too_many_errors``), so answering
  junk cannot become the server's main work.

Below messages, every WebSocket *frame* costs a parse before any size limit sees a byte
(:class:`FrameBudget`, charged in :mod:`voxlive.server.protocols`, before authentication):

- **frames**: ``FRAME_RATE_PER_S`` frames per second of every kind (data, continuation, ping,
  pong, close) with a burst of as many; past it the socket is not read (back-pressure);
- **fragments**: a message in more than ``MAX_FRAGMENTS`` frames closes the connection (1009),
  and so does a non-final fragment under ``MIN_FRAGMENT_BYTES`` (1008): empty continuation
  frames carry no payload for the size limits to count, and browsers never fragment.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

UNIT_BYTES = 64 * 1024
RATE_PER_S = 1000.0  # honest clients send 10–50 frames/s; `voxlive bench --flat-out` ~400
BURST = 1000.0
BAD_LIMIT = 20  # bad messages within BAD_WINDOW_S once streaming
BAD_WINDOW_S = 10.0
BAD_BEFORE_AUTH = 3  # bad messages before the stream authenticated
FRAME_RATE_PER_S = 2000.0  # frames of every kind; honest streams send 10–50 (+ a ping)
MAX_FRAGMENTS = 32  # frames per message
MIN_FRAGMENT_BYTES = 512  # payload of each fragment but the last


@dataclass
class TokenBucket:
    """``rate_per_s`` units per second, at most ``burst`` saved up; starts with ``start`` saved
    up (at most the burst; ``None``: full)."""

    rate_per_s: float
    burst: float
    start: float | None = None
    _tokens: float | None = None
    _at: float = 0.0

    def take(
        self, now: float, units: float, rate_per_s: float | None = None, burst: float | None = None
    ) -> float:
        """Spend ``units``; seconds until the bucket is back to zero (0.0 within the allowance).
        ``rate_per_s`` and ``burst`` override the refill rate and the most saved up for this
        call (a share that changes with load)."""
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        most = self.burst if burst is None else burst
        if self._tokens is None:
            self._tokens, self._at = most if self.start is None else min(most, self.start), now
        self._tokens = min(most, self._tokens + max(0.0, now - self._at) * rate)
        self._at = now
        self._tokens -= units
        return 0.0 if self._tokens >= 0 else -self._tokens / rate

    def grant(self, now: float, wanted: int) -> int:
        """Spend up to ``wanted`` whole units, as many as there are; how many were granted."""
        self.take(now, 0.0)  # refill
        assert self._tokens is not None
        granted = max(0, min(wanted, int(self._tokens)))
        self._tokens -= granted
        return granted


def units(size_bytes: int) -> float:
    """What one message of ``size_bytes`` costs: one unit, plus one per 64 KiB it carries."""
    return 1.0 + size_bytes / UNIT_BYTES


@dataclass
class Budget:
    rate_per_s: float = RATE_PER_S
    burst: float = BURST
    bad_limit: int = BAD_LIMIT
    bad_window_s: float = BAD_WINDOW_S
    bad_before_auth: int = BAD_BEFORE_AUTH
    _bucket: TokenBucket | None = None
    _bad: deque[float] = field(default_factory=deque)

    def charge(
        self,
        now: float,
        size_bytes: int,
        rate_per_s: float | None = None,
        burst: float | None = None,
    ) -> float:
        """Count one received message of ``size_bytes``; seconds the reader should wait before
        reading the next one (0.0 within the allowance). ``rate_per_s`` and ``burst``: lower
        ones for now (the connection's share of the server's,
        :class:`voxlive.server.sources.Sources`)."""
        if self._bucket is None:
            self._bucket = TokenBucket(self.rate_per_s, self.burst)
        rate = self.rate_per_s if rate_per_s is None else min(rate_per_s, self.rate_per_s)
        most = self.burst if burst is None else min(burst, self.burst)
        return self._bucket.take(now, units(size_bytes), rate, most)

    def bad(self, now: float, *, authenticated: bool) -> bool:
        """Count one bad message; True when the client is past its allowance (close it)."""
        self._bad.append(now)
        while self._bad and self._bad[0] <= now - self.bad_window_s:
            self._bad.popleft()
        limit = self.bad_limit if authenticated else self.bad_before_auth
        return len(self._bad) > limit


@dataclass
class FrameBudget:
    """One WebSocket connection's frames: a rate, and how a message may be fragmented."""

    rate_per_s: float = FRAME_RATE_PER_S
    max_fragments: int = MAX_FRAGMENTS
    min_fragment_bytes: int = MIN_FRAGMENT_BYTES
    _bucket: TokenBucket | None = None
    _fragments: int = 0  # frames of the message being received

    def charge(self, now: float) -> float:
        """Count one frame of any kind; seconds not to read the socket (0.0 within the rate)."""
        if self._bucket is None:
            self._bucket = TokenBucket(self.rate_per_s, self.rate_per_s)
        return self._bucket.take(now, 1.0)

    def data_frame(self, size_bytes: int, *, first: bool, fin: bool) -> tuple[int, str] | None:
        """Count one data frame (``first``: text or binary; else a continuation); a close code
        and reason when the message breaks the fragment rules, else None."""
        self._fragments = 1 if first else self._fragments + 1
        if self._fragments > self.max_fragments:
            return 1009, f"expected at most {self.max_fragments} fragments per message, got more"
        if not fin and size_bytes < self.min_fragment_bytes:
            return 1008, (
                f"expected fragments of at least {self.min_fragment_bytes} bytes, got {size_bytes}"
            )
        return None

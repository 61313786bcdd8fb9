"""What one client may make the server do: a per-connection allowance, counted for rejected
input too. Pure: the caller passes the time.

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


@dataclass
class Budget:
    rate_per_s: float = RATE_PER_S
    burst: float = BURST
    bad_limit: int = BAD_LIMIT
    bad_window_s: float = BAD_WINDOW_S
    bad_before_auth: int = BAD_BEFORE_AUTH
    _tokens: float | None = None
    _at: float = 0.0
    _bad: deque[float] = field(default_factory=deque)

    def charge(self, now: float, size_bytes: int) -> float:
        """Count one received message of ``size_bytes``; seconds the reader should wait before
        reading the next one (0.0 within the allowance)."""
        if self._tokens is None:
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        self._tokens -= 1.0 + size_bytes / UNIT_BYTES
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s

    def bad(self, now: float, *, authenticated: bool) -> bool:
        """Count one bad message; True when the client is past its allowance (close it)."""
        self._bad.append(now)
        while self._bad and self._bad[0] <= now - self.bad_window_s:
            self._bad.popleft()
        limit = self.bad_limit if authenticated else self.bad_before_auth
        return len(self._bad) > limit

"""Budgets per source (client address) and for the whole server, on top of each connection's own
:class:`~voxlive.server.budget.Budget`. Pure: the caller passes the time.

One connection's limits do not bound what many connections cost together: 48 connections each
within their 1000 messages/s are 48,000 messages/s, more than the event loop can read while
serving anyone else. So every message is also charged

- to its **source** (the client's address; behind a trusted proxy, the address the proxy names
  in ``X-Forwarded-For``): ``SOURCE_RATE_PER_S`` units per second shared by all its connections;
- to the **server**: while more than ``SERVER_RATE_PER_S / RATE_PER_S`` connections are open,
  each connection's own rate is lowered to its share, ``SERVER_RATE_PER_S`` divided by the open
  connections, never below ``SHARE_FLOOR_PER_S`` (twice to ten times what an honest stream sends).

A connection over either waits (back-pressure on its socket), as over its own rate. A source's
bucket exists while it has connections open: the table is bounded by the connection cap.

Rates bound what clients spend over time; **bursts** bound what they spend at once. Each
connection may save up ``SERVER_BURST_S`` of its share; a source's bucket starts with only
``SERVER_BURST_S`` of the floor (10 units), so an address that reconnects gains next to nothing;
and the server has a bucket of its own, refilled at the
sum of the shares (so it never slows what the shares allow) and holding ``SERVER_BURST_S`` of
``SERVER_RATE_PER_S``: all clients together spend at most that at once (plus one message each),
however many addresses they come from. (Fixed, full bursts let 48 fresh connections from 8
addresses spend 16,000 units at once: the server answered no one for 370 ms.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from voxlive.server.budget import Budget, TokenBucket, units

SOURCE_RATE_PER_S = 2000.0  # units/s for all of one address's connections
SOURCE_BURST = 2000.0
SERVER_RATE_PER_S = 4000.0  # units/s for all connections: ~a third of a core of message handling
SHARE_FLOOR_PER_S = 100.0  # an honest stream sends 10–50 messages/s
SERVER_BURST_S = 0.1  # of the shares and the server's rate, saved up at most: ~35 ms of the loop


@dataclass
class _Source:
    bucket: TokenBucket
    connections: int = 0


@dataclass
class Sources:
    rate_per_s: float = SOURCE_RATE_PER_S
    burst: float = SOURCE_BURST
    server_rate_per_s: float = SERVER_RATE_PER_S
    share_floor_per_s: float = SHARE_FLOOR_PER_S
    burst_s: float = SERVER_BURST_S
    new_budget: Callable[[], Budget] = Budget  # each connection's own
    _sources: dict[str, _Source] = field(default_factory=dict)
    _open: int = 0
    _server: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self._server = TokenBucket(self.server_rate_per_s, self.server_burst())

    def open(self, source: str) -> Allowance:
        """A new connection from ``source``: its allowance, to be closed when it ends."""
        entry = self._sources.get(source)
        if entry is None:
            start = self.share_floor_per_s * self.burst_s  # what an honest client starts with
            bucket = TokenBucket(self.rate_per_s, self.burst, start=start)
            entry = self._sources[source] = _Source(bucket)
        entry.connections += 1
        self._open += 1
        return Allowance(self, source, entry.bucket, self.new_budget())

    def _close(self, source: str) -> None:
        entry = self._sources[source]
        entry.connections -= 1
        self._open -= 1
        if entry.connections == 0:
            del self._sources[source]

    def share(self) -> float:
        """Each connection's rate now: the server's rate over the open connections (floored)."""
        return max(self.share_floor_per_s, self.server_rate_per_s / max(1, self._open))

    def connection_burst(self) -> float:
        """What one connection may save up now: ``burst_s`` of its share (at least one unit)."""
        return max(1.0, self.share() * self.burst_s)

    def server_burst(self) -> float:
        """What all connections together may save up: ``burst_s`` of the server's rate."""
        return max(1.0, self.server_rate_per_s * self.burst_s)

    def _charge_server(self, now: float, cost: float) -> float:
        """Charge the server's bucket, refilled at the sum of the shares."""
        return self._server.take(now, cost, self.share() * max(1, self._open))

    @property
    def tracked(self) -> int:
        """Sources with a connection open (the table's size)."""
        return len(self._sources)


@dataclass
class Allowance:
    """One connection's: its own :class:`Budget` (rate and bad messages), its source's bucket
    and its share of the server's rate."""

    sources: Sources
    source: str
    bucket: TokenBucket
    budget: Budget
    closed: bool = False

    def charge(self, now: float, size_bytes: int) -> float:
        """Count one received message; seconds the reader should wait (0.0 within its own
        allowance, its source's and the server's)."""
        sources, cost = self.sources, units(size_bytes)
        own = self.budget.charge(now, size_bytes, sources.share(), sources.connection_burst())
        return max(own, self.bucket.take(now, cost), sources._charge_server(now, cost))

    def close(self) -> None:
        """The connection ended. Idempotent."""
        if not self.closed:
            self.closed = True
            self.sources._close(self.source)

"""The pace of live streams: the hop they are cut at now, kept by the batcher.

The batcher tells :class:`Pace` what live streams ask of the model: every window it hands to the
model (:meth:`Pace.offered`) or sheds (:meth:`Pace.shed`), each counted at the normal hop (a
window cut two hops after the one before counts twice, so what is measured does not drop when
the hop widens). It calls :meth:`Pace.update` every round, and every :data:`TICK_S` while idle
and paced, with the model's rate flat out (the capacity gauge's). Pace turns that into a
:class:`~voxlive.pipeline.degrade.Pressure`, asks the
:class:`~voxlive.pipeline.degrade.Degrade` policy, and when the step changes sets every live
stream's hop (:meth:`~voxlive.pipeline.stream.Stream.pace`); a stream that opens gets the hop in
force (:meth:`Pace.join`). Each stream then tells its own client, in window order (``pace``).
With no live stream left the hop returns to normal at once.

Lossless streams (files) are neither paced nor counted: they yield to live streams anyway.
Not thread-safe: the batcher's event loop only.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from voxlive.metrics import Metrics
from voxlive.pipeline.degrade import Degrade, Pressure, hop_steps
from voxlive.pipeline.overload import RateMeter
from voxlive.pipeline.stream import Stream, Window

log = logging.getLogger(__name__)

TICK_S = 1.0  # while degraded and idle, the batcher still updates the pace this often
# The demand is trusted once it has been metered this long: the first windows of a server's
# life (one window over a few ms reads as hundreds a second) and its first model calls (cold,
# and through Ray a first hop) would otherwise pace streams at half the load they can take.
WARM_S = 3.0


class Pace:
    """See the module docstring. ``hop_ms``: the streams' configured hop; ``max_hop_ms``: the
    widest (``--degrade-max-hop-ms``; at most ``hop_ms``: never degrade); ``window``: their
    windows' length in samples (the model's rate is measured per length); ``max_lag_ms``: the
    shedding bound (sheds that late after a step up are windows cut before it)."""

    def __init__(
        self,
        hop_ms: int,
        max_hop_ms: int,
        window: int,
        *,
        max_lag_ms: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self.normal_hop_ms = hop_ms
        self.window = window
        self.policy = Degrade(hop_steps(hop_ms, max_hop_ms), settle_s=max_lag_ms / 1000 + 1)
        self._demand = RateMeter()  # live windows offered to the model, at the normal hop
        self._shed = 0  # live windows shed since the last update
        self._metrics = metrics
        if metrics is not None:
            metrics.live_hop.set(hop_ms)

    @property
    def hop_ms(self) -> int:
        """The hop live streams are cut at now, ms."""
        return self.policy.hop_ms

    @property
    def paced(self) -> bool:
        """Live streams are cut at a wider hop than the normal one now."""
        return self.policy.level > 0

    def weight(self, stream: Stream) -> float:
        """What one window of ``stream`` stands for, in windows at the normal hop."""
        return stream.hop_ms / self.normal_hop_ms

    def offered(self, windows: Iterable[Window], now: float) -> float:
        """Windows handed to the model now: the live ones are metered; returns them all counted
        at the normal hop (what the capacity gauge counts)."""
        total = live = 0.0
        for w in windows:
            weight = self.weight(w.stream)
            total += weight
            live += 0.0 if w.stream.lossless else weight
        if live:
            self._demand.add(live, now)
        return total

    def shed(self, counts: Iterable[tuple[Stream, int]], now: float) -> float:
        """Windows shed now, per stream (lossless ones never are): metered like offered ones;
        returns them counted at the normal hop."""
        total = 0.0
        for stream, count in counts:
            total += count * self.weight(stream)
            self._shed += count
        if total:
            self._demand.add(total, now)
        return total

    def join(self, stream: Stream) -> None:
        """A stream opened: it is cut at the hop in force (a lossless one ignores it)."""
        stream.pace(self.hop_ms)

    def update(self, now: float, streams: Collection[Stream], model_rate: float | None) -> None:
        """One measurement (see the module docstring); ``streams``: every stream the batcher
        serves; ``model_rate``: the most windows of :attr:`window` samples a second the model
        takes flat out (:meth:`~voxlive.pipeline.batcher.Batcher.model_rate`; ``None``: no call
        yet)."""
        before = self.policy.level
        if not any(not s.lossless for s in streams):
            # Nobody to degrade: the next live stream starts at normal, and the demand of those
            # gone is forgotten (their windows would count for the newcomers' for a few tau)
            self.policy.reset()
            self._demand = RateMeter()
        else:
            rate = self._demand.rate(now)
            warm = self._demand.age(now) >= WARM_S
            demand = rate / model_rate if model_rate and warm else None
            self.policy.update(Pressure(demand, self._shed), now)
        self._shed = 0
        if self.policy.level == before:
            return
        old, new = self.policy.steps[before], self.hop_ms
        for stream in streams:
            stream.pace(new)
        log.info("live streams are cut every %d ms (was %d ms): %s", new, old,
                 "the server is busy" if new > old else "the pressure fell")  # fmt: skip
        if self._metrics is not None:
            self._metrics.hop_changes.labels("wider" if new > old else "narrower").inc()
            self._metrics.live_hop.set(new)

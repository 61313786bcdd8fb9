"""Overload: which live windows are too stale to answer, and how much the model can take.

Pure (no asyncio, no clock of its own: every function takes ``now``), so the policy is tested
on a fake clock.

- **Shedding.** A live window has a deadline: its result should reach the client within
  ``max_lag_ms`` of the window's last sample. A window that can no longer make it (the model call
  it would join would end past the deadline) is shed, not queued: serving it would only delay
  the fresher windows behind it (Triton's ``timeout_action: REJECT``). Shed windows are settled
  as dropped, so the stream reports them (``dropped_ms`` in results, ``dropped_windows`` in
  ``end``) and /metrics counts them (``voxlive_windows_total{outcome="shed"}``). Lossless
  streams (files, and clients that ask) are never shed: they get back-pressure instead.
- **Capacity.** From the call times the batcher has measured, the most windows per second the
  model can take at any batch size seen so far, and so how many live streams (one window per
  hop each) it can hold flat out; next to it, the windows per second offered now.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Call times drift (other work on the machine, a 2x swing within minutes here): the shedding plan
# allows for a call a quarter longer than expected, or three times the calls' usual relative miss
# beyond it when that is more (as TCP's retransmission timer does with round-trip times), plus
# the time to send the results.
CALL_SAFETY = 1.25
SPREAD_FACTOR = 3.0
MAX_SAFETY = 2.0  # never plan for more than twice the expected time
SEND_MARGIN_S = 0.02


def planned_call_s(estimate_s: float, spread: float = 0.0) -> float:
    """The seconds the shedding plan allows for a call expected to take ``estimate_s`` when
    calls overrun their expected time by ``spread`` (relative, e.g. 0.1 for 10 %) on average."""
    factor = min(max(CALL_SAFETY, 1 + SPREAD_FACTOR * spread), MAX_SAFETY)
    return estimate_s * factor + SEND_MARGIN_S


def shed_cutoff(now: float, call_s: float, max_lag_s: float) -> float:
    """Windows that became ready before this moment (monotonic seconds) are stale: a model call
    starting ``now`` and taking ``call_s`` would answer them more than ``max_lag_s`` after their
    last sample. ``-inf`` (nothing is stale) when ``max_lag_s`` is 0 (shedding off)."""
    if max_lag_s <= 0:
        return -math.inf
    return now + call_s - max_lag_s


def is_stale(ready_at: float, now: float, call_s: float, max_lag_s: float) -> bool:
    """Whether a window whose last sample arrived at ``ready_at`` is past saving (see
    :func:`shed_cutoff`)."""
    return ready_at < shed_cutoff(now, call_s, max_lag_s)


def plan_batch(
    windows: Sequence[tuple[float, float]],
    now: float,
    max_batch: int,
    call_s: Callable[[int], float],
) -> tuple[int, float]:
    """The largest batch size the next call can have without answering its windows late, and
    that call's expected seconds.

    ``windows``: every pending window as (ready_at, max_lag_s), max_lag_s 0 for one that must
    not be shed (lossless, or shedding off); ``call_s(size)``: expected seconds of a call of
    ``size`` windows. A bigger batch takes longer, so more windows are stale for it: the plan
    is the largest size that at least as many windows can still make (at least 1).
    """
    top = min(len(windows), max_batch)
    for size in range(top, 0, -1):
        seconds = call_s(size)
        fresh = sum(1 for ready_at, lag in windows if not is_stale(ready_at, now, seconds, lag))
        if fresh >= size:
            return size, seconds
    return 1, call_s(1)


def shed_cap(windows: Sequence[tuple[float, float]], now: float, call_s: float) -> float:
    """A limit on shedding (monotonic seconds: never shed a window ready at or after it): when
    every pending window (ready_at, max_lag_s) would be stale for a call of ``call_s``, the
    newest is served anyway, late. Shedding everything would stop the model being called, and
    with it the call times that tell when windows are fresh again. ``inf`` otherwise."""
    if any(not is_stale(ready_at, now, call_s, lag) for ready_at, lag in windows):
        return math.inf
    return max((ready_at for ready_at, _ in windows), default=math.inf)


class RateMeter:
    """Events per second, exponentially weighted over ``tau_s`` seconds (so a burst fades and a
    steady rate shows within a few ``tau_s``). Times are monotonic seconds passed in."""

    def __init__(self, tau_s: float = 5.0) -> None:
        if tau_s <= 0:
            raise ValueError(f"tau_s: expected > 0 seconds, got {tau_s}")
        self.tau_s = tau_s
        self._value = 0.0  # decayed count
        self._at: float | None = None  # when _value was last brought up to date
        self._since: float | None = None  # first event

    def _decay(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._value *= math.exp(-(now - self._at) / self.tau_s)
        self._at = now if self._at is None else max(self._at, now)

    def age(self, now: float) -> float:
        """Seconds since the first event (0.0 before any)."""
        return 0.0 if self._since is None else max(now - self._since, 0.0)

    def add(self, count: float, now: float) -> None:
        self._decay(now)
        if self._since is None:
            self._since = now
        self._value += count

    def rate(self, now: float) -> float:
        """Events per second around ``now`` (0.0 before any event)."""
        if self._since is None:
            return 0.0
        self._decay(now)
        # Early on the weights have not summed to tau_s yet: divide by what they sum to.
        span = self.tau_s * (1 - math.exp(-max(now - self._since, 0.0) / self.tau_s))
        return self._value / max(span, 1e-3)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What /readyz and /metrics report about the model's headroom.

    ``streams``: live streams at the current window/hop the model could serve flat out, from
    the measured call times (``None`` before the first call); ``load_streams``: windows offered
    to the model per second now (served and shed), in the same unit; ``utilization``: their
    ratio (``None`` without a capacity). Route new streams elsewhere well before 1.0: the
    latency goal needs headroom (``voxlive bench`` shows how much on a given machine).
    """

    streams: float | None
    load_streams: float
    utilization: float | None
    windows_per_s: float | None  # the most windows per second measured at any batch size

    def as_dict(self) -> dict[str, float | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "streams": r(self.streams), "load_streams": r(self.load_streams),
            "utilization": r(self.utilization), "windows_per_s": r(self.windows_per_s),
        }  # fmt: skip


def capacity(windows_per_s: float | None, offered_per_s: float, hop_s: float) -> Capacity:
    """Capacity from the model's best measured rate (windows/s; ``None``: no call yet) and the
    windows offered per second now, for streams that each cut one window every ``hop_s``."""
    load = offered_per_s * hop_s
    if not windows_per_s:
        return Capacity(None, load, None, None)
    streams = windows_per_s * hop_s
    return Capacity(streams, load, load / streams, windows_per_s)

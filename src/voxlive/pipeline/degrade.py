"""Graded degradation: under pressure, live streams' windows are cut further apart before any
window is shed.

Pure (no asyncio, no clock of its own: :meth:`Degrade.update` takes ``now``), so the policy is
tested on a fake clock; :mod:`voxlive.pipeline.pace` feeds it what the batcher measures and
applies its answer to the streams.

**Steps.** A live stream is cut every ``hop_ms`` (500 ms by default). Under pressure the whole
server steps to a wider hop, doubling up to ``--degrade-max-hop-ms`` (the last step is that
value itself): 500 → 1000 ms by default, → 2000 ms with 2000. Each step halves (or so) what
every live stream asks of the model, and every window still reaches it fresh; shedding
(:mod:`voxlive.pipeline.overload`) stays the last resort, for pressure even the widest step
cannot absorb. Up to the window's length the windows still touch, so no audio goes without a
label; past it part of the audio gets no window at all, which costs more of the audio than
shedding the excess at the window's length would (it buys lower latency instead): hence the
default of 1000 ms, the default window. Lossless streams (files) are never degraded: they get
back-pressure instead.

**Pressure.** :class:`Pressure` holds ``demand``: the windows per second live streams ask of the
model *counted at the normal hop* (a window cut two hops after the one before counts twice),
over the most windows per second the model can take (the capacity gauge's best rate). It is the
utilization the live streams would cause if none were degraded, so it does not move when the
step does; the load at step ``k`` is ``demand × hop_0 / hop_k``. And ``shed``: live windows shed
since the previous update.

**Rules** (the thresholds and times below):

- *hot*: the load at the hop in force is above :data:`RISE_AT`, or a live window was shed within
  the last :data:`SHED_MEMORY_S` (sheds in the ``settle_s`` after a step up are not counted:
  they are windows cut before it, at the narrower hop);
- *cool*: the load at the next narrower hop would stay below :data:`FALL_AT`, and nothing hot;
- one step wider once it has been hot for :data:`RISE_S` without a break (another step needs
  another :data:`RISE_S`), never past the last step; one step narrower once it has been cool for
  :data:`HOLD_S` without a break (likewise). Between the two nothing moves.

Why it does not flap: after a step up at a load of 1.0, the load at twice the hop is about
0.5, and stepping back needs the load at the narrower hop to be below 0.75 (0.375 at the wider
one): a signal has to move by a factor of 1.33 to undo a step, and stay there for 10 s. A
noisy signal around one threshold resets that threshold's timer on every sample across it,
so it never holds long enough to move the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

# Load at the hop in force above which pressure is high. The gauge's rate is the best measured
# per call, and under a light load only small batches are measured: it reads 60-75 % of the
# model's batched ceiling then, so 1.0 of it is well short of the ceiling, where shedding
# starts (0.85 paced a server holding p95 216 ms at 61 % of its ceiling, BENCHMARKS.md).
RISE_AT = 1.0
FALL_AT = 0.75  # load the next narrower hop must stay under before stepping back to it
RISE_S = 1.0  # high pressure this long, without a break, steps one hop wider
HOLD_S = 10.0  # low pressure this long, without a break, steps one hop narrower
SHED_MEMORY_S = 1.0  # a shed live window keeps pressure high this long
SETTLE_S = 2.0  # after a step up, sheds are not counted this long (at least: see Degrade)


def hop_steps(hop_ms: int, max_hop_ms: int) -> tuple[int, ...]:
    """The hops a live stream may be cut at, narrowest first: ``hop_ms``, then doubling while
    below ``max_hop_ms``, then ``max_hop_ms`` itself (500, 2000 → 500, 1000, 2000; 500, 1500 →
    500, 1000, 1500). Only ``hop_ms`` when ``max_hop_ms`` is at most it (0: off)."""
    if hop_ms <= 0:
        raise ValueError(f"hop_ms: expected > 0 ms, got {hop_ms}")
    steps = [hop_ms]
    while steps[-1] < max_hop_ms:
        steps.append(min(steps[-1] * 2, max_hop_ms))
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class Pressure:
    """What the batcher measured at one moment (see the module docstring)."""

    demand: float | None  # live demand at the normal hop / capacity; None: no capacity known
    shed: int = 0  # live windows shed since the previous update


class Degrade:
    """The step live streams are cut at: ``steps[level]`` ms (see the module docstring).

    ``settle_s``: how long after a step up sheds are not counted; at least :data:`SETTLE_S`,
    and pass ``max_lag_ms`` + 1 s when that is more (a window cut before the step may be shed
    that late). Times are monotonic seconds passed in.
    """

    def __init__(
        self,
        steps: Sequence[int],
        *,
        rise_at: float = RISE_AT,
        fall_at: float = FALL_AT,
        rise_s: float = RISE_S,
        hold_s: float | None = None,
        settle_s: float = SETTLE_S,
    ) -> None:
        if not steps or any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"steps: expected widening hops, got {list(steps)}")
        if not 0 < fall_at < rise_at:
            raise ValueError(f"fall_at: expected 0 < fall_at < rise_at ({rise_at}), got {fall_at}")
        self.steps = tuple(steps)
        self.rise_at, self.fall_at = rise_at, fall_at
        # None: HOLD_S as it is now (an integration test shortens it for the server it starts)
        self.hold_s = HOLD_S if hold_s is None else hold_s
        self.rise_s, self.settle_s = rise_s, max(settle_s, SETTLE_S)
        self.level = 0
        self._hot_since: float | None = None  # since when every update was hot
        self._cool_since: float | None = None  # since when every update was cool
        self._shed_at: float | None = None  # the latest shed that counts
        self._rose_at: float | None = None  # the latest step up

    @property
    def hop_ms(self) -> int:
        """The hop live streams are cut at now, ms."""
        return self.steps[self.level]

    @property
    def top(self) -> int:
        """The widest step's level (0: degradation is off)."""
        return len(self.steps) - 1

    def load(self, demand: float, level: int) -> float:
        """What the model's load would be at step ``level`` for this ``demand``."""
        return demand * self.steps[0] / self.steps[level]

    def update(self, pressure: Pressure, now: float) -> int:
        """Take one measurement; returns the level now (it moves by at most one step)."""
        if pressure.shed > 0 and (self._rose_at is None or now - self._rose_at >= self.settle_s):
            self._shed_at = now
        demand = pressure.demand or 0.0
        shedding = self._shed_at is not None and now - self._shed_at <= SHED_MEMORY_S
        if shedding or self.load(demand, self.level) > self.rise_at:
            self._cool_since = None
            self._hot_since = now if self._hot_since is None else self._hot_since
            if self.level < self.top and now - self._hot_since >= self.rise_s:
                self.level += 1
                self._hot_since = self._rose_at = now
                self._shed_at = None  # windows of the narrower hop: they do not count again
            return self.level
        self._hot_since = None
        if self.level > 0 and self.load(demand, self.level - 1) < self.fall_at:
            self._cool_since = now if self._cool_since is None else self._cool_since
            if now - self._cool_since >= self.hold_s:
                self.level -= 1
                self._cool_since = now
        else:
            self._cool_since = None
        return self.level

    def reset(self) -> None:
        """Back to the normal hop at once (no live stream is left to degrade)."""
        self.level = 0
        self._hot_since = self._cool_since = self._shed_at = self._rose_at = None

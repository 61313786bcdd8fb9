"""Pass or fail, and the capacity search: pure, shared by ``voxlive bench`` and the in-process
harness (:mod:`voxlive.bench.pipeline`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar


class Judged(Protocol):
    """What a run is judged on (a :class:`~voxlive.bench.row.Row`, or the harness's own)."""

    @property
    def server_p95_ms(self) -> float | None: ...  # None: no result reached the model
    @property
    def client_p95_ms(self) -> float | None: ...
    @property
    def dropped_windows(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def failed_streams(self) -> Sequence[str]: ...
    @property
    def paced_streams(self) -> int: ...  # streams cut further apart (graded degradation)


R = TypeVar("R", bound=Judged)


def passed(run: Judged, p95_ms: float) -> bool:
    """p95 of the windows that reached the model within ``p95_ms`` on both sides (server and
    client), nothing dropped or shed, no errors, no stream refused or broken, and none paced
    (a stream cut at a wider hop gets fewer results: the server did not hold it in full)."""
    p95s = (run.server_p95_ms, run.client_p95_ms)
    return (
        all(p is not None and p <= p95_ms for p in p95s) and run.dropped_windows == 0
        and run.errors == 0 and not run.failed_streams and run.paced_streams == 0
    )  # fmt: skip


async def find_capacity(
    run: Callable[[int], Awaitable[R]], start: int, limit: int, p95_ms: float, resolution: int = 1
) -> tuple[int, list[R]]:
    """Largest N in [1, limit] that passes: double from ``start`` until a failure, then bisect
    until the largest passing N and the smallest failing one are at most ``resolution`` apart
    (1: exact; more saves runs where each costs minutes, as thousands of streams on a GPU).
    Returns (N, every run made); N is 0 when even one stream fails."""
    runs: list[R] = []
    good, bad = 0, limit + 1
    n = max(1, start)
    while n < bad:
        made = await run(n)
        runs.append(made)
        if passed(made, p95_ms):
            good = n
            n = n * 2 if bad > limit else (good + bad) // 2
        else:
            bad = n
            n = (good + bad) // 2
        n = min(n, limit)
        if n <= good or n >= bad or bad - good <= resolution:
            break
    return good, runs

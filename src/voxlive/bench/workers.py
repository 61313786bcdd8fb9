"""The fleet's worker processes (:mod:`voxlive.bench.fleet`): spawned once, each given its share
of a run's streams, all starting a run at one instant, each sending back its streams' raw counts
(every latency, not percentiles), merged here in stream order.

Everything a worker gets and sends back is picklable and defined outside the ``__main__`` a
spawned process re-imports: tuples, :class:`~voxlive.bench.load.LoadSpec`,
:class:`~voxlive.bench.load.ClientCounts`. Bounded: workers ready within :data:`READY_S`, a
run's results within its audio plus :data:`RUN_GRACE_S`, a worker told to stop gone within
:data:`STOP_S` or killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from voxlive.bench.load import ClientCounts, LoadSpec, program, run_stream

READY_S = 120.0  # a worker's start: spawning, importing, decoding the recordings
RUN_GRACE_S = 180.0  # after a run's audio: run_stream waits up to 120 s for its stream's end
LEAD_S = 1.0  # a run starts this long after it is handed out, at once in every worker
STOP_S = 10.0  # a worker told to stop has this long before it is killed


def shares(streams: int, procs: int) -> list[list[int]]:
    """The stream indices each worker runs: stream i on worker i mod ``procs`` (no worker is
    given none: fewer streams than workers use fewer workers)."""
    return [list(range(w, streams, procs)) for w in range(min(procs, streams))]


def merge(
    streams: int, parts: Sequence[tuple[Sequence[int], Sequence[ClientCounts]]]
) -> list[ClientCounts]:
    """The counts of streams 0 .. ``streams`` - 1 in stream order, from the workers' (indices,
    counts) in any order. Raises :class:`ValueError` when a stream is missing, unknown or
    reported twice (the load generator's fault: the run says nothing then)."""
    by_index: dict[int, ClientCounts] = {}
    for indices, counts in parts:
        if len(indices) != len(counts):
            raise ValueError(f"fleet: expected {len(indices)} streams' counts from a worker, "
                             f"got {len(counts)}")  # fmt: skip
        for i, c in zip(indices, counts, strict=True):
            if not 0 <= i < streams or i in by_index:
                how = "again" if i in by_index else "as well"
                raise ValueError(f"fleet: expected each of streams 0..{streams - 1} once, got "
                                 f"stream {i} {how}")  # fmt: skip
            by_index[i] = c
    if len(by_index) != streams:
        missing = [i for i in range(streams) if i not in by_index]
        raise ValueError(f"fleet: expected the counts of {streams} streams, got "
                         f"{len(by_index)} (missing {missing[:5]})")  # fmt: skip
    return [by_index[i] for i in range(streams)]


def _cpu_s() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


async def _drive(spec: LoadSpec, indices: list[int], audio: np.ndarray, start_at: float) -> Any:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    return await asyncio.gather(*(run_stream(spec, i, audio) for i in indices))


def _worker(w: int, files: tuple[str, ...], pause_ms: int, jobs: Any, results: Any) -> None:
    """Worker ``w``: decode the recordings, say ready, then run each job ``(spec, indices,
    start_at)`` from ``jobs`` until a ``None``, answering ``("done", w, indices, counts,
    cpu_s, late_s)`` or ``("failed", w, why)`` on ``results``."""
    try:
        audio = program(files, pause_ms)
    except Exception as exc:
        results.put(("failed", w, f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ready", w))
    while (job := jobs.get()) is not None:
        spec, indices, start_at = job
        late_s, cpu0 = max(0.0, time.time() - start_at), _cpu_s()
        try:
            counts = list(asyncio.run(_drive(spec, indices, audio, start_at)))
        except Exception as exc:  # run_stream reports a stream's failure; this is a bug here
            results.put(("failed", w, f"{type(exc).__name__}: {exc}"))
            continue
        results.put(("done", w, indices, counts, _cpu_s() - cpu0, late_s))


class Fleet:
    """``procs`` worker processes, started once and given one job per run."""

    def __init__(self, procs: int, audio: tuple[str, ...], pause_ms: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.jobs: list[Any] = [ctx.Queue() for _ in range(procs)]
        self.workers = [
            ctx.Process(target=_worker, args=(w, audio, pause_ms, self.jobs[w], self.results),
                        name=f"voxlive-fleet-{w}", daemon=True)
            for w in range(procs)
        ]  # fmt: skip
        self.cpu_s = 0.0  # the workers' CPU in the last run
        self.late_s = 0.0  # how late the last worker started the last run

    def _get(self, deadline: float, what: str) -> tuple[Any, ...]:
        """The next message from a worker; RuntimeError past ``deadline`` or when one died."""
        while True:
            try:
                msg: tuple[Any, ...] = self.results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in self.workers if p.exitcode is not None]
                if dead:
                    raise RuntimeError(f"fleet: {what}: worker {dead[0]} exited") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fleet: {what}: no answer in time") from None
                continue
            if msg[0] == "failed":
                raise RuntimeError(f"fleet: worker {msg[1]} failed: {msg[2]}")
            return msg

    def start(self) -> None:
        """Start the workers and wait until each has decoded the recordings. Blocking."""
        for p in self.workers:
            p.start()
        deadline = time.monotonic() + READY_S
        for k in range(len(self.workers)):
            self._get(deadline, f"expected {len(self.workers)} workers ready within "
                                f"{READY_S:g} s, got {k}")  # fmt: skip

    def run(self, spec: LoadSpec) -> list[ClientCounts]:
        """One run: every worker its share of the streams, all starting at one instant; every
        stream's counts in stream order. Blocking."""
        parts = shares(spec.streams, len(self.workers))
        start_at = time.time() + LEAD_S
        for w, indices in enumerate(parts):
            self.jobs[w].put((spec, indices, start_at))
        within = LEAD_S + spec.seconds + RUN_GRACE_S
        deadline = time.monotonic() + within
        done = [self._get(deadline, f"expected {len(parts)} workers' results within "
                                    f"{within:.0f} s, got {k}")
                for k in range(len(parts))]  # fmt: skip
        self.cpu_s = sum(d[4] for d in done)
        self.late_s = max(d[5] for d in done)
        return merge(spec.streams, [(d[2], d[3]) for d in done])

    def close(self) -> None:
        """Tell every worker to stop; kill those still running after :data:`STOP_S`. Idempotent."""
        for p, jobs in zip(self.workers, self.jobs, strict=True):
            if p.is_alive():
                with contextlib.suppress(Exception):
                    jobs.put(None)
        deadline = time.monotonic() + STOP_S
        for p in self.workers:
            if p.pid is None:
                continue  # never started
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
        for q in (*self.jobs, self.results):  # nothing more to send: never wait on a dead reader
            q.close()
            q.cancel_join_thread()


@contextlib.asynccontextmanager
async def started(procs: int, audio: tuple[str, ...], pause_ms: int) -> AsyncIterator[Fleet]:
    """A :class:`Fleet` started and ready, closed when the block ends (whatever happens)."""
    fleet = Fleet(procs, audio, pause_ms)
    try:
        await asyncio.to_thread(fleet.start)
        yield fleet
    finally:
        await asyncio.to_thread(fleet.close)

"""``voxlive bench``: drive a server with N streams and report latency, drops, batches, CPU, RSS.

Without ``--url`` it starts ``voxlive serve`` itself (with the server flags given to ``bench``)
on a free loopback port and stops it at the end; ``--compare FLAGS`` starts one more server per
variant and runs the same load against each, alternating, so variants are compared as ratios
measured in one run; ``--conversation MS`` runs conversation streams (each recording followed
by MS of quiet room noise) beside the continuous ones against each server, and with
``--find-capacity`` prints the ratio of the streams each held. ``--find-capacity`` searches the
largest N that holds p95 latency within ``--p95-ms`` (server and client side) with no drops and
no errors.

Before the load it measures the model's flat-out ceiling in this process (best of batch 1/2/4,
:mod:`voxlive.bench.ceiling`), so each run's load and each capacity are also reported as % of
that ceiling, and for ONNX fp32 what int8 would buy here. Latency percentiles are over the
windows that reached the model; results the gate settled are reported apart. Each run also reads
the server's capacity gauge (/readyz) to compare it with what was measured. ``--repeat`` reports
the median of the rounds.

In parts, each a function: :func:`measure_ceilings` (the model flat out), :func:`plan` (which
servers, which N), :func:`run` (the load, round after round, one :class:`~voxlive.bench.row.Row`
per run) and :func:`report` / :func:`summary` (the JSON and the printed lines); :func:`bench`
calls them in that order with the :class:`~voxlive.bench.options.Options` built once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.bench.capacity import find_capacity, passed
from voxlive.bench.ceiling import Ceiling, ceiling, int8_hint, stream_cost
from voxlive.bench.load import ClientCounts, LoadSpec, covered_ms, program, run_stream
from voxlive.bench.options import Options
from voxlive.bench.row import Row, VsCeiling, median_rows, table
from voxlive.bench.scrape import CpuSample, batch_histogram, gauge, scrape
from voxlive.bench.serving import Target, serve_subprocess

# the name suffix of a server's conversation runs (--conversation)
CONVERSATION = " [conversation]"


# ---- the ceiling -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Ceilings:
    """The ceilings measured before the load (none with ``--url`` or ``--no-ceiling``)."""

    base: Ceiling | None = None  # the model as the servers run it
    int8: Ceiling | None = None  # the same model as ONNX int8, when it runs as ONNX fp32

    @property
    def base_audio_s_per_s(self) -> float | None:
        return self.base.audio_s_per_s if self.base else None


async def measure_ceilings(options: Options) -> Ceilings:
    """The model's ceiling, measured in this process (blocking work in a thread)."""
    if not options.ceiling_wanted:
        return Ceilings()
    if not options.quiet:
        print("measuring the model's ceiling (best of batch 1/2/4)…", file=sys.stderr)
    settings, files, pause_ms = options.settings, options.audio, options.pause_ms
    base = await asyncio.to_thread(ceiling, settings, files, pause_ms)
    if base.backend != "onnx" or not options.hint_int8:
        return Ceilings(base)
    int8 = settings.replace(backend="onnx", quantize="int8")
    return Ceilings(base, await asyncio.to_thread(ceiling, int8, files, pause_ms))


# ---- the plan --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Which servers get which load."""

    variants: tuple[tuple[str, tuple[str, ...]], ...]  # (name, `serve` flags), "base" first
    counts: tuple[int, ...]  # N of each run (without --find-capacity)
    cost: float  # model audio-s per second of one live stream


def plan(options: Options, ceilings: Ceilings) -> Plan:
    """The servers to start (ignored with ``--url``) and the N to run: ``--streams``, or
    fractions and multiples of the same-run ceiling (``--at-ceiling``, ``--times``)."""
    counts: tuple[int, ...] = (options.streams,)
    if options.at_ceiling is not None:
        if ceilings.base is None:
            raise ValueError("bench: --at-ceiling needs a measured ceiling")  # Options sees to it
        n = max(1, int(options.at_ceiling * ceilings.base.streams))
        counts = (n, *(round(k * n) for k in options.times))
    flags = options.server_flags
    variants = (
        ("base", flags),
        *((extra, (*flags, *shlex.split(extra))) for extra in options.compare),
    )
    return Plan(variants, counts, stream_cost(options.settings))


# ---- one run ---------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# Runs a load's streams elsewhere and returns each one's counts, in stream order
Drive = Callable[[LoadSpec], Awaitable[list[ClientCounts]]]


async def measure(
    target: Target, spec: LoadSpec, audio: np.ndarray | Drive,
    progress: Callable[[], None] | None = None,
) -> Row:  # fmt: skip
    """Run the load once against ``target`` and summarise it, with the server's own numbers
    (/metrics before and after, peak RSS sampled every second, the capacity gauge). ``audio``:
    what every stream loops, all in this event loop; or a :data:`Drive` that runs the streams
    elsewhere (:mod:`voxlive.bench.fleet`'s worker processes)."""
    before = await asyncio.to_thread(scrape, target.http)
    rss_peak = before.rss_mib
    done = asyncio.Event()

    async def watch_rss() -> None:
        nonlocal rss_peak
        while not done.is_set():
            with contextlib.suppress(Exception):
                rss_peak = max(rss_peak, (await asyncio.to_thread(scrape, target.http)).rss_mib)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await done.wait()

    watcher = asyncio.create_task(watch_rss())
    pid = target.process.pid if target.process is not None else None
    cpu_before = await asyncio.to_thread(CpuSample.take, pid)
    t0 = time.monotonic()
    counts: list[ClientCounts] = await (
        audio(spec) if callable(audio)
        else asyncio.gather(*(run_stream(spec, i, audio, progress) for i in range(spec.streams)))
    )  # fmt: skip
    wall = time.monotonic() - t0
    cpu = (await asyncio.to_thread(CpuSample.take, pid)).shares(cpu_before, wall)
    done.set()
    await watcher
    after = await asyncio.to_thread(scrape, target.http)
    capacity = await asyncio.to_thread(gauge, target.http)
    server = [x for c in counts for x in c.server_ms]
    client = [x for c in counts for x in c.client_ms]
    gated = [x for c in counts for x in c.gated_server_ms]
    results = sum(c.results for c in counts)
    calls = int(after.batch_count - before.batch_count)
    windows = after.batch_sum - before.batch_sum
    fresh_per_s, coverage = fresh_figures(spec, counts)
    return Row(
        target=target.name, streams=spec.streams, seconds=spec.seconds, flat_out=spec.flat_out,
        results=results,
        results_per_stream_per_s=results / spec.streams / max(spec.seconds - spec.warmup_s, 1e-9),
        ambient_share=sum(c.ambient for c in counts) / max(results, 1),
        server_p50_ms=_pct(server, 50), server_p95_ms=_pct(server, 95),
        server_p99_ms=_pct(server, 99),
        client_p50_ms=_pct(client, 50), client_p95_ms=_pct(client, 95),
        client_p99_ms=_pct(client, 99),
        model_results=len(server), gated_results=len(gated),
        gated_p50_ms=_pct(gated, 50), gated_p95_ms=_pct(gated, 95),
        gated_client_p95_ms=_pct([x for c in counts for x in c.gated_client_ms], 95),
        dropped_windows=sum(c.dropped_windows for c in counts),
        shed_windows=after.windows_since(before, "shed"),
        overwritten_windows=after.windows_since(before, "dropped"),
        gauge_streams=capacity.get("streams"), gauge_load_streams=capacity.get("load_streams"),
        dropped_audio_s=sum(c.dropped_s for c in counts),
        errors=sum(c.errors for c in counts),
        failed_streams=tuple(c.failure for c in counts if c.failure),
        audio_s_per_s=sum(c.sent_s for c in counts) / wall,
        model_calls=calls, mean_batch=windows / calls if calls else None,
        batch_sizes=batch_histogram(before, after),
        server_cpu_pct=100 * (after.cpu_s - before.cpu_s) / wall,
        server_rss_mib=rss_peak, wall_s=wall, tree_cpu_pct=cpu["tree"],
        replica_cpu_pct=cpu["replicas"], ray_cpu_pct=cpu["ray"], client_cpu_pct=cpu["client"],
        machine_cpu_pct=cpu["machine"],
        fresh_results_per_s=fresh_per_s, fresh_coverage=coverage,  # graded degradation (#25)
        paced_streams=sum(c.paced for c in counts),
    )  # fmt: skip


def fresh_figures(spec: LoadSpec, counts: list[ClientCounts]) -> tuple[float, float | None]:
    """Graded degradation vs shedding (#25): fresh results per second over the counted time,
    and the share of the counted audio (after the warm-up) their windows cover."""
    counted_s = max(spec.seconds - spec.warmup_s, 1e-9)
    warm_ms = spec.warmup_s * 1000
    audio = [(c, c.sent_s * 1000 - warm_ms) for c in counts if c.sent_s * 1000 > warm_ms]
    covered = sum(covered_ms(c.fresh_spans, warm_ms, warm_ms + ms) for c, ms in audio)
    total = sum(ms for _, ms in audio)
    return sum(c.fresh for c in counts) / counted_s, covered / total if total else None


def judge(row: Row, options: Options, ceiling_audio_s_per_s: float | None, cost: float) -> Row:
    """``row`` with its load against this round's ceiling (real-time runs only) and whether what
    was delivered stayed within ``max_lag_ms`` (when the servers shed)."""
    vs = None
    if ceiling_audio_s_per_s and not options.flat_out:
        load = row.streams * cost
        # What reached the model: answered, shed or dropped model windows, per counted second.
        reached = row.model_results + row.dropped_windows * options.counted_s / options.seconds
        model_load = reached * options.settings.window_ms / 1000 / options.counted_s
        vs = VsCeiling(
            ceiling_audio_s_per_s=ceiling_audio_s_per_s, model_load_audio_s_per_s=load,
            pct_of_ceiling=100 * load / ceiling_audio_s_per_s,
            model_pct_of_ceiling=100 * model_load / ceiling_audio_s_per_s,
        )  # fmt: skip
    delivered = None
    if max_lag_ms := options.settings.max_lag_ms:  # under overload: is it still fresh?
        p95s = (row.server_p95_ms, row.client_p95_ms)
        delivered = all(p is not None and p <= max_lag_ms for p in p95s)
    return dataclasses.replace(row, vs_ceiling=vs, delivered_within_max_lag=delivered)


async def run_once(
    options: Options, target: Target, n: int, audio: np.ndarray, ceiling_now: float | None,
    cost: float,
) -> Row:  # fmt: skip
    """One run of N streams against ``target``, judged, with a progress bar and a verdict line
    (unless ``--quiet``)."""
    from tqdm import tqdm

    spec = LoadSpec(url=target.url, streams=n, seconds=options.seconds,
                    chunk_ms=options.chunk_ms, flat_out=options.flat_out,
                    warmup_s=options.warmup_s, hop_ms=options.settings.hop_ms,
                    token=options.token,
                    fresh_ms=options.settings.max_lag_ms or 1000)  # fmt: skip
    expected = max(int(n * options.counted_s * 1000 / spec.hop_ms), 1)
    with tqdm(total=expected, desc=f"{target.name} N={n}", unit="res", file=sys.stderr,
              leave=False, disable=options.quiet) as bar:  # fmt: skip
        row = judge(await measure(target, spec, audio, lambda: bar.update(1)), options,
                    ceiling_now, cost)  # fmt: skip
    if not options.quiet:
        verdict = "pass" if passed(row, options.p95_ms) else "FAIL"
        print(f"{target.name} N={n}: p95 {row.server_p95_ms or 0:.0f} ms (client "
              f"{row.client_p95_ms or 0:.0f}), drops {row.dropped_windows} (shed "
              f"{row.shed_windows}), errors {row.errors} -> {verdict}",
              file=sys.stderr)  # fmt: skip
    return row


# ---- all runs --------------------------------------------------------------------------------
@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)  # every run, in order
    capacity: dict[str, int] = field(default_factory=dict)  # with --find-capacity, per server
    rounds: list[Ceiling] = field(default_factory=list)  # with --repeat: each round's ceiling


async def run(options: Options, the_plan: Plan, ceilings: Ceilings) -> Results:
    """Start the servers (unless ``--url``), then, ``--repeat`` times, each N against each
    server in turn (or the capacity search), re-measuring the ceiling each later round (the
    machine drifts). Servers are stopped at the end."""
    programs = [("", program(options.audio, options.pause_ms))]
    if options.conversation:  # the same servers, conversation streams beside continuous ones
        programs.append((CONVERSATION, program(options.audio, options.conversation)))
    out = Results()
    async with contextlib.AsyncExitStack() as stack:
        if options.url:
            targets = [Target("server", options.url)]
        else:
            log_dir = options.out.parent
            targets = [
                await stack.enter_async_context(
                    serve_subprocess(name, list(flags), log_dir / f"bench-server-{i}.log")
                )
                for i, (name, flags) in enumerate(the_plan.variants)
            ]
        ceiling_now = ceilings.base_audio_s_per_s
        for r in range(options.repeat):
            if r and ceilings.base:
                again = await asyncio.to_thread(
                    ceiling, options.settings, options.audio, options.pause_ms
                )
                out.rounds = out.rounds or [ceilings.base]
                out.rounds.append(again)
                ceiling_now = again.audio_s_per_s
            for server, (kind, audio) in itertools.product(targets, programs):
                target = dataclasses.replace(server, name=server.name + kind)

                async def once(
                    n: int, target: Target = target, audio: np.ndarray = audio,
                    now: float | None = ceiling_now,
                ) -> Row:  # fmt: skip
                    return await run_once(options, target, n, audio, now, the_plan.cost)

                if options.find_capacity:
                    n, tried = await find_capacity(
                        once, options.streams, options.capacity_limit, options.p95_ms
                    )
                    out.rows += tried
                    out.capacity[target.name] = max(out.capacity.get(target.name, 0), n)
                else:
                    for n in the_plan.counts:
                        out.rows.append(await once(n))
    return out


# ---- the report ------------------------------------------------------------------------------
def report(
    options: Options, the_plan: Plan, ceilings: Ceilings, results: Results
) -> dict[str, Any]:
    """The JSON report (BENCHMARKS.md and docs/benchmarks/*.json read its keys)."""
    base = ceilings.base_audio_s_per_s
    found: dict[str, Any] = {}
    if ceilings.base:
        found["base"] = ceilings.base.to_dict()
    if ceilings.int8:
        found["int8"] = ceilings.int8.to_dict()
    if results.rounds:
        found["rounds"] = [c.to_dict() for c in results.rounds]
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "command": options.command, "p95_ms": options.p95_ms, "ceiling": found,
        "capacity": results.capacity,
        "conversation_ratio": conversation_ratios(results.capacity),
        "capacity_pct_of_ceiling": {
            name: 100 * n * the_plan.cost / base for name, n in results.capacity.items() if base
        },
        "runs": [row.to_dict() for row in results.rows],
        "medians": median_rows(results.rows) if options.repeat > 1 else [],
    }  # fmt: skip


def summary(options: Options, the_plan: Plan, ceilings: Ceilings, results: Results) -> str:
    """What ``voxlive bench`` prints at the end: the runs, their medians, the ceilings and the
    capacities found."""
    lines = [table([row.to_dict() for row in results.rows])]
    if options.repeat > 1 and (medians := median_rows(results.rows)):
        lines += [f"median of {options.repeat} rounds:", table(medians)]
    for kind, c in (("base", ceilings.base), ("int8", ceilings.int8)):
        if c is not None:
            lines.append(f"ceiling[{kind}]: {c.audio_s_per_s:.2f} audio-s/s ({c.backend}, batch "
                         f"{c.best_batch}) = {c.streams:.2f} live streams flat out")  # fmt: skip
    if results.rounds:
        each = ", ".join(f"{c.audio_s_per_s:.2f}" for c in results.rounds)
        lines.append(f"ceiling[base] by round: {each} audio-s/s")
    if ceilings.base and ceilings.int8:
        lines.append(int8_hint(ceilings.base, ceilings.int8))
    base = ceilings.base_audio_s_per_s
    for name, n in results.capacity.items():
        pct = f", {100 * n * the_plan.cost / base:.0f} % of the ceiling" if base else ""
        lines.append(f"capacity[{name}]: {n} streams at p95 <= {options.p95_ms:g} ms with no "
                     f"drops{pct}")  # fmt: skip
    for name, ratio in conversation_ratios(results.capacity).items():
        lines.append(f"conversation / continuous [{name}]: {ratio:.2f}x (streams held)")
    return "\n".join(lines)


def conversation_ratios(capacity: Mapping[str, int]) -> dict[str, float]:
    """Per server: conversation streams held / continuous streams held (both searched in the
    same run); servers with no continuous capacity are left out."""
    return {
        name: capacity[name + CONVERSATION] / n
        for name, n in capacity.items()
        if n and name + CONVERSATION in capacity
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---- entry point -----------------------------------------------------------------------------
async def bench(options: Options) -> int:
    """``voxlive bench``: ceiling, plan, runs, report (written to ``--out``, with its
    :mod:`~voxlive.bench.provenance`) and summary."""
    import logging

    from voxlive.bench import provenance

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per /metrics scrape otherwise
    began = await asyncio.to_thread(provenance.begin, options)
    ceilings = await measure_ceilings(options)
    the_plan = plan(options, ceilings)
    results = await run(options, the_plan, ceilings)
    doc = {"provenance": began.end(), **report(options, the_plan, ceilings, results)}
    await asyncio.to_thread(_write, options.out, json.dumps(doc, indent=2))
    print(summary(options, the_plan, ceilings, results))
    print(f"wrote {options.out}")
    return 0

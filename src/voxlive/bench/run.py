"""``voxlive bench``: drive a server with N streams and report latency, drops, batches, CPU, RSS.

Without ``--url`` it starts ``voxlive serve`` itself (with the server flags given to ``bench``)
on a free loopback port and stops it at the end; ``--compare FLAGS`` starts one more server per
variant and runs the same load against each, alternating, so variants are compared as ratios
measured in one run. ``--find-capacity`` searches the largest N that holds p95 latency within
``--p95-ms`` (server and client side) with no drops and no errors.

Before the load it measures the model's flat-out ceiling in this process (best of batch 1/2/4,
:mod:`voxlive.bench.ceiling`), so each run's load and each capacity are also reported as % of
that ceiling, and for ONNX fp32 what int8 would buy here. Latency percentiles are over the
windows that reached the model; results the gate settled are reported apart. Each run also reads
the server's capacity gauge (/readyz) to compare it with what was measured. ``--repeat`` reports
the median of the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.bench.ceiling import ceiling, int8_hint, stream_cost
from voxlive.bench.load import ClientCounts, LoadSpec, program, run_stream
from voxlive.bench.serving import Target, serve_subprocess
from voxlive.settings import build


# ---- the server's own numbers (/metrics) ------------------------------------------------------
def scrape(http: str) -> dict[str, Any]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(http + "/metrics", timeout=5).text
    out: dict[str, Any] = {"batch_buckets": {}, "windows": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "process_cpu_seconds_total":
                out["cpu_s"] = s.value
            elif s.name == "process_resident_memory_bytes":
                out["rss_mib"] = s.value / 2**20
            elif s.name == "voxlive_batch_size_bucket":
                out["batch_buckets"][s.labels["le"]] = s.value
            elif s.name == "voxlive_batch_size_sum":
                out["batch_sum"] = s.value
            elif s.name == "voxlive_batch_size_count":
                out["batch_count"] = s.value
            elif s.name == "voxlive_windows_total":
                out["windows"][s.labels["outcome"]] = s.value
    return out


def batch_histogram(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Model calls by batch size bucket ("<=1", "<=2", ...) during the run."""
    hist, below = {}, 0.0
    for le in sorted(after["batch_buckets"], key=lambda x: float(x)):
        cumulative = after["batch_buckets"][le] - before["batch_buckets"].get(le, 0.0)
        if cumulative - below > 0:
            hist["<=" + (le if le != "+Inf" else "inf").removesuffix(".0")] = int(
                cumulative - below
            )
        below = cumulative
    return hist


def gauge(http: str) -> dict[str, Any]:
    """The server's capacity gauge (/readyz ``capacity``); empty when it has none."""
    import httpx

    with contextlib.suppress(Exception):
        found: dict[str, Any] = httpx.get(http + "/readyz", timeout=5).json().get("capacity", {})
        return found
    return {}


# ---- one run ---------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def measure(
    target: Target, spec: LoadSpec, audio: np.ndarray, progress: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run the load once against ``target`` and summarise it."""
    before = await asyncio.to_thread(scrape, target.http)
    rss_peak = before.get("rss_mib", 0.0)
    done = asyncio.Event()

    async def watch_rss() -> None:
        nonlocal rss_peak
        while not done.is_set():
            with contextlib.suppress(Exception):
                rss_peak = max(rss_peak, (await asyncio.to_thread(scrape, target.http))["rss_mib"])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await done.wait()

    watcher = asyncio.create_task(watch_rss())
    t0 = time.monotonic()
    stats: list[ClientCounts] = await asyncio.gather(
        *(run_stream(spec, i, audio, progress) for i in range(spec.streams))
    )
    wall = time.monotonic() - t0
    done.set()
    await watcher
    after = await asyncio.to_thread(scrape, target.http)
    capacity = await asyncio.to_thread(gauge, target.http)
    server = [x for s in stats for x in s.server_ms]
    client = [x for s in stats for x in s.client_ms]
    gated = [x for s in stats for x in s.gated_server_ms]

    def outcome(name: str) -> int:
        return int(after["windows"].get(name, 0) - before["windows"].get(name, 0))

    counted_s = max(spec.seconds - spec.warmup_s, 1e-9)
    calls = after.get("batch_count", 0) - before.get("batch_count", 0)
    windows = after.get("batch_sum", 0) - before.get("batch_sum", 0)
    return {
        "target": target.name,
        "streams": spec.streams,
        "seconds": spec.seconds,
        "flat_out": spec.flat_out,
        "results": sum(s.results for s in stats),
        "results_per_stream_per_s": sum(s.results for s in stats) / spec.streams / counted_s,
        "ambient_share": sum(s.ambient for s in stats) / max(sum(s.results for s in stats), 1),
        "server_p50_ms": _pct(server, 50), "server_p95_ms": _pct(server, 95),
        "server_p99_ms": _pct(server, 99),
        "client_p50_ms": _pct(client, 50), "client_p95_ms": _pct(client, 95),
        "client_p99_ms": _pct(client, 99),
        "model_results": len(server), "gated_results": len(gated),
        "gated_p50_ms": _pct(gated, 50), "gated_p95_ms": _pct(gated, 95),
        "gated_client_p95_ms": _pct([x for s in stats for x in s.gated_client_ms], 95),
        "dropped_windows": sum(s.dropped_windows for s in stats),
        "shed_windows": outcome("shed"), "overwritten_windows": outcome("dropped"),
        "gauge_streams": capacity.get("streams"),
        "gauge_load_streams": capacity.get("load_streams"),
        "dropped_audio_s": sum(s.dropped_s for s in stats),
        "errors": sum(s.errors for s in stats),
        "failed_streams": [s.failure for s in stats if s.failure],
        "audio_s_per_s": sum(s.sent_s for s in stats) / wall,
        "model_calls": int(calls),
        "mean_batch": windows / calls if calls else None,
        "batch_sizes": batch_histogram(before, after),
        "server_cpu_pct": 100 * (after.get("cpu_s", 0) - before.get("cpu_s", 0)) / wall,
        "server_rss_mib": rss_peak,
        "wall_s": wall,
    }  # fmt: skip


def passed(row: dict[str, Any], p95_ms: float) -> bool:
    """p95 of the windows that reached the model within ``p95_ms`` on both sides (server and
    client), nothing dropped or shed, no errors."""
    p95s = [row.get("server_p95_ms"), row.get("client_p95_ms")]
    return (
        all(p is not None and p <= p95_ms for p in p95s) and row["dropped_windows"] == 0
        and row["errors"] == 0 and not row["failed_streams"]
    )  # fmt: skip


async def find_capacity(
    run: Callable[[int], Any], start: int, limit: int, p95_ms: float
) -> tuple[int, list[dict[str, Any]]]:
    """Largest N in [1, limit] that passes: double from ``start`` until a failure, then bisect.
    Returns (N, every run made); N is 0 when even one stream fails."""
    rows: list[dict[str, Any]] = []
    good, bad = 0, limit + 1
    n = max(1, start)
    while n < bad:
        row = await run(n)
        rows.append(row)
        if passed(row, p95_ms):
            good = n
            n = n * 2 if bad > limit else (good + bad) // 2
        else:
            bad = n
            n = (good + bad) // 2
        n = min(n, limit)
        if n <= good or n >= bad:
            break
    return good, rows


# ---- report ----------------------------------------------------------------------------------
COLUMNS = [  # (heading, report key, format)
    ("target", "target", "{}"),
    ("N", "streams", "{}"),
    ("res/st/s", "results_per_stream_per_s", "{:.2f}"),
    ("p50", "server_p50_ms", "{:.0f}"),
    ("p95", "server_p95_ms", "{:.0f}"),
    ("p99", "server_p99_ms", "{:.0f}"),
    ("cli p95", "client_p95_ms", "{:.0f}"),
    ("% ceil", "pct_of_ceiling", "{:.0f}"),
    ("model %", "model_pct_of_ceiling", "{:.0f}"),
    ("gauge", "gauge_streams", "{:.1f}"),
    ("audio-s/s", "audio_s_per_s", "{:.1f}"),
    ("drops", "dropped_windows", "{}"),
    ("shed", "shed_windows", "{}"),
    ("gated", "gated_results", "{}"),
    ("err", "errors", "{}"),
    ("batch", "mean_batch", "{:.2f}"),
    ("cpu %", "server_cpu_pct", "{:.0f}"),
    ("rss MiB", "server_rss_mib", "{:.0f}"),
]


def table(rows: Sequence[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        return "-" if value is None else fmt.format(value)

    body = [[cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in rows]
    heads = [h for h, _, _ in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(heads, *body, strict=False)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def median_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (target, N) measured more than once: the median of every numeric figure."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["target"], row["streams"]), []).append(row)
    out = []
    for (target, n), group in groups.items():
        if len(group) < 2:
            continue
        med: dict[str, Any] = {"target": target, "streams": n, "rounds": len(group)}
        for key, value in group[0].items():
            numbers = [float(v) for g in group if isinstance(v := g.get(key), int | float)]
            if not isinstance(value, bool) and len(numbers) == len(group):
                med[key] = float(np.median(numbers))
        out.append(med)
    return out


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---- entry point -----------------------------------------------------------------------------
async def bench(args: Any, server_flags: list[str]) -> int:
    import logging

    from tqdm import tqdm

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per /metrics scrape otherwise
    audio = program(args.audio, args.pause_ms)
    settings = build(vars(args), os.environ)
    cost = stream_cost(settings)  # model audio-s per second of one live stream
    ceilings: dict[str, Any] = {}
    if not args.url and not args.no_ceiling:
        if not args.quiet:
            print("measuring the model's ceiling (best of batch 1/2/4)…", file=sys.stderr)
        ceilings["base"] = await asyncio.to_thread(ceiling, settings, audio)
        if ceilings["base"]["backend"] == "onnx" and not args.no_int8_hint:
            int8 = settings.replace(backend="onnx", quantize="int8")
            ceilings["int8"] = await asyncio.to_thread(ceiling, int8, audio)
    base_ceiling = ceilings.get("base", {}).get("audio_s_per_s")
    counts = [args.streams]
    if args.at_ceiling:  # N from the same-run ceiling, and multiples of it (overload)
        if not ceilings:
            raise SystemExit("bench: --at-ceiling needs the ceiling (no --url, no --no-ceiling)")
        n = max(1, int(args.at_ceiling * ceilings["base"]["streams"]))
        counts = [n] + [round(k * n) for k in args.times or []]
    variants: list[tuple[str, list[str]]] = [("base", server_flags)]
    for extra in args.compare or []:
        variants.append((extra, server_flags + shlex.split(extra)))
    out_dir = Path(args.out).parent
    async with contextlib.AsyncExitStack() as stack:
        if args.url:
            targets = [Target("server", args.url)]
        else:
            targets = [
                await stack.enter_async_context(
                    serve_subprocess(n, f, out_dir / f"bench-server-{i}.log")
                )
                for i, (n, f) in enumerate(variants)
            ]
        rows: list[dict[str, Any]] = []
        capacity: dict[str, int] = {}

        async def once(target: Target, n: int) -> dict[str, Any]:
            spec = LoadSpec(url=target.url, streams=n, seconds=args.seconds,
                            chunk_ms=args.chunk_ms, flat_out=args.flat_out,
                            warmup_s=args.warmup_s, hop_ms=int(args.hop_ms or 500),
                            token=os.environ.get("VOXLIVE_TOKEN", ""))  # fmt: skip
            expected = max(int(n * (args.seconds - args.warmup_s) * 1000 / spec.hop_ms), 1)
            with tqdm(total=expected, desc=f"{target.name} N={n}", unit="res",
                      file=sys.stderr, leave=False, disable=args.quiet) as bar:  # fmt: skip
                row = await measure(target, spec, audio, lambda: bar.update(1))
            if round_ceiling and not args.flat_out:  # this round's, minutes from the run
                row["ceiling_audio_s_per_s"] = round_ceiling
                row["model_load_audio_s_per_s"] = n * cost
                row["pct_of_ceiling"] = 100 * n * cost / round_ceiling
                # What reached the model (the gate keeps quiet windows away): answered, shed or
                # dropped model windows per second, as audio-s/s, against the ceiling.
                counted_s = max(args.seconds - args.warmup_s, 1e-9)
                reached = row["model_results"] + row["dropped_windows"] * counted_s / args.seconds
                row["model_pct_of_ceiling"] = (
                    100 * reached * settings.window_ms / 1000 / counted_s / round_ceiling
                )
            if settings.max_lag_ms:  # under overload: is what was delivered still fresh?
                row["delivered_within_max_lag"] = all(
                    row[k] is not None and row[k] <= settings.max_lag_ms
                    for k in ("server_p95_ms", "client_p95_ms")
                )
            # Every lost window reached its stream's `end` (shed or overwritten, per /metrics).
            row["drops_reported"] = row["dropped_windows"] == (
                row["shed_windows"] + row["overwritten_windows"]
            )
            verdict = "pass" if passed(row, args.p95_ms) else "FAIL"
            if not args.quiet:
                print(f"{target.name} N={n}: p95 {row['server_p95_ms'] or 0:.0f} ms (client "
                      f"{row['client_p95_ms'] or 0:.0f}), drops {row['dropped_windows']} (shed "
                      f"{row['shed_windows']}), errors {row['errors']} -> {verdict}",
                      file=sys.stderr)  # fmt: skip
            return row

        round_ceiling = base_ceiling
        for r in range(args.repeat):
            if r and base_ceiling:  # the machine drifts: each round gets its own ceiling
                again = await asyncio.to_thread(ceiling, settings, audio)
                ceilings.setdefault("rounds", [ceilings["base"]]).append(again)
                round_ceiling = again["audio_s_per_s"]
            for target in targets:
                if args.find_capacity:

                    async def probe(n: int, target: Target = target) -> dict[str, Any]:
                        return await once(target, n)

                    n, tried = await find_capacity(
                        probe, args.streams, args.capacity_limit, args.p95_ms
                    )
                    rows += tried
                    capacity[target.name] = max(capacity.get(target.name, 0), n)
                else:
                    for n in counts:
                        rows.append(await once(target, n))
    medians = median_rows(rows) if args.repeat > 1 else []
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "command": "voxlive bench " + shlex.join(sys.argv[2:]),
        "p95_ms": args.p95_ms, "ceiling": ceilings, "capacity": capacity,
        "capacity_pct_of_ceiling": {
            name: 100 * n * cost / base_ceiling for name, n in capacity.items() if base_ceiling
        },
        "runs": rows, "medians": medians,
    }  # fmt: skip
    await asyncio.to_thread(_write, Path(args.out), json.dumps(report, indent=2))
    print(table(rows))
    if medians:
        print(f"median of {args.repeat} rounds:")
        print(table(medians))
    for kind in ("base", "int8"):
        if kind in ceilings:
            c = ceilings[kind]
            print(f"ceiling[{kind}]: {c['audio_s_per_s']:.2f} audio-s/s ({c['backend']}, batch "
                  f"{c['best_batch']}) = {c['streams']:.2f} live streams flat out")  # fmt: skip
    if "rounds" in ceilings:
        each = ", ".join(f"{c['audio_s_per_s']:.2f}" for c in ceilings["rounds"])
        print(f"ceiling[base] by round: {each} audio-s/s")
    if "int8" in ceilings:
        print(int8_hint(ceilings["base"], ceilings["int8"]))
    for name, n in capacity.items():
        pct = f", {100 * n * cost / base_ceiling:.0f} % of the ceiling" if base_ceiling else ""
        print(f"capacity[{name}]: {n} streams at p95 <= {args.p95_ms:g} ms with no drops{pct}")
    print(f"wrote {args.out}")
    return 0

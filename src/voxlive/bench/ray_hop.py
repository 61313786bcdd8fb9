"""What the Ray engine adds to one model call: the same batch through ``--engine ray``'s
classifier and in this process, alternated, on a local Ray instance bound to loopback.

``python -m voxlive.bench.ray_hop --model PATH [server flags] --sizes 1 2 4 --calls 20`` prints,
per batch size, the median call in-process, the median Ray round trip, what Ray adds (their
difference), and where the Ray call's time goes: the replica's own model call and the rest (the
hop: serialising the batch, the handle and Serve's router, the replica's queue, the result
coming back), with ``ray.put`` of the batch alone (serialising it into the object store) beside
it. Then the CPU that Ray's own processes (GCS, raylet, Serve's controller, the idle replica)
use while nothing is sent: what they take from the cores the front and the model need. It
prints numbers and writes JSON; it asserts nothing.

The local instance gets ``--num-cpus`` (2: this machine's) and is shut down at the end. Written
against :class:`~voxlive.inference.ray_serve.RayClassifier`'s ``predict``, so it times any
version of it (an older one without ``hops`` shows no split).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.bench import provenance
from voxlive.settings_sources import add_arguments, build


def _ms(values: list[float]) -> float | None:
    return round(1000 * statistics.median(values), 2) if values else None


def _tree_cpu_s() -> float | None:
    try:
        from voxlive.bench.scrape import tree_cpu_s
    except ImportError:  # an older voxlive
        return None
    return tree_cpu_s(os.getpid())


def measure(
    clf: Any, local: Any, window: int, sizes: list[int], calls: int
) -> list[dict[str, Any]]:
    """Per batch size, ``calls`` calls each way, alternated (so a change in the machine's speed
    touches both alike)."""
    import ray

    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        batch = 0.1 * rng.standard_normal((size, window)).astype(np.float32)
        clf.predict(batch), local.predict(batch)  # each shape once before timing
        hops = getattr(clf, "hops", None)
        seen = len(hops) if hops is not None else 0
        times: dict[str, list[float]] = {"local": [], "ray": [], "put": []}
        for i in range(calls):
            order = ("local", "ray") if i % 2 == 0 else ("ray", "local")
            for way in order:
                started = time.perf_counter()
                (local if way == "local" else clf).predict(batch)
                times[way].append(time.perf_counter() - started)
            started = time.perf_counter()
            ref = ray.put(batch)
            times["put"].append(time.perf_counter() - started)
            del ref
        hop = list(hops)[seen:] if hops is not None else []
        added = [r - loc for r, loc in zip(times["ray"], times["local"], strict=True)]
        rows.append({
            "size": size, "calls": calls, "local_ms": _ms(times["local"]),
            "ray_ms": _ms(times["ray"]), "added_ms": _ms(added), "hop_ms": _ms(hop),
            "replica_model_ms": _ms([r - h for r, h in zip(times["ray"], hop, strict=False)])
            if hop else None,
            "put_ms": _ms(times["put"]),
        })  # fmt: skip
    return rows


def idle_cpu(seconds: float) -> float | None:
    """% of one core that this process and its descendants (the local Ray's processes) use
    while nothing is sent, this process's own share left out."""
    import resource

    tree0, own0 = _tree_cpu_s(), resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(seconds)
    tree1, own1 = _tree_cpu_s(), resource.getrusage(resource.RUSAGE_SELF)
    if tree0 is None or tree1 is None:
        return None
    own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    return round(100 * ((tree1 - tree0) - own) / seconds, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxlive.bench.ray_hop", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--calls", type=int, default=20, help="calls per size and way")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU measured over")
    parser.add_argument("--out", default="bench-results/ray-hop.json")
    add_arguments(parser, "server: {}")
    args = vars(parser.parse_args(argv))
    settings = build({**args, "engine": "ray"}, os.environ)

    import ray
    from ray import serve

    from voxlive.inference.loader import load_local
    from voxlive.inference.ray_serve import RayClassifier

    began = provenance.begin({"settings": settings, "sizes": args["sizes"],
                              "calls": args["calls"], "num_cpus": args["num_cpus"],
                              "idle_s": args["idle_s"]})  # fmt: skip
    ray.init(num_cpus=args["num_cpus"], include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # fmt: skip
    try:
        clf = RayClassifier(settings)
        local = load_local(settings)
        window = local.info.sample_rate * settings.window_ms // 1000
        local.warmup(window)
        clf.warmup(window)
        idle = idle_cpu(args["idle_s"])
        rows = measure(clf, local, window, args["sizes"], args["calls"])
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    report = {"provenance": began.end(), "command": " ".join(sys.argv),
              "backend": local.info.backend,
              "ray_idle_cpu_pct": idle, "rows": rows}  # fmt: skip
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"backend {local.info.backend}; Ray's processes idle: {idle} % of a core")
    keys = ["size", "local_ms", "ray_ms", "added_ms", "hop_ms", "replica_model_ms", "put_ms"]
    print("  ".join(f"{k:>16}" for k in keys))
    for row in rows:
        print("  ".join(f"{'-' if row[k] is None else row[k]:>16}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

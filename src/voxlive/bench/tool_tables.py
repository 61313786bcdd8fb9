"""Tables from the other bench tools' JSON: the backends' ceilings (``python -m
voxlive.bench.ceiling``), the attack suite (:mod:`voxlive.bench.attacks`), the balancer
(:mod:`voxlive.bench.balancer`), the failover test's runs
(``tests/integration/test_cluster_failover.py``) and the Ray hop (:mod:`voxlive.bench.ray_hop`).

Each kind takes the parsed JSON documents, in the marker's order, and the marker's options; a
kind that compares runs (before and after a change) names them with ``labels=before,after``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from voxlive.bench.balancer import percentiles
from voxlive.bench.markdown import NONE, Column, Table, TableError, bold, num, span

Doc = Any  # a parsed JSON document (the attack suite's first ones were a bare list)
Options = Mapping[str, str]

BACKENDS = {"torch": "PyTorch fp32", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}


def _labels(docs: Sequence[Doc], options: Options, kind: str) -> list[str]:
    labels = options.get("labels", "").split(",") if "labels" in options else []
    if len(docs) > 1 and len(labels) != len(docs):
        raise TableError(f"kind={kind}: expected labels=… naming each of the {len(docs)} JSON "
                         f"files, got {len(labels)}")  # fmt: skip
    return labels


def ceilings(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=ceilings``: a row per round, each backend's ceiling (audio-s/s); ``ratios=a/b,…``
    adds a's ceiling over b's."""
    if len(docs) != 1:
        raise TableError(f"kind=ceilings: expected one JSON file, got {len(docs)}")
    rounds = docs[0]["rounds"]
    kinds = list(rounds[0])
    ratios = [tuple(r.split("/")) for r in options.get("ratios", "").split(",") if r]
    for pair in ratios:
        if len(pair) != 2 or not set(pair) <= set(kinds):
            raise TableError(f"ratios: expected a/b with a and b among {', '.join(kinds)}, "
                             f"got {'/'.join(pair)}")  # fmt: skip
    columns = [Column("round", "left"), *(Column(BACKENDS.get(k, k)) for k in kinds)]
    columns += [Column(f"{BACKENDS.get(a, a)} / {BACKENDS.get(b, b)}") for a, b in ratios]
    rows = []
    for i, measured in enumerate(rounds, 1):
        speed = {k: measured[k]["audio_s_per_s"] for k in kinds}
        rows.append((str(i), *(num(speed[k], 2) for k in kinds),
                     *(num(speed[a] / speed[b], 1) + "×" for a, b in ratios)))  # fmt: skip
    return Table(tuple(columns), tuple(rows))


# ---- the attack suite ------------------------------------------------------------------------
ATTACKS = {  # the suite's attacks as a table names them, in the order it shows them
    "empty-continuations": "empty continuation frames",
    "one-byte-fragments": "256 KiB messages in 1-byte fragments",
    "slowloris": "slowloris: 512 partial request lines, re-opened at once",
    "slowloris-8-sources": "the same from 8 addresses",
    "tiny-messages": "48 connections of one-sample frames, flat out",
    "tiny-messages-8-sources": "the same from 8 addresses",
    "ping-flood": "ping flood, pongs read",
}
# What tests/integration/test_attack_suite.py asserts of every attack; a figure past it is bold.
# Probes: the median within 100 ms, the slowest within 150 ms (3x the slowest seen with bounded
# bursts on 2 cores; the 8-address flood with unbounded bursts stalled the server 350-370 ms).
ATTACK_MEDIAN_PROBE_MS, ATTACK_PROBE_MS, ATTACK_RSS_MIB = 100, 150, 48


def _outcomes(doc: Doc) -> dict[str, Mapping[str, Any]]:
    listed = doc["outcomes"] if isinstance(doc, Mapping) else doc
    return {o["attack"]: o for o in listed}


def _p95(o: Mapping[str, Any]) -> str:
    alone, attacked = o["honest_p95_alone_ms"], o["honest_p95_attacked_ms"]
    if not o["honest_results"]:
        return f"{num(alone)} ms → {bold('refused')}"
    text = f"{num(alone)} → {num(attacked)} ms"
    return bold(text) if attacked > 2 * alone + 50 else text


def _probe(o: Mapping[str, Any]) -> str:
    text = f"{num(o['slowest_probe_ms'])} ms"
    if o["failed_probes"]:
        text += f" ({o['failed_probes']} failed)"
    return bold(text) if o["failed_probes"] or o["slowest_probe_ms"] > ATTACK_PROBE_MS else text


def attacks(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=attacks``: a row per attack, each run's figures side by side (``a; b``): the
    honest stream's p95 alone → attacked, its results, the slowest ``/healthz`` probe and the
    server's RSS growth. Bold: past what the CI suite asserts."""
    labels, runs = _labels(docs, options, "attacks"), [_outcomes(d) for d in docs]
    names = [a for a in ATTACKS if any(a in r for r in runs)]
    names += sorted({a for r in runs for a in r} - set(names))
    every = f" ({'; '.join(labels)})" if labels else ""

    def cells(name: str, cell: Callable[[Mapping[str, Any]], str]) -> str:
        return "; ".join(cell(r[name]) if name in r else NONE for r in runs)

    def results(o: Mapping[str, Any]) -> str:
        text = f"{o['honest_results']}/{o['honest_results_alone']}"
        return bold(text) if o["honest_results"] < o["honest_results_alone"] else text

    def rss(o: Mapping[str, Any]) -> str:
        text = f"+{num(o['rss_growth_mib'])} MiB"
        return bold(text) if o["rss_growth_mib"] > ATTACK_RSS_MIB else text

    columns = (Column("attack", "left"), Column(f"honest p95 alone → attacked{every}", "left"),
               Column(f"honest results{every}", "left"),
               Column(f"slowest `/healthz`, failed probes{every}", "left"),
               Column(f"server RSS growth{every}", "left"))  # fmt: skip
    rows = tuple((ATTACKS.get(n, n), cells(n, _p95), cells(n, results), cells(n, _probe),
                  cells(n, rss)) for n in names)  # fmt: skip
    return Table(columns, rows)


# ---- cluster ---------------------------------------------------------------------------------
def _pair(p: Mapping[str, Any], digits: int = 1) -> str:
    return f"{num(p['p50_ms'], digits)} / {num(p['p95_ms'], digits)} ms"


def balancer(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=balancer``: a row per run (file): the same streams straight to the fronts,
    through HAProxy, straight again, beside the same-run ceiling."""
    columns = (Column("streams"), Column("same-run ceiling (audio-s/s)"),
               Column("load, % of ceiling"), Column("straight (1st) p50 / p95", "left"),
               Column("through HAProxy p50 / p95", "left"),
               Column("straight (2nd) p50 / p95", "left"), Column("results each", "left"),
               Column("failed streams"))  # fmt: skip
    rows = []
    for doc in docs:
        passes = [doc[k] for k in ("direct_1", "haproxy", "direct_2")]
        counts = [str(p["n"]) for p in passes]
        rows.append((str(doc["streams"]), num(doc["ceiling"]["audio_s_per_s"], 1),
                     num(doc["ceiling"]["load_pct_of_ceiling"], 1), *(_pair(p) for p in passes),
                     counts[0] if len(set(counts)) == 1 else " / ".join(counts),
                     str(sum(len(p["failures"]) for p in passes))))  # fmt: skip
    return Table(columns, tuple(rows))


def _runs(doc: Doc) -> list[Mapping[str, Any]]:
    """The failover runs of one file: a ``.jsonl`` file (read as a list, one run a line, as the
    test appends them) or an older summary's ``runs``."""
    return list(doc if isinstance(doc, list) else doc["runs"])


def _pooled(runs: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    """``key``'s values of every run together: p50 / p95 and the largest."""
    values = [v for r in runs for v in r[f"{key}_ms"]]
    return {**percentiles(values), "max_ms": round(max(values), 1) if values else None}


def failover(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=failover``: a row per signal (file), over its runs together: streams moved, signal
    → ``ready`` on the new front and → its first result there, windows lost, results twice,
    the front's exit."""
    columns = (Column("signal", "left"), Column("streams moved", "left"),
               Column("→ `ready` on the new front p50 / p95", "left"),
               Column("→ first result p50 / p95 (max)", "left"), Column("windows lost", "left"),
               Column("results twice"), Column("the front exits after", "left"))  # fmt: skip
    rows = []
    for doc in docs:
        runs = _runs(doc)
        signal, moved = runs[0]["signal"], [r["moved_streams"] for r in runs]
        first = _pooled(runs, "signal_to_first_result")
        windows = sum(a["windows"] for r in runs for a in r["accounts"])
        exits = "— (killed)" if signal == "SIGKILL" else span([r["exit_s"] for r in runs], 2, " s")
        rows.append(("`kill -9`" if signal == "SIGKILL" else signal,
                     f"{sum(moved)} ({span(moved)} a run)",
                     _pair(_pooled(runs, "signal_to_ready"), 0),
                     f"{_pair(first, 0)} ({num(first['max_ms'])})",
                     f"{sum(r['lost_windows'] for r in runs)} of {windows}",
                     str(sum(r["repeats"] for r in runs)), exits))  # fmt: skip
    return Table(columns, tuple(rows))


# ---- Ray -------------------------------------------------------------------------------------
def ray_hop(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=ray_hop``: a row per batch size: the in-process call (the first file's), then per
    file the Ray round trip and what it adds, and the hop where the file split it out."""
    labels = _labels(docs, options, "ray_hop") or [""]
    by_size = [{r["size"]: r for r in doc["rows"]} for doc in docs]
    sizes = sorted(set(by_size[0]).intersection(*by_size[1:]))
    columns = [Column("batch"), Column("in-process ms")]
    for label, doc in zip(labels, docs, strict=True):
        tail = f" {label}" if label else ""
        columns += [Column(f"Ray{tail} ms"), Column(f"added{tail} ms")]
        if any(r.get("hop_ms") is not None for r in doc["rows"]):
            columns.append(Column(f"hop{tail} ms (round trip − replica's call)"))
    rows = []
    for size in sizes:
        cells = [str(size), num(by_size[0][size]["local_ms"], 1)]
        for doc, rows_of in zip(docs, by_size, strict=True):
            r = rows_of[size]
            cells += [num(r["ray_ms"], 1), num(r["added_ms"], 1)]
            if any(x.get("hop_ms") is not None for x in doc["rows"]):
                cells.append(num(r.get("hop_ms"), 1))
        rows.append(tuple(cells))
    return Table(tuple(columns), tuple(rows))


Render = Callable[[Sequence[Doc], Options], Table]
KINDS: dict[str, tuple[Render, frozenset[str]]] = {
    "ceilings": (ceilings, frozenset({"ratios"})),
    "attacks": (attacks, frozenset({"labels"})),
    "balancer": (balancer, frozenset()),
    "failover": (failover, frozenset()),
    "ray_hop": (ray_hop, frozenset({"labels"})),
}

"""Tables from ``voxlive bench``'s JSON (:func:`voxlive.bench.run.report`): its runs, the runs of
its servers side by side, the medians of its rounds and the capacities it found.

Every kind takes the parsed JSON documents and the marker's options (``cols=a,b``,
``base=LABEL``, ...) and returns a :class:`~voxlive.bench.markdown.Table`. The columns a table
may show are in :data:`COLUMNS`, each a figure of one run (or one median row), read from the
keys :meth:`voxlive.bench.row.Row.to_dict` writes. A run's round is the round whose ceiling it
was judged against (``ceiling.rounds``); with no rounds recorded, a (server, N) seen again
starts the next round.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from voxlive.bench.capacity import passed as capacity_passed
from voxlive.bench.markdown import NONE, Align, Column, Table, TableError, bold, num

Doc = Mapping[str, Any]
Options = Mapping[str, str]


@dataclass(frozen=True)
class Run:
    """One row of figures (a run, or a median row) with what its table needs around it."""

    row: Mapping[str, Any]
    doc: Doc  # the whole JSON: p95 goal, capacities, ceilings
    round: int = 0  # 1-based; 0 for a median row
    first_in_round: bool = False
    base: str = "base"  # how the base server is named in the table

    def get(self, key: str) -> Any:
        return self.row.get(key)

    @property
    def server(self) -> str:
        target = str(self.row["target"])
        if target.startswith("base ["):  # "base [conversation]": the kind of streams
            return target.removeprefix("base [").removesuffix("]")
        return self.base if target == "base" else f"`{target}`"


def _ms(key: str) -> Callable[[Run], str]:
    return lambda r: num(r.get(key))


def _round_ceiling(r: Run) -> str:
    ceiling = r.get("ceiling_audio_s_per_s")
    return f"{r.round} ({num(ceiling, 2)})" if r.first_in_round and ceiling else str(r.round)


def _latency(r: Run) -> str:
    return " / ".join(num(r.get(k)) for k in ("server_p50_ms", "server_p95_ms", "client_p95_ms"))


def _lost(r: Run) -> str:
    """Lost windows and how: shed (too stale) or overwritten (a full buffer); whether every
    one reached its stream's ``end``."""
    dropped = int(r.get("dropped_windows") or 0)
    if not dropped:
        return "0"
    shed, over = int(r.get("shed_windows") or 0), int(r.get("overwritten_windows") or 0)
    ways = [f"{n} {how}" for n, how in ((shed, "shed"), (over, "overwritten")) if n]
    if len(ways) == 1 and shed + over == dropped:  # one way accounts for every window
        text = ways[0]
    else:
        text = f"{dropped} ({', '.join(ways)})" if ways else str(dropped)
    if r.get("drops_reported") is False:
        text += ", not all reported"
    return text


def _tree_cpu(r: Run) -> str:
    """The server's process tree; the front's own share beside it when the tree has more."""
    own, tree = r.get("server_cpu_pct"), r.get("tree_cpu_pct")
    if tree is None or num(tree) == num(own):
        return num(own)
    return f"{num(tree)} (front {num(own)})"


def _warmup_s(doc: Doc) -> float:
    """The run's ``--warmup-s``, read from its command line (2 s, the default, if not there)."""
    words = shlex.split(str(doc.get("command", "")).replace("--warmup-s=", "--warmup-s "))
    for flag, value in itertools.pairwise(words):
        if flag == "--warmup-s":
            return float(value)
    return 2.0


def model_pct(r: Run) -> str:
    """What reached the model, % of the ceiling; derived as :func:`voxlive.bench.run.judge`
    does for JSON written before it recorded ``model_pct_of_ceiling`` (the warm-up from the
    command line, the window from the ceiling's)."""
    if (pct := r.get("model_pct_of_ceiling")) is not None:
        return num(pct)
    ceiling, seconds = r.get("ceiling_audio_s_per_s"), r.get("seconds")
    if not ceiling or not seconds or r.get("model_results") is None:
        return NONE
    counted = seconds - _warmup_s(r.doc)
    window_s = r.doc.get("ceiling", {}).get("base", {}).get("window_ms", 1000) / 1000
    reached = r.get("model_results") + (r.get("dropped_windows") or 0) * counted / seconds
    return num(100 * reached * window_s / counted / ceiling)


@dataclass(frozen=True)
class _Judged:
    """A JSON row as :func:`voxlive.bench.capacity.passed` reads a run (JSON written before a
    figure was recorded lacks it: counts as none)."""

    server_p95_ms: float | None
    client_p95_ms: float | None
    dropped_windows: int
    errors: int
    failed_streams: Sequence[str]
    paced_streams: int


def passed(r: Run) -> bool:
    """:func:`voxlive.bench.capacity.passed` on a JSON row, against the JSON's p95 goal."""
    judged = _Judged(
        r.get("server_p95_ms"), r.get("client_p95_ms"), r.get("dropped_windows") or 0,
        r.get("errors") or 0, r.get("failed_streams") or (), r.get("paced_streams") or 0,
    )  # fmt: skip
    return capacity_passed(judged, r.doc["p95_ms"])


def _verdict(r: Run) -> str:
    if not passed(r):
        return "fail"
    capacity = r.doc.get("capacity", {}).get(r.row["target"])
    return f"pass: capacity {capacity}" if capacity == r.get("streams") else "pass"


Cell = Callable[[Run], str]
# name → (heading, alignment, cell); the heading may name the JSON's p95 goal as {p95}
COLUMNS: dict[str, tuple[str, Align, Cell]] = {
    "round": ("round", "left", lambda r: str(r.round)),
    "round_ceiling": ("round (ceiling, audio-s/s)", "left", _round_ceiling),
    "server": ("server", "left", lambda r: r.server),
    "streams": ("N", "right", lambda r: num(r.get("streams"))),
    "pct": ("% of ceiling", "right", lambda r: num(r.get("pct_of_ceiling"))),
    "model_pct": ("reached the model, % of ceiling", "right", model_pct),
    "p50": ("p50", "right", _ms("server_p50_ms")),
    "p95": ("p95", "right", _ms("server_p95_ms")),
    "p99": ("p99", "right", _ms("server_p99_ms")),
    "client_p95": ("client p95", "right", _ms("client_p95_ms")),
    "latency": ("p50 / p95 / client p95", "left", _latency),
    "windows": ("model windows / gated results", "left",
                lambda r: f"{num(r.get('model_results'))} / {num(r.get('gated_results'))}"),
    "gated_p95": ("gated p95", "right", _ms("gated_p95_ms")),
    "lost": ("lost windows", "left", _lost),
    "errors": ("errors", "right", lambda r: num(r.get("errors"))),
    "gauge": ("gauge (streams)", "right", lambda r: num(r.get("gauge_streams"), 1)),
    "batch": ("batch", "right", lambda r: num(r.get("mean_batch"), 2)),
    "cpu": ("server CPU %", "right", lambda r: num(r.get("server_cpu_pct"))),
    "tree_cpu": ("server CPU % (tree)", "right", _tree_cpu),
    "ray_cpu": ("Ray's own CPU %", "right", lambda r: num(r.get("ray_cpu_pct"))),
    "client_cpu": ("bench CPU %", "right", lambda r: num(r.get("client_cpu_pct"))),
    "host_cpu": ("host CPU %", "right", lambda r: num(r.get("machine_cpu_pct"))),
    "per_stream": ("results / stream / s", "right",
                   lambda r: num(r.get("results_per_stream_per_s"), 2)),
    "fresh": ("fresh / s", "right", lambda r: num(r.get("fresh_results_per_s"), 1)),
    "covered": ("audio covered %", "right",
                lambda r: num(None if (c := r.get("fresh_coverage")) is None else 100 * c)),
    "paced": ("paced streams", "right", lambda r: num(r.get("paced_streams"))),
    "verdict": ("verdict (p95 ≤ {p95} ms)", "left", _verdict),
}  # fmt: skip


def _names(options: Options, key: str, default: str) -> list[str]:
    names = [n for n in options.get(key, default).split(",") if n]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or not names:
        raise TableError(f"{key}: expected columns among {', '.join(COLUMNS)}, got "
                         f"{', '.join(unknown) or 'none'}")  # fmt: skip
    return names


def _heading(name: str, doc: Doc, prefix: str = "") -> Column:
    heading, align, _ = COLUMNS[name]
    return Column(prefix + heading.format(p95=num(doc.get("p95_ms"))), align)


def _one(docs: Sequence[Doc], kind: str) -> Doc:
    if len(docs) != 1:
        raise TableError(f"kind={kind}: expected one JSON file, got {len(docs)}")
    return docs[0]


def runs_of(doc: Doc, base: str = "base") -> list[Run]:
    """Every run in ``doc``, in order, with its round."""
    ceilings = [c.get("audio_s_per_s") for c in doc.get("ceiling", {}).get("rounds", [])]
    out: list[Run] = []
    seen: set[tuple[str, int]] = set()
    current = 1
    for row in doc.get("runs", []):
        key = (row["target"], row["streams"])
        if ceilings and row.get("ceiling_audio_s_per_s") in ceilings:
            current = ceilings.index(row["ceiling_audio_s_per_s"]) + 1
        elif key in seen:
            current, seen = current + 1, set()
        seen.add(key)
        first = not out or out[-1].round != current
        out.append(Run(row, doc, current, first, base))
    return out


def _bolded(options: Options) -> set[str]:
    return set(options.get("bold", "").split(",")) - {""}


def runs(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=runs``: one row per run, ``cols=`` chosen from :data:`COLUMNS`."""
    doc = _one(docs, "runs")
    names = _names(options, "cols", "round,server,streams,pct,p50,p95,client_p95,lost")
    strong = _bolded(options)
    rows = tuple(
        tuple(bold(c) if n in strong else c for n, c in ((n, COLUMNS[n][2](r)) for n in names))
        for r in runs_of(doc, options.get("base", "base"))
    )
    return Table(tuple(_heading(n, doc) for n in names), rows)


def medians(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=medians``: one row per (server, N) run in more than one round: the medians."""
    doc = _one(docs, "medians")
    names = _names(options, "cols", "server,streams,pct,p50,p95,p99,client_p95,batch")
    if not doc.get("medians"):
        raise TableError("kind=medians: expected medians (a run with --repeat 2 or more), got none")
    base, strong = options.get("base", "base"), _bolded(options)
    rows = tuple(
        tuple(bold(COLUMNS[n][2](r)) if n in strong else COLUMNS[n][2](r) for n in names)
        for r in (Run(m, doc, base=base) for m in doc["medians"])
    )
    return Table(tuple(_heading(n, doc) for n in names), rows)


def compare(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=compare``: the servers of one run side by side, a row per (round, N): ``cols=``
    from the base server's run, then ``side=`` for each server in turn."""
    doc = _one(docs, "compare")
    shared = _names(options, "cols", "round,streams,pct")
    side = _names(options, "side", "latency,lost")
    base = options.get("base", "base")
    groups: dict[tuple[int, int], dict[str, Run]] = {}
    servers: list[str] = []
    for r in runs_of(doc, base):
        groups.setdefault((r.round, r.row["streams"]), {})[r.row["target"]] = r
        if r.row["target"] not in servers:
            servers.append(r.row["target"])
    if servers[:1] != ["base"]:
        raise TableError(f"kind=compare: expected the base server's runs first, got {servers[:1]}")
    columns = [_heading(n, doc) for n in shared]
    for target in servers:
        label = base if target == "base" else f"`{target}`"
        columns += [_heading(n, doc, f"{label}: ") for n in side]
    rows = []
    for group in groups.values():
        if set(group) != set(servers):
            raise TableError(f"kind=compare: expected a run of each of {servers} per round and "
                             f"N, got {sorted(group)}")  # fmt: skip
        cells = [COLUMNS[n][2](group["base"]) for n in shared]
        cells += [COLUMNS[n][2](group[t]) for t in servers for n in side]
        rows.append(tuple(cells))
    return Table(tuple(columns), tuple(rows))


def capacity(docs: Sequence[Doc], options: Options) -> Table:
    """``kind=capacity``: per server, the N ``--find-capacity`` found, as % of the ceiling,
    its p95, and the smallest N above it that failed."""
    doc = _one(docs, "capacity")
    if not doc.get("capacity"):
        raise TableError("kind=capacity: expected capacities (a --find-capacity run), got none")
    goal = num(doc["p95_ms"])
    columns = (Column("server", "left"), Column(f"capacity (p95 ≤ {goal} ms, nothing lost)"),
               Column("% of ceiling"), Column("p95 / client p95 there"),
               Column("next N tried: p95 / client p95", "left"))  # fmt: skip
    base, rows = options.get("base", "base"), []
    every = runs_of(doc, base)
    for target, n in doc["capacity"].items():
        mine = [r for r in every if r.row["target"] == target]
        at = [r for r in mine if r.get("streams") == n and passed(r)]
        above = sorted((r for r in mine if r.get("streams") > n), key=lambda r: r.get("streams"))
        there = (f"{num(at[-1].get('server_p95_ms'))} / {num(at[-1].get('client_p95_ms'))}"
                 if at else NONE)  # fmt: skip
        nxt = NONE
        if above:
            first = above[0]
            nxt = (f"{first.get('streams')}: {num(first.get('server_p95_ms'))} / "
                   f"{num(first.get('client_p95_ms'))}")  # fmt: skip
            if first.get("dropped_windows"):
                nxt += f"; lost {_lost(first)}"
        label = base if target == "base" else f"`{target}`"
        pct = num(doc.get("capacity_pct_of_ceiling", {}).get(target))
        rows.append((label, str(n), pct, there, nxt))
    return Table(columns, tuple(rows))


Render = Callable[[Sequence[Doc], Options], Table]
# kind → (how it is made, the options its marker may give)
KINDS: dict[str, tuple[Render, frozenset[str]]] = {
    "runs": (runs, frozenset({"cols", "base", "bold"})),
    "medians": (medians, frozenset({"cols", "base", "bold"})),
    "compare": (compare, frozenset({"cols", "side", "base"})),
    "capacity": (capacity, frozenset({"base"})),
}

"""Regenerate the benchmark tables in BENCHMARKS.md (README.md, docs/benchmarks/history.md) from
the committed raw JSON, so a figure in a table is the one its JSON holds.

``python -m voxlive.bench.report`` rewrites every generated table; ``--check`` changes nothing,
prints a diff and exits 1 when a table differs from what its JSON gives (2: a marker it cannot
read). A generated table sits between two markers; the first names its JSON files (relative
to the Markdown file), its kind and the kind's options::

    <!-- table: docs/benchmarks/2026-12-06/ray-vs-in-process-at-60.json kind=medians
         cols=server,streams,pct,p95 base=in-process -->
    | server | N | % of ceiling | p95 |
    ...
    <!-- /table -->

The kinds: ``runs``, ``compare``, ``medians`` and ``capacity`` read ``voxlive bench``'s JSON
(:mod:`voxlive.bench.tables`, whose ``COLUMNS`` lists the columns ``cols=`` may name);
``ceilings``, ``attacks``, ``balancer``, ``failover`` and ``ray_hop`` the other tools'
(:mod:`voxlive.bench.tool_tables`). Options with spaces are quoted (``base="default (shedding)"``).

BENCHMARKS.md holds the current figures only: there every table is generated from JSON that
records its provenance (:mod:`voxlive.bench.provenance`), and ``--check`` fails on a table that
is not or on JSON without it. docs/benchmarks/history.md keeps earlier measurements: its
tables are generated where the raw JSON was kept, else say in the line just above them that
they are ``Hand-recorded (raw output not kept).`` (their numbers cannot be checked); ``--check``
fails on a table there that does neither.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxlive.bench import tables, tool_tables
from voxlive.bench.markdown import TableError

MARKER = re.compile(r"^<!-- table: (?P<spec>.*?)-->\n(?P<body>.*?)^<!-- /table -->$",
                    re.MULTILINE | re.DOTALL)  # fmt: skip
HAND = "Hand-recorded (raw output not kept)."
FILES = ("BENCHMARKS.md", "README.md", "docs/benchmarks/history.md")  # the default
STRICT = frozenset({"BENCHMARKS.md"})  # every table generated, from JSON with provenance
MARKED = frozenset({"history.md"})  # every table generated or marked hand-recorded
KINDS = {**tables.KINDS, **tool_tables.KINDS}


class ReportError(ValueError):
    """A marker that cannot be read: where, and what was expected."""


@dataclass(frozen=True)
class Spec:
    """What a marker asks for."""

    files: tuple[str, ...]
    kind: str
    options: dict[str, str]


def parse_spec(text: str) -> Spec:
    """A marker's ``FILE … kind=K key=value …``."""
    try:
        words = shlex.split(text.replace("\n", " "))
    except ValueError as exc:
        raise ReportError(
            f"expected FILE… kind=K key=value…, got {text.strip()!r}: {exc}"
        ) from None
    options = dict(w.split("=", 1) for w in words if re.match(r"^[a-z_]+=", w))
    files = tuple(w for w in words if not re.match(r"^[a-z_]+=", w))
    kind = options.pop("kind", "")
    if kind not in KINDS:
        raise ReportError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(options) - KINDS[kind][1])
    if unknown:
        allowed = ", ".join(sorted(KINDS[kind][1])) or "none"
        raise ReportError(
            f"kind={kind}: expected options among {allowed}, got {', '.join(unknown)}"
        )
    if not files:
        raise ReportError(f"kind={kind}: expected at least one JSON file, got none")
    return Spec(files, kind, options)


def _load(path: Path) -> Any:
    """A JSON file; a ``.jsonl`` file (one JSON document a line, as a tool appends its runs) as
    the list of its documents."""
    try:
        text = path.read_text()
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except OSError as exc:
        raise ReportError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ReportError(f"{path}: not JSON: {exc}") from None


def render(spec: Spec, base: Path) -> str:
    """The table ``spec`` asks for, from its JSON files under ``base``."""
    docs = [_load(base / f) for f in spec.files]
    make, _ = KINDS[spec.kind]
    try:
        return make(docs, spec.options).markdown()
    except TableError as exc:
        raise ReportError(f"kind={spec.kind}: {exc}") from None
    except (KeyError, IndexError, TypeError) as exc:
        raise ReportError(f"kind={spec.kind}: the JSON lacks what it needs: {exc!r}") from None


def regenerate(text: str, base: Path) -> tuple[str, int]:
    """``text`` with every generated table made again from its JSON; and how many there are.
    Raises :class:`ReportError` naming the marker's line."""
    count = 0

    def again(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        try:
            table = render(parse_spec(match["spec"]), base)
        except ReportError as exc:
            line = text.count("\n", 0, match.start()) + 1
            raise ReportError(f"line {line}: {exc}") from None
        return f"<!-- table: {match['spec']}-->\n{table}<!-- /table -->"

    new = MARKER.sub(again, text)
    opened = len(re.findall(r"^<!-- table:", text, re.MULTILINE))
    if opened != count:
        raise ReportError(f"expected {opened} tables closed by <!-- /table -->, got {count}")
    return new, count


def unmarked_tables(text: str, *, hand_ok: bool = True) -> list[int]:
    """The lines where a table starts that is not generated (and, with ``hand_ok``, not marked
    :data:`HAND` in the last non-blank line above it); code blocks skipped."""
    lines = text.split("\n")
    inside, fenced, out = False, False, []
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("<!-- table:"):
            inside = True
        elif line.startswith("<!-- /table -->"):
            inside = False
        elif (not inside and not fenced and line.startswith("|") and i + 1 < len(lines)
              and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1])):  # fmt: skip
            above = next((x for x in reversed(lines[:i]) if x.strip()), "")
            if not (hand_ok and HAND in above):
                out.append(i + 1)
    return out


def check(path: Path) -> tuple[str, list[str]]:
    """What regenerating ``path`` would change (a unified diff, empty when nothing), and the
    problems beside it (unmarked tables in a file of figures)."""
    text = path.read_text()
    try:
        new, _ = regenerate(text, path.parent)
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from None
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True),
                                        new.splitlines(keepends=True), f"{path} (as written)",
                                        f"{path} (from its JSON)"))  # fmt: skip
    problems = []
    if path.name in STRICT:
        problems = [f"{path}:{n}: a table not generated from JSON (<!-- table: … -->)"
                    for n in unmarked_tables(text, hand_ok=False)]  # fmt: skip
        problems += [f"{path}: {name}: expected the raw JSON's provenance (bench/provenance.py), "
                     "got none" for name in unproven(text, path.parent)]  # fmt: skip
    elif path.name in MARKED:
        problems = [f"{path}:{n}: a table neither generated (<!-- table: … -->) nor marked "
                    f"{HAND!r} just above it" for n in unmarked_tables(text)]  # fmt: skip
    return diff, problems


def unproven(text: str, base: Path) -> list[str]:
    """The JSON files named by ``text``'s table markers that lack ``provenance`` (a ``.jsonl``
    file: in any of its documents)."""
    names = [f for m in MARKER.finditer(text) for f in parse_spec(m["spec"]).files]
    out = []
    for name in dict.fromkeys(names):
        doc = _load(base / name)
        docs = doc if isinstance(doc, list) and name.endswith(".jsonl") else [doc]
        if not all(isinstance(d, dict) and d.get("provenance") for d in docs):
            out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voxlive.bench.report",
        description="Regenerate the tables in BENCHMARKS.md, README.md and "
        "docs/benchmarks/history.md from the raw JSON under docs/benchmarks/ (between "
        "<!-- table: … --> and <!-- /table --> markers).",
    )
    parser.add_argument(
        "files", nargs="*", type=Path, default=[Path(f) for f in FILES], metavar="FILE",
        help=f"Markdown files (default: {' '.join(FILES)})",
    )  # fmt: skip
    parser.add_argument(
        "--check", action="store_true",
        help="change nothing; print a diff and exit 1 if a table differs",
    )  # fmt: skip
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            if args.check:
                diff, problems = check(path)
                sys.stdout.write(diff)
                for problem in problems:
                    print(problem, file=sys.stderr)
                status = max(status, 1 if diff or problems else 0)
                continue
            text = path.read_text()
            new, count = regenerate(text, path.parent)
        except (ReportError, OSError) as exc:
            print(f"voxlive.bench.report: {exc}", file=sys.stderr)
            return 2
        if new != text:
            path.write_text(new)
        print(f"{path}: {count} tables, {'rewritten' if new != text else 'unchanged'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())

"""A Markdown table and the numbers in it: what every generated table in BENCHMARKS.md is made of
(:mod:`voxlive.bench.report` fills them from the raw JSON).

Numbers are rounded half up from their shortest decimal form (502.5 ms → 503, 5.05 → 5.1), as
a person reading the JSON would round them, not half to even as ``format`` does; a missing
figure is an em dash.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Align = Literal["left", "right"]
NONE = "—"  # no figure: the JSON holds null (or nothing) there


class TableError(ValueError):
    """A table cannot be made from what it was given: says what was expected and what came."""


def num(value: object, digits: int = 0) -> str:
    """``value`` rounded half up to ``digits`` decimals; :data:`NONE` for ``None`` or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TableError(f"expected a number, got {value!r}")
    step = Decimal(1).scaleb(-digits)
    rounded = Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP)
    return f"{rounded + 0:f}"  # + 0: no "-0"


def span(values: Sequence[float], digits: int = 0, unit: str = "") -> str:
    """``low–high`` (one figure when they round alike), with ``unit`` after."""
    if not values:
        return NONE
    low, high = num(min(values), digits), num(max(values), digits)
    return (low if low == high else f"{low}–{high}") + unit


def bold(cell: str) -> str:
    return f"**{cell}**" if cell and cell != NONE else cell


@dataclass(frozen=True)
class Column:
    """A heading and how its cells sit."""

    heading: str
    align: Align = "right"


@dataclass(frozen=True)
class Table:
    """Headings and rows of cells, ready to print as Markdown."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise TableError(f"row {i + 1}: expected {len(self.columns)} cells, got {len(row)}")

    def markdown(self) -> str:
        """The table, one line per row, each line ending in a newline."""

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n"

        rule = "|" + "|".join("---:" if c.align == "right" else "---" for c in self.columns)
        return (
            line([c.heading for c in self.columns]) + rule + "|\n" + "".join(map(line, self.rows))
        )

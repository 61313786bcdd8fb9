"""A Markdown table and its numbers (bench/markdown.py): half-up rounding, spans, alignment."""

from __future__ import annotations

import math

import pytest

from voxlive.bench.markdown import Column, Table, TableError, num, span


def test_numbers_round_half_up_as_a_reader_would() -> None:
    assert [num(502.5), num(5.05, 1), num(1.15, 1), num(0.125, 2)] == ["503", "5.1", "1.2", "0.13"]
    assert [num(7.0), num(222), num(-0.4), num(None), num(math.nan)] == ["7", "222", "0", "—", "—"]
    assert span([0.21, 0.16, 0.2], 2, " s") == "0.16–0.21 s" and span([2, 2]) == "2"
    with pytest.raises(TableError, match="expected a number, got 'x'"):
        num("x")


def test_a_table_is_markdown_with_its_alignment() -> None:
    table = Table((Column("a", "left"), Column("n")), (("x|y", "1"),))
    assert table.markdown() == "| a | n |\n|---|---:|\n| x\\|y | 1 |\n"
    with pytest.raises(TableError, match="row 1: expected 2 cells, got 1"):
        Table((Column("a"), Column("b")), (("1",),))

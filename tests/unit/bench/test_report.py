"""The benchmark tables cannot drift from their JSON (bench/report.py): the committed
BENCHMARKS.md and README.md are checked against the committed raw JSON, an edited figure fails
that check and a rewrite restores it, a hand-typed table in BENCHMARKS.md fails unless it says
it is hand-recorded, and a marker that cannot be read says where and why. The kinds of table
are tested beside their modules (test_tables.py, test_tool_tables.py, test_markdown.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from voxlive.bench.report import (
    HAND,
    ReportError,
    check,
    main,
    parse_spec,
    regenerate,
    unmarked_tables,
)

ROOT = Path(__file__).resolve().parents[3]


# ---- the committed tables --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["BENCHMARKS.md", "README.md", "docs/benchmarks/history.md"])
def test_the_committed_tables_are_the_ones_their_json_gives(name: str) -> None:
    diff, problems = check(ROOT / name)
    assert diff == "", f"a table differs from its JSON; run python -m voxlive.bench.report\n{diff}"
    assert problems == []


def test_benchmarks_md_generates_every_table_that_has_json() -> None:
    text = (ROOT / "BENCHMARKS.md").read_text()
    _, count = regenerate(text, ROOT)
    assert count >= 10
    named = set(re.findall(r"docs/benchmarks/[\w./-]+\.jsonl?", "".join(
        re.findall(r"<!-- table: (.*?)-->", text, re.DOTALL))))  # fmt: skip
    for path in ("default-vs-no-shedding.json", "failover-sigkill.jsonl",
                 "ray-replicas-at-60-and-120.json", "ceilings.json"):  # fmt: skip
        assert f"docs/benchmarks/2026-12-07/{path}" in named


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """BENCHMARKS.md in a folder of its own, the committed JSON beside it."""
    shutil.copy(ROOT / "BENCHMARKS.md", tmp_path / "BENCHMARKS.md")
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    return tmp_path / "BENCHMARKS.md"


def test_an_edited_figure_fails_the_check_and_a_rewrite_restores_it(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = copy.read_text()
    row = (
        "| 9 | 77 | 110 / 176 / 177 | 1.42 | 0 | 0 | 18.5 | 254 / 375 / 376 | 2.95 | 0 | 0 | 18.5 |"
    )
    assert text.count(row) == 1  # live under load at defaults: N
    copy.write_text(text.replace(row, row.replace("176", "166")))
    diff, _ = check(copy)
    assert f"-{row.replace('176', '166')}\n+{row}\n" in diff
    assert main(["--check", str(copy)]) == 1
    assert "166" in capsys.readouterr().out
    assert main([str(copy)]) == 0 and copy.read_text() == text
    assert main(["--check", str(copy)]) == 0


def test_a_hand_typed_table_fails_in_benchmarks_md_even_marked_and_passes_marked_in_history(
    copy: Path,
) -> None:
    copy.write_text(
        copy.read_text() + "\nMeasured today:\n\n| N | p95 |\n|---:|---:|\n| 4 | 99 |\n"
    )
    _, problems = check(copy)
    assert len(problems) == 1 and "not generated from JSON" in problems[0]
    copy.write_text(copy.read_text().replace("Measured today:\n", f"{HAND}\n"))
    assert len(check(copy)[1]) == 1  # BENCHMARKS.md takes no hand-recorded figures
    history = copy.with_name("history.md")
    history.write_text(copy.read_text())
    assert check(history)[1] == []  # the history may keep them, marked
    history.write_text(copy.read_text().replace(f"{HAND}\n", "Measured today:\n"))
    _, problems = check(history)  # but not unmarked
    assert len(problems) == 1 and "neither generated" in problems[0]


def test_json_without_provenance_fails_in_benchmarks_md(copy: Path) -> None:
    old = "docs/benchmarks/2026-11-28/ceilings.json"  # committed before provenance
    copy.write_text(copy.read_text() + f"\n<!-- table: {old} kind=ceilings -->\n<!-- /table -->\n")
    assert main([str(copy)]) == 0  # the table is generated, and so the check's diff is empty
    diff, problems = check(copy)
    assert diff == "" and problems == [
        f"{copy}: {old}: expected the raw JSON's provenance (bench/provenance.py), got none"
    ]
    other = copy.rename(copy.with_name("x.md"))
    assert check(other)[1] == []  # only BENCHMARKS.md asks for provenance


def test_a_jsonl_file_is_its_lines_and_each_needs_provenance(tmp_path: Path) -> None:
    run = {"signal": "SIGKILL", "moved_streams": 1, "lost_windows": 0, "repeats": 0,
           "signal_to_ready_ms": [20.0], "signal_to_first_result_ms": [400.0], "exit_s": 0.0,
           "accounts": [{"windows": 19}], "provenance": {"commit": "abc"}}  # fmt: skip
    lines = [run, {**run, "provenance": {"commit": "abc"}}]
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("<!-- table: f.jsonl kind=failover -->\n<!-- /table -->\n")
    assert main([str(md)]) == 0 and "| 2 (1 a run) |" in md.read_text()
    assert check(md)[1] == []
    lines[1] = {k: v for k, v in run.items() if k != "provenance"}
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert check(md)[1] == [f"{md}: f.jsonl: expected the raw JSON's provenance "
                            "(bench/provenance.py), got none"]  # fmt: skip


def test_unmarked_tables_sees_through_code_blocks_and_markers() -> None:
    text = "\n".join([
        "intro", "", "| a | b |", "|---|---:|", "| 1 | 2 |", "",           # line 3: unmarked
        HAND, "", "| a |", "|---|", "| 1 |", "",                           # marked
        "```", "| a |", "|---|", "```", "",                                # code, not a table
        "<!-- table: x.json kind=runs -->", "| a |", "|---|", "<!-- /table -->",
        "| not | a table |", "no rule below it",
    ])  # fmt: skip
    assert unmarked_tables(text) == [3]


# ---- markers ---------------------------------------------------------------------------------
def test_a_marker_names_files_a_kind_and_options() -> None:
    spec = parse_spec('a.json\n  b.json kind=compare side=latency base="default (shedding)" ')
    assert spec.files == ("a.json", "b.json") and spec.kind == "compare"
    assert spec.options == {"side": "latency", "base": "default (shedding)"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.json kind=nope", "kind: expected one of runs, medians"),
        ("a.json", "kind: expected one of"),
        (
            "a.json kind=runs colz=p95",
            "kind=runs: expected options among base, bold, cols, got colz",
        ),
        ("kind=balancer", "expected at least one JSON file"),
        ('a.json kind=runs base="open', "expected FILE"),
    ],
)
def test_a_marker_it_cannot_read_says_what_it_expected(text: str, message: str) -> None:
    with pytest.raises(ReportError, match=re.escape(message)):
        parse_spec(text)


def test_a_bad_marker_names_its_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"p95_ms": 250.0, "runs": []}))
    md = tmp_path / "X.md"
    md.write_text("# x\n\n<!-- table: r.json kind=runs cols=p95,nope -->\n<!-- /table -->\n")
    with pytest.raises(
        ReportError, match=r"line 3: kind=runs: cols: expected columns among .*, got nope"
    ):
        regenerate(md.read_text(), tmp_path)
    assert main(["--check", str(md)]) == 2
    assert "X.md: line 3" in capsys.readouterr().err
    md.write_text("<!-- table: r.json kind=runs -->\n| stale |\n")  # never closed
    with pytest.raises(ReportError, match="expected 1 tables closed by <!-- /table -->, got 0"):
        regenerate(md.read_text(), tmp_path)
    md.write_text("<!-- table: gone.json kind=balancer -->\n<!-- /table -->\n")
    assert main([str(md)]) == 2
    assert "gone.json" in capsys.readouterr().err

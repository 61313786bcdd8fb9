"""The mutation score script (scripts/mutation_score.py) and the lists it reads: every listed
survivor has a reason, and the score leaves out equivalents but not accepted survivors."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^voxlive\.(protocol|audio|pipeline|server)\.[\w.ǁ]+__mutmut_\d+$")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mutation_score", ROOT / "scripts" / "mutation_score.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("listing", ["mutation-equivalent.txt", "mutation-accepted.txt"])
def test_every_listed_survivor_is_named_exactly_once_with_a_reason(listing: str) -> None:
    names = []
    for line in (ROOT / "docs" / listing).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, why = line.partition(" ")
        assert NAME.match(name), f"{listing}: expected a mutant's name, got {name!r}"
        assert len(why.strip()) >= 10, f"{listing}: {name} needs a reason"
        names.append(name)
    assert len(names) == len(set(names)), f"{listing}: a name is listed twice"


def test_no_survivor_is_both_equivalent_and_accepted() -> None:
    score = _script()
    assert not set(score.explained(score.EQUIVALENT)) & set(score.explained(score.ACCEPTED))


def _with_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, equivalent: str,
                accepted: str) -> ModuleType:  # fmt: skip
    """The score script reading these two lists instead of the ones in docs/."""
    score = _script()
    (tmp_path / "eq.txt").write_text(equivalent)
    (tmp_path / "ok.txt").write_text(accepted)
    monkeypatch.setattr(score, "EQUIVALENT", tmp_path / "eq.txt")
    monkeypatch.setattr(score, "ACCEPTED", tmp_path / "ok.txt")
    return score


def test_the_score_leaves_out_equivalents_and_lists_the_unexplained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    score = _with_lists(tmp_path, monkeypatch, "# comment\nvoxlive.audio.f__mutmut_16 same values\n",
                        "voxlive.audio.f__mutmut_17 a log line's wording\n")  # fmt: skip
    states = ["killed"] * 15 + ["timeout", "survived", "survived", "no tests", "not checked"]
    results = tmp_path / "results.txt"
    results.write_text(
        "".join(f"    voxlive.audio.f__mutmut_{i}: {s}\n" for i, s in enumerate(states))
    )
    # 19 run, 16 killed, 3 alive (16: equivalent, 17: accepted, 18: unexplained)
    assert score.main(results, ["audio"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("audio"))
    assert row.split()[1:8] == ["19", "16", "3", "1", "1", "84.2%", "88.9%"]
    assert (tmp_path / "survivors.txt").read_text() == "voxlive.audio.f__mutmut_18 (no tests)\n"
    results.write_text("".join(f"    voxlive.audio.f__mutmut_{i}: survived\n" for i in range(5)))
    assert score.main(results, ["audio"]) == 1  # under the 85 % target


def test_listed_mutants_that_are_killed_or_gone_are_reported_as_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    score = _with_lists(tmp_path, monkeypatch, "voxlive.audio.f__mutmut_1 was equivalent\n",
                        "voxlive.audio.f__mutmut_9 no longer exists\n")  # fmt: skip
    results = tmp_path / "results.txt"
    results.write_text(
        "    voxlive.audio.f__mutmut_1: killed\n    voxlive.audio.f__mutmut_2: killed\n"
    )
    score.main(results, ["audio"])
    out = capsys.readouterr().out
    assert "listed but killed now: voxlive.audio.f__mutmut_1" in out
    assert "listed but not a mutant now: voxlive.audio.f__mutmut_9" in out

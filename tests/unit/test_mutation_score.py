"""The mutation score script (scripts/mutation_score.py) and the lists it reads: every listed
survivor has a reason and is in one list only, the score leaves out equivalents but not accepted
survivors, and each run's summary (docs/mutation-runs/) adds up."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from datetime import UTC, datetime
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
    assert _script().in_both() == [], "a name is listed both as equivalent and as kept"


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


def test_a_name_in_both_lists_stops_the_score_before_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    score = _with_lists(tmp_path, monkeypatch, "voxlive.audio.f__mutmut_1 same values\n",
                        "voxlive.audio.f__mutmut_1 a clock could see it\n")  # fmt: skip
    assert score.in_both() == ["voxlive.audio.f__mutmut_1"]
    results = tmp_path / "results.txt"
    results.write_text("    voxlive.audio.f__mutmut_1: survived\n")
    assert score.main(results, ["audio"], record=tmp_path / "runs") == 2
    assert "one list only): voxlive.audio.f__mutmut_1" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_a_run_is_recorded_with_its_counts_survivors_commit_and_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    score = _with_lists(tmp_path, monkeypatch, "voxlive.audio.f__mutmut_2 same values\n",
                        "voxlive.audio.f__mutmut_3 a clock could see it\n"
                        "voxlive.audio.f__mutmut_9 gone since\n")  # fmt: skip
    states = ["killed", "timeout", "survived", "survived", "no tests", "not checked"]
    results = tmp_path / "results.txt"
    results.write_text(
        "".join(f"    voxlive.audio.f__mutmut_{i}: {s}\n" for i, s in enumerate(states))
    )
    run = {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": False, "seconds": 7, "jobs": 2}
    assert score.main(results, ["audio"], record=tmp_path / "runs", run=run) == 1  # 2 / 4
    [path] = (tmp_path / "runs").iterdir()
    assert f"summary: {path}" in capsys.readouterr().out
    recorded = json.loads(path.read_text())
    when = datetime.strptime(recorded["date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60
    day = recorded["date"][:10]
    assert path.name == f"{day}-0123456-audio.json"  # not all four packages: named
    assert {k: recorded[k] for k in ("commit", "dirty", "seconds", "jobs")} == run
    assert recorded["packages"] == {"audio": {
        "mutants": 5, "killed": 2, "survived": 3, "equivalent": 1, "kept": 1, "unexplained": 1,
        "not_run": 1, "score": 40.0, "score_without_equivalents": 50.0, "target": 85.0,
        "survivors": {"equivalent": ["voxlive.audio.f__mutmut_2"],
                      "kept": ["voxlive.audio.f__mutmut_3"],
                      "unexplained": {"voxlive.audio.f__mutmut_4": "no tests"}},
        "listed_but_killed": [], "listed_but_gone": ["voxlive.audio.f__mutmut_9"],
    }}  # fmt: skip
    _check_summary(recorded)
    everything = dict(recorded, dirty=True, packages={p: {} for p in score.TARGETS})
    assert score.write_summary(everything, tmp_path).name == f"{day}-0123456-dirty.json"


def test_the_commit_and_whether_the_checkout_differs_from_it(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)  # fmt: skip

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "a")
    score = _script()
    commit, dirty = score.git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and not dirty
    (tmp_path / "new.txt").write_text("untracked: not what is mutated\n")
    assert score.git_state(tmp_path) == (commit, False)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert score.git_state(tmp_path) == (commit, True)
    assert score.git_state(tmp_path / "nowhere") == ("unknown", True)


def _check_summary(run: dict[str, object]) -> None:
    """A run's summary adds up: every mutant is killed or survived, every survivor is named once
    as equivalent, kept or unexplained, and the scores follow from the counts."""
    assert isinstance(run["commit"], str) and re.fullmatch(r"[0-9a-f]{40}|unknown", run["commit"])
    assert isinstance(run["dirty"], bool) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT[\d:]{8}Z", str(run["date"])
    )
    packages = run["packages"]
    assert isinstance(packages, dict) and packages
    for name, p in packages.items():
        assert p["killed"] + p["survived"] == p["mutants"], name
        named = p["survivors"]
        for kind in ("equivalent", "kept", "unexplained"):
            assert len(named[kind]) == p[kind], (name, kind)
            assert all(n.startswith(f"voxlive.{name}.") for n in named[kind]), (name, kind)
        assert p["equivalent"] + p["kept"] + p["unexplained"] == p["survived"], name
        assert len({*named["equivalent"], *named["kept"], *named["unexplained"]}) == p["survived"]
        assert p["score"] == round(100 * p["killed"] / max(p["mutants"], 1), 1), name
        without = round(100 * p["killed"] / max(p["mutants"] - p["equivalent"], 1), 1)
        assert p["score_without_equivalents"] == without, name


@pytest.mark.parametrize(
    "path", sorted((ROOT / "docs" / "mutation-runs").glob("*.json")), ids=lambda p: p.name
)
def test_every_committed_run_summary_adds_up(path: Path) -> None:
    _check_summary(json.loads(path.read_text()))

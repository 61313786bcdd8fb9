"""Provenance of a bench's raw JSON (bench/provenance.py): commit and dirt from a fake git, load
and CPU from a fake /proc, the command line and settings with their secrets hidden."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from voxlive.bench import provenance
from voxlive.bench.provenance import begin, commit, cpu, hide_flags, jsonable, load_average
from voxlive.settings import Settings

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
"""


def fake_proc(tmp_path: Path, loadavg: str = "0.52 0.71 1.30 2/345 6789\n") -> Path:
    (tmp_path / "loadavg").write_text(loadavg)
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    return tmp_path


def fake_git(head: str | None, status: str | None) -> tuple[provenance.Git, list[list[str]]]:
    """A git that answers ``rev-parse HEAD`` with ``head`` and ``status`` with ``status``
    (``None``: the command fails), and records what it was asked."""
    asked: list[list[str]] = []

    def git(args: Sequence[str]) -> str | None:
        asked.append(list(args))
        return head if args[0] == "rev-parse" else status

    return git, asked


# ---- commit ----------------------------------------------------------------------------------
def test_a_clean_checkout_gives_its_commit_not_dirty() -> None:
    git, asked = fake_git("ae1a1e8f00\n", "")
    assert commit(git) == ("ae1a1e8f00", False)
    assert asked == [["rev-parse", "HEAD"], ["status", "--porcelain", "--untracked-files=no"]]


def test_changed_tracked_files_make_it_dirty() -> None:
    git, _ = fake_git("ae1a1e8f00\n", " M src/voxlive/bench/run.py\n")
    assert commit(git) == ("ae1a1e8f00", True)


def test_outside_a_checkout_commit_and_dirty_are_none() -> None:
    git, asked = fake_git(None, None)
    assert commit(git) == (None, None)
    assert asked == [["rev-parse", "HEAD"]]  # no status asked without a commit


def test_a_failing_status_leaves_dirty_unknown() -> None:
    git, _ = fake_git("ae1a1e8f00\n", None)
    assert commit(git) == ("ae1a1e8f00", None)


def test_run_git_reads_a_real_repository(tmp_path: Path) -> None:
    def sh(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    sh("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    sh("add", "a.txt")
    sh("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    git = provenance.run_git(tmp_path)
    head, dirty = commit(git)
    assert head is not None and len(head) == 40 and dirty is False
    (tmp_path / "new.txt").write_text("untracked: not a change to the tree\n")
    assert commit(git) == (head, False)
    (tmp_path / "a.txt").write_text("two\n")
    assert commit(git) == (head, True)
    assert commit(provenance.run_git(None)) == (None, None)
    assert commit(provenance.run_git(tmp_path / "nowhere")) == (None, None)


# ---- the machine -----------------------------------------------------------------------------
def test_load_average_reads_the_three_figures(tmp_path: Path) -> None:
    assert load_average(fake_proc(tmp_path)) == [0.52, 0.71, 1.3]
    assert load_average(tmp_path / "missing") is None
    (tmp_path / "loadavg").write_text("garbage\n")
    assert load_average(tmp_path) is None


def test_cpu_reads_the_model_and_counts_processors(tmp_path: Path) -> None:
    got = cpu(fake_proc(tmp_path))
    assert got["cpu_model"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert got["cpus"] == 2
    assert isinstance(got["usable_cpus"], int) and got["usable_cpus"] >= 1


def test_cpu_without_a_model_name_says_none(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nCPU part\t: 0xd0c\n")  # an ARM machine
    assert cpu(tmp_path)["cpu_model"] is None
    assert cpu(tmp_path / "missing")["cpus"] is not None  # os.cpu_count() then


# ---- secrets ---------------------------------------------------------------------------------
def test_secret_flags_are_hidden_on_the_command_line() -> None:
    argv = ["voxlive", "bench", "--token", "s3cret", "--cluster-secret=abc", "--status-access",
            "token", "--model", "pitch"]  # fmt: skip
    assert hide_flags(argv) == ["voxlive", "bench", "--token", "(set)", "--cluster-secret=(set)",
                                "--status-access", "token", "--model", "pitch"]  # fmt: skip


def test_jsonable_hides_secret_settings_and_keeps_empty_ones_visible() -> None:
    got = jsonable({"server": Settings(model="pitch", token="s3cret"), "audio": (Path("a.wav"),)})
    assert got["server"]["token"] == "(set)"
    assert got["server"]["cluster_secret"] == ""  # not set: nothing to hide, and it shows
    assert got["server"]["status_access"] == "public" and got["server"]["model"] == "pitch"
    assert got["audio"] == ["a.wav"]
    assert "s3cret" not in json.dumps(got)


# ---- begin / end -----------------------------------------------------------------------------
def test_begin_and_end_record_everything_the_json_needs(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    times = iter(["2026-12-07T03:14:05Z", "2026-12-07T03:20:41Z"])
    git, _ = fake_git("ae1a1e8f00\n", " M BENCHMARKS.md\n")
    began = begin(
        {"settings": Settings(model="pitch"), "sizes": [1, 2, 4]},
        argv=["/venv/bin/python", "-m", "voxlive.bench.ray_hop", "--token", "x", "--model",
              "my model"],
        environ={"VOXLIVE_MODEL": "pitch", "VOXLIVE_TOKEN": "x", "HOME": "/root"},
        proc=proc, git=git, clock=lambda: next(times), cwd="/work/voxlive",
    )  # fmt: skip
    (proc / "loadavg").write_text("3.50 2.00 1.25 1/1 1\n")  # the run loaded the machine
    got = json.loads(json.dumps(began.end()))  # plain JSON all through
    settings = got.pop("settings")
    assert got == {
        "commit": "ae1a1e8f00", "dirty": True,
        "started_utc": "2026-12-07T03:14:05Z", "ended_utc": "2026-12-07T03:20:41Z",
        "load_before": [0.52, 0.71, 1.3], "load_after": [3.5, 2.0, 1.25],
        "cpu_model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "cpus": 2,
        "usable_cpus": got["usable_cpus"],
        "command": "/venv/bin/python -m voxlive.bench.ray_hop --token '(set)' --model 'my model'",
        "cwd": "/work/voxlive",
        "environment": {"VOXLIVE_MODEL": "pitch", "VOXLIVE_TOKEN": "(set)"},
    }  # fmt: skip
    assert settings["sizes"] == [1, 2, 4] and settings["settings"]["model"] == "pitch"


def test_begin_defaults_to_this_process_and_this_checkout() -> None:
    import sys

    got = begin().end()
    assert got["command"].split()[0] == sys.orig_argv[0]
    assert got["settings"] is None
    assert got["started_utc"].endswith("Z") and got["started_utc"] <= got["ended_utc"]
    # the tests run from a checkout: a 40-digit commit, and dirty or not, never None
    if provenance.checkout() is not None:
        assert got["commit"] is not None and len(got["commit"]) == 40
        assert got["dirty"] in (True, False)


@pytest.mark.parametrize("value", [object(), 1.5, None, "x"])
def test_jsonable_never_raises_on_what_json_cannot_hold(value: object) -> None:
    json.dumps(jsonable({"v": value}))

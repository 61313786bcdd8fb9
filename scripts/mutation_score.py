"""Mutation score per package from ``mutmut results --all true`` (see scripts/mutation.sh).

Prints each package's score and, per function, how many survivors are not explained; the
unexplained mutants are listed in survivors.txt beside the results (``mutmut show NAME``).
With ``--record DIR`` it also writes the run's summary to DIR (docs/mutation-runs/ from
mutation.sh), a file to commit: see :func:`summary` and docs/mutation.md.

Score = killed / (mutants checked), where a timeout, a crash or a mutant the type checker caught
counts as killed and a mutant no test reaches counts as survived. The mutants listed in
docs/mutation-equivalent.txt (name, then why) behave exactly like the original: they are shown
and left out of the second score. The ones in docs/mutation-accepted.txt (name, then why) can
be told apart by some input but are kept on purpose (say, a log line's wording or a timing
only a clock could see): they still count as survivors in both scores, but are explained.
A name may be in one list only. Exits 1 when a package is under its target, 2 when a name is in
both lists.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TARGETS = {"protocol": 85.0, "audio": 85.0, "pipeline": 85.0, "server": 75.0}
# "suspicious" is mutmut's name for any other exit of the test process: a crash (an abort
# from a C++ exception, say), so the tests did not pass either.
KILLED = {"killed", "timeout", "caught by type check", "segfault", "suspicious"}
NOT_RUN = {"not checked", "skipped"}
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EQUIVALENT = DOCS / "mutation-equivalent.txt"
ACCEPTED = DOCS / "mutation-accepted.txt"


def explained(path: Path) -> dict[str, str]:
    """``name reason`` lines (``#`` starts a comment line) as {name: reason}."""
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, why = line.strip().partition(" ")
            if name and not name.startswith("#"):
                out[name] = why.strip()
    return out


def in_both() -> list[str]:
    """Names listed both as equivalent and as kept (a name must be in one list only)."""
    return sorted(set(explained(EQUIVALENT)) & set(explained(ACCEPTED)))


def tally(status: dict[str, str], package: str) -> dict[str, Any]:
    """One package's counts and survivor names, as recorded in a run's summary."""
    equivalent, accepted = explained(EQUIVALENT), explained(ACCEPTED)
    mine = {n: s for n, s in status.items() if n.startswith(f"voxlive.{package}.")}
    checked = {n: s for n, s in mine.items() if s not in NOT_RUN}
    killed = sum(1 for s in checked.values() if s in KILLED)
    alive = sorted(n for n, s in checked.items() if s not in KILLED)
    equiv = [n for n in alive if n in equivalent]
    kept = [n for n in alive if n in accepted]
    unexplained = {n: checked[n] for n in alive if n not in equivalent and n not in accepted}
    listed = {n for n in (*equivalent, *accepted) if n.startswith(f"voxlive.{package}.")}
    return {
        "mutants": len(checked),
        "killed": killed,
        "survived": len(alive),
        "equivalent": len(equiv),
        "kept": len(kept),
        "unexplained": len(unexplained),
        "not_run": len(mine) - len(checked),
        "score": round(100 * killed / max(len(checked), 1), 1),
        "score_without_equivalents": round(100 * killed / max(len(checked) - len(equiv), 1), 1),
        "target": TARGETS.get(package, 0.0),
        "survivors": {"equivalent": equiv, "kept": kept, "unexplained": unexplained},
        "listed_but_killed": sorted(n for n in listed if n in mine and mine[n] in KILLED),
        "listed_but_gone": sorted(n for n in listed if n not in mine),
    }


def git_state(root: Path = ROOT) -> tuple[str, bool]:
    """The checked-out commit and whether tracked files differ from it (``"unknown"`` and
    dirty outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True


def mutmut_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mutmut")
    except PackageNotFoundError:
        return "unknown"


def summary(
    packages: dict[str, dict[str, Any]],
    *,
    commit: str,
    dirty: bool,
    date: datetime,
    seconds: int | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """What a run's summary file holds: the commit it ran on (and whether the checkout had
    changes), when, how (mutmut's version, workers, seconds) and per package the tally."""
    return {
        "commit": commit,
        "dirty": dirty,
        "date": date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mutmut": mutmut_version(),
        "jobs": jobs,
        "seconds": seconds,
        "packages": packages,
    }


def write_summary(run: dict[str, Any], folder: Path) -> Path:
    """Write ``run`` to ``folder/<date>-<commit[:7]>[-dirty][-packages].json``; returns the
    path. The packages are named only when the run did not cover all four."""
    name = f"{run['date'][:10]}-{run['commit'][:7]}" + ("-dirty" if run["dirty"] else "")
    if sorted(run["packages"]) != sorted(TARGETS):
        name += "-" + "-".join(run["packages"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(run, indent=1) + "\n")
    return path


def main(
    results: Path,
    packages: list[str],
    *,
    record: Path | None = None,
    run: dict[str, Any] | None = None,
) -> int:
    """Print the scores of ``packages`` from mutmut's results; with ``record``, write the run's
    summary there (``run``: commit, dirty, seconds, jobs; the checkout's state when absent)."""
    both = in_both()
    if both:
        print(f"listed both as equivalent and as kept (one list only): {', '.join(both)}")
        return 2
    status: dict[str, str] = {}
    for line in results.read_text().splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name.startswith("voxlive."):
            status[name] = state
    (results.parent / "survivors.txt").write_text("")
    failed = False
    tallies: dict[str, dict[str, Any]] = {}
    print(f"{'package':10} {'mutants':>7} {'killed':>6} {'alive':>5} {'equiv':>5} {'kept':>5} "
          f"{'score':>6} {'w/o equiv':>9} target")  # fmt: skip
    for package in packages:
        t = tallies[package] = tally(status, package)
        failed |= 100 * t["killed"] / max(t["mutants"] - t["equivalent"], 1) < t["target"]
        print(f"{package:10} {t['mutants']:7} {t['killed']:6} {t['survived']:5} "
              f"{t['equivalent']:5} {t['kept']:5} {t['score']:5.1f}% "
              f"{t['score_without_equivalents']:8.1f}% {t['target']:.0f}%"
              + (f"  (not run: {t['not_run']})" if t["not_run"] else ""))  # fmt: skip
        unexplained = t["survivors"]["unexplained"]
        by_function = Counter(n.rpartition("__mutmut_")[0] for n in unexplained)
        for function, n in sorted(by_function.items()):
            print(f"    {n:3} unexplained in {function}")
        with (results.parent / "survivors.txt").open("a") as out:
            out.writelines(f"{n} ({s})\n" for n, s in unexplained.items())
        for n in t["listed_but_killed"]:
            print(f"    listed but killed now: {n}")
        for n in t["listed_but_gone"]:
            print(f"    listed but not a mutant now: {n}")
    if record is not None:
        run = dict(run or {})
        if "commit" not in run:
            run["commit"], run["dirty"] = git_state()
        path = write_summary(summary(tallies, date=datetime.now(UTC), **run), record)
        print(f"summary: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="output of `mutmut results --all true`")
    parser.add_argument("packages", nargs="+", help="protocol, audio, pipeline, server")
    parser.add_argument("--record", type=Path, help="write the run's summary to this folder")
    parser.add_argument("--commit", help="the commit the run started on (default: HEAD now)")
    parser.add_argument("--dirty", type=int, choices=(0, 1), help="1: the checkout had changes")
    parser.add_argument("--seconds", type=int, help="how long the run took")
    parser.add_argument("--jobs", type=int, help="mutmut's workers")
    args = parser.parse_args()
    run: dict[str, Any] = {"seconds": args.seconds, "jobs": args.jobs}
    if args.commit:
        run["commit"], run["dirty"] = args.commit, bool(args.dirty)
    sys.exit(main(args.results, args.packages, record=args.record, run=run))

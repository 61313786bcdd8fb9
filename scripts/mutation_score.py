"""Mutation score per package from ``mutmut results --all true`` (see scripts/mutation.sh).

Prints each package's score and, per function, how many survivors are not explained; the
unexplained mutants are listed in survivors.txt beside the results (``mutmut show NAME``).

Score = killed / (mutants checked), where a timeout, a crash or a mutant the type checker caught
counts as killed and a mutant no test reaches counts as survived. The mutants listed in
docs/mutation-equivalent.txt (name, then why) behave exactly like the original: they are shown
and left out of the second score. The ones in docs/mutation-accepted.txt (name, then why) can
be told apart by some input but are kept on purpose (say, a log line's wording or a timing
only a clock could see): they still count as survivors in both scores, but are explained.
Exits 1 when a package is under its target.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

TARGETS = {"protocol": 85.0, "audio": 85.0, "pipeline": 85.0, "server": 75.0}
# "suspicious" is mutmut's name for any other exit of the test process: a crash (an abort
# from a C++ exception, say), so the tests did not pass either.
KILLED = {"killed", "timeout", "caught by type check", "segfault", "suspicious"}
NOT_RUN = {"not checked", "skipped"}
DOCS = Path(__file__).resolve().parents[1] / "docs"
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


def main(results: Path, packages: list[str]) -> int:
    status: dict[str, str] = {}
    for line in results.read_text().splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name.startswith("voxlive."):
            status[name] = state
    equivalent, accepted = explained(EQUIVALENT), explained(ACCEPTED)
    (results.parent / "survivors.txt").write_text("")
    failed = False
    print(f"{'package':10} {'mutants':>7} {'killed':>6} {'alive':>5} {'equiv':>5} {'kept':>5} "
          f"{'score':>6} {'w/o equiv':>9} target")  # fmt: skip
    for package in packages:
        mine = {n: s for n, s in status.items() if n.startswith(f"voxlive.{package}.")}
        counts = Counter(mine.values())
        checked = {n: s for n, s in mine.items() if s not in NOT_RUN}
        killed = sum(1 for s in checked.values() if s in KILLED)
        alive = [n for n, s in checked.items() if s not in KILLED]
        equiv = [n for n in alive if n in equivalent]
        kept = [n for n in alive if n in accepted and n not in equivalent]
        score = 100 * killed / max(len(checked), 1)
        adjusted = 100 * killed / max(len(checked) - len(equiv), 1)
        target = TARGETS.get(package, 0.0)
        failed |= adjusted < target
        print(f"{package:10} {len(checked):7} {killed:6} {len(alive):5} {len(equiv):5} "
              f"{len(kept):5} {score:5.1f}% {adjusted:8.1f}% {target:.0f}%"
              + (f"  (not run: {sum(counts[s] for s in NOT_RUN)})"
                 if checked != mine else ""))  # fmt: skip
        unexplained = sorted(set(alive) - set(equiv) - set(kept))
        by_function = Counter(n.rpartition("__mutmut_")[0] for n in unexplained)
        for function, n in sorted(by_function.items()):
            print(f"    {n:3} unexplained in {function}")
        with (results.parent / "survivors.txt").open("a") as out:
            out.writelines(f"{n} ({checked[n]})\n" for n in unexplained)
        listed = {n for n in (*equivalent, *accepted) if n.startswith(f"voxlive.{package}.")}
        stale = sorted(n for n in listed if n not in mine or mine[n] in KILLED)
        for n in stale:
            print(f"    listed but {'killed' if n in mine else 'not a mutant'} now: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))

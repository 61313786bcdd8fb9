#!/usr/bin/env bash
# `make mutation`: mutmut over the core packages, then the score per package (scripts/mutation_score.py).
# Each mutant runs only the fast tests that cover its function (pyproject.toml [tool.mutmut]).
# Niced and at most MUTATION_JOBS (2) workers: the machine is shared. A clean run each time, so
# the score it prints is the score of this checkout. Work folder: mutants/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=${MUTATION_PACKAGES:-protocol audio pipeline server}
JOBS=${MUTATION_JOBS:-2}
BIN=${BIN:-.venv/bin}
globs=()
for p in $PACKAGES; do globs+=("voxlive.$p.*"); done
rm -rf mutants
mkdir -p mutants
start=$(date +%s)
echo "mutmut over ${PACKAGES} with ${JOBS} worker(s); log: mutants/run.log"
HYPOTHESIS_PROFILE=mutation nice -n 19 "$BIN/mutmut" run --max-children "$JOBS" "${globs[@]}" >mutants/run.log 2>&1 || {
  tail -40 mutants/run.log; exit 1; }
nice -n 19 "$BIN/mutmut" results --all true >mutants/results.txt 2>&1
echo "took $(( $(date +%s) - start )) s"
echo "unexplained survivors go to mutants/survivors.txt (see one with: mutmut show NAME)"
"$BIN/python" scripts/mutation_score.py mutants/results.txt $PACKAGES

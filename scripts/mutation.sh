#!/usr/bin/env bash
# `make mutation`: mutmut over the core packages, then the score per package (scripts/mutation_score.py).
# Each mutant runs only the fast tests that cover its function (pyproject.toml [tool.mutmut]).
# Niced and at most MUTATION_JOBS (2) workers: the machine is shared. A clean run each time, so
# the score it prints is the score of this checkout. Work folder: mutants/ (ignored by git).
# The run's summary (counts, survivor names, commit, date) goes to docs/mutation-runs/, to commit.
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
# The commit the run starts on, and whether tracked files differ from it (they are what is mutated).
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=1
if [ "$commit" != unknown ] && [ -z "$(git status --porcelain --untracked-files=no)" ]; then dirty=0; fi
echo "mutmut over ${PACKAGES} with ${JOBS} worker(s); log: mutants/run.log"
HYPOTHESIS_PROFILE=mutation nice -n 19 "$BIN/mutmut" run --max-children "$JOBS" "${globs[@]}" >mutants/run.log 2>&1 || {
  tail -40 mutants/run.log; exit 1; }
nice -n 19 "$BIN/mutmut" results --all true >mutants/results.txt 2>&1
seconds=$(( $(date +%s) - start ))
echo "took ${seconds} s"
echo "unexplained survivors go to mutants/survivors.txt (see one with: mutmut show NAME)"
# shellcheck disable=SC2086
"$BIN/python" scripts/mutation_score.py mutants/results.txt $PACKAGES --record docs/mutation-runs \
  --commit "$commit" --dirty "$dirty" --seconds "$seconds" --jobs "$JOBS"

#!/usr/bin/env bash
# Issue 25, item 5: how many real-time streams one GPU holds over WebSocket at p95 <= 300 ms with
# nothing lost (the goal: >= 2,000 per H100). Run from the repository root on the lent machine:
#
#   scripts/gpu-bench.sh [OUT_DIR]               # OUT_DIR: default $OUT, else bench-results/gpu
#   scripts/gpu-bench.sh --cpu-smoke [OUT_DIR]   # the same steps on CPU: a tiny wav2vec2, N <= 4
#
# Steps: an interpreter with voxlive's dependencies (PYTHON; else .venv/bin/python; else python3;
# else `make setup`), a CUDA build of torch (installed from download.pytorch.org only when
# torch.cuda.is_available() is not already True), the full-size random wav2vec2-base
# (voxlive.bench.pipeline --save-model, in a temporary folder), the model's flat-out ceiling in
# DTYPE, `voxlive serve --device cuda --backend torch --dtype DTYPE` on a free loopback port, then
# the fleet's capacity search (python -m voxlive.bench.fleet: cores - 2 load processes). Into
# OUT_DIR: fleet.json, fleet.log, server.log, ceiling.json, env.txt. The server and the fleet
# are stopped on any exit. Settings (environment): DTYPE (float16), MAX_BATCH (128), START (256),
# LIMIT (4096), RESOLUTION (128), SECONDS_PER_RUN (15), TIME_LIMIT_S (300: no run starts after
# it), CHUNK_MS (50, the page's frame), PROCS (cores - 2), SERVE_FLAGS, FLEET_FLAGS (more flags).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [[ ${1:-} == --cpu-smoke ]]; then smoke=1; shift; fi
out=${1:-${OUT:-bench-results/gpu}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
say() { echo "gpu-bench: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# ---- the interpreter ----------------------------------------------------------------------
modules=torch,transformers,numpy,soundfile,uvicorn,starlette,websockets,httpx,prometheus_client
usable() { PYTHONPATH=$PWD/src "$1" -c "import $modules" 2>/dev/null; }
py=${PYTHON:-}
if [[ -z $py ]]; then
  for candidate in .venv/bin/python python3; do
    if command -v "$candidate" >/dev/null && usable "$candidate"; then py=$candidate; break; fi
  done
fi
if [[ -z $py ]]; then
  say "no interpreter with voxlive's dependencies; setting up .venv (make setup, from PyPI)"
  make setup >"$out/setup.log" 2>&1 || die "make setup failed (no network to PyPI here?): $(tail -3 "$out/setup.log")"
  py=.venv/bin/python
fi
usable "$py" || die "$py lacks one of $modules: $(PYTHONPATH=$PWD/src "$py" -c "import $modules" 2>&1 | tail -1)"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
cuda() { "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }

if ((smoke)); then
  device=cpu dtype=auto streams=1 limit=4 resolution=1 seconds=${SECONDS_PER_RUN:-4} procs=2
  model_flags=(--tiny) batch=8
else
  device=cuda dtype=${DTYPE:-float16} streams=${START:-256} limit=${LIMIT:-4096}
  resolution=${RESOLUTION:-128} seconds=${SECONDS_PER_RUN:-15} procs=${PROCS:-$(($(nproc) - 2))}
  model_flags=() batch=${MAX_BATCH:-128}
  if ! cuda; then
    say "torch $("$py" -c 'import torch; print(torch.__version__)') sees no CUDA GPU; installing a CUDA build"
    "$py" -m pip install torch --index-url https://download.pytorch.org/whl/cu128 >"$out/torch-install.log" 2>&1 ||
      die "could not install torch from download.pytorch.org/whl/cu128 (no network?): $(tail -2 "$out/torch-install.log"); set PYTHON to an interpreter whose torch sees the GPU"
    cuda || die "the CUDA build of torch sees no GPU either; nvidia-smi says: $(nvidia-smi -L 2>&1 | head -2)"
  fi
fi
((procs >= 1)) || procs=1
{
  echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse HEAD 2>/dev/null || echo none)"
  echo "python: $py  $("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())')"
  echo "cpus: $(nproc)  load processes: $procs  open files: $(ulimit -Hn) (hard limit)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} >"$out/env.txt" 2>&1 || true
cat "$out/env.txt" >&2

# ---- the model, its ceiling, the server ---------------------------------------------------
work=$(mktemp -d)
server=
stop() {
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    for _ in $(seq 60); do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

say "building the random wav2vec2 ($device)"
"$py" -m voxlive.bench.pipeline --save-model "$work/model" "${model_flags[@]}" >&2
if ((!smoke)); then
  say "the model's ceiling in $dtype (in-process, batches 1..$batch)"
  "$py" -m voxlive.bench.pipeline --device cuda --dtype "$dtype" --batches "1,8,32,64,$batch" \
    --min-seconds 1 --skip-live --out "$out/ceiling.json" >&2 || say "the ceiling failed (going on)"
fi

port=$("$py" -c "from voxlive.bench.serving import free_port; print(free_port())")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # a socket per stream
# every stream comes from this machine, naming its own address (--forwarded-for): the server
# trusts loopback as a proxy, so its per-address budgets count each stream as a client
"$py" -m voxlive serve --model "$work/model" --labels male,female --device "$device" \
  --backend torch --dtype "$dtype" --host 127.0.0.1 --port "$port" --gate none \
  --max-batch "$batch" --max-streams 8192 --max-connections 8448 --max-connections-per-source 0 \
  --trusted-proxies 127.0.0.1 ${SERVE_FLAGS:-} >"$out/server.log" 2>&1 &
server=$!
say "voxlive serve (pid $server) on :$port; waiting for /readyz"
"$py" - "$port" "$server" <<'EOF' || die "the server did not get ready: $(tail -5 "$out/server.log")"
import asyncio, os, sys
from voxlive.bench.serving import wait_ready

def alive() -> bool:
    try:
        os.kill(int(sys.argv[2]), 0)
        return True
    except OSError:
        return False

asyncio.run(wait_ready(f"http://127.0.0.1:{sys.argv[1]}", timeout_s=600, alive=alive))
EOF

# ---- the load -----------------------------------------------------------------------------
say "the fleet: $procs processes, N from $streams up to $limit, $seconds s a run"
set +e
"$py" -m voxlive.bench.fleet --url "ws://127.0.0.1:$port/audio" \
  --audio tests/data/female_speech.wav tests/data/male_speech.wav --procs "$procs" \
  --streams "$streams" --find-capacity --capacity-limit "$limit" --resolution "$resolution" \
  --p95-ms 300 --seconds "$seconds" --warmup-s 2 --chunk-ms "${CHUNK_MS:-50}" --forwarded-for \
  --time-limit-s "${TIME_LIMIT_S:-300}" --name "$device $dtype" --out "$out/fleet.json" \
  ${FLEET_FLAGS:-} 2>&1 | tee "$out/fleet.log"
status=${PIPESTATUS[0]}
set -e
((status == 0)) || die "the fleet failed (exit $status); see $out/fleet.log and $out/server.log"
say "done: $out/fleet.json"

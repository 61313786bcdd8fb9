#!/usr/bin/env bash
# One machine, several fronts: `make cluster FRONTS=3` / `make cluster-stop` (README "Across
# machines"). scripts/cluster.sh start|stop, configured by the environment:
#   FRONTS (3)   fronts to start: `voxlive serve` on PORT+1 … PORT+FRONTS, agents on PORT+101 …
#   PORT (8000)  where HAProxy listens, on HOST (127.0.0.1); MODEL (auto; pitch for a quick try)
#   RUN_DIR (.cluster)  pids, logs and haproxy.cfg;  BIN (.venv/bin)  where voxlive is
# start returns once every front is ready and HAProxy routes to them (else it says why and
# stops what it started);
# stop sends SIGTERM to every front (each drains: its agent says drain at once) and HAProxy,
# and waits for them.
set -euo pipefail
FRONTS=${FRONTS:-3}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
MODEL=${MODEL:-auto}
RUN_DIR=${RUN_DIR:-.cluster}
BIN=${BIN:-.venv/bin}
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-600}  # the first start may download and export the model
here=$(cd "$(dirname "$0")/.." && pwd)

ready() {  # ready URL: /readyz answers 200
  "$BIN/python" -c "import sys, urllib.request
try: urllib.request.urlopen(sys.argv[1] + '/readyz', timeout=2)
except Exception: sys.exit(1)" "$1"
}

start() {
  if compgen -G "$RUN_DIR/*.pid" >/dev/null; then
    echo "cluster: $RUN_DIR holds pid files; run \`make cluster-stop\` first" >&2
    exit 1
  fi
  [ -x "$HAPROXY" ] || { echo "cluster: haproxy not found (apt-get install haproxy)" >&2; exit 1; }
  mkdir -p "$RUN_DIR"
  local fronts=() i
  for ((i = 1; i <= FRONTS; i++)); do
    local port=$((PORT + i)) agent=$((PORT + 100 + i))
    VOXLIVE_MODEL=$MODEL VOXLIVE_TRUSTED_PROXIES=127.0.0.1 nohup "$BIN/voxlive" serve \
      --host "$HOST" --port "$port" --agent-port "$agent" >"$RUN_DIR/front$i.log" 2>&1 &
    echo $! >"$RUN_DIR/front$i.pid"
    fronts+=("$HOST:$port:$agent")
  done
  "$here/deploy/haproxy/render.sh" "$HOST:$PORT" "${fronts[@]}" >"$RUN_DIR/haproxy.cfg"
  "$HAPROXY" -c -q -f "$RUN_DIR/haproxy.cfg"
  "$HAPROXY" -D -f "$RUN_DIR/haproxy.cfg" -p "$RUN_DIR/haproxy.pid" >"$RUN_DIR/haproxy.log" 2>&1
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  for ((i = 1; i <= FRONTS; i++)); do
    until ready "http://$HOST:$((PORT + i))"; do
      if ! kill -0 "$(cat "$RUN_DIR/front$i.pid")" 2>/dev/null || ((SECONDS > deadline)); then
        echo "cluster: front $i is not ready; see $RUN_DIR/front$i.log; stopping" >&2
        stop
        exit 1
      fi
      sleep 0.2
    done
  done
  until ready "http://$HOST:$PORT"; do  # HAProxy's first checks have passed
    if ((SECONDS > deadline)); then
      echo "cluster: HAProxy routes to no front; see $RUN_DIR/haproxy.log; stopping" >&2
      stop
      exit 1
    fi
    sleep 0.2
  done
  echo "cluster: $FRONTS fronts behind HAProxy: http://$HOST:$PORT  (ws://$HOST:$PORT/audio)"
  echo "cluster: logs and pids in $RUN_DIR; stop with \`make cluster-stop\`"
}

stop() {
  local pidfile pid
  for pidfile in "$RUN_DIR"/front*.pid "$RUN_DIR"/haproxy.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pidfile in "$RUN_DIR"/front*.pid "$RUN_DIR"/haproxy.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    for _ in $(seq 150); do  # 30 s: a front's drain (VOXLIVE_DRAIN_TIMEOUT_MS) and teardown
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$pidfile"
  done
  echo "cluster: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

#!/bin/sh
# Prints an HAProxy config for voxlive: render.sh BIND FRONT [FRONT...]
#   FRONT is HOST:PORT, or HOST:PORT:AGENT_PORT for a front started with --agent-port AGENT_PORT:
#   HAProxy then asks its agent every second how much headroom it has (agent-check).
#   e.g. deploy/haproxy/render.sh :8000 10.0.0.5:8000:8100 10.0.0.6:8000:8100 > haproxy.cfg
set -eu
if [ "$#" -lt 2 ]; then
  echo "usage: $0 BIND FRONT [FRONT...]  (FRONT: HOST:PORT[:AGENT_PORT], e.g. 10.0.0.5:8000:8100)" >&2
  exit 2
fi
bind=$1
shift
servers=""
n=0
for front in "$@"; do
  n=$((n + 1))
  case "$front" in
    \[*) echo "$0: IPv6 fronts are not supported here: $front" >&2; exit 2 ;;
  esac
  host=${front%%:*}
  rest=${front#*:}
  port=${rest%%:*}
  agent=""
  [ "$rest" != "$port" ] && agent=${rest#*:}
  case "$port$agent" in
    ''|*[!0-9]*) echo "$0: expected HOST:PORT[:AGENT_PORT], got $front" >&2; exit 2 ;;
  esac
  [ -z "$port" ] && { echo "$0: expected HOST:PORT[:AGENT_PORT], got $front" >&2; exit 2; }
  line="    server front${n} ${host}:${port}"
  [ -n "$agent" ] && line="${line} agent-check agent-port ${agent} agent-inter 1s"
  servers="${servers}${line}\\n"
done
here=$(dirname "$0")
sed -e "s|__BIND__|${bind}|" -e "s|__SERVERS__|${servers}|" "$here/haproxy.cfg.template"

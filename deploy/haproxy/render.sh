#!/bin/sh
# Prints an HAProxy config for voxlive: render.sh BIND FRONT [FRONT...]
#   FRONT is HOST:PORT, or HOST:PORT:AGENT_PORT for a front started with --agent-port AGENT_PORT
#   (HAProxy then asks its agent every second how much headroom it has: agent-check), or
#   N*NAME:PORT[:AGENT_PORT] for up to N fronts found by resolving NAME in DNS (Docker Compose
#   replicas, a Kubernetes headless service): HAProxy follows the addresses as they change.
#   e.g. deploy/haproxy/render.sh :8000 10.0.0.5:8000:8100 10.0.0.6:8000:8100 > haproxy.cfg
#        deploy/haproxy/render.sh :8000 '8*front:8000:8100' > haproxy.cfg
set -eu
usage="expected HOST:PORT[:AGENT_PORT] or N*NAME:PORT[:AGENT_PORT]"
if [ "$#" -lt 2 ]; then
  echo "usage: $0 BIND FRONT [FRONT...]  (FRONT: $usage, e.g. 10.0.0.5:8000:8100)" >&2
  exit 2
fi
bind=$1
shift
servers=""
resolvers=""
n=0
for front in "$@"; do
  n=$((n + 1))
  count=""
  address=$front
  case "$front" in
    \[*) echo "$0: IPv6 fronts are not supported here: $front" >&2; exit 2 ;;
    *\**) count=${front%%\**}; address=${front#*\*} ;;
  esac
  host=${address%%:*}
  rest=${address#*:}
  port=${rest%%:*}
  agent=""
  [ "$rest" != "$port" ] && agent=${rest#*:}
  case "$port$agent$count" in
    ''|*[!0-9]*) echo "$0: $usage, got $front" >&2; exit 2 ;;
  esac
  if [ -z "$port" ] || [ -z "$host" ] || [ "$rest" = "$address" ]; then
    echo "$0: $usage, got $front" >&2
    exit 2
  fi
  if [ -n "$count" ]; then
    line="    server-template front${n}- 1-${count} ${host}:${port} resolvers dns init-addr none"
    resolvers="yes"
  else
    line="    server front${n} ${host}:${port}"
  fi
  [ -n "$agent" ] && line="${line} agent-check agent-port ${agent} agent-inter 1s"
  servers="${servers}${line}\\n"
done
if [ -n "$resolvers" ]; then
  servers="${servers}\\nresolvers dns\\n    parse-resolv-conf\\n    hold valid 10s\\n"
fi
here=$(dirname "$0")
sed -e "s|__BIND__|${bind}|" -e "s|__SERVERS__|${servers}|" "$here/haproxy.cfg.template"

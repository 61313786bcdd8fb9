#!/bin/sh
# Prints an HAProxy config for voxlive: render.sh BIND FRONT [FRONT...]
#   e.g. deploy/haproxy/render.sh :8080 10.0.0.5:8000 10.0.0.6:8000 > haproxy.cfg
set -eu
if [ "$#" -lt 2 ]; then
  echo "usage: $0 BIND FRONT [FRONT...]  (e.g. :8080 10.0.0.5:8000)" >&2
  exit 2
fi
bind=$1
shift
servers=""
n=0
for front in "$@"; do
  n=$((n + 1))
  servers="${servers}    server front${n} ${front}\\n"
done
here=$(dirname "$0")
sed -e "s|__BIND__|${bind}|" -e "s|__SERVERS__|${servers}|" "$here/haproxy.cfg.template"

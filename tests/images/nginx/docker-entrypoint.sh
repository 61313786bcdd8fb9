#!/bin/sh
# Stand-in for the official nginx image's entrypoint (the same contract, not its code): when the
# command is nginx, run the executable *.sh scripts in /docker-entrypoint.d (and source *.envsh) in
# version order, then exec the command.
set -eu
if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
  for f in $(find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f | sort -V); do
    case "$f" in
      *.envsh) if [ -r "$f" ]; then . "$f"; fi ;;
      *.sh) if [ -x "$f" ]; then "$f"; else echo "$0: ignoring $f, not executable"; fi ;;
    esac
  done
fi
exec "$@"

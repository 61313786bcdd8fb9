#!/bin/sh
# Writes the web app's run-time config.json from VOXLIVE_PUBLIC_WS_URL (empty: same origin /audio).
set -eu
if [ -n "${VOXLIVE_PUBLIC_WS_URL:-}" ]; then
  printf '{"wsUrl": "%s"}\n' "$VOXLIVE_PUBLIC_WS_URL" > /usr/share/nginx/html/config.json
fi

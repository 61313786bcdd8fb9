#!/usr/bin/env bash
# The system packages the tests need (Debian/Ubuntu names): installs the missing ones when it can
# (root, or sudo without a password prompt), else stops at once with the command to run.
# Used by `make test` (and so by CI) before any test starts. Serving needs none of them.
#
#   scripts/system-deps.sh           install what is missing, or explain
#   scripts/system-deps.sh --check   only say what is missing (exit 1 if anything is)
#
# VOXLIVE_SYSTEM_DEPS overrides the table below ("command:package ..."), for tests of this script.
set -euo pipefail

# command (looked up on PATH and in the sbin folders) or absolute file : the package providing it
DEPS=${VOXLIVE_SYSTEM_DEPS:-"chromium:chromium nginx:nginx haproxy:haproxy /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core buildah:buildah debootstrap:debootstrap"}

have() {
  case $1 in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

missing=()
for entry in $DEPS; do
  cmd=${entry%%:*} pkg=${entry#*:}
  have "$cmd" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

command="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "${1:-}" = "--check" ]; then
  echo "missing system packages: ${missing[*]} (install: $command)"
  exit 1
fi

can_install=
sudo=()
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    can_install=1
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    can_install=1 sudo=(sudo -n)
  fi
fi

if [ -z "$can_install" ]; then
  {
    echo "voxlive: the tests need these system packages, which are missing: ${missing[*]}"
    if command -v apt-get >/dev/null 2>&1; then
      echo "voxlive: they cannot be installed from here (not root, and sudo needs a password). Run:"
      echo "    sudo apt-get update && sudo $command"
    else
      echo "voxlive: this is not a Debian/Ubuntu system (no apt-get); install the equivalents of"
      echo "    ${missing[*]}"
    fi
    echo "voxlive: then run make test again."
  } >&2
  exit 2
fi

echo "voxlive: installing the system packages the tests need: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

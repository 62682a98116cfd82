#!/usr/bin/env bash
# Shared by the benchmark wrappers: `bench/with-laser.sh DRIVER.py [--laser PATH] [ARGS...]` runs the
# Python driver with --laser PATH; without --laser it first builds the release binary
# (swift build -c release --product laser) and uses .build/release/laser.
set -euo pipefail
caller=$(pwd)
cd "$(dirname "$0")/.."
driver="$1"; shift
laser=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --laser) laser="$2"; shift 2 ;;
    --laser=*) laser="${1#--laser=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$laser" in /*|"") ;; *) laser="$caller/$laser" ;; esac  # relative to where it was called
if [ -z "$laser" ]; then
  swift build -c release --product laser >&2
  laser=.build/release/laser
fi
exec python3 "$driver" --laser "$laser" "${args[@]+"${args[@]}"}"

#!/usr/bin/env bash
# Installs what laser needs to build on Debian/Ubuntu, only where it is missing (idempotent):
# libzmq, protobuf-c (library and protoc-c compiler), pkg-config. Swift itself must already be there.
set -euo pipefail
need=()
pkg-config --version >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists libzmq 2>/dev/null || need+=(libzmq3-dev)
pkg-config --exists libprotobuf-c 2>/dev/null || need+=(libprotobuf-c-dev)
command -v protoc-c >/dev/null 2>&1 || need+=(protobuf-c-compiler)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "error: swift not found on PATH; install Swift 6 (https://www.swift.org/install/linux/) and run again" >&2
  exit 2
fi

#!/usr/bin/env bash
# Installs what laser needs to build on Debian/Ubuntu, only where it is missing (idempotent):
# libzmq, protobuf-c (library and protoc-c compiler), pkg-config, protoc and the Python client's packages
# (pyzmq, protobuf). Swift itself must already be there.
set -euo pipefail
need=()
pkg-config --version >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists libzmq 2>/dev/null || need+=(libzmq3-dev)
pkg-config --exists libprotobuf-c 2>/dev/null || need+=(libprotobuf-c-dev)
command -v protoc-c >/dev/null 2>&1 || need+=(protobuf-c-compiler)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)       # the Python client's generated module
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The Python trainer client needs pyzmq and protobuf (PyPI); the attacker tests (Tests/hostile) pytest.
# The conformance worker (Tests/conformance) counts grapheme clusters with `regex`, as the length RM does.
if ! python3 -c "import pytest, regex" >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check 'pytest>=7' regex 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
if ! python3 -c "import zmq, google.protobuf" >/dev/null 2>&1; then
  echo "installing Python packages: pyzmq protobuf"
  python3 -m pip install -q --disable-pip-version-check 'pyzmq>=25' 'protobuf>=4.21' 2>&1 | grep -v "Running pip as the 'root' user" || true
  python3 -c "import zmq, google.protobuf" || { echo "error: could not install pyzmq and protobuf for python3" >&2; exit 2; }
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "error: swift not found on PATH; install Swift 6 (https://www.swift.org/install/linux/) and run again" >&2
  exit 2
fi

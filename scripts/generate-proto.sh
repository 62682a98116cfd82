#!/usr/bin/env bash
# Regenerates the code generated from proto/laser.proto: the protoc-c output in Sources/LaserProtoC and
# the Python module clients/python/laser_pb2.py (protoc, Debian's protobuf-compiler).
#   scripts/generate-proto.sh          write the generated files
#   scripts/generate-proto.sh --check  fail if the committed files differ from what the compilers make now
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$root/proto" && protoc-c --c_out="$tmp" laser.proto)
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 2; }
(cd "$root/proto" && protoc --python_out="$tmp" laser.proto)
# SwiftPM wants public headers under include/; the .c file includes the header by its bare name.
sed -i 's|#include "laser.pb-c.h"|#include "include/laser.pb-c.h"|' "$tmp/laser.pb-c.c"
if [ "${1:-}" = "--check" ]; then
  status=0
  diff -u "$root/Sources/LaserProtoC/include/laser.pb-c.h" "$tmp/laser.pb-c.h" >/dev/null || { echo "stale: Sources/LaserProtoC/include/laser.pb-c.h" >&2; status=1; }
  diff -u "$root/Sources/LaserProtoC/laser.pb-c.c" "$tmp/laser.pb-c.c" >/dev/null || { echo "stale: Sources/LaserProtoC/laser.pb-c.c" >&2; status=1; }
  diff -u "$root/clients/python/laser_pb2.py" "$tmp/laser_pb2.py" >/dev/null || { echo "stale: clients/python/laser_pb2.py" >&2; status=1; }
  [ $status = 0 ] && echo "generated code (protobuf-c, Python) is current"
  [ $status = 0 ] || echo "run scripts/generate-proto.sh and commit the result" >&2
  exit $status
fi
cp "$tmp/laser.pb-c.h" "$root/Sources/LaserProtoC/include/laser.pb-c.h"
cp "$tmp/laser.pb-c.c" "$root/Sources/LaserProtoC/laser.pb-c.c"
cp "$tmp/laser_pb2.py" "$root/clients/python/laser_pb2.py"
echo "wrote Sources/LaserProtoC/{laser.pb-c.c,include/laser.pb-c.h} and clients/python/laser_pb2.py"

#!/usr/bin/env bash
# Regenerates the protoc-c output for proto/laser.proto into Sources/LaserProtoC.
#   scripts/generate-proto.sh          write the generated files
#   scripts/generate-proto.sh --check  fail if the committed files differ from what protoc-c makes now
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$root/proto" && protoc-c --c_out="$tmp" laser.proto)
# SwiftPM wants public headers under include/; the .c file includes the header by its bare name.
sed -i 's|#include "laser.pb-c.h"|#include "include/laser.pb-c.h"|' "$tmp/laser.pb-c.c"
if [ "${1:-}" = "--check" ]; then
  status=0
  diff -u "$root/Sources/LaserProtoC/include/laser.pb-c.h" "$tmp/laser.pb-c.h" >/dev/null || { echo "stale: Sources/LaserProtoC/include/laser.pb-c.h" >&2; status=1; }
  diff -u "$root/Sources/LaserProtoC/laser.pb-c.c" "$tmp/laser.pb-c.c" >/dev/null || { echo "stale: Sources/LaserProtoC/laser.pb-c.c" >&2; status=1; }
  [ $status = 0 ] && echo "generated protobuf-c code is current"
  [ $status = 0 ] || echo "run scripts/generate-proto.sh and commit the result" >&2
  exit $status
fi
cp "$tmp/laser.pb-c.h" "$root/Sources/LaserProtoC/include/laser.pb-c.h"
cp "$tmp/laser.pb-c.c" "$root/Sources/LaserProtoC/laser.pb-c.c"
echo "wrote Sources/LaserProtoC/{laser.pb-c.c,include/laser.pb-c.h}"

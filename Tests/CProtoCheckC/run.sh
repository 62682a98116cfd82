#!/usr/bin/env bash
# Builds and runs the C test of Sources/CProtoCheck (laser_proto_check_strings) with gcc, without Swift:
# once under valgrind (when installed, fewer fuzz inputs) and once with AddressSanitizer + UBSan.
# Exits non-zero on any failure; the last line is "N passed, M failed".
# Environment: LASER_FUZZ_ITERS (fuzz inputs of the sanitizer run, default 200000), CC (default gcc).
set -euo pipefail
cd "$(dirname "$0")/../.."

CC=${CC:-gcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

includes=(-I Sources/CProtoCheck/include -I Sources/LaserProtoC/include)
pbc_cflags=$(pkg-config --cflags libprotobuf-c)
pbc_libs=$(pkg-config --libs libprotobuf-c)
strict=(-std=c11 -Wall -Wextra -Werror -g)
# The generated code is compiled as it is, without -Werror.
sources_strict=(Sources/CProtoCheck/proto_check.c Tests/CProtoCheckC/proto_check_test.c)

build() {  # build OUT EXTRA_FLAGS...
    local out=$1
    shift
    local objs=()
    for src in "${sources_strict[@]}"; do
        local obj="$work/$(basename "$src" .c)-$(basename "$out").o"
        # shellcheck disable=SC2086
        "$CC" "${strict[@]}" "$@" "${includes[@]}" -c "$src" -o "$obj" $pbc_cflags
        objs+=("$obj")
    done
    # shellcheck disable=SC2086
    "$CC" -std=c11 -g "$@" "${includes[@]}" -c Sources/LaserProtoC/laser.pb-c.c -o "$work/laser-$(basename "$out").o" $pbc_cflags
    # shellcheck disable=SC2086
    "$CC" "$@" "${objs[@]}" "$work/laser-$(basename "$out").o" -o "$out" $pbc_libs
}

if command -v valgrind >/dev/null 2>&1; then
    echo "== valgrind run"
    build "$work/plain" -O1 -gdwarf-4
    LASER_FUZZ_ITERS=${LASER_VALGRIND_FUZZ_ITERS:-20000} \
        valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$work/plain"
else
    echo "== valgrind not installed: skipping the valgrind run"
fi

echo "== AddressSanitizer + UBSan run"
build "$work/asan" -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$work/asan"

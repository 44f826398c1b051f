#!/usr/bin/env bash
# Builds the test objects: tests/bpf/*.bpf.c -> *.bpf.o (committed, so the tests run on a
# machine without clang). `build.sh --check` rebuilds into a temporary folder and fails if a
# committed object differs from what clang makes of its source.
set -euo pipefail
cd "$(dirname "$0")"
CLANG="${CLANG:-$(command -v clang-14 || command -v clang)}"
# Debian keeps asm/types.h under the multiarch folder; -g gives the BTF libbpf needs.
FLAGS=(-O2 -target bpf "-I/usr/include/$(uname -m)-linux-gnu")
out=.
if [ "${1:-}" = --check ]; then
    out=$(mktemp -d)
fi
for src in *.bpf.c; do
    debug=(-g)
    # nobtf.bpf.c is the object without BTF the tests need: no -g.
    [ "$src" = nobtf.bpf.c ] && debug=()
    "$CLANG" "${FLAGS[@]}" "${debug[@]}" -c "$src" -o "$out/${src%.c}.o"
done
if [ "$out" != . ]; then
    status=0
    for obj in "$out"/*.bpf.o; do
        if ! cmp -s "$obj" "$(basename "$obj")"; then
            echo "tests/bpf/$(basename "$obj") is stale: run tests/bpf/build.sh" >&2
            status=1
        fi
    done
    rm -rf "$out"
    exit $status
fi

#!/usr/bin/env bash
# Builds the BPF objects: bpfmap/bpf/*.bpf.c (shipped with the package) and tests/bpf/*.bpf.c
# (the tests') into *.bpf.o beside them, committed so that nothing needs clang to run.
# `bpf-objects.sh --check` rebuilds into a temporary folder and fails if a committed object
# differs from what clang-14 makes of its source.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-$(command -v clang-14 || command -v clang)}"
# Debian keeps asm/types.h under the multiarch folder; -g gives the BTF libbpf needs.
# -fdebug-prefix-map: the DWARF records the build folder; mapped to ".", an object is the
# same bytes in every clone (CI builds in a fresh one).
FLAGS=(-O2 -target bpf "-I/usr/include/$(uname -m)-linux-gnu" "-fdebug-prefix-map=$PWD=.")
check=0
[ "${1:-}" = --check ] && check=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for src in bpfmap/bpf/*.bpf.c tests/bpf/*.bpf.c; do
    obj="${src%.c}.o"
    debug=(-g)
    # tests/bpf/nobtf.bpf.c is the object without BTF the tests need: no -g.
    [ "$(basename "$src")" = nobtf.bpf.c ] && debug=()
    # Compiled from its own folder, so the object records the same file name either way.
    (cd "$(dirname "$src")" && "$CLANG" "${FLAGS[@]}" "${debug[@]}" -c "$(basename "$src")" \
        -o "$tmp/out.o")
    if [ $check = 1 ]; then
        if ! cmp -s "$tmp/out.o" "$obj"; then
            echo "$obj is stale: run tools/bpf-objects.sh" >&2
            status=1
        fi
    else
        cp "$tmp/out.o" "$obj"
    fi
done
exit $status

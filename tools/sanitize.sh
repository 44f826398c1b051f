#!/usr/bin/env bash
# The C core under AddressSanitizer + UndefinedBehaviorSanitizer, driven by the test suite.
#
#   tools/sanitize.sh [pytest args...]     default: the subset below
#
# Builds bpfmap (non-editable) with -fsanitize=address,undefined into a separate venv
# (SANITIZE_VENV, default a temporary one), then runs pytest from outside the source tree,
# so that the sanitized extension is the one imported, with libasan preloaded into the
# (unsanitized) interpreter. Leak detection is off: CPython keeps memory until exit.
# Any ASan or UBSan report aborts the process that hit it; the tests check that every
# subprocess exits normally, so a report anywhere fails the run.
# Environment: CC (default gcc), SANITIZE_QUICK=1 for the short CI form.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CC="${CC:-gcc}"
VENV="${SANITIZE_VENV:-$(mktemp -d)/venv}"
python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# setuptools as pyproject.toml requires (a new venv may hold an older one).
python -m pip install -q cffi "setuptools>=77" wheel pytest hypothesis numpy

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1"
# From a clean copy of the working tree: pip builds in-tree, and setuptools would take an
# up-to-date unsanitized object from the tree's build/ directory.
SRC="$(mktemp -d)/src"
mkdir -p "$SRC"
tar -C "$ROOT" --exclude=./.git --exclude=./build --exclude='*.so' --exclude='*.o' \
    --exclude=./fuzz/build --exclude='*.egg-info' -cf - . | tar -C "$SRC" -xf -
CC="$CC" CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" \
    python -m pip install -q --no-build-isolation --no-cache-dir --force-reinstall --no-deps "$SRC"

# Where "import bpfmap" will look, found without importing it (that would load the
# sanitized extension before libasan is preloaded).
PKG="$(cd / && python -c 'import importlib.util as u; print(u.find_spec("bpfmap").submodule_search_locations[0])')"
CORE="$(ls "$PKG"/_core*.so)"
case "$CORE" in
    "$VENV"/*) ;;
    *) echo "sanitize.sh: imported $CORE, not the venv's build" >&2; exit 1 ;;
esac
LIBASAN="$("$CC" -print-file-name=libasan.so)"
if ! ldd "$CORE" | grep libasan >/dev/null; then
    echo "sanitize.sh: $CORE is not linked with libasan" >&2
    exit 1
fi
echo "sanitized core: $CORE (preloading $LIBASAN)"

export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0:handle_segv=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Smaller runs of the long tests: the sanitizers make every call several times slower.
export BPFMAP_PROPERTY_EXAMPLES="${BPFMAP_PROPERTY_EXAMPLES:-60}"
export BPFMAP_HOSTILE_CALLS="${BPFMAP_HOSTILE_CALLS:-10000}"
export BPFMAP_RACE_ROUNDS="${BPFMAP_RACE_ROUNDS:-50}"
export BPFMAP_LIFETIME_CYCLES="${BPFMAP_LIFETIME_CYCLES:-1000}"
export BPFMAP_CONCURRENCY_SECONDS="${BPFMAP_CONCURRENCY_SECONDS:-0.5}"
export BPFMAP_CRASH_ROUNDS="${BPFMAP_CRASH_ROUNDS:-10}"

cd "$ROOT/tests"
# One check measures the sanitizer rather than bpfmap, so the default runs leave it out (the
# plain test run keeps it): ASan's shadow memory counts against the small memory cgroup of
# test_a_map_that_fits_is_whole_from_create, whose child is then OOM-killed.
# (--deselect takes node ids from the rootdir, $ROOT.)
ASAN_BLIND="--deselect tests/test_create.py::test_a_map_that_fits_is_whole_from_create"
if [ "$#" -gt 0 ]; then
    set -- "$@"
elif [ "${SANITIZE_QUICK:-}" = 1 ]; then
    set -- test_create.py test_elements.py test_batches.py test_handles.py test_mmap.py \
        test_freeze.py test_processes.py test_hostile.py test_properties.py
    # shellcheck disable=SC2086
    set -- "$@" $ASAN_BLIND
else
    set -- test_create.py test_elements.py test_batches.py test_handles.py test_mmap.py \
        test_freeze.py test_processes.py test_security.py \
        test_differential.py test_differential_extra.py test_random_differential.py \
        test_hostile.py test_properties.py test_concurrency.py test_crashes.py
    # shellcheck disable=SC2086
    set -- "$@" $ASAN_BLIND
fi
# -p no:cacheprovider: nothing written into the tree; the rootdir conftest puts only tests/
# on sys.path, so "import bpfmap" finds the sanitized build.
python -m pytest -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" "$@"
echo "sanitize.sh: no AddressSanitizer or UndefinedBehaviorSanitizer report"

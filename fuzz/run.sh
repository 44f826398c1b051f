#!/usr/bin/env bash
# Build the libFuzzer harness (ASan + UBSan) for the C core and run it for a bounded time.
#
#   fuzz/run.sh [SECONDS]          default 60; CI runs a short one (e.g. 45)
#
# Environment: CC (default: clang, else clang-14), FUZZ_CORPUS (a corpus directory to
# keep and grow; default: a temporary one, seeded), FUZZ_JOBS (parallel workers; their logs
# go to fuzz-N.log in the current directory).
# Exits non-zero on a crash, a sanitizer report, a descriptor leak or a timeout; the
# reproducer is left in fuzz/artifacts/ (replay: fuzz/build/fuzz_core fuzz/artifacts/crash-...).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
CC="${CC:-$(command -v clang || command -v clang-14 || true)}"
if [ -z "$CC" ]; then
    echo "fuzz/run.sh: needs clang with libFuzzer (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 2
fi
mkdir -p fuzz/build fuzz/artifacts
# The core's sources: the list in csrc/build_ffi.py, the one place that names them.
mapfile -t CORE_SOURCES < <(sed -n 's/^ *"\(csrc\/[A-Za-z0-9_]*\.c\)",$/\1/p' csrc/build_ffi.py)
"$CC" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Icsrc fuzz/fuzz_core.c "${CORE_SOURCES[@]}" \
    -o fuzz/build/fuzz_core

CORPUS="${FUZZ_CORPUS:-$(mktemp -d)}"
mkdir -p "$CORPUS"
# Seeds: a plain map, the create-flag paths, a crafted header, a path.
printf '\x00\x08\x00\x00\x00\x10\x01\x00\x00' > "$CORPUS/seed_plain"
printf '\x10\x08\x00\x00\x00\x10\x00\x00\x04\x00\x00\x00\x0c\x05\x00\x00' > "$CORPUS/seed_flags"
printf '\xff\x11\x00\x10\x00\x00\x00' > "$CORPUS/seed_crafted"
printf '\xfe/sys/fs/bpf/x' > "$CORPUS/seed_path"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fuzz/build/fuzz_core "$CORPUS" -max_total_time="$SECONDS_TO_RUN" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix=fuzz/artifacts/ \
    ${FUZZ_JOBS:+-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"}

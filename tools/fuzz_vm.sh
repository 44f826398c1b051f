#!/usr/bin/env bash
# The interpreter (csrc/vm_load.c, vm.c, vm_helpers.c) under libFuzzer with ASan and UBSan, fed
# arbitrary bytecode by tools/fuzz_vm.c. Prints one line: the verdict.
#
#   tools/fuzz_vm.sh [seconds]     default 60 (FUZZ_SECONDS); exit 0 when clean
#
# The seed corpus is random verifier-accepted programs (bpfmap._vm_random) when bpfmap
# imports, so the fuzzer starts from code that runs deep. A crash leaves its input as
# crash-* in FUZZ_DIR (default a temporary folder) and the full log beside it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_TO_RUN="${1:-${FUZZ_SECONDS:-60}}"
CC="${CC:-$(command -v clang-14 || command -v clang)}"
DIR="${FUZZ_DIR:-$(mktemp -d /tmp/fuzz_vm.XXXX)}"
mkdir -p "$DIR/corpus"
"$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer -std=c11 -Wall -Wextra -Werror -I"$ROOT/csrc" \
    "$ROOT/tools/fuzz_vm.c" "$ROOT/csrc/vm_load.c" "$ROOT/csrc/vm.c" "$ROOT/csrc/vm_helpers.c" \
    -o "$DIR/fuzz_vm" \
    2>"$DIR/build.log" || { echo "fuzz_vm: build failed (see $DIR/build.log)"; exit 2; }
python3 - "$DIR/corpus" <<'PY' 2>/dev/null || true
import sys
from bpfmap import _vm_random
for seed in range(64):
    with open(f"{sys.argv[1]}/random-{seed}", "wb") as f:
        f.write(bytes([seed % 3]) + _vm_random.generate(seed, body=seed % 48 + 1))
PY
cd "$DIR"
if ./fuzz_vm -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 corpus >fuzz.log 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' fuzz.log | grep -o '[0-9]*$' || echo "?")
    echo "fuzz_vm: clean: $runs inputs in ${SECONDS_TO_RUN}s under ASan+UBSan ($DIR)"
else
    echo "fuzz_vm: FAILED: $(grep -m1 -E 'ERROR|runtime error|SUMMARY' fuzz.log || echo 'see log') ($DIR/fuzz.log, $(ls crash-* leak-* timeout-* 2>/dev/null | head -1))"
    exit 1
fi

#!/usr/bin/env bash
# valgrind memcheck of the C core: tools/valgrind_driver.py under memcheck, with the
# installed (development) build. Fails if any error report has a frame in bpfmap's
# core (_core*.so, csrc/*.c); errors elsewhere (the interpreter, NumPy) are counted
# and listed, not judged. PYTHONMALLOC=malloc so that memcheck sees Python's allocations.
#
#   tools/valgrind.sh            (needs valgrind; ~1-2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "tools/valgrind.sh: needs valgrind" >&2; exit 2; }
PY="${PYTHON:-python}"
LOG="$(mktemp)"
PYTHONMALLOC=malloc valgrind --tool=memcheck --error-limit=no --num-callers=40 \
    --track-fds=no --suppressions=tools/valgrind.supp --log-file="$LOG" \
    "$PY" tools/valgrind_driver.py
"$PY" - "$LOG" <<'PYEOF'
import pathlib, re, sys
text = open(sys.argv[1]).read()
blocks, cur = [], []
for line in text.splitlines():
    body = re.sub(r"^==\d+== ?", "", line)
    if not body.strip():
        if cur:
            blocks.append(cur)
        cur = []
    else:
        cur.append(body)
if cur:
    blocks.append(cur)
kinds = ("Invalid ", "Conditional jump", "Use of uninitialised", "Syscall param",
         "Mismatched free", "Source and destination overlap", "Argument ")
errors = [b for b in blocks if b[0].startswith(kinds)]
# A frame in the extension, or in any of the core's sources (csrc/*.c, *.h: layout.h inlines).
sources = "|".join(re.escape(p.name) for p in pathlib.Path("csrc").glob("*.[ch]"))
core = re.compile(r"bpfmap/_core[.\w]*\.so|(?<![\w])_core\.c:|(?<![\w])(?:" + sources + r"):")
ours = [b for b in errors if any(core.search(l) for l in b)]
summary = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
print(f"valgrind: {len(errors)} error reports in all ({summary[-1] if summary else '?'} "
      f"by memcheck's count), {len(ours)} with a frame in bpfmap's C core")
for b in ours:
    print("\n".join(b), "\n")
sys.exit(1 if ours else 0)
PYEOF

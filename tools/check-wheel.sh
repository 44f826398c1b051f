#!/usr/bin/env bash
# Builds the wheel, checks with abi3audit that the C core uses only CPython's stable ABI (the
# wheel is tagged cp39-abi3), then installs it into a venv of a different CPython 3.x found on
# this machine and creates a map there.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m pip wheel -q --no-deps -w "$tmp/wheel" . 2>&1 | grep -v '^WARNING: Location' || true
wheel=$(ls "$tmp"/wheel/bpfmap-*.whl)
case "$wheel" in
    *-cp39-abi3-*) ;;
    *) echo "check-wheel: $wheel is not tagged cp39-abi3" >&2; exit 1 ;;
esac
python -m pip install -q abi3audit 2>&1 | grep -v '^WARNING: Location' || true
abi3audit --strict "$wheel" >/dev/null
echo "abi3audit: $(basename "$wheel") uses the stable ABI only"
mine=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
other=""
for v in 3.13 3.12 3.10 3.9; do
    [ "$v" = "$mine" ] && continue
    # pyenv's shims answer `command -v` for versions they will not run: try each one.
    for cand in "$HOME/.pyenv/versions/$v"*/bin/python3 "/usr/bin/python$v"; do
        if [ -x "$cand" ] && "$cand" -c 'import venv' >/dev/null 2>&1; then
            other=$cand
            break 2
        fi
    done
done
if [ -z "$other" ]; then
    echo "check-wheel: no CPython 3.x other than $mine on this machine to install the wheel into"
    exit 0
fi
"$other" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q "$wheel" 2>&1 | grep -v '^WARNING: Location' || true
(cd "$tmp" && "$tmp/venv/bin/python" -c '
import sys, bpfmap
m = bpfmap.ArrayMap(8, 4, flags=bpfmap.BPF_F_MMAPABLE)
m.update(1, b"abcdefgh")
assert m.lookup(1) == b"abcdefgh"
print("built on '"$mine"', works on %d.%d" % sys.version_info[:2])
')

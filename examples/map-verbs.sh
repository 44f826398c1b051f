#!/usr/bin/env bash
# The same `map` verbs, run by bpftool or by bpfmap, on a kernel map or an emulated one:
#
#   examples/map-verbs.sh bpftool /sys/fs/bpf/verbs   # bpftool on a kernel map (root)
#   examples/map-verbs.sh bpfmap  /sys/fs/bpf/verbs   # bpfmap on a kernel map (root)
#   examples/map-verbs.sh bpfmap  /tmp/verbs          # bpfmap on an emulated map (any user)
#
# TOOL is the command to run (it may be several words: "python -m bpfmap"). PATH must not
# exist: the script creates the map there (bpffs: a kernel map; elsewhere: an emulated map),
# then removes its pins. PATH stands for the path in what it prints, so the three runs
# print the same lines, apart from the map's id.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 TOOL PATH" >&2
    exit 2
fi
tool=$1
path=$2
# bpftool mounts a bpffs over the directory of a pin outside bpffs: never let it.
if [[ $tool == *bpftool* ]] && [ "$(stat -f -c %T "$(dirname "$path")")" != bpf_fs ]; then
    echo "$0: bpftool pins on bpffs only, not at $path" >&2
    exit 2
fi

run() {
    local shown="$*" out
    # shellcheck disable=SC2086  # TOOL may be several words
    out=$($tool map "$@" 2>&1; echo "[exit $?]")
    echo "\$ map ${shown//"$path"/PATH}"
    echo "${out//"$path"/PATH}"
}

run create "$path" type array key 4 value 8 entries 4 name verbs flags 1024
run show pinned "$path"
run -j show pinned "$path"
run -p show pinned "$path"
run update pinned "$path" key 1 0 0 0 value 42 0 0 0 0 0 0 0
run update pinned "$path" key hex 02 00 00 00 value hex ff ee dd cc bb aa 99 88
run lookup pinned "$path" key 1 0 0 0
run -j lookup pinned "$path" key hex 02 00 00 00
run -p lookup pinned "$path" key 0x02 0 0 0
run lookup pinned "$path" key 4 0 0 0
run update pinned "$path" key 1 0 0 0 value 1 2 3 4 5 6 7 8 noexist
run update pinned "$path" key 1 0 0 0 value 1 2 3 4 5 6 7 8 exist
run update pinned "$path" key 4 0 0 0 value 0 0 0 0 0 0 0 0
run update pinned "$path" key 1 0 0 0 value 1 2 3
run delete pinned "$path" key 1 0 0 0
run getnext pinned "$path"
run getnext pinned "$path" key 2 0 0 0
run -j getnext pinned "$path" key 3 0 0 0
run dump pinned "$path"
run -j dump pinned "$path"
run -p dump pinned "$path"
run pop pinned "$path"
run freeze pinned "$path"
run freeze pinned "$path"
run -j update pinned "$path" key 0 0 0 0 value 1 1 1 1 1 1 1 1
run update pinned "$path" key 0 0 0 0 value 1 1 1 1 1 1 1 1
run show pinned "$path"
run -j show pinned "$path"
run lookup pinned "$path" key 1 0 0 0
run pin pinned "$path" "$path"
run pin pinned "$path" "${path}_pin2"
run -j dump pinned "${path}_pin2"
rm -f "${path}_pin2" "$path"

#!/bin/bash
# Untar N copies of the Python standard library onto a fresh rvmfs image, then rm -rf them one
# by one, timing each step (README "Performance": the append and discard fixes).
# Usage: scripts/untar-rm-trees.sh BIN_DIR WORK_DIR [N] [MOUNT_OPTS]
#   BIN_DIR: where mkfs-rvmfs and rvmfs are (target/release); WORK_DIR: scratch space (8 GiB
#   image); MOUNT_OPTS: e.g. "-o nodiscard".
set -euo pipefail
bin=$1 work=$2 n=${3:-4} opts=${4:-}
mkdir -p "$work/mnt"
lib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
[ -f "$work/stdlib.tar" ] || tar -C "$(dirname "$lib")" --exclude=site-packages -cf "$work/stdlib.tar" "$(basename "$lib")"
rm -f "$work/trees.img"
"$bin/mkfs-rvmfs" -q -s 8G "$work/trees.img"
# shellcheck disable=SC2086
"$bin/rvmfs" -f "$work/trees.img" "$work/mnt" $opts 2>"$work/trees.log" &
pid=$!
trap 'fusermount3 -u "$work/mnt" 2>/dev/null; wait $pid' EXIT
for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.1; done
secs() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
for r in $(seq 0 $((n - 1))); do
    mkdir "$work/mnt/t$r"
    echo "untar t$r: $(secs tar -C "$work/mnt/t$r" -xf "$work/stdlib.tar") s"
done
for r in $(seq 0 $((n - 1))); do
    echo "rm -rf t$r: $(secs rm -rf "$work/mnt/t$r") s"
done

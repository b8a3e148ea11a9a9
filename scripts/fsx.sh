#!/usr/bin/env bash
# Run fsx (the Rust port of xfstests' File System eXerciser) on a freshly made, mounted rvmfs.
#
#   scripts/fsx.sh [OPS] [SEED...]          defaults: 20000 operations, seeds 1 2 3
#
# Every seed runs twice: once with every operation fsx knows enabled (pread/pwrite, mmap
# reads and writes, msync invalidation, truncate, close/reopen, fsync, fdatasync,
# posix_fallocate, punch hole, copy_file_range, sendfile, posix_fadvise), and once without
# mmap (so the plain read/write path is exercised on its own). Installs fsx with
# `cargo install fsx` if missing. Binaries: $RVMFS_BIN_DIR, else $CARGO_TARGET_DIR/release
# (built if missing). RVMFS_MOUNT_OPTIONS=OPTS mounts with -o OPTS (e.g. writeback). Exits
# non-zero on any miscompare or error; fsck -n must then be clean.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
BIN="${RVMFS_BIN_DIR:-$CARGO_TARGET_DIR/release}"
ops=${1:-20000}
shift || true
seeds=("$@")
((${#seeds[@]})) || seeds=(1 2 3)

log() { echo "[fsx] $*"; }

FSX=$(command -v fsx || true)
if [[ -z $FSX && -x $HOME/.cargo/bin/fsx ]]; then
    FSX=$HOME/.cargo/bin/fsx
fi
if [[ -z $FSX ]]; then
    log "installing fsx (cargo install fsx)"
    cargo install --locked fsx || cargo install fsx
    FSX=$HOME/.cargo/bin/fsx
fi
if [[ ! -x $BIN/rvmfs || ! -x $BIN/mkfs-rvmfs || ! -x $BIN/fsck-rvmfs ]]; then
    log "building release binaries"
    cargo build --release --workspace
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rvmfs-fsx.XXXXXX")
mnt=$work/mnt
pid=
unmount() {
    if [[ -n $pid ]]; then
        if grep -q " $mnt fuse" /proc/mounts; then fusermount3 -u "$mnt" || fusermount3 -u -z "$mnt"; fi
        for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
    fi
}
cleanup() {
    cd /
    unmount
    if [[ ${KEEP_FSX_WORK:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

write_config() { # file mmap-weight
    cat >"$1" <<EOF
flen = 1048576
[opsize]
max = 131072
[weights]
close_open = 1
read = 10
write = 10
mapread = $2
mapwrite = $2
invalidate = $(($2 > 0 ? 1 : 0))
truncate = 2
fsync = 1
fdatasync = 1
posix_fallocate = 3
punch_hole = 3
sendfile = 1
posix_fadvise = 1
copy_file_range = 3
EOF
}
write_config "$work/all.toml" 10
write_config "$work/nommap.toml" 0

mkdir "$mnt"
"$BIN/mkfs-rvmfs" -s 2G "$work/image" >/dev/null
"$BIN/rvmfs" -f ${RVMFS_MOUNT_OPTIONS:+-o "$RVMFS_MOUNT_OPTIONS"} "$work/image" "$mnt" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 200); do
    grep -q " $mnt fuse" /proc/mounts && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
    sleep 0.1
done
grep -q " $mnt fuse" /proc/mounts || { log "mount did not appear" >&2; exit 1; }

fails=0
runs=0
for cfg in all nommap; do
    for seed in "${seeds[@]}"; do
        runs=$((runs + 1))
        out=$work/$cfg-$seed
        mkdir -p "$out"
        start=$(date +%s.%N)
        if "$FSX" -q -N "$ops" -S "$seed" -f "$work/$cfg.toml" -P "$out" "$mnt/fsx-$cfg-$seed" \
            >"$out/log" 2>&1; then
            log "$cfg seed $seed: $ops ops OK ($(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)") s)"
        else
            fails=$((fails + 1))
            log "$cfg seed $seed: FAILED" >&2
            tail -40 "$out/log" >&2
        fi
    done
done
unmount
if ! "$BIN/fsck-rvmfs" -n "$work/image" >"$work/fsck.log" 2>&1; then
    log "fsck -n after fsx is not clean:" >&2
    cat "$work/fsck.log" >&2
    fails=$((fails + 1))
fi
log "${RVMFS_MOUNT_OPTIONS:+-o $RVMFS_MOUNT_OPTIONS: }$((runs - fails < 0 ? 0 : runs - fails))/$runs runs clean (${#seeds[@]} seeds x $ops ops, with and without mmap)"
((fails == 0)) || exit 1

#!/usr/bin/env bash
# Install the release binaries under PREFIX (default /usr/local):
#   PREFIX/sbin/mkfs.rvmfs  PREFIX/sbin/fsck.rvmfs  PREFIX/bin/rvmfs
# Builds them first if they are missing (cargo build --release). DESTDIR is honoured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PREFIX="${1:-/usr/local}"
DESTDIR="${DESTDIR:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${RVMFS_BIN_DIR:-$CARGO_TARGET_DIR/release}"

if [[ ! -x $BIN/rvmfs || ! -x $BIN/mkfs-rvmfs || ! -x $BIN/fsck-rvmfs ]]; then
    cargo build --release --workspace
fi
install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$PREFIX/sbin"
install -m 0755 "$BIN/rvmfs" "$DESTDIR$PREFIX/bin/rvmfs"
install -m 0755 "$BIN/mkfs-rvmfs" "$DESTDIR$PREFIX/sbin/mkfs.rvmfs"
install -m 0755 "$BIN/fsck-rvmfs" "$DESTDIR$PREFIX/sbin/fsck.rvmfs"
echo "installed: $DESTDIR$PREFIX/bin/rvmfs $DESTDIR$PREFIX/sbin/mkfs.rvmfs $DESTDIR$PREFIX/sbin/fsck.rvmfs"

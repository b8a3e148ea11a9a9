#!/usr/bin/env bash
# Install the release binaries under PREFIX (default /usr/local):
#   PREFIX/sbin/mkfs.rvmfs  PREFIX/sbin/fsck.rvmfs  PREFIX/sbin/rvmfs-admin  PREFIX/bin/rvmfs
# and mount(8)'s helper as /sbin/mount.rvmfs (mount looks for helpers in /sbin only), set
# to start PREFIX/bin/rvmfs, so `mount -t rvmfs` and fstab lines of type rvmfs work.
# Builds them first if they are missing (cargo build --release). DESTDIR is honoured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PREFIX="${1:-/usr/local}"
DESTDIR="${DESTDIR:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${RVMFS_BIN_DIR:-$CARGO_TARGET_DIR/release}"

for b in rvmfs mkfs-rvmfs fsck-rvmfs rvmfs-admin; do
    [[ -x $BIN/$b ]] || { cargo build --release --workspace --bins; break; }
done
install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$PREFIX/sbin" "$DESTDIR/sbin"
install -m 0755 "$BIN/rvmfs" "$DESTDIR$PREFIX/bin/rvmfs"
install -m 0755 "$BIN/mkfs-rvmfs" "$DESTDIR$PREFIX/sbin/mkfs.rvmfs"
install -m 0755 "$BIN/fsck-rvmfs" "$DESTDIR$PREFIX/sbin/fsck.rvmfs"
install -m 0755 "$BIN/rvmfs-admin" "$DESTDIR$PREFIX/sbin/rvmfs-admin"
sed "s|^installed= |installed=$PREFIX/bin/rvmfs |" scripts/mount.rvmfs >"$DESTDIR/sbin/mount.rvmfs"
chmod 0755 "$DESTDIR/sbin/mount.rvmfs"
echo "installed: $DESTDIR$PREFIX/bin/rvmfs $DESTDIR$PREFIX/sbin/mkfs.rvmfs" \
    "$DESTDIR$PREFIX/sbin/fsck.rvmfs $DESTDIR$PREFIX/sbin/rvmfs-admin $DESTDIR/sbin/mount.rvmfs"

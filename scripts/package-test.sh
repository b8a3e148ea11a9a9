#!/usr/bin/env bash
# Build the Debian package (scripts/build-deb.sh), install it with dpkg -i (apt-get pulls
# fuse3 if it is missing), and use it as an administrator would, by the installed names from
# the system PATH only: mkfs.rvmfs, rvmfs (mount), a copy of a directory tree and its
# comparison, fusermount3 -u, fsck.rvmfs -n; check the man pages and the bash completion are
# where man and bash-completion look. Then remove the package (dpkg -r) and check it left
# nothing. Needs root. scripts/test.sh runs it after the cargo tests; it takes seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

say() { echo "[package-test] $*"; }
fail() { echo "[package-test] FAILED: $*" >&2; exit 1; }

if (( $(id -u) != 0 )); then
    say "skipped: installing a package needs root"
    exit 0
fi
if dpkg-query -W -f='${Status}' rvmfs 2>/dev/null | grep -q 'install ok installed'; then
    say "skipped: a package rvmfs is installed already; not replacing it"
    exit 0
fi

deb=$(bash scripts/build-deb.sh)
say "built $deb ($(du -h "$deb" | cut -f1))"
work=$(mktemp -d /tmp/rvmfs-package-test.XXXXXX)
mnt="$work/mnt"
cleanup() {
    mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
    dpkg-query -W rvmfs >/dev/null 2>&1 && dpkg -r rvmfs >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

if command -v fusermount3 >/dev/null; then
    dpkg -i "$deb" >/dev/null
else
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
fi
say "installed: $(dpkg-query -W -f='${Package} ${Version} ${Architecture}' rvmfs)"

# Only the system's directories: what the package installed, not a /usr/local copy.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
for tool in rvmfs mkfs.rvmfs fsck.rvmfs rvmfs-admin; do
    where=$(command -v "$tool") || fail "$tool is not in PATH"
    [[ $where == /usr/* ]] || fail "$tool found at $where"
    man -w "$tool" >/dev/null || fail "man does not find $tool(8)"
    [[ -s /usr/share/bash-completion/completions/$tool ]] || fail "no bash completion for $tool"
done

mkdir "$mnt"
mkfs.rvmfs -s 128M "$work/disk.img"
# Through mount(8) and the package's mount.rvmfs helper; the mount's type is fuse.rvmfs.
mount -t rvmfs "$work/disk.img" "$mnt"
grep -q " $mnt fuse.rvmfs " /proc/mounts || fail "mount -t rvmfs returned but $mnt is not mounted as fuse.rvmfs"
cp -a docs scripts "$mnt/"
diff -r docs "$mnt/docs" && diff -r scripts "$mnt/scripts" || fail "the copy differs"
fusermount3 -u "$mnt"
# The daemon finishes its clean unmount after the kernel lets go: wait for the image's lock.
for _ in $(seq 50); do flock -n "$work/disk.img" true && break; sleep 0.1; done
fsck.rvmfs -n "$work/disk.img" || fail "fsck.rvmfs -n exit $?"
rvmfs-admin dump -h "$work/disk.img" >/dev/null || fail "rvmfs-admin dump -h exit $?"

dpkg -r rvmfs >/dev/null
for path in /usr/bin/rvmfs /usr/sbin/mkfs.rvmfs /usr/sbin/fsck.rvmfs /usr/sbin/rvmfs-admin \
    /usr/sbin/mount.rvmfs \
    /usr/share/man/man8/rvmfs.8.gz /usr/share/bash-completion/completions/rvmfs; do
    [[ ! -e $path ]] || fail "dpkg -r left $path"
done
say "passed: installed, mkfs, mount -t rvmfs, copy, unmount, fsck, dump from PATH, removed"

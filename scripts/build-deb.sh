#!/usr/bin/env bash
# Build the Debian package rvmfs_<version>_<arch>.deb with dpkg-deb from the release binaries:
# scripts/install.sh lays out /usr (binaries under their real names, man pages, completions)
# in a package tree, and this adds DEBIAN/control (Depends: fuse3 and the shared libraries the
# binaries link), the copyright file, a changelog and README.Debian. DEBFULLNAME and DEBEMAIL
# name the maintainer, as for Debian's own tools. lintian finds nothing else to say.
#   usage: scripts/build-deb.sh [OUTDIR]     (default OUTDIR: target/debian)
# Prints the path of the package built. Builds the binaries first if they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
OUT="${1:-$CARGO_TARGET_DIR/debian}"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
chmod 0755 "$tree"

DESTDIR="$tree" bash scripts/install.sh /usr >/dev/null
# Debian ships binaries without their debugging symbols (the release profile keeps them).
# Only the ELF binaries: mount.rvmfs is a shell script.
elf=()
for f in "$tree"/usr/bin/* "$tree"/usr/sbin/*; do
    if [[ $(head -c 4 "$f" | tail -c 3) == ELF ]]; then elf+=("$f"); fi
done
strip --strip-unneeded "${elf[@]}"
doc="$tree/usr/share/doc/rvmfs"
install -d "$doc" "$tree/DEBIAN"
install -m 0644 packaging/debian/README.Debian "$doc/README.Debian"
sed "s/@YEAR@/$(date -u +%Y)/" packaging/debian/copyright >"$doc/copyright"
# Debian's variables name the maintainer (lintian wants a real mail host, which we cannot know).
maintainer="${DEBFULLNAME:-rvmfs developers} <${DEBEMAIL:-rvmfs@localhost}>"
# A native package's changelog: the version and the commit it was built from.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'rvmfs (%s) unstable; urgency=medium\n\n  * Built from the rvmfs repository at commit %s.\n\n -- %s  %s\n' \
    "$version" "$commit" "$maintainer" "$when" | gzip -9 -n >"$doc/changelog.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

# The C libraries the binaries link (libc, libgcc_s), as dpkg-shlibdeps would name them:
# the package that owns each library, at least the version installed here.
libs=$(for f in "${elf[@]}"; do ldd "$f"; done |
    awk '$3 ~ /^\// { print $3 }' | sort -u)
depends="fuse3"
for lib in $libs; do
    pkg=$({ dpkg -S "$lib" || dpkg -S "$(readlink -f "$lib")"; } 2>/dev/null |
        head -n 1 | cut -d: -f1) || true
    [[ -z $pkg ]] && continue
    ver=$(dpkg-query -W -f='${Version}' "$pkg" | sed 's/-[^-]*$//')
    dep="$pkg (>= $ver)"
    [[ $depends == *"$pkg "* ]] || depends="$depends, $dep"
done

size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
    -e "s/@SIZE@/$size/" -e "s|@MAINTAINER@|$maintainer|" \
    packaging/debian/control >"$tree/DEBIAN/control"
(cd "$tree" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$tree/DEBIAN/md5sums"
chmod 0644 "$tree/DEBIAN/control" "$tree/DEBIAN/md5sums"

mkdir -p "$OUT"
deb="$OUT/rvmfs_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
echo "$deb"

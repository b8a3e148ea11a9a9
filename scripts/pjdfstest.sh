#!/usr/bin/env bash
# Run the pjdfstest POSIX conformance suite inside a freshly made, mounted rvmfs, and (for
# comparison, in the same run) in a plain directory of the local filesystem.
#
#   scripts/pjdfstest.sh [--no-baseline] [PJDFSTEST ARGS...]    e.g. scripts/pjdfstest.sh rename
#
# - installs pjdfstest with `cargo install pjdfstest` if it is not in $PATH or ~/.cargo/bin;
# - creates the dummy users/groups the config names (nobody/nogroup, daemon/daemon) if missing;
# - config: $PJDFSTEST_CONFIG, else ../shared/pjdfstest.toml next to the repository, else an
#   identical copy written to a temporary file;
# - binaries: $RVMFS_BIN_DIR, else $CARGO_TARGET_DIR/release (built if missing);
# - RVMFS_MOUNT_OPTIONS=OPTS mounts rvmfs with -o OPTS (e.g. writeback);
# - prints both summaries; exits non-zero if rvmfs has any failure (or the suite cannot run).
# Must run as root (the suite switches to the dummy users). Unmounts and waits for the daemon
# it started (by PID) on every exit path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
BIN="${RVMFS_BIN_DIR:-$CARGO_TARGET_DIR/release}"
baseline=1
if [[ ${1:-} == --no-baseline ]]; then
    baseline=0
    shift
fi

log() { echo "[pjdfstest] $*"; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (the suite changes to its dummy users)" >&2
    exit 2
fi

# --- the suite -----------------------------------------------------------------------------
PJD=$(command -v pjdfstest || true)
if [[ -z $PJD && -x $HOME/.cargo/bin/pjdfstest ]]; then
    PJD=$HOME/.cargo/bin/pjdfstest
fi
if [[ -z $PJD ]]; then
    log "installing pjdfstest (cargo install pjdfstest)"
    cargo install --locked pjdfstest || cargo install pjdfstest
    PJD=$HOME/.cargo/bin/pjdfstest
fi

# --- the dummy users ------------------------------------------------------------------------
ensure_group() { getent group "$1" >/dev/null || groupadd --system "$1"; }
ensure_user() { # user group
    ensure_group "$2"
    getent passwd "$1" >/dev/null ||
        useradd --system --no-create-home --shell /usr/sbin/nologin -g "$2" "$1"
}
ensure_user nobody nogroup
ensure_user daemon daemon

# --- binaries and scratch space ---------------------------------------------------------------
if [[ ! -x $BIN/rvmfs || ! -x $BIN/mkfs-rvmfs ]]; then
    log "building release binaries"
    cargo build --release --workspace
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/rvmfs-pjdfstest.XXXXXX")
chmod 755 "$work"
config="${PJDFSTEST_CONFIG:-$repo/../shared/pjdfstest.toml}"
if [[ ! -f $config ]]; then
    config=$work/pjdfstest.toml
    cat >"$config" <<'EOF'
[features]
posix_fallocate = {}
utime_now = {}
utimensat = {}
rename_ctime = {}

[settings]
naptime = 0.01
allow_remount = false

[dummy_auth]
entries = [
  ["nobody", "nogroup"],
  ["daemon", "daemon"],
]
EOF
fi
log "config: $config"

mnt=$work/mnt
pid=
cleanup() {
    cd /
    if [[ -n $pid ]]; then
        if grep -q " $mnt fuse" /proc/mounts; then fusermount3 -u "$mnt" || fusermount3 -u -z "$mnt"; fi
        for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

summary() { grep -E '^Summary:' "$1" | tail -1 | sed 's/\x1b\[[0-9;]*m//g'; }

# --- baseline: a plain directory --------------------------------------------------------------
if ((baseline)); then
    base=$work/baseline
    mkdir -m 755 "$base"
    fstype=$(stat -f -c %T "$base")
    (cd "$base" && "$PJD" -c "$config" -p "$base" "$@") >"$work/baseline.log" 2>&1 || true
    log "baseline ($fstype at $base): $(summary "$work/baseline.log")"
fi

# --- rvmfs ----------------------------------------------------------------------------------------
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
chmod 755 "$mnt"
status=0
(cd "$mnt" && "$PJD" -c "$config" -p "$mnt" "$@") >"$work/rvmfs.log" 2>&1 || status=$?
# Show what did not pass (failures with their messages, and skips).
grep -v -E ' ok$|^\s*$' "$work/rvmfs.log" | sed 's/\x1b\[[0-9;]*m//g' || true
log "rvmfs${RVMFS_MOUNT_OPTIONS:+ -o $RVMFS_MOUNT_OPTIONS}: $(summary "$work/rvmfs.log")"
failed=$(summary "$work/rvmfs.log" | sed -n 's/^Summary: \([0-9]*\) failed.*/\1/p')
if [[ $status -ne 0 || -z $failed || $failed -ne 0 ]]; then
    log "FAILED (exit $status)" >&2
    exit 1
fi
log "rvmfs passed pjdfstest with 0 failures"

#!/usr/bin/env bash
# Ceph's RADOS Gateway as the second real S3 engine of rvmfs's object-store tests (the long
# mode; README "Object-store mode"): one monitor, one OSD (bluestore on a sparse file), radosgw
# bound to 127.0.0.1 on a free port, cephx on, an S3 user and a bucket, everything under DIR.
#
#   scripts/ceph-rgw.sh start DIR    bring it up; DIR/env holds the RVMFS_S3_* variables
#   scripts/ceph-rgw.sh stop DIR     stop what `start DIR` started, by the PIDs in DIR/run
#   scripts/ceph-rgw.sh test [DIR]   start, run the objstore tests against it, stop
#
# Debian's ceph-mon, ceph-osd, radosgw and ceph-common are installed when missing. Only the
# daemons started here are stopped, each by its PID file, and only if that PID still runs
# with DIR's ceph.conf on its command line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUCKET=rvmfs-test
ACCESS_KEY=rvmfs-ceph-key
SECRET_KEY=rvmfs-ceph-secret
# How long each daemon may take to come up.
WAIT_S=${CEPH_WAIT_S:-120}

say() { echo "[ceph] $*" >&2; }
die() { say "error: $*"; exit 1; }

need_packages() {
    local b missing=()
    for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    ((${#missing[@]} == 0)) && return 0
    say "installing ceph-mon ceph-osd radosgw ceph-common (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ceph-mon ceph-osd radosgw ceph-common curl >/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# until SECONDS WHAT COMMAND...: retry COMMAND every half second until it succeeds.
until_ok() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${limit} s (logs in $DIR/log)"
        sleep 0.5
    done
}

write_conf() {
    local fsid=$1 mon_port=$2 rgw_port=$3
    cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
pid file = $DIR/run/\$cluster-\$name.pid
admin socket = $DIR/run/\$cluster-\$name.asok
log file = $DIR/log/\$cluster-\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
osd crush chooseleaf type = 0
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 4294967296
osd memory target = 1073741824

[mon.a]
mon data = $DIR/mon/a

[osd.0]
osd data = $DIR/osd/0
keyring = $DIR/osd/0/keyring

[client.rgw.a]
keyring = $DIR/rgw/keyring
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
EOF
}

start_mon() {
    local fsid=$1 mon_port=$2
    ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/keyring" >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
    ceph-mon -c "$CONF" -i a
    until_ok "$WAIT_S" "the monitor" ceph -c "$CONF" --connect-timeout 5 mon stat
}

start_osd() {
    local uuid id
    uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    id=$(ceph -c "$CONF" osd create "$uuid")
    [[ $id == 0 ]] || die "expected OSD id 0, got $id"
    mkdir -p "$DIR/osd/0"
    ceph-osd -c "$CONF" -i 0 --mkfs --mkkey --no-mon-config --osd-uuid "$uuid" >"$DIR/log/osd-mkfs.log" 2>&1 ||
        die "ceph-osd --mkfs failed: $(grep -v keyring "$DIR/log/osd-mkfs.log" | tail -5)"
    ceph -c "$CONF" auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
        -i "$DIR/osd/0/keyring" >/dev/null
    ceph-osd -c "$CONF" -i 0
    until_ok "$WAIT_S" "the OSD" bash -c "ceph -c '$CONF' osd dump | grep -q '^osd.0 up  *in'"
}

start_rgw() {
    local rgw_port=$1
    mkdir -p "$DIR/rgw"
    ceph -c "$CONF" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
        -o "$DIR/rgw/keyring" >/dev/null
    radosgw -c "$CONF" -n client.rgw.a
    until_ok "$WAIT_S" "radosgw" curl -fsS "http://127.0.0.1:$rgw_port/"
    radosgw-admin -c "$CONF" user create --uid=rvmfs-test --display-name="rvmfs tests" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
    # SigV4 by curl; RGW wants the payload's SHA-256 (here of the empty body) in the header.
    until_ok 30 "the bucket" curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$ACCESS_KEY:$SECRET_KEY" -X PUT "http://127.0.0.1:$rgw_port/$BUCKET" \
        -H "x-amz-content-sha256: $(sha256sum </dev/null | cut -d' ' -f1)"
}

start() {
    need_packages
    [[ -e $DIR/ceph.conf ]] && die "$DIR already holds a cluster (stop it first)"
    mkdir -p "$DIR"/{mon/a,run,log}
    local t0=$SECONDS fsid mon_port rgw_port
    fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    mon_port=$(free_port)
    rgw_port=$(free_port)
    write_conf "$fsid" "$mon_port" "$rgw_port"
    say "monitor on 127.0.0.1:$mon_port"
    start_mon "$fsid" "$mon_port"
    say "OSD 0 (bluestore on $DIR/osd/0/block)"
    start_osd
    say "radosgw on 127.0.0.1:$rgw_port"
    start_rgw "$rgw_port"
    cat >"$DIR/env" <<EOF
export RVMFS_S3_ENGINE=ceph
export RVMFS_S3_ENDPOINT=http://127.0.0.1:$rgw_port
export RVMFS_S3_BUCKET=$BUCKET
export RVMFS_S3_ACCESS_KEY=$ACCESS_KEY
export RVMFS_S3_SECRET_KEY=$SECRET_KEY
EOF
    say "up in $((SECONDS - t0)) s ($(radosgw --version | cut -d' ' -f1-3)); variables in $DIR/env"
}

stop() {
    local f pid n
    [[ -d $DIR/run ]] || return 0
    for f in "$DIR"/run/*.pid; do
        [[ -e $f ]] || continue
        pid=$(cat "$f")
        # Only a daemon of this cluster: the PID may have been reused since.
        if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$CONF"; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((n = 0; n < 40; n++)); do
                [[ -e /proc/$pid ]] || break
                sleep 0.25
            done
            [[ -e /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$f"
    done
    say "stopped the daemons of $DIR"
}

run_tests() {
    local t0=$SECONDS rc=0
    # shellcheck disable=SC1091
    source "$DIR/env"
    say "cargo test --release -p rvmfs-objstore against Ceph RGW at $RVMFS_S3_ENDPOINT"
    cargo test --release -p rvmfs-objstore || rc=$?
    say "objstore tests against Ceph RGW: exit $rc after $((SECONDS - t0)) s"
    return $rc
}

cmd=${1:-}
case $cmd in
start | stop)
    [[ -n ${2:-} ]] || die "usage: $0 $cmd DIR"
    DIR=$(realpath -m "$2")
    CONF=$DIR/ceph.conf
    "$cmd"
    ;;
test)
    DIR=$(realpath -m "${2:-$(mktemp -d /tmp/rvmfs-ceph.XXXXXX)}")
    CONF=$DIR/ceph.conf
    trap stop EXIT
    t0=$SECONDS
    start
    rc=0
    run_tests || rc=$?
    say "long mode done in $((SECONDS - t0)) s (exit $rc)"
    if ((rc == 0)) && [[ -z ${2:-} ]]; then
        stop
        rm -rf "$DIR"
    elif ((rc != 0)); then
        say "the cluster's logs stay in $DIR/log"
    fi
    exit $rc
    ;;
*)
    die "usage: $0 start DIR | stop DIR | test [DIR]"
    ;;
esac

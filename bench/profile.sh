#!/bin/sh
# Profile the rvmfs daemon while rvmfs-bench runs one workload on rvmfs only.
#   bench/profile.sh WORKLOAD perf|strace OUTDIR [REPS]
# WORKLOAD is one of rvmfs-bench's --workloads (meta, tree, small, seq, rand, real).
# perf: `perf record -g -p PID` for the whole run, then `perf report --no-children --stdio`.
# strace: `strace -c -f -p PID` (syscall counts; divide by the ops the workload did).
set -eu
wl=$1; tool=$2; out=$3; reps=${4:-1}
mkdir -p "$out"
bench=${RVMFS_BENCH:-${CARGO_TARGET_DIR:-target}/release/rvmfs-bench}
err="$out/bench-$wl.err"
"$bench" ${RVMFS_BIN_DIR:+--bin-dir "$RVMFS_BIN_DIR"} --systems rvmfs --workloads "$wl" --reps "$reps" --out "$out/bench-$wl" 2>"$err" >/dev/null &
bpid=$!
pid=
for _ in $(seq 1 600); do
    pid=$(sed -n 's/.*daemon pid \([0-9]*\).*/\1/p' "$err" | head -1)
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "no daemon pid in $err"; kill "$bpid"; exit 1; }
case $tool in
perf)
    perf record -q -g -F 2000 -p "$pid" -o "$out/perf-$wl.data" 2>/dev/null &
    tpid=$! ;;
strace)
    strace -c -f -p "$pid" -o "$out/strace-$wl.txt" &
    tpid=$! ;;
esac
wait "$bpid" || true
# The daemon exits at unmount, which ends the tracer; wait for it to write its report.
wait "$tpid" || true
cat "$err" | grep -v '^ *Compiling\|Finished'
if [ "$tool" = perf ]; then
    perf report -i "$out/perf-$wl.data" --no-children --stdio --percent-limit 1.5 2>/dev/null \
        > "$out/perf-$wl.txt" || true
    perf report -i "$out/perf-$wl.data" --no-children --stdio --sort dso,sym -g none --percent-limit 0.7 2>/dev/null \
        > "$out/perf-$wl-flat.txt" || true
    echo "perf report: $out/perf-$wl.txt, flat: $out/perf-$wl-flat.txt"
else
    echo "strace summary: $out/strace-$wl.txt"
fi

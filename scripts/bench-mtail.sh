#!/usr/bin/env bash
# `replay` against mtail on the same default-format file, in the same run,
# both pinned to the same core, file in the page cache:
#   scripts/bench-mtail.sh [LINES] [DISTINCT_SOURCES] [REJECT_PERCENT]
# Defaults: 1,000,000 lines, 50,000 sources, 20% REJECT. RUNS (default 3)
# alternates the two that many times and keeps each one's best time.
# mtail runs scripts/mtail/vpc-flow.mtail (the exporter's default work, as
# close as mtail allows) with --one_shot; it is installed from the Debian
# package when missing. Not a test dependency: only this script needs it.
# BENCH_PRIORITY, BENCH_DIR and BENCH_NO_BUILD: see scripts/bench-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_init "$@"
lines=${1:-1000000}
distinct=${2:-50000}
reject=${3:-20}
runs=${RUNS:-3}
cpu=${BENCH_CPU:-0}
bench_dir
if ! command -v mtail >/dev/null; then
    echo "bench-mtail: installing mtail (Debian package)"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y mtail >/dev/null
fi
bench_build
file="$dir/flows-$lines-$distinct-$reject.log"
bench_gen_flows "$file" "$lines" "$distinct" "$reject"
cat "$file" > /dev/null   # into the page cache
bench_pin "$cpu"

now() { date +%s.%N; }
best_replay=
best_mtail=
for i in $(seq "$runs"); do
    t0=$(now)
    VPC_FLOW_EXPORTER_REPLAY_WORKERS=1 "${pin[@]}" target/release/vpc-flow-exporter replay "$file" > "$dir/replay.prom"
    t1=$(now)
    "${pin[@]}" mtail --one_shot --one_shot_format prometheus --port 0 --progs scripts/mtail --logs "$file" \
        > "$dir/mtail.prom" 2> "$dir/mtail.log"
    t2=$(now)
    r=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    m=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
    echo "bench-mtail: run $i: replay $r s, mtail $m s"
    best_replay=$(awk -v x="$r" -v y="${best_replay:-$r}" 'BEGIN { print (x < y ? x : y) }')
    best_mtail=$(awk -v x="$m" -v y="${best_mtail:-$m}" 'BEGIN { print (x < y ? x : y) }')
done

# Both must have counted the same records, or the comparison means nothing.
sum() { grep -E "^$1[{ ]" "$2" | awk '{ s += $NF } END { printf "%.0f", s }'; }
replay_records=$(sum vpc_flow_records_total "$dir/replay.prom")
mtail_records=$(sum vpc_flow_records_total "$dir/mtail.prom")
replay_bytes=$(sum vpc_flow_bytes_total "$dir/replay.prom")
mtail_bytes=$(sum vpc_flow_bytes_total "$dir/mtail.prom")
if [ "$replay_records" != "$mtail_records" ] || [ "$replay_bytes" != "$mtail_bytes" ]; then
    echo "bench-mtail: the two disagree: records $replay_records vs $mtail_records, bytes $replay_bytes vs $mtail_bytes" >&2
    exit 1
fi
awk -v n="$lines" -v r="$best_replay" -v m="$best_mtail" -v c="$cpu" 'BEGIN {
    printf "bench-mtail: %d lines on cpu %s: replay %.3f s (%.2f M lines/s), mtail %.3f s (%.0f lines/s): replay is %.1fx mtail\n",
        n, c, r, n / r / 1e6, m, n / m, m / r
}'
echo "bench-mtail: both counted $replay_records records, $replay_bytes bytes"

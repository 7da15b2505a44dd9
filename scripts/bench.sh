#!/usr/bin/env bash
# End-to-end throughput and memory of `replay`, files in the page cache:
# one worker pinned to one core, then N workers on N cores (default 2), on
# one file (split by byte ranges) and on two files of half the lines each.
#   scripts/bench.sh [LINES] [DISTINCT_SOURCES] [REJECT_PERCENT]
# Defaults: 10,000,000 lines, 50,000 sources, 20% REJECT (a realistic mix).
# The worst case of the memory target: scripts/bench.sh 10000000 2000000 50
# With GEOIP=path/to/country.mmdb the run adds a config with that database;
# GEOIP=synthetic uses a realistic-size made-up one (examples/gen_mmdb.rs:
# 400k IPv4 + ~92k IPv6 networks, 6 MB), generated once under the bench dir.
# BENCH_WORKERS=N sets the parallel runs' workers (and cores: 0..N-1);
# ONE_CORE=1 runs only the one-core figure of the single file.
# The worker count is set with VPC_FLOW_EXPORTER_REPLAY_WORKERS, an internal
# knob (see docs/replay.md); users get one worker per available core.
# BENCH_PRIORITY, BENCH_DIR and BENCH_NO_BUILD: see scripts/bench-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_init "$@"
lines=${1:-10000000}
distinct=${2:-50000}
reject=${3:-20}
workers=${BENCH_WORKERS:-2}
bench_dir
bench_build
geoip=${GEOIP:-}
if [ "$geoip" = synthetic ]; then
    cargo build --release --quiet --example gen_mmdb
    geoip="$dir/synthetic-country.mmdb"
    if [ ! -s "$geoip" ] || [ target/release/examples/gen_mmdb -nt "$geoip" ]; then
        echo "bench: generating $geoip"
        target/release/examples/gen_mmdb "$geoip"
    fi
fi
generate() { bench_gen_flows "$1" "$2" "$distinct" "$reject" "$3"; } # file lines seed
file="$dir/flows-$lines-$distinct-$reject.log"
generate "$file" "$lines" 42
# The two files of half the lines are removed at the end (another gigabyte).
half=$((lines / 2))
pair=("$dir/flows-$half-$distinct-$reject-a.log" "$dir/flows-$half-$distinct-$reject-b.log")
trap 'rm -f "${pair[@]}"' EXIT
generate "${pair[0]}" "$half" 42
generate "${pair[1]}" "$((lines - half))" 43
config=()
if [ -n "$geoip" ]; then
    printf 'geoip:\n  database: %s\n' "$(realpath "$geoip")" > "$dir/geoip.yaml"
    config=(--config.file "$dir/geoip.yaml")
fi

# run NAME WORKERS FILE...: one timed replay; prints records/s, keeps the
# exposition in $dir/NAME.prom and the rate in $dir/NAME.rate.
run() {
    local name=$1 n=$2
    shift 2
    cat "$@" > /dev/null   # into the page cache
    local pin
    bench_pin "0-$((n - 1))"
    local start end
    start=$(date +%s.%N)
    VPC_FLOW_EXPORTER_REPLAY_WORKERS=$n /usr/bin/time -f '%M %e %U %S' -o "$dir/time.txt" "${pin[@]}" \
        target/release/vpc-flow-exporter replay "${config[@]}" "$@" > "$dir/$name.prom"
    end=$(date +%s.%N)
    local rss_kb user sys
    read -r rss_kb _ user sys < "$dir/time.txt"   # %M %e %U %S
    python3 - "$name" "$n" "$lines" "$start" "$end" "$rss_kb" "$user" "$sys" "$(stat -c %s "$@" | awk '{ s += $1 } END { printf "%.0f", s }')" "$dir/$name.rate" <<'PY'
import sys
name, n, lines = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start, end, rss_kb = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
cpu, size = float(sys.argv[7]) + float(sys.argv[8]), int(sys.argv[9])
secs = end - start
open(sys.argv[10], "w").write(f"{lines / secs}\n")
print(f"bench: {name:<11} {n} worker(s): {lines:,} lines ({size/1e6:.0f} MB) in {secs:.2f} s = "
      f"{lines/secs/1e6:.2f} M records/s, {size/secs/1e6:.0f} MB/s, CPU {cpu:.2f} s, peak RSS {rss_kb/1024:.1f} MiB")
PY
}

# same A B: the two expositions must be identical (the build line aside),
# except the windowed trackers' series when they evicted: a tracker beyond
# its capacity keeps different addresses depending on what it saw (see
# docs/replay.md). Every counter and histogram must be equal.
same() {
    local tracker='^vpc_flow_(top_|port_scan_sources|exporter_tracker_)'
    local d
    d=$(diff <(grep -v -e '^#' -e '^vpc_flow_exporter_build_info' "$dir/$1.prom") \
        <(grep -v -e '^#' -e '^vpc_flow_exporter_build_info' "$dir/$2.prom") | grep '^[<>]' | cut -c3- || true)
    if [ -z "$d" ]; then
        echo "bench: $1 and $2: identical expositions"
    elif ! grep -qvE "$tracker" <<< "$d" && grep -qE '^vpc_flow_exporter_tracker_evictions_total\{.*\} [1-9]' "$dir/$1.prom"; then
        echo "bench: $1 and $2: identical expositions but for the trackers that evicted ($(wc -l <<< "$d") lines)"
    else
        echo "bench: $1 and $2 expositions differ:" >&2
        grep -vE "$tracker" <<< "$d" | head -20 >&2
        exit 1
    fi
}

speedup() { awk -v a="$(cat "$dir/$1.rate")" -v b="$(cat "$dir/$2.rate")" -v t="$3" \
    'BEGIN { printf "bench: %s: %.2fx one worker\n", t, b / a }'; }

echo "bench: $(bench_load) before the runs (other work skews the parallel figures)"
run one-file-1 1 "$file"
if [ -z "${ONE_CORE:-}" ]; then
    run one-file-n "$workers" "$file"
    run two-files-1 1 "${pair[@]}"
    run two-files-n "$workers" "${pair[@]}"
    same one-file-1 one-file-n
    same two-files-1 two-files-n
    speedup one-file-1 one-file-n "one file by byte ranges, $workers workers"
    speedup two-files-1 two-files-n "two files, $workers workers"
fi
grep -E '^vpc_flow_exporter_(lines_total|parse_errors_total\{reason="field_count"\}|tracker_entries)' "$dir/one-file-1.prom" || true

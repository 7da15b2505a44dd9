#!/usr/bin/env bash
# End-to-end throughput and memory of `replay`, one core, file in the page cache.
#   scripts/bench.sh [LINES] [DISTINCT_SOURCES] [REJECT_PERCENT]
# Defaults: 10,000,000 lines, 50,000 sources, 20% REJECT (a realistic mix).
# The worst case of the memory target: scripts/bench.sh 10000000 2000000 50
# With GEOIP=path/to/country.mmdb the run adds a config with that database;
# GEOIP=synthetic uses a realistic-size made-up one (examples/gen_mmdb.rs:
# 400k IPv4 + ~92k IPv6 networks, 6 MB), generated once under the bench dir.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-10000000}
distinct=${2:-50000}
reject=${3:-20}
dir=${BENCH_DIR:-/tmp/vpc-flow-bench}
mkdir -p "$dir"
cargo build --release --quiet --bin vpc-flow-exporter --example gen_flows
geoip=${GEOIP:-}
if [ "$geoip" = synthetic ]; then
    cargo build --release --quiet --example gen_mmdb
    geoip="$dir/synthetic-country.mmdb"
    if [ ! -s "$geoip" ] || [ target/release/examples/gen_mmdb -nt "$geoip" ]; then
        echo "bench: generating $geoip"
        target/release/examples/gen_mmdb "$geoip"
    fi
fi
file="$dir/flows-$lines-$distinct-$reject.log"
if [ ! -s "$file" ]; then
    echo "bench: generating $file"
    target/release/examples/gen_flows "$lines" "$distinct" "$reject" > "$file"
fi
cat "$file" > /dev/null   # into the page cache
args=(replay)
if [ -n "$geoip" ]; then
    printf 'geoip:\n  database: %s\n' "$(realpath "$geoip")" > "$dir/geoip.yaml"
    args+=(--config.file "$dir/geoip.yaml")
fi
args+=("$file")
command -v taskset >/dev/null && pin=(taskset -c 0) || pin=()
start=$(date +%s.%N)
/usr/bin/time -f '%M %e' -o "$dir/time.txt" "${pin[@]}" target/release/vpc-flow-exporter "${args[@]}" > "$dir/out.prom"
end=$(date +%s.%N)
read -r rss_kb elapsed < "$dir/time.txt"
python3 - "$lines" "$start" "$end" "$rss_kb" "$(stat -c %s "$file")" <<'PY'
import sys
lines, start, end, rss_kb, size = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
secs = end - start
print(f"bench: {lines:,} lines ({size/1e6:.0f} MB) in {secs:.2f} s = {lines/secs/1e6:.2f} M records/s, {size/secs/1e6:.0f} MB/s, peak RSS {rss_kb/1024:.1f} MiB")
PY
grep -E '^vpc_flow_exporter_(lines_total|parse_errors_total\{reason="field_count"\}|tracker_entries)' "$dir/out.prom" || true

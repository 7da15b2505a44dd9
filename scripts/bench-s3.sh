#!/usr/bin/env bash
# The S3 source end to end (docs/s3.md): a real moto_server on a loopback port
# serves S3 and SQS (the bucket's notification really sends to the queue); the
# release binary reads the announced objects; the time runs from the
# replicas' start until every object is counted
# (vpc_flow_exporter_s3_objects_total{result="ok"}), records/s from
# vpc_flow_exporter_s3_records_total, peak RSS from /proc/PID/status VmHWM.
#   scripts/bench-s3.sh [LINES_PER_OBJECT] [OBJECTS]
# Defaults: objects of 1,000,000 default-format lines (examples/gen_flows,
# 50,000 sources, 20 % REJECT, with the AWS header line), 12 objects.
# Cases:
#   gz-1core       one replica on core 0, .log.gz objects
#   parquet-1core  one replica on core 0, Parquet objects (GZIP, as AWS writes)
#   gz-1replica / gz-2replicas  the same objects, one replica on core 0 vs two
#                  replicas on cores 0 and 1 on one queue: the speed-up
#   big-conc4      concurrency 4, objects of about 75 MB (BIG_LINES lines,
#                  default 4,200,000): peak RSS of the replica
#   big-parquet-conc4  the same with Parquet objects of about 75 MB (BIG_ROWS
#                  rows, default 6,000,000; spooled to the temporary folder)
# moto_server needs CPU to serve the objects and the queue (Python, about one
# core at these rates): it is pinned to core MOTO_CPU (default 1) for the
# one-core cases and may use both cores for the replica comparison (both cores
# run a replica then: the two-replica figure includes moto's share).
# CASES="gz-1core parquet-1core" runs only those (replicas is the pair).
# Needs scripts/setup-test-deps.sh (.venv with moto, boto3, pyarrow).
# BENCH_PRIORITY, BENCH_DIR and BENCH_NO_BUILD: see scripts/bench-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
bench_init "$@"
lines=${1:-1000000}
objects=${2:-12}
big_lines=${BIG_LINES:-4200000}
big_rows=${BIG_ROWS:-6000000}
cases=${CASES:-gz-1core parquet-1core replicas big-conc4 big-parquet-conc4}
moto_cpu=${MOTO_CPU:-1}
port=${MOTO_PORT:-15790}
python=.venv/bin/python
[ -x .venv/bin/moto_server ] || { echo "bench-s3: .venv/bin/moto_server missing: run scripts/setup-test-deps.sh" >&2; exit 1; }
command -v taskset >/dev/null || { echo "bench-s3: taskset missing (util-linux)" >&2; exit 1; }
bench_dir
bench_build
binary=$(realpath target/release/vpc-flow-exporter)

header='version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status'
# make_text|make_gz|make_parquet LINES SEED: each object (and the lines it
# is made of) generated once; prints its path.
make_text() {
    local text="$dir/s3-$1-$2.log"
    bench_gen_flows "$text" "$1" 50000 20 "$2" >&2
    echo "$text"
}
make_gz() {
    local text gz="$dir/s3-$1-$2.log.gz"
    text=$(make_text "$1" "$2")
    if [ ! -s "$gz" ]; then
        { echo "$header"; cat "$text"; } | gzip -6 > "$gz.tmp"
        mv "$gz.tmp" "$gz"
    fi
    echo "$gz"
}
make_parquet() {
    local text pq="$dir/s3-$1-$2.parquet"
    text=$(make_text "$1" "$2")
    [ -s "$pq" ] || "$python" scripts/bench_s3.py parquet "$text" "$pq" >&2
    echo "$pq"
}

moto_pid=
helper=
pids="$dir/s3-replica-pids"
: > "$pids"
cleanup() {
    local pid
    if [ -n "$helper" ]; then
        kill "$helper" 2>/dev/null || true   # it stops its replicas
        wait "$helper" 2>/dev/null || true
    fi
    while read -r pid; do
        kill "$pid" 2>/dev/null || true
    done < "$pids"
    if [ -n "$moto_pid" ]; then
        kill "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
    rm -f "$pids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

taskset -c "$moto_cpu" .venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$dir/moto.log" 2>&1 &
moto_pid=$!
endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -sf "$endpoint/moto-api/" > /dev/null 2>&1 && break
    sleep 0.1
done
kill -0 "$moto_pid" || { echo "bench-s3: moto_server did not start; see $dir/moto.log" >&2; exit 1; }
# moto_pin CPUS: every thread of moto_server onto those cores.
moto_pin() { taskset -a -p -c "$1" "$moto_pid" > /dev/null; }

# bench NAME OBJECT COUNT CPUS [CONCURRENCY]
bench() {
    local extra=()
    [ -z "${5:-}" ] || extra=(--concurrency "$5")
    # In the background so that a SIGTERM reaches the trap at once.
    "$python" scripts/bench_s3.py run --endpoint "$endpoint" --binary "$binary" --name "$1" \
        --object "$2" --count "$3" --cpus "$4" --pids "$pids" --result "$dir/s3-$1.json" "${extra[@]}" &
    helper=$!
    wait "$helper"
    helper=
}
rate() { "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["rate"])' "$dir/s3-$1.json"; }

echo "bench-s3: $(bench_load) before the runs; moto_server pid $moto_pid"
for c in $cases; do
    case $c in
    gz-1core)
        moto_pin "$moto_cpu"
        bench gz-1core "$(make_gz "$lines" 42)" "$objects" 0 ;;
    parquet-1core)
        moto_pin "$moto_cpu"
        bench parquet-1core "$(make_parquet "$lines" 42)" "$objects" 0 ;;
    replicas)
        moto_pin 0-1
        gz=$(make_gz "$lines" 42)
        bench gz-1replica "$gz" "$objects" 0
        bench gz-2replicas "$gz" "$objects" 0,1
        awk -v a="$(rate gz-1replica)" -v b="$(rate gz-2replicas)" \
            'BEGIN { printf "bench-s3: two replicas on two cores: %.2fx one replica (moto_server on both cores in both runs)\n", b / a }' ;;
    big-conc4)
        moto_pin "$moto_cpu"
        bench big-conc4 "$(make_gz "$big_lines" 44)" 8 0 4 ;;
    big-parquet-conc4)
        moto_pin "$moto_cpu"
        bench big-parquet-conc4 "$(make_parquet "$big_rows" 45)" 8 0 4 ;;
    *) echo "bench-s3: unknown case $c" >&2; exit 2 ;;
    esac
done

# shellcheck shell=bash
# The preamble shared by the benchmark scripts (scripts/bench.sh,
# scripts/bench-mtail.sh, scripts/bench-s3.sh). Not run on its own: each
# script sources it right after `set -euo pipefail` and calls, in this order,
#     . "$(dirname "$0")/bench-lib.sh"
#     bench_init "$@"    # first: may re-execute the script; then cd to the repo root
#     bench_dir          # sets $dir
#     bench_build        # the release binaries
# Environment, the same for every script:
#   BENCH_PRIORITY=1  (root) run in a scheduler group of its own at nice -20,
#                     so that other work on a shared machine (builds) skews
#                     the figures less
#   BENCH_DIR         where inputs are generated and results kept (default
#                     /dev/shm/vpc-flow-bench when /dev/shm is writable, else
#                     /tmp/vpc-flow-bench); files there are reused by later runs
#   BENCH_NO_BUILD=1  skip the cargo build (use the release binaries as they are)
# Functions:
#   bench_init "$@"     BENCH_PRIORITY, then the working directory: the repository root
#   bench_dir           sets $dir (see BENCH_DIR) and creates it
#   bench_build         cargo build --release of the exporter and examples/gen_flows
#   bench_pin CPUS      sets the array $pin to `taskset -c CPUS`, or to nothing
#                       where taskset is missing; run a command as "${pin[@]}" cmd
#   bench_gen_flows FILE LINES DISTINCT_SOURCES REJECT_PERCENT [SEED]
#                       default-format lines from examples/gen_flows into FILE,
#                       once (an existing non-empty FILE is kept); written to
#                       FILE.tmp first, so that an interrupted run leaves no
#                       short FILE behind for the next one
#   bench_load          prints "load average L on N cores"
# $bench_name (the script's name without .sh) prefixes the messages.
# shellcheck disable=SC2034 # dir and pin are the sourcing script's variables

bench_name=$(basename "$0" .sh)

bench_init() {
    if [ -n "${BENCH_PRIORITY:-}" ] && [ -z "${BENCH_PRIORITY_SET:-}" ]; then
        export BENCH_PRIORITY_SET=1
        # $0 is the script (functions keep it), "$@" its arguments.
        # shellcheck disable=SC2016 # $$ and "$@" are the inner shell's
        exec setsid bash -c 'echo -20 > /proc/$$/autogroup 2>/dev/null || true; exec nice -n -20 "$0" "$@"' "$0" "$@"
    fi
    cd "$(dirname "$0")/.." || exit
}

bench_dir() {
    # In memory when there is one: the shared disk is small, and a file there
    # reads like one in the page cache.
    local default_dir=/tmp/vpc-flow-bench
    [ -d /dev/shm ] && [ -w /dev/shm ] && default_dir=/dev/shm/vpc-flow-bench
    dir=${BENCH_DIR:-$default_dir}
    mkdir -p "$dir"
}

bench_build() {
    [ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --quiet --bin vpc-flow-exporter --example gen_flows
}

bench_pin() {
    pin=()
    if command -v taskset >/dev/null; then pin=(taskset -c "$1"); fi
}

bench_gen_flows() {
    local file=$1
    shift
    [ ! -s "$file" ] || return 0
    echo "$bench_name: generating $file"
    target/release/examples/gen_flows "$@" > "$file.tmp"
    mv "$file.tmp" "$file"
}

bench_load() {
    local load1
    read -r load1 _ < /proc/loadavg
    echo "load average $load1 on $(nproc) cores"
}

#!/usr/bin/env bash
# The long fuzz run (docs/fuzzing.md): every target of tests/fuzz.rs, built in
# release mode, each in its own process under /usr/bin/time -v, so that each
# gets its own peak RSS. Fails on any failed input, on a peak RSS above
# FUZZ_MAX_RSS_MB, or on fewer than FUZZ_MIN_INPUTS inputs in total.
#   scripts/fuzz.sh [N]
# N is FUZZ_ITERATIONS, the scale of every target (default 2,500,000: about
# 14 million inputs in all). FUZZ_SEED picks another random stream (default:
# the fixed seed of the suite's short run).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2500000}
max_rss_mb=${FUZZ_MAX_RSS_MB:-512}
min_inputs=${FUZZ_MIN_INPUTS:-10000000}
[ "${1:-}" = "" ] || min_inputs=${FUZZ_MIN_INPUTS:-0}
log_dir=${FUZZ_LOG_DIR:-target/fuzz-logs}
for tool in jq /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "fuzz.sh: needs $tool (apt-get install jq time)" >&2; exit 1; }
done
mkdir -p "$log_dir"

bin=$(cargo test --release --locked --test fuzz --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "fuzz" and .executable != null) | .executable' |
    tail -n 1)
[ -x "$bin" ] || { echo "fuzz.sh: cannot build the fuzz test" >&2; exit 1; }
targets=$("$bin" --list 2>/dev/null | sed -n 's/^\(fuzz_[a-z_]*\): test$/\1/p')

echo "fuzz.sh: FUZZ_ITERATIONS=$n FUZZ_SEED=${FUZZ_SEED:-default}, peak RSS limit ${max_rss_mb} MiB a target"
total=0
failed=0
start=$(date +%s)
printf '%-20s %12s %10s %12s %10s\n' target inputs seconds inputs/s peak_MiB
for t in $targets; do
    out="$log_dir/$t.log"
    if ! FUZZ_ITERATIONS=$n /usr/bin/time -v -o "$out.time" "$bin" --exact "$t" --nocapture --test-threads=1 >"$out" 2>&1; then
        echo "fuzz.sh: $t FAILED (see $out)" >&2
        grep -E 'failed:|panicked' "$out" | head -n 5 >&2 || true
        failed=1
    fi
    # The harness prints "test NAME ... " before the test's first line.
    line=$(grep -aoE "fuzz ${t#fuzz_}: [0-9]+ inputs.*" "$out" | head -n 1 || true)
    inputs=$(sed -n 's/^fuzz [a-z_]*: \([0-9]*\) inputs.*/\1/p' <<<"$line")
    secs=$(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' <<<"$line")
    rate=$(sed -n 's/.*(\([0-9]*\) inputs\/s).*/\1/p' <<<"$line")
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out.time")
    rss_mb=$(( ${rss_kb:-0} / 1024 ))
    printf '%-20s %12s %10s %12s %10s\n' "${t#fuzz_}" "${inputs:-?}" "${secs:-?}" "${rate:-?}" "$rss_mb"
    grep -aoE "fuzz ${t#fuzz_}: .*" "$out" | sed -n '2,$p' | sed 's/^/    /'
    total=$(( total + ${inputs:-0} ))
    if [ "$rss_mb" -gt "$max_rss_mb" ]; then
        echo "fuzz.sh: $t peaked at $rss_mb MiB, above the $max_rss_mb MiB limit" >&2
        failed=1
    fi
done
elapsed=$(( $(date +%s) - start ))
echo "fuzz.sh: $total inputs in ${elapsed} s ($(( total / (elapsed > 0 ? elapsed : 1) )) inputs/s overall)"
if [ "$total" -lt "$min_inputs" ]; then
    echo "fuzz.sh: fewer than $min_inputs inputs" >&2
    failed=1
fi
[ "$failed" = 0 ] || { echo "fuzz.sh: FAILED" >&2; exit 1; }
echo "fuzz.sh: no failure, no panic"

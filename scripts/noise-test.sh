#!/usr/bin/env bash
# The alerts' noise test: a simulated day of a 2,000-interface VPC (internet
# background, idle interfaces, nightly batches, autoscaling, three incidents)
# through the shipped rules on a real backfilled Prometheus, and the
# notifications the example Alertmanager configuration would send, per
# severity. Fails when a page is sent outside the incidents or an incident is
# not paged within 2 minutes of its first record being scraped.
# See tests/alerts_noise/run.py for the method and docs/alerts.md for figures.
# Needs: prometheus, promtool, python3 with PyYAML; about 3 GB of free space
# in $TMPDIR and a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in prometheus promtool python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "noise-test: $tool not found (scripts/setup-test-deps.sh)" >&2; exit 1; }
done
exec python3 tests/alerts_noise/run.py "$@"

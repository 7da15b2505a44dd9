#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests
# need, then runs the Rust tests (unit, parser fixtures, golden exposition,
# replay CLI, CloudWatch against moto_server, the Prometheus/Alertmanager
# end-to-end stack), the monitoring-mixin checks (promtool, dashboards) and
# the shell scripts' lint (shellcheck).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
export AWS_EC2_METADATA_DISABLED=true
# A test whose tool (prometheus, promtool, alertmanager, moto_server) is missing
# fails here instead of skipping as it does under a plain `cargo test`
# (tests/common/tools.rs, docs/testing.md): CI never skips.
export VPC_FLOW_EXPORTER_REQUIRE_TOOLS=1

cargo fmt --check
# Every shell script shellcheck-clean at its default severity (settings in
# .shellcheckrc); setup-test-deps.sh installed shellcheck, so a missing one fails.
command -v shellcheck >/dev/null || { echo "test.sh: shellcheck is missing (Debian package shellcheck)" >&2; exit 1; }
shellcheck scripts/*.sh mixin/*.sh .ci/run
cargo build --locked --all-targets
# Lints (Cargo.toml's [lints] and clippy's defaults), the dependency tree's
# licences, bans and sources (deny.toml; offline), and no function in src/
# over 80 lines outside tests.
cargo clippy --locked --all-targets -- -D warnings
cargo deny --frozen check --hide-inclusion-graph licenses bans sources
scripts/check-fn-length.py
cargo test --locked -- --test-threads=2
scripts/check-mixin.sh
scripts/check-deploy.sh
echo "test.sh: all checks passed"

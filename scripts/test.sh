#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Safe to run repeatedly.
#   1. installs what the tests need (Debian's prometheus package: prometheus + promtool)
#   2. formatting and lints
#   3. cargo test (unit, integration, golden /metrics, fault and property tests)
#   4. Prometheus rules: promtool check/test, and no dashboard or rule names an unknown metric
#   5. end to end: the exporter in --demo scraped by a real Prometheus with the shipped rules
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies"
./scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked

step "rules, dashboards and promtool"
./scripts/check-rules.sh

step "end to end with Prometheus"
cargo build --release --locked
AWARENESS_BIN="$PWD/target/release/awareness-exporter" ./scripts/e2e-prometheus.sh

step "all tests passed"

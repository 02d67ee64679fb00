#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Safe to run repeatedly.
#   1. installs what the tests need (Debian's prometheus package: prometheus + promtool; python3)
#   2. formatting and lints
#   3. cargo test (unit, integration, golden /metrics, fault and property tests; every workspace
#      crate), and the build without the default `demo` feature
#   4. Prometheus rules: promtool check/test, and no dashboard or rule names an unknown metric
#   5. end to end: the exporter in --demo scraped by a real Prometheus with the shipped rules
#
# Honours CARGO_TARGET_DIR (as cargo does: a relative path is taken from the repository root).
#   scripts/test.sh --print-binary   prints the release binary the end-to-end step runs, and exits
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$PWD/$target_dir" ;;
esac
binary="$target_dir/release/awareness-exporter"
if [ "${1:-}" = "--print-binary" ]; then
    echo "$binary"
    exit 0
fi

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies"
./scripts/install-test-deps.sh

step "rust-version: what the locked dependencies really need"
# Cargo.toml's rust-version must be the highest rust_version of any locked package, so the README's
# prerequisite is the toolchain the first command really builds with.
python3 - <<'PY'
import json, subprocess, sys
meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"],
                                 check=True, capture_output=True, text=True).stdout)
def version(v):
    return tuple(int(x) for x in v.split("."))[:2]
ours = {p["name"]: p["rust_version"] for p in meta["packages"] if p["id"] in meta["workspace_members"]}
need, who = max((version(p["rust_version"]), p["name"]) for p in meta["packages"] if p.get("rust_version"))
for name, declared in ours.items():
    if not declared or version(declared) != need:
        sys.exit(f"{name}: rust-version is {declared}, but {who} needs {'.'.join(map(str, need))}: set it")
print(f"rust-version {'.'.join(map(str, need))} (set by {who}) in every workspace crate")
PY

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "without the demo feature: no simulator, no axum, and --demo refused"
# `cargo build --no-default-features` must give an exporter without the simulator crate (and the
# axum it brings), which refuses --demo with a clear message.
if cargo tree --locked --no-default-features -e normal --prefix none | grep -E '^(axum|awareness-sim) '; then
    echo "the exporter without default features still depends on the above" >&2
    exit 1
fi
cargo build --locked --no-default-features
no_demo_out=$("$target_dir/debug/awareness-exporter" --demo --web.listen-address 127.0.0.1:0 2>&1) && {
    echo "the exporter without the demo feature accepted --demo" >&2
    exit 1
}
case "$no_demo_out" in
    *"built without the \`demo\` feature"*) ;;
    *) echo "the exporter without the demo feature did not say why it refuses --demo: $no_demo_out" >&2; exit 1 ;;
esac
# The shipped binary's simulator has no fault-injection API: only the tests' dev-dependency turns
# on the sim's `faults` feature.
if cargo tree --locked -e normal,features -i awareness-sim | grep -F 'feature "faults"'; then
    echo "the exporter's normal build enables awareness-sim's fault injection" >&2
    exit 1
fi

step "rules, dashboards and promtool"
./scripts/check-rules.sh

step "end to end with Prometheus"
cargo build --release --locked
AWARENESS_BIN="$binary" ./scripts/e2e-prometheus.sh

step "all tests passed"

#!/usr/bin/env bash
# End-to-end test of the Grafana dashboards and Prometheus rules against the exporter's
# --demo mode and a real Prometheus (see scripts/e2e_prometheus.py for what it checks).
#
#   scripts/e2e-prometheus.sh                  # builds target/release/awareness-exporter
#   AWARENESS_BIN=/path/to/awareness-exporter scripts/e2e-prometheus.sh   # no build
#
# Options are passed on to e2e_prometheus.py (--keep, --settle S, --ready-timeout S, ...).
# Installs Debian's prometheus package (prometheus + promtool) when they are missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ -n "${AWARENESS_BIN:-}" ]; then
    bin="$AWARENESS_BIN"
    if [ ! -x "$bin" ]; then
        echo "e2e-prometheus: AWARENESS_BIN=$bin is not an executable file" >&2
        exit 2
    fi
else
    target_dir="${CARGO_TARGET_DIR:-target}"
    case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
    bin="$target_dir/release/awareness-exporter"
    echo "e2e-prometheus: building $bin (set AWARENESS_BIN to skip)"
    cargo build --release --locked --bin awareness-exporter
fi

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    bash "$root/scripts/install-test-deps.sh"
fi

# The Python driver starts the exporter and Prometheus itself and always stops both
# (on success, failure, Ctrl-C or SIGTERM); exec so that signals reach it directly.
exec python3 "$root/scripts/e2e_prometheus.py" --bin "$bin" "$@"

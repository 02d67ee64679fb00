#!/usr/bin/env bash
# Soak test: thousands of scrapes while polls run every second and faults are injected.
# Loopback only, bounded. Usage: scripts/soak.sh [SCRAPES]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked --example soak -- "${1:-20000}"

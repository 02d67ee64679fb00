#!/usr/bin/env bash
# Static checks of the Prometheus rules, configs, dashboards and Kubernetes manifests:
#   - promtool check rules   on the shipped rule files (and the test fixture)
#   - promtool test rules    on deploy/prometheus/tests/*.yml
#   - promtool check config  on deploy/prometheus/prometheus.yml and
#                            deploy/compose/prometheus.yml (temporary copies whose
#                            rule_files point at the shipped rule files)
#   - dashboards/src/build.py --check   (dashboards/*.json are what dashboards/src makes)
#   - python3 -m json.tool   on every dashboard, and scripts/lint-assets.py
#   - python3 scripts/metrics-used.py --check   (every metric used is a contract metric)
#   - deploy/kubernetes/generate.sh --check     (generated manifests are up to date)
# Installs what it needs first (scripts/install-test-deps.sh: promtool, the dashboards' SDK).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash "$root/scripts/install-test-deps.sh"

prom="deploy/prometheus"
rules=("$prom/awareness.rules.yml" "$prom/awareness.alerts.yml")

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "promtool check rules"
promtool check rules "${rules[@]}" "$prom"/tests/fixtures/*.rules.yml

step "promtool test rules"
promtool test rules "$prom"/tests/*.yml

# A copy of a Prometheus config whose rule_files entries are replaced by the absolute
# paths of the shipped rule files, so that promtool can resolve them wherever the
# original expects them (next to it, or under /etc/prometheus/ in the compose stack).
check_config() {
    local src="$1" name dst
    name="$(basename "$(dirname "$src")")-$(basename "$src")"
    dst="$tmp/$name"
    python3 - "$src" "$dst" "$root/${rules[0]}" "$root/${rules[1]}" <<'PY'
import re, sys
src, dst, *rules = sys.argv[1:]
out, skipping = [], False
for line in open(src, encoding="utf-8"):
    if re.match(r"^rule_files:\s*$", line):
        out.append("rule_files:\n")
        out.extend(f'  - "{r}"\n' for r in rules)
        skipping = True
        continue
    if skipping:
        if re.match(r"^\s*(-|#)", line) or not line.strip():
            continue
        skipping = False
    out.append(line)
open(dst, "w", encoding="utf-8").write("".join(out))
PY
    promtool check config "$dst"
}

step "promtool check config"
check_config "$prom/prometheus.yml"
check_config "deploy/compose/prometheus.yml"

step "dashboards: generated from dashboards/src"
python3 dashboards/src/build.py --check
echo "  dashboards/*.json: what dashboards/src makes"

step "dashboards: JSON"
for f in dashboards/*.json; do
    python3 -m json.tool "$f" >/dev/null
    echo "  $f: valid JSON"
done

step "dashboards and alerts: lint"
python3 scripts/lint-assets.py

step "metrics used by dashboards and rules"
python3 scripts/metrics-used.py --check

step "Kubernetes manifests up to date"
bash deploy/kubernetes/generate.sh --check

printf '\ncheck-rules: all checks passed\n'

#!/usr/bin/env python3
"""Writes docs/metrics.md from a live exposition: every metric with its type, labels and HELP.

    AWARENESS_METRICS__PER_USER=true target/release/awareness-exporter --demo \
        --web.listen-address 127.0.0.1:19100 &
    curl -s -H 'Accept: application/openmetrics-text; version=1.0.0' localhost:19100/metrics \
        | scripts/metrics-doc.py > docs/metrics.md

No vendor is named here: the platforms are the `platform` label values of the exposition (the
demo runs a tenant of every registered platform), a platform's metrics are those named
`awareness_<platform>_*`, and its section title and notes come from
docs/vendors/<platform>-metrics.md (first line `# Title`, the rest printed after its table).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

families = {}
order = []
platforms = set()
for line in sys.stdin:
    line = line.rstrip("\n")
    m = re.match(r"# (HELP|TYPE) (\S+) (.*)", line)
    if m:
        kind, name, rest = m.groups()
        fam = families.setdefault(name, {"help": "", "type": "", "labels": []})
        if name not in order:
            order.append(name)
        fam["help" if kind == "HELP" else "type"] = rest
        continue
    if not line or line.startswith("#"):
        continue
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
    if not m:
        continue
    sample, _, labels = m.groups()
    for platform in re.findall(r'(?:^|,)platform="([^"]*)"', labels or ""):
        platforms.add(platform)
    name = sample
    if name not in families and name.endswith("_total"):
        name = name[: -len("_total")]
    fam = families.get(name)
    if fam is None:
        continue
    for key in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', labels or ""):
        if key not in fam["labels"]:
            fam["labels"].append(key)

# Families a demo run does not show (they appear only with a failure, a skipped row, or a vendor
# field the demo tenant does not send), documented here so a regenerated file keeps them.
ABSENT_IN_DEMO = {
    "awareness_api_request_failures": ("counter", ["platform", "account", "endpoint", "reason"],
        "Failed HTTP requests to the vendor API, by reason (`auth`, `rate_limited`, `timeout`, "
        "`connect`, `http`, `decode`, `api_error`, `redirect`, `tls`, `quota`); appears with the first "
        "failure"),
    "awareness_label_values_folded": ("counter", ["platform", "account", "label"],
        "Distinct vendor label values folded into __other__ by metrics.max_label_values, summed "
        "over polls"),
    "awareness_shard_ordinal": ("gauge", ["shard"],
        "This replica's shard (--shard or the StatefulSet ordinal): it polls the accounts whose "
        "hash of (platform, account) falls on it; only when sharded (--total-shards > 1)"),
    "awareness_total_shards": ("gauge", ["shard"],
        "The number of shards the accounts are spread over (--total-shards); only when sharded"),
    "awareness_mimecast_users_excluded": ("gauge", ["account", "department", "state"],
        "Users of the department left out of the Mimecast user figures because their userState "
        "is not ACTIVE, by state (performance details)"),
    "awareness_mimecast_phishing_reported": ("gauge", ["account", "campaign_id", "campaign"],
        "Phishing emails reported in the campaign (only where the vendor sends numReported, "
        "which its documented answer does not)"),
}
for name, (kind, labels, help_text) in ABSENT_IN_DEMO.items():
    families.setdefault(name, {"help": help_text, "type": kind, "labels": labels})

def section(title, names):
    out = [f"## {title}", "", "| metric | type | labels | help |", "|---|---|---|---|"]
    for n in names:
        f = families[n]
        shown = n + "_total" if f["type"] == "counter" else n
        out.append(f"| `{shown}` | {f['type']} | {', '.join(f['labels'])} | {f['help'].rstrip('.')} |")
    return "\n".join(out) + "\n"

def vendor_notes(platform):
    """(title, notes) from docs/vendors/<platform>-metrics.md, if there is one."""
    path = os.path.join(ROOT, "docs", "vendors", f"{platform}-metrics.md")
    if not os.path.isfile(path):
        return platform, ""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    first, _, rest = text.partition("\n")
    return first.lstrip("#").strip() or platform, rest.strip()


platforms = sorted(platforms)
prefixes = tuple(f"awareness_{p}_" for p in platforms)
exporter = [n for n in sorted(families) if not n.startswith(prefixes)]
listed = ", ".join(f"`{p}`" for p in platforms)

print(f"""# Metrics

Every metric awareness-exporter exposes, generated from a `--demo` run with `per_user = true`
(`scripts/metrics-doc.py`). Names are part of the contract: they are never renamed.

Conventions:
- `platform` is one of {listed}; `account` is the configured account name.
- Vendor grouping labels (`branch`, `department`, ...) are `""` for users without one.
- Series named `*_user_*` (label `email`) exist only with `metrics.per_user = true`, at most
  `metrics.max_users` users per source.
- A failed poll keeps the last good data and sets `awareness_up` to 0; after `poll.max_age`
  without success the data series disappear, `awareness_up` and
  `awareness_last_success_timestamp_seconds` stay.
- Each source polls sections (each platform's notes below name them). A failed section keeps
  its last good data and is retried on its own, on the failure backoff, without re-polling the
  good ones; `awareness_section_up` and `awareness_section_last_success_timestamp_seconds` tell
  each section's health, and `awareness_up` is 1 when every section's last attempt succeeded.
- A section the tenant does not offer (the vendor answered not found, or not permitted for an
  endpoint outside the tenant's licence) is unavailable, not down: its `awareness_section_up`
  is 0, it is asked again once per interval (not on the failure backoff), and `awareness_up` is
  1 when every other section succeeded. Leaving it out of the account's `endpoints` stops
  asking. A section whose API budget or daily quota is spent (reason `quota`) is down and also
  waits for the next interval.
- `awareness_config_last_reload_successful` is 0 after a reload (SIGHUP, `/-/reload`) refused
  the config file, until one succeeds; `awareness_config_last_reload_success_timestamp_seconds`
  is when the config in force was loaded.
- `awareness_polls_total{{result}}`: `success`, `failure` (a section failed, the token failed or
  `poll.deadline` ended the poll) or `panic` (caught; the source keeps its schedule).
- `awareness_api_requests_total` and `awareness_rows_skipped_total` exist at 0 from the start for
  every listing a source reads; `awareness_api_request_failures_total` appears with the first
  failure of its reason (a series for each reason up front would multiply them by ten).
""")
print(section("Exporter and sources", exporter))
for platform in platforms:
    title, notes = vendor_notes(platform)
    names = [n for n in sorted(families) if n.startswith(f"awareness_{platform}_")]
    print(section(title, names))
    if notes:
        print(notes + "\n")

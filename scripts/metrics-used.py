#!/usr/bin/env python3
"""List (and check) the metric names that the dashboards and Prometheus rules use.

Reads every PromQL expression of
  - dashboards/*.json: panel targets (also inside collapsed rows) and query variables
  - deploy/prometheus/*.yml: the `expr` of every recording and alerting rule
and extracts the metric names they reference. Recording-rule names (`awareness:...`),
PromQL functions, keywords and label names are not metric names.

Without --check it prints one line per metric name with where it is used.

With --check it exits 1, naming each problem, when
  - a metric name is not exposed by the exporter: compared against a live exposition
    (`--exposition FILE`, the text of /metrics) when given, else against the names written
    in backticks in docs/metrics.md (or the --contract files) plus the exporter's
    documented extra metrics;
  - an `awareness:...` name is used but no rule file records it.

Python standard library only.
"""
import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Exporter metrics that exist besides the contract's names.
EXTRA_METRICS = {
    "awareness_rows_skipped_total",  # {platform, account, endpoint}: malformed vendor rows skipped
    "awareness_polls_total",  # {platform, account, result}: result success | failure
}

# Counters whose series only appear once something happened (a failure, a skipped row): a
# live exposition may lack them although the exporter does expose them. The dashboards'
# queries on them fall back to 0 (see the e2e test).
MAY_BE_ABSENT = {
    "awareness_api_request_failures_total",
    "awareness_rows_skipped_total",
}

# Recording-rule names that are used but that the shipped rule files deliberately do not
# record: the per-account completion threshold overrides are the user's own rules.
OPTIONAL_RECORDS = {
    "awareness:completion_threshold:override",
}

# Where the exposed metric names are written down: the project's own metric reference,
# generated from a live exposition (scripts/metrics-doc.py). Only files inside the
# repository: a user's clone has nothing beside it.
DEFAULT_CONTRACTS = [os.path.join(ROOT, "docs", "metrics.md")]

# Series Prometheus makes itself (scrape health, alert state): no exporter exposes them.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "ALERTS"}

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "atan2",
}

GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]")
STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
BRACKETS = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
TOKEN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*|\d[\w.]*")
LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)
QUERY_RESULT = re.compile(r"^\s*query_result\s*\((.*)\)\s*$", re.S)


def promql_names(expr):
    """The metric and recording-rule names an expression references (Prometheus's own series,
    PROMETHEUS_SERIES, left out)."""
    s = GRAFANA_VAR.sub("0", expr)
    s = STRING.sub('""', s)
    s = MATCHERS.sub(" ", s)
    s = BRACKETS.sub(" ", s)
    s = GROUPING.sub(" ", s)
    names = set()
    for m in TOKEN.finditer(s):
        tok = m.group(0)
        if tok[0].isdigit():
            continue
        if tok.lower() in KEYWORDS:
            continue
        rest = s[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or an aggregation
        if tok not in PROMETHEUS_SERIES:
            names.add(tok)
    return names


def variable_expr(query):
    """The PromQL inside a Grafana Prometheus query variable, or None."""
    if isinstance(query, dict):
        query = query.get("query", "")
    if not isinstance(query, str):
        return None
    m = LABEL_VALUES.match(query)
    if m:
        return m.group(1)
    m = QUERY_RESULT.match(query)
    if m:
        return m.group(1)
    return None


# --------------------------------------------------------------------------- dashboards
def iter_panels(panels):
    for p in panels or []:
        yield p
        # collapsed rows keep their panels inside
        yield from iter_panels(p.get("panels"))


def dashboard_exprs(path):
    """Yields (where, expr) for every panel target and query variable of a dashboard."""
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    name = os.path.relpath(path, ROOT)
    for p in iter_panels(dash.get("panels")):
        for t in p.get("targets") or []:
            expr = t.get("expr")
            if expr:
                yield f"{name}: panel {p.get('title', '?')!r} [{t.get('refId', '?')}]", expr
    for v in (dash.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            expr = variable_expr(v.get("query"))
            if expr:
                yield f"{name}: variable ${v.get('name')}", expr
    for a in (dash.get("annotations") or {}).get("list") or []:
        if a.get("expr"):
            yield f"{name}: annotation {a.get('name')!r}", a["expr"]


# --------------------------------------------------------------------------- rule files
KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?(record|alert|expr)\s*:\s?(.*)$")


def _strip_comment(value):
    m = re.search(r"\s#", value)
    return value[: m.start()] if m else value


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def parse_rules(text):
    """A small parser for Prometheus rule files (the subset of YAML they use): returns a
    list of {"record"|"alert": name, "expr": expr}. Handles plain, quoted and block
    (| |- > >-) scalars."""
    lines = text.splitlines()
    rules = []
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = KEY_LINE.match(line)
        if not m:
            i += 1
            continue
        key = m.group(2)
        key_indent = line.index(key)
        value = m.group(3).strip()
        i += 1
        if value[:1] in ("|", ">"):
            folded = value[0] == ">"
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > key_indent):
                block.append(lines[i])
                i += 1
            nonblank = [b for b in block if b.strip()]
            dedent = min((_indent(b) for b in nonblank), default=0)
            body = [b[dedent:] for b in block]
            value = (" " if folded else "\n").join(body).strip()
        elif value[:1] == '"':
            value = json.loads(value[: value.rindex('"') + 1])
        elif value[:1] == "'":
            value = value[1: value.rindex("'")].replace("''", "'")
        else:
            value = _strip_comment(value)
            # a plain scalar may continue on more indented lines
            while (i < len(lines) and lines[i].strip() and _indent(lines[i]) > key_indent
                   and not KEY_LINE.match(lines[i])):
                value += " " + _strip_comment(lines[i].strip())
                i += 1
            value = value.strip()
        if key in ("record", "alert"):
            current = {key: value}
            rules.append(current)
        elif current is not None and "expr" not in current:
            current["expr"] = value
    return rules


def rule_files():
    return sorted(glob.glob(os.path.join(ROOT, "deploy", "prometheus", "*.yml")))


def rule_exprs(path):
    name = os.path.relpath(path, ROOT)
    with open(path, encoding="utf-8") as f:
        for r in parse_rules(f.read()):
            if "expr" not in r:
                continue
            what = f"record {r['record']}" if "record" in r else f"alert {r['alert']}"
            yield f"{name}: {what}", r["expr"]


def recorded_names():
    names = set()
    for path in rule_files():
        with open(path, encoding="utf-8") as f:
            for r in parse_rules(f.read()):
                if "record" in r:
                    names.add(r["record"])
    return names


# --------------------------------------------------------------------------- known names
def contract_names(path):
    """Metric names written in backticks in the contract. Shorthands such as
    "`awareness_mimecast_answers_correct` / `_answers_incorrect`" are expanded with the
    prefix of the full name before them on the same line."""
    names = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            last_full, prefix = None, None
            for tok in re.findall(r"`([^`]+)`", line):
                if re.fullmatch(r"awareness_[a-z0-9_]+", tok):
                    names.add(tok)
                    last_full, prefix = tok, None
                elif re.fullmatch(r"_[a-z0-9_]+", tok) and last_full:
                    if prefix is None:
                        # the prefix ends where the shorthand's first word starts in the
                        # full name: awareness_mimecast_phishing_emails_sent / _emails_opened
                        first = tok[1:].split("_")[0]
                        cut = last_full.rfind("_" + first + "_")
                        if cut < 0:
                            continue
                        prefix = last_full[:cut]
                    names.add(prefix + tok)
    return names


def exposition_names(path):
    names = set()
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("_sum", "_count", "_created"),
        "info": ("_info",),
    }
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                m = re.match(r"#\s+TYPE\s+(\S+)\s+(\S+)", line)
                if m:
                    name, typ = m.groups()
                    names.add(name)
                    for suf in suffixes.get(typ, ()):
                        names.add(name if name.endswith(suf) else name + suf)
                continue
            m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)", line)
            if m:
                names.add(m.group(1))
    return names


# --------------------------------------------------------------------------- labels
def series_labels():
    """{series: its labels} for the exporter's metrics (docs/metrics.md's tables, plus the job
    and instance of the scrape), Prometheus's own series and every recorded name. A record
    keeps its first `by (...)`, else the labels of its first series less `without (...)`,
    plus its rule's own `labels:`. The dashboards' generator and lint-assets.py use it."""
    labels = {"up": {"job", "instance"}, "scrape_duration_seconds": {"job", "instance"},
              "ALERTS": {"alertname", "alertstate", "job", "instance", "platform", "account"}}
    with open(DEFAULT_CONTRACTS[0], encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\| `(awareness_\w+)` \| \w+ \| ([^|]*) \|", line)
            if m:
                labels[m.group(1)] = {x.strip() for x in m.group(2).split(",") if x.strip()}
                labels[m.group(1)] |= {"job", "instance"}
    for path in rule_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        own = {}
        for block in re.split(r"\n\s*- record:\s*", text)[1:]:
            name, _, rest = block.partition("\n")
            found = re.search(r"^\s+labels:\s*\n((?:\s+\w+:.*\n?)+)", rest, re.M)
            own.setdefault(name.strip(), set()).update(
                re.findall(r"(\w+):", found.group(1)) if found else [])
        for rule in parse_rules(text):
            if "record" not in rule:
                continue
            expr = rule.get("expr", "")
            by = re.search(r"\bby\s*\(([^)]*)\)", expr)
            if by:
                found = {x.strip() for x in by.group(1).split(",") if x.strip()}
            else:
                first = next(iter(sorted(promql_names(expr), key=expr.find)), None)
                found = set(labels.get(first, set()))
                for without in re.findall(r"\bwithout\s*\(([^)]*)\)", expr):
                    found -= {x.strip() for x in without.split(",")}
            name = rule["record"]
            labels[name] = labels.get(name, set()) | found | own.get(name, set())
    return labels


# --------------------------------------------------------------------------- main
def collect():
    """{name: [where, ...]} for every name referenced by the dashboards and rules."""
    used = {}
    sources = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json"))):
        sources.extend(dashboard_exprs(path))
    for path in rule_files():
        sources.extend(rule_exprs(path))
    for where, expr in sources:
        for name in promql_names(expr):
            used.setdefault(name, []).append(where)
    return used


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="fail (exit 1) on metric names the exporter does not expose")
    ap.add_argument("--exposition", metavar="FILE",
                    help="the text of a live /metrics to check against")
    ap.add_argument("--contract", metavar="FILE", action="append",
                    help="a Markdown file naming the exposed metrics in backticks (repeatable;"
                         " default: docs/metrics.md)")
    ap.add_argument("--names", action="store_true",
                    help="print only the metric names, one a line")
    args = ap.parse_args()

    used = collect()
    metrics = {n: w for n, w in used.items() if not n.startswith("awareness:")}
    records = {n: w for n, w in used.items() if n.startswith("awareness:")}

    if not args.check:
        for name in sorted(metrics):
            if args.names:
                print(name)
            else:
                print(f"{name}  ({len(metrics[name])} uses)")
        return 0

    problems = []
    if args.exposition:
        known = exposition_names(args.exposition)
        against = f"the exposition {args.exposition}"
    else:
        docs = args.contract or [p for p in DEFAULT_CONTRACTS if os.path.exists(p)]
        missing = [p for p in docs if not os.path.exists(p)]
        if not docs or missing:
            shown = [os.path.relpath(p, ROOT) for p in (missing or DEFAULT_CONTRACTS)]
            print(f"metrics-used: no list of exposed metrics: {', '.join(shown)} not found "
                  f"(regenerate docs/metrics.md with scripts/metrics-doc.py, or give "
                  f"--exposition FILE)", file=sys.stderr)
            return 2
        known = set(EXTRA_METRICS)
        for p in docs:
            known |= contract_names(p)
        against = " and ".join(os.path.relpath(p) for p in docs) + " and the documented extras"
    for name in sorted(metrics):
        if name in known:
            continue
        if args.exposition and name in MAY_BE_ABSENT:
            print(f"note: {name} is not in the exposition yet (it appears with its first "
                  f"event); the queries on it fall back to 0")
            continue
        wheres = "; ".join(sorted(set(metrics[name]))[:3])
        problems.append(f"unknown metric {name} (not in {against}), used in: {wheres}")
    recorded = recorded_names()
    for name in sorted(records):
        if name not in recorded and name not in OPTIONAL_RECORDS:
            wheres = "; ".join(sorted(set(records[name]))[:3])
            problems.append(f"unknown recording rule {name} (no rule file records it), "
                            f"used in: {wheres}")
    for p in problems:
        print(f"metrics-used: {p}", file=sys.stderr)
    if problems:
        print(f"metrics-used: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"metrics-used: {len(metrics)} metric names and {len(records)} recording-rule names "
          f"used, all known ({against})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

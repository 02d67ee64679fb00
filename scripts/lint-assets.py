#!/usr/bin/env python3
"""Static checks of the dashboards and alert rules that promtool does not do.

Dashboards (dashboards/*.json):
  - valid JSON, schemaVersion 39, "id": null, a unique non-empty stable uid;
  - a `datasource` variable of type datasource (prometheus) and query variables `job`,
    `instance` and `account` built with label_values();
  - every panel and target uses the `${datasource}` variable;
  - every rate()/irate() range is [$__rate_interval];
  - every Grafana variable used in an expression is defined (or is a Grafana built-in),
    and variables in label matchers are only used with =~ (so that "All" = .* works).
  - every panel has a description; at most 12 panels show before a row is opened;
  - a ratio (a `*:ratio` or `*_ratio` series) shows as percentunit from 0 to 1, unless value
    mappings make it a state;
  - a label matcher names only labels its series has (docs/metrics.md, the recording rules):
    a group variable never filters series without that group;
  - a stat, bar gauge or table column that colours an alerted quantity (click, submit, report
    rate, phish-prone, completion, data age) has a step at the alert's own number, red on the
    alerting side.
Alerts (deploy/prometheus/awareness.alerts.yml):
  - every alert has labels.severity and the annotations summary, description and
    runbook_url, the latter docs/alerts.md#<alert name in lower case>, and docs/alerts.md
    has a heading with that anchor.
Docs (docs/*.md, README.md):
  - every test they cite (`tests/it/x.rs::name`, `module::tests::name`, a test file) exists;
  - README's set-up section names the prerequisites and keeps exactly the two commands;
  - no script points outside the repository (../shared).

Python standard library only. Exit 1 on any problem.
"""
import glob
import importlib.util
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in scripts/
_spec = importlib.util.spec_from_file_location(
    "metrics_used", os.path.join(ROOT, "scripts", "metrics-used.py"))
metrics_used = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(metrics_used)
LABELS = metrics_used.series_labels()
MAX_VISIBLE_PANELS = 12
SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
RATIO = re.compile(r"[\w:]*(?::ratio|_ratio)\b")
BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                "__range_ms", "__from", "__to", "__dashboard", "__org", "__user",
                "__name", "__auto"}
VAR_USE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
MATCHER_WITH_VAR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"[^"]*\$[^"]*"')

problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def iter_panels(panels):
    for p in panels or []:
        yield p
        yield from iter_panels(p.get("panels"))


def rate_ranges(expr):
    """The [range] of every rate()/irate() call in expr."""
    out = []
    for m in re.finditer(r"\b(?:i?rate)\s*\(", expr):
        depth, i = 1, m.end()
        while i < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        out.extend(re.findall(r"\[([^\]]*)\]", expr[m.end():i]))
    return out


def check_dashboard(path):
    name = os.path.relpath(path, ROOT)
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except ValueError as e:
        problem(name, f"invalid JSON: {e}")
        return None
    if dash.get("schemaVersion") != 39:
        problem(name, f"schemaVersion is {dash.get('schemaVersion')!r}, want 39")
    if "id" not in dash or dash["id"] is not None:
        problem(name, '"id" must be null')
    uid = dash.get("uid")
    if not uid or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problem(name, f"bad uid {uid!r}")
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(name, "needs a `datasource` variable of type datasource with query prometheus")
    for v in ("job", "instance", "account"):
        var = variables.get(v)
        q = (var or {}).get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if not var or var.get("type") != "query" or not str(q).startswith("label_values("):
            problem(name, f"needs a query variable `{v}` built with label_values()")
    for var in variables.values():
        if var.get("type") == "query" and var.get("datasource", {}).get("uid") != "${datasource}":
            problem(name, f"variable {var.get('name')} must use the ${{datasource}} variable")
    visible = [p for p in dash.get("panels") or [] if p.get("type") != "row"]
    if len(visible) > MAX_VISIBLE_PANELS:
        problem(name, f"{len(visible)} panels show at load (at most {MAX_VISIBLE_PANELS}): "
                "collapse a row")
    ids = set()
    for p in iter_panels(dash.get("panels")):
        where = f"{name}: panel {p.get('title')!r}"
        if p.get("type") != "row":
            if not (p.get("description") or "").strip():
                problem(where, "no description")
            check_ratios(where, p)
            check_alert_thresholds(where, p)
        if p.get("id") in ids:
            problem(where, f"duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            problem(where, "no gridPos")
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problem(where, "panel datasource must be ${datasource}")
        if not p.get("targets"):
            problem(where, "no targets")
        for t in p.get("targets") or []:
            tw = f"{where} [{t.get('refId')}]"
            expr = t.get("expr", "")
            if not expr:
                problem(tw, "empty expr")
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                problem(tw, "target datasource must be ${datasource}")
            for r in rate_ranges(expr):
                if r.strip() != "$__rate_interval":
                    problem(tw, f"rate() over [{r}]: use [$__rate_interval]")
            check_vars(tw, expr, variables)
            check_labels(tw, expr)
    for var in variables.values():
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if var.get("type") == "query" and isinstance(q, str):
            check_vars(f"{name}: variable {var.get('name')}", q, variables)
    return dash


def check_vars(where, expr, variables):
    for m in VAR_USE.finditer(expr):
        v = m.group(1) or m.group(2)
        if v not in variables and v not in BUILTIN_VARS:
            problem(where, f"uses undefined variable ${v}")
    for m in MATCHER_WITH_VAR.finditer(expr):
        if m.group(2) != "=~":
            problem(where, f"variable in matcher {m.group(0)!r}: use =~ so that All (.*) works")


def check_labels(where, expr):
    """Every matcher names a label its series has: `department=~"$department"` on a series
    without departments would empty the panel as soon as one is picked."""
    for m in SELECTOR.finditer(expr):
        series, matchers = m.group(1), metrics_used.STRING.sub('""', m.group(2))
        if series not in LABELS:
            continue  # metrics-used.py reports unknown names
        for label in MATCHER.findall(matchers):
            if label not in LABELS[series]:
                problem(where, f"{series} has no label {label!r} to match on")


def columns(panel):
    """(name, exprs, field config) of each thing a panel shows: the panel itself, or for a
    table each column a query fills, with its override."""
    targets = panel.get("targets") or []
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    if panel.get("type") != "table":
        return [(None, [t.get("expr", "") for t in targets], defaults)]
    rename = {}
    for tr in panel.get("transformations") or []:
        if tr.get("id") == "organize":
            rename = tr.get("options", {}).get("renameByName", {})
    overrides = {}
    for o in (panel.get("fieldConfig") or {}).get("overrides") or []:
        if (o.get("matcher") or {}).get("id") == "byName":
            overrides[o["matcher"].get("options")] = {
                p["id"]: p.get("value") for p in o.get("properties") or []}
    out = []
    for t in targets:
        col = rename.get(f"Value #{t.get('refId')}") or rename.get("Value") or t.get("refId")
        config = dict(defaults)
        config.update(overrides.get(col, {}))
        out.append((col, [t.get("expr", "")], config))
    return out


def check_ratios(where, panel):
    for col, exprs, config in columns(panel):
        if not any(RATIO.search(e) for e in exprs) or config.get("mappings"):
            continue
        shown = f"{where} column {col!r}" if col else where
        # a ratio less its threshold (completion_threshold) runs from -1 to 1
        low = -1 if any("completion_threshold" in e and " - " in e for e in exprs) else 0
        if (config.get("unit"), config.get("min"), config.get("max")) != ("percentunit", low, 1):
            problem(shown, f"shows a ratio: unit percentunit, min {low}, max 1 "
                    f"(has {config.get('unit')!r}, {config.get('min')!r}, {config.get('max')!r})")


# What each alerted quantity's series look like, and whether high (or low) is bad.
QUANTITIES = [
    ("completion gap", re.compile(r"completion_threshold\b"), "low"),
    ("click", re.compile(r"phishing_click:ratio\b"), "high"),
    ("submit", re.compile(r"phishing_submit:ratio\b"), "high"),
    ("report", re.compile(r"phishing_report:ratio\b"), "low"),
    ("phish-prone", re.compile(r"phish_prone_ratio\b"), "high"),
    ("completion", re.compile(r"(?:training|module)_completion:ratio\b"), "low"),
    ("data age", re.compile(r"source_data_age:intervals\b"), "high"),
]


def alert_numbers():
    """{quantity: the number its alert fires at}, read from the shipped rules."""
    prom = os.path.join(ROOT, "deploy", "prometheus")
    with open(os.path.join(prom, "awareness.alerts.yml"), encoding="utf-8") as f:
        alerts = f.read()
    with open(os.path.join(prom, "awareness.rules.yml"), encoding="utf-8") as f:
        rules = f.read()
    found = {
        "click": re.findall(r"phishing_click:ratio > ([\d.]+)", alerts),
        "submit": re.findall(r"phishing_submit:ratio > ([\d.]+)", alerts),
        "report": re.findall(r"phishing_report:ratio < ([\d.]+)", alerts),
        "phish-prone": re.findall(r"phish_prone_ratio > ([\d.]+)", alerts),
        "completion": re.findall(r"completion_threshold:default\s*\n\s*expr: vector\(([\d.]+)\)", rules),
        "data age": re.findall(r"clamp_min\((\d+) \* awareness_poll_interval_seconds", alerts),
        "completion gap": ["0"],
    }
    numbers = {}
    for quantity, values in found.items():
        values = {float(v) for v in values}
        if len(values) != 1:
            problem("deploy/prometheus", f"want one alert number for {quantity}, found "
                    f"{sorted(values) or 'none'}")
        else:
            numbers[quantity] = values.pop()
    return numbers


ALERT_NUMBERS = {}


def check_alert_thresholds(where, panel):
    """A stat, bar gauge or table cell coloured for an alerted quantity turns at the alert's
    number: red above it when high is bad; when low is bad, red below and not red above."""
    if panel.get("type") not in ("stat", "bargauge", "table"):
        return
    for col, exprs, config in columns(panel):
        text = " ".join(exprs)
        kind = next(((q, side) for q, pattern, side in QUANTITIES if pattern.search(text)), None)
        if not kind or config.get("mappings") or kind[0] not in ALERT_NUMBERS:
            continue
        quantity, side = kind
        steps = (config.get("thresholds") or {}).get("steps") or []
        at = [s for s in steps if s.get("value") == ALERT_NUMBERS[quantity]]
        shown = f"{where} column {col!r}" if col else where
        ok = bool(at) and (at[0].get("color") == "red" if side == "high" else
                           at[0].get("color") != "red" and steps[0].get("color") == "red")
        if not ok:
            problem(shown, f"shows {quantity}: its thresholds must turn at the alert's "
                    f"{ALERT_NUMBERS[quantity]:g} ({'red from there' if side == 'high' else 'red below'})"
                    f", has {[(s.get('value'), s.get('color')) for s in steps]}")


def heading_anchors(md_path):
    anchors = set()
    with open(md_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#{1,6}\s+(.*?)\s*$", line)
            if m:
                a = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
                anchors.add(a)
            for a in re.findall(r'<a\s+(?:id|name)="([^"]+)"', line):
                anchors.add(a)
    return anchors


def check_alerts(path, docs):
    name = os.path.relpath(path, ROOT)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    anchors = heading_anchors(docs) if os.path.exists(docs) else set()
    if not anchors:
        problem(os.path.relpath(docs, ROOT), "missing or without headings")
    blocks = re.split(r"\n\s*- alert:\s*", "\n" + text)[1:]
    if not blocks:
        problem(name, "no alerts found")
    for block in blocks:
        # the block ends where the next rule or group starts
        block = re.split(r"\n\s*- (?:record|name):", block)[0]
        alert = block.split("\n", 1)[0].strip()
        where = f"{name}: alert {alert}"
        if not re.search(r"\n\s+labels:\s*\n(?:\s+\S.*\n)*?\s+severity:\s*(critical|warning|info)\b",
                         block + "\n"):
            problem(where, "needs labels.severity (critical, warning or info)")
        for ann in ("summary", "description", "runbook_url"):
            if not re.search(rf"\n\s+{ann}:", block):
                problem(where, f"needs annotation {ann}")
        m = re.search(r"\n\s+runbook_url:\s*['\"]?(\S+?)['\"]?\s*(?:\n|$)", block)
        if m:
            url = m.group(1)
            want = f"docs/alerts.md#{alert.lower()}"
            if not url.endswith(want):
                problem(where, f"runbook_url {url} should end with {want}")
            elif alert.lower() not in anchors:
                problem(where, f"docs/alerts.md has no section #{alert.lower()}")


def check_cited_tests():
    """Every test a doc names exists: `tests/it/x.rs::name` (and test files),
    `module::tests::name` in the module's file under src/ or crates/."""
    docs = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "README.md")]
    sources = [p for d in ("src", "crates") for p in
               glob.glob(os.path.join(ROOT, d, "**", "*.rs"), recursive=True)]
    for doc in docs:
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        where = os.path.relpath(doc, ROOT)
        for path, test in re.findall(r"\b(tests/[\w/]+\.rs)(?:::(\w+))?", text):
            full = os.path.join(ROOT, path)
            if not os.path.isfile(full):
                problem(where, f"cites {path}, which does not exist")
            elif test and not re.search(rf"\bfn {test}\s*\(", read(full)):
                problem(where, f"cites {path}::{test}, which {path} does not define")
        for module, test in re.findall(r"(?<![\w:/])(\w+)::tests(?:::(\w+))?", text):
            files = [p for p in sources if os.path.basename(p) == f"{module}.rs"
                     or p.endswith(os.path.join(module, "mod.rs"))]
            if not files:
                problem(where, f"cites {module}::tests, but no src file is module {module}")
            elif not any(re.search(rf"\bfn {test}\s*\(" if test else r"\bmod tests\b",
                                   read(p).split("#[cfg(test)]", 1)[-1]) for p in files):
                problem(where, f"cites {module}::tests{'::' + test if test else ''}, which "
                        f"{', '.join(os.path.relpath(p, ROOT) for p in files)} does not define")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


SETUP_NEEDS = ["rustup", "rustfmt", "clippy", "Cargo.lock", "python3", "install-test-deps.sh",
               "root", "sudo sh -c 'apt-get update && apt-get install", "CARGO_TARGET_DIR",
               "2-core", "GB", "min"]
SETUP_COMMANDS = ["cargo run --release -- --demo", "./scripts/test.sh"]


def check_readme_setup():
    """A new user's first hour: README's set-up section names what to install first and keeps
    exactly the two commands."""
    text = read(os.path.join(ROOT, "README.md"))
    m = re.search(r"^## Set-up: the two commands\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        problem("README.md", "no section '## Set-up: the two commands'")
        return
    setup = m.group(1)
    for needed in SETUP_NEEDS:
        if needed not in setup:
            problem("README.md", f"the set-up section does not name {needed!r}")
    block = re.search(r"```sh\n(.*?)```", setup, re.S)
    commands = [line.split("#")[0].strip() for line in (block.group(1) if block else "").splitlines()]
    if [c for c in commands if c] != SETUP_COMMANDS:
        problem("README.md", f"the set-up section's commands must be exactly {SETUP_COMMANDS}")


def check_scripts_stay_inside():
    """A user's clone has nothing beside it: no script reads ../shared."""
    for script in ("scripts/metrics-used.py", "scripts/check-rules.sh", "scripts/test.sh"):
        text = read(os.path.join(ROOT, script))
        if '"..", "shared"' in text or "../shared" in text:
            problem(script, "points outside the repository (../shared)")


def main():
    ALERT_NUMBERS.update(alert_numbers())
    uids = {}
    paths = sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
    if not paths:
        problem("dashboards", "no dashboards found")
    for path in paths:
        dash = check_dashboard(path)
        if dash and dash.get("uid"):
            if dash["uid"] in uids:
                problem(path, f"uid {dash['uid']} also used by {uids[dash['uid']]}")
            uids[dash["uid"]] = path
    check_alerts(os.path.join(ROOT, "deploy", "prometheus", "awareness.alerts.yml"),
                 os.path.join(ROOT, "docs", "alerts.md"))
    check_cited_tests()
    check_readme_setup()
    check_scripts_stay_inside()
    for p in problems:
        print(f"lint-assets: {p}", file=sys.stderr)
    if problems:
        print(f"lint-assets: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"lint-assets: {len(paths)} dashboards, the alert rules and the docs' test citations "
          "are fine")
    return 0


if __name__ == "__main__":
    sys.exit(main())

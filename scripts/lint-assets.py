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
Alerts (deploy/prometheus/awareness.alerts.yml):
  - every alert has labels.severity and the annotations summary, description and
    runbook_url, the latter docs/alerts.md#<alert name in lower case>, and docs/alerts.md
    has a heading with that anchor.

Python standard library only. Exit 1 on any problem.
"""
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    ids = set()
    for p in iter_panels(dash.get("panels")):
        where = f"{name}: panel {p.get('title')!r}"
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


def main():
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
    for p in problems:
        print(f"lint-assets: {p}", file=sys.stderr)
    if problems:
        print(f"lint-assets: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"lint-assets: {len(paths)} dashboards and the alert rules are fine")
    return 0


if __name__ == "__main__":
    sys.exit(main())

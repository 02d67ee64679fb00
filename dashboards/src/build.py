#!/usr/bin/env python3
"""Writes dashboards/*.json from dashboards/src/: the overview, the exporter and one dashboard
per platform spec in platforms/. `--check` writes nothing and fails when a committed file
differs from what the sources make.

The SDK builds the panels; here they get what the SDK leaves to us: their scoped queries
(lib.Scope), ids and refIds numbered, the data source on every query, the annotations, and
`"id": null` for provisioning.
"""
import glob
import importlib
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402

import exporter  # noqa: E402
import lib  # noqa: E402
import overview  # noqa: E402
import people  # noqa: E402

OUT = os.path.join(lib.ROOT, "dashboards")


def specs():
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, "platforms", "*.py"))
                   if not p.endswith("__init__.py"))
    return [importlib.import_module(f"platforms.{n}").SPEC for n in names]


def finish(builder, scope):
    """The SDK's dashboard as JSON, with queries scoped and ids, refIds and data sources set."""
    dash = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    dash["id"] = None
    dash["annotations"] = {"list": lib.annotations(scope)}
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            v["definition"] = v["query"]  # what Grafana's variable editor shows
    for row, panels in rows(dash["panels"]):
        whole = [p for p in panels if scope.whole_account([t["expr"] for t in p["targets"]])]
        if row and whole and len(whole) == len(panels):
            row["title"] += " (whole account)"  # once for the row, not on every panel
        else:
            for p in whole:
                p["title"] += " (whole account)"
    next_id = 1
    for panel in walk(dash["panels"]):
        panel["id"], next_id = next_id, next_id + 1
        if panel["type"] == "row":
            panel["datasource"] = lib.DS.to_json()
            continue
        for i, t in enumerate(panel.get("targets", [])):
            t["expr"] = scope.expr(t["expr"])
            t["refId"] = chr(ord("A") + i)
            t["datasource"] = lib.DS.to_json()
    return dash


def rows(panels):
    """(row or None, its panels) in order: a collapsed row holds its panels, an open row is
    followed by them."""
    out = [(None, [])]
    for p in panels:
        if p["type"] == "row":
            out.append((p, p.get("panels") or []))
        else:
            out[-1][1].append(p)
    return [(r, ps) for r, ps in out if ps]


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


def dashboards():
    all_specs = specs()
    out = {"overview": overview.dashboard(all_specs), "exporter": exporter.dashboard(all_specs),
           "people": people.dashboard(all_specs)}
    for spec in all_specs:
        out[spec.name] = lib.platform_dashboard(spec)
    return {name: json.dumps(finish(*built), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, built in out.items()}


def main():
    check = sys.argv[1:] == ["--check"]
    stale = []
    wanted = dashboards()
    for name, text in wanted.items():
        path = os.path.join(OUT, f"{name}.json")
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            stale.append(path)
            if not check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    extra = sorted(set(glob.glob(os.path.join(OUT, "*.json")))
                   - {os.path.join(OUT, f"{n}.json") for n in wanted})
    for path in stale + extra:
        rel = os.path.relpath(path, lib.ROOT)
        if check:
            print(f"dashboards: {rel} is not what dashboards/src makes; run "
                  "python3 dashboards/src/build.py and commit both", file=sys.stderr)
        elif path in extra:
            print(f"dashboards: {rel} has no source in dashboards/src", file=sys.stderr)
        else:
            print(f"wrote {rel}")
    return 1 if (check and stale) or extra else 0


if __name__ == "__main__":
    sys.exit(main())

"""What every awareness dashboard shares: variables, thresholds, panel helpers, the shared rows
and the platform spec (dashboards/src/README.md tells how they fit).

Queries are written with `@metric` (or `@metric{extra="matchers"}`) where a selector belongs:
`Scope.expr` turns it into `metric{job=~"$job", instance=~"$instance", ...}` with exactly the
matchers the metric's labels allow (docs/metrics.md, the recording rules), so no panel can
filter by a label its metric lacks, and a panel whose metrics lack the dashboard's group label
is titled "(whole account)".
"""
import dataclasses
import importlib.util
import os
import re

from grafana_foundation_sdk.builders import (bargauge, dashboard, piechart, prometheus, stat,
                                             statetimeline, table, timeseries)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import piechart as pc
from grafana_foundation_sdk.models import prometheus as pm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
ON_SOURCE = "on (job, instance, platform, account)"

# ---------------------------------------------------------------- units and thresholds
# The same numbers as deploy/prometheus/awareness.alerts.yml and the completion threshold of
# awareness.rules.yml; scripts/lint-assets.py compares them. (base colour, (step, colour)...)
THRESHOLDS = {
    "completion": ("red", (0.6, "orange"), (0.8, "green")),
    "completion_gap": ("red", (0, "green")),
    "behind": ("green", (0.05, "orange"), (0.15, "red")),
    "click": ("green", (0.1, "orange"), (0.2, "red")),
    "submit": ("green", (0.05, "orange"), (0.1, "red")),
    "report": ("red", (0.1, "orange"), (0.3, "green")),
    "phish_prone": ("green", (0.15, "orange"), (0.3, "red")),
    "risk": ("green", (40, "orange"), (60, "red")),
    "data_age": ("green", (2, "orange"), (4, "red")),
    "up": ("red", (1, "green")),
    "count": ("blue",),
    "any_is_bad": ("green", (1, "orange")),
    "failure": ("green", (0.01, "orange"), (0.1, "red")),
    "score": ("blue",),
}
RATIOS = {"completion", "behind", "click", "submit", "report", "phish_prone", "failure"}
STATE_MAPPING = [
    {"type": "value", "options": {"1": {"text": "OK", "color": "green", "index": 0},
                                  "0": {"text": "DOWN", "color": "red", "index": 1}}},
    {"type": "range", "options": {"from": 0.0001, "to": 0.9999,
                                  "result": {"text": "DEGRADED", "color": "orange", "index": 2}}},
]
UP_MAPPING = [{"type": "value", "options": {"1": {"text": "UP", "color": "green", "index": 0},
                                            "0": {"text": "DOWN", "color": "red", "index": 1}}}]


def thresholds(kind):
    base, *steps = THRESHOLDS[kind]
    return (dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=None, color=base)]
                   + [dm.Threshold(value=v, color=c) for v, c in steps]))


def thresholds_json(kind):
    base, *steps = THRESHOLDS[kind]
    return {"mode": "absolute", "steps": [{"color": base, "value": None}]
            + [{"color": c, "value": v} for v, c in steps]}


# ---------------------------------------------------------------- labels of every series
def _metrics_used():
    """scripts/metrics-used.py, which knows every series' labels (stdlib only)."""
    path = os.path.join(ROOT, "scripts", "metrics-used.py")
    spec = importlib.util.spec_from_file_location("metrics_used", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LABELS = _metrics_used().series_labels()
PLACEHOLDER = re.compile(r"@([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?")


@dataclasses.dataclass
class Scope:
    """What a dashboard's selectors carry: a fixed platform, the variables it has."""
    platform: str = None
    variables: tuple = ("job", "instance", "account")
    group: str = None

    def selector(self, metric, extra):
        labels = LABELS.get(metric)
        if labels is None:
            raise SystemExit(f"dashboards: unknown series {metric} (not in docs/metrics.md "
                             "nor recorded by awareness.rules.yml)")
        matchers = [f'{v}=~"${v}"' for v in ("job", "instance") if v in labels]
        if "platform" in labels and self.platform:
            matchers.append(f'platform="{self.platform}"')
        elif "platform" in labels and "platform" in self.variables:
            matchers.append('platform=~"$platform"')
        if "account" in labels:
            matchers.append('account=~"$account"')
        if self.group and self.group in labels:
            matchers.append(f'{self.group}=~"${self.group}"')
        if extra:
            matchers.append(extra)
        return f"{metric}{{{', '.join(matchers)}}}"

    def expr(self, text):
        return PLACEHOLDER.sub(lambda m: self.selector(m.group(1), m.group(2)), text)

    def whole_account(self, texts):
        """True when some series of the panel lacks the dashboard's group label."""
        if not self.group:
            return False
        names = [m.group(1) for t in texts for m in PLACEHOLDER.finditer(t)]
        return any("account" in LABELS[n] and self.group not in LABELS[n]
                   and not about_the_source(n) for n in names)


def about_the_source(name):
    """The exporter's own series of a source (awareness_up, sections, polls) and the records
    made of them: no vendor breaks them down by group, nobody expects them to."""
    return name.startswith("awareness:source_") or (
        not name.startswith("awareness:") and "platform" in LABELS.get(name, ()))


# ---------------------------------------------------------------- panels
@dataclasses.dataclass
class Q:
    """One query: `@`-placeholders, a legend, instant or range, table format."""
    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False


def _queries(qs, instant=False, table_format=False):
    out = []
    for q in qs:
        q = q if isinstance(q, Q) else Q(q, instant=instant, table=table_format)
        b = (prometheus.Dataquery().expr(q.expr).legend_format(q.legend)
             .editor_mode(pm.QueryEditorMode.CODE))
        b = b.instant() if q.instant or instant else b.range()
        if q.table or table_format:
            b = b.format(pm.PromQueryFormat.TABLE)
        out.append(b)
    return out


def _common(b, title, desc, qs, w, h, unit, kind, decimals=None):
    b = b.title(title).description(desc).datasource(DS).span(w).height(h).targets(qs)
    b = b.unit("percentunit" if kind in RATIOS else unit)
    if kind in RATIOS:
        b = b.min(0).max(1).decimals(1 if decimals is None else decimals)
    elif decimals is not None:
        b = b.decimals(decimals)
    if kind:
        b = b.thresholds(thresholds(kind)).color_scheme(
            dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    return b


def stat_panel(title, desc, *exprs, kind="count", unit="short", w=4, h=5, spark=True,
               decimals=None, mappings=None, color_background=False):
    qs = _queries([e if isinstance(e, Q) else Q(e, legend="{{platform}} · {{account}}")
                   for e in exprs])
    b = _common(stat.Panel(), title, desc, qs, w, h, unit, kind, decimals)
    b = (b.graph_mode(common.BigValueGraphMode.AREA if spark else common.BigValueGraphMode.NONE)
         .color_mode(common.BigValueColorMode.BACKGROUND if color_background
                     else common.BigValueColorMode.VALUE)
         .reduce_options(_reduce()))
    return b.mappings(mappings) if mappings else b


def _reduce():
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def timeseries_panel(title, desc, *exprs, kind=None, unit="short", w=12, h=8, decimals=None,
                     dashed=()):
    """Lines stepped after each poll; `dashed`: refIds drawn as dashed lines (thresholds)."""
    b = _common(timeseries.Panel(), title, desc, _queries(exprs), w, h, unit, None, decimals)
    if kind in RATIOS:
        b = b.unit("percentunit").min(0).max(1).decimals(1)
    b = (b.line_interpolation(common.LineInterpolation.STEP_AFTER).fill_opacity(10)
         .show_points(common.VisibilityMode.NEVER)
         .legend(_legend()).tooltip(_tooltip()))
    for ref in dashed:
        b = b.override_by_query(ref, [
            dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0)])
    return b


def _legend():
    return (cb.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull"])
            .sort_by("Last *").sort_desc(True))


def _tooltip():
    return cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)


def bar_panel(title, desc, *exprs, kind="count", unit="short", w=12, h=8, decimals=None,
              basic=False):
    """Horizontal bars of instant values, one per series."""
    qs = _queries(exprs, instant=True)
    b = _common(bargauge.Panel(), title, desc, qs, w, h, unit, kind, decimals)
    return (b.orientation(common.VizOrientation.HORIZONTAL)
            .display_mode(common.BarGaugeDisplayMode.BASIC if basic
                          else common.BarGaugeDisplayMode.GRADIENT)
            .value_mode(common.BarGaugeValueMode.COLOR).show_unfilled(True)
            .reduce_options(_reduce()))


def worst_panel(title, desc, expr, kind, legend, n=15, w=12, h=8):
    """The worst n groups of a ratio, worst at the top."""
    low_is_bad = THRESHOLDS[kind][0] == "red"
    pick = f"sort(bottomk({n}, {expr}))" if low_is_bad else f"sort_desc(topk({n}, {expr}))"
    return bar_panel(title, desc, Q(pick, legend=legend), kind=kind, w=w, h=h)


@dataclasses.dataclass
class Col:
    """A table column: its name, query and what it shows (a THRESHOLDS kind or a unit)."""
    name: str
    expr: str
    kind: str = None
    unit: str = None
    mappings: list = None


def table_panel(title, desc, cols, sort, desc_sort=True, w=24, h=9):
    """One row per label set: the columns' instant queries merged, cells coloured by kind."""
    qs = _queries([Q(c.expr, instant=True, table=True) for c in cols])
    b = (table.Panel().title(title).description(desc).datasource(DS).span(w).height(h)
         .targets(qs).unit("short").filterable(True).cell_height(common.TableCellHeight.SM)
         .sort_by([cb.TableSortByFieldState().display_name(sort).desc(desc_sort)]))
    rename = {f"Value #{_ref(i)}": c.name for i, c in enumerate(cols)}
    b = b.transformations([
        dm.DataTransformerConfig(id_val="merge", options={}),
        dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True}, "indexByName": {}, "renameByName": rename})])
    for c in cols:
        props = []
        if c.kind in RATIOS:
            props += [_prop("unit", "percentunit"), _prop("decimals", 1), _prop("min", 0),
                      _prop("max", 1)]
        elif c.kind == "completion_gap":  # a difference of two ratios
            props += [_prop("unit", "percentunit"), _prop("decimals", 1), _prop("min", -1),
                      _prop("max", 1)]
        elif c.unit:
            props.append(_prop("unit", c.unit))
        if c.kind and c.kind != "count":
            props += [_prop("thresholds", thresholds_json(c.kind)),
                      _prop("custom.cellOptions", {"type": "color-text"})]
        if c.mappings:
            props += [_prop("mappings", c.mappings),
                      _prop("custom.cellOptions", {"type": "color-background"})]
        if props:
            b = b.override_by_name(c.name, props)
    return b


def link_column(b, column, title, url):
    return b.override_by_name(column, [_prop("links", [{"title": title, "url": url}])])


def pie_panel(title, desc, expr, legend, w=8, h=9, colors=None):
    b = (piechart.Panel().title(title).description(desc).datasource(DS).span(w).height(h)
         .targets(_queries([Q(expr, legend=legend, instant=True)])).unit("short")
         .reduce_options(_reduce()))
    b = b.legend(piechart.PieChartLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                 .placement(common.LegendPlacement.RIGHT).show_legend(True)
                 .values([pc.PieChartLegendValues.VALUE, pc.PieChartLegendValues.PERCENT]))
    for name, color in (colors or {}).items():
        b = b.override_by_name(name, [_prop("color", {"mode": "fixed", "fixedColor": color})])
    return b


def state_panel(title, desc, expr, legend, mappings, kind="up", w=24, h=6):
    qs = _queries([Q(expr, legend=legend)])
    return (statetimeline.Panel().title(title).description(desc).datasource(DS).span(w).height(h)
            .targets(qs).mappings(mappings).thresholds(thresholds(kind))
            .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .show_value(common.VisibilityMode.NEVER).merge_values(True)
            .legend(_hidden_legend()))


def _hidden_legend():
    return (cb.VizLegendOptions().show_legend(False).display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM))


def _prop(key, value):
    return dm.DynamicConfigValue(id_val=key, value=value)


def _ref(i):
    return chr(ord("A") + i)


# ---------------------------------------------------------------- the shared rows
def weighted(ratio):
    """A ratio over the scope, weighted by each account's users."""
    return (f"sum(@{ratio} * {ON_SOURCE} @awareness:users:sum) / "
            f"sum(@awareness:users:sum and {ON_SOURCE} @{ratio})")


PROGRAM = [
    # (title, ratio record or None, kind, what `defines` key explains it)
    ("Training completion", "awareness:training_completion:ratio", "completion", "completion"),
    ("Users behind on training", None, "behind", "behind"),
    ("Phishing click rate", "awareness:phishing_click:ratio", "click", "click"),
    ("Phishing submit rate", "awareness:phishing_submit:ratio", "submit", "submit"),
    ("Phishing report rate", "awareness:phishing_report:ratio", "report", "report"),
]
GENERIC = {
    "users": "Users the platform counts.",
    "completion": "Completed training of what was assigned.",
    "behind": "Users behind on their training.",
    "click": "Simulated phishing emails whose link was clicked, of those sent.",
    "submit": "Simulated phishing emails that led to data being entered, of those sent.",
    "report": "Simulated phishing emails reported by their recipient, of those sent.",
}


def _explain(key, specs):
    lines = [f"{s.title}: {s.defines[key]}." for s in specs if key in s.defines]
    return " ".join([GENERIC[key]] + lines)


def program_row(specs, reports=True):
    """Six stats with sparklines: users, completion, behind, click, submit (and report) rates,
    each account weighted by its users."""
    w = 4 if reports else 24 // 5
    panels = [stat_panel("Users", _explain("users", specs), Q("sum(@awareness:users:sum)", "users"),
                         w=w)]
    for title, ratio, kind, key in PROGRAM:
        if kind == "report" and not reports:
            continue
        if ratio:
            expr = weighted(ratio)
        else:
            expr = ("sum(@awareness:users_overdue:sum) / "
                    f"sum(@awareness:users:sum and {ON_SOURCE} @awareness:users_overdue:sum)")
        desc = _explain(key, specs) + " Accounts weighted by their users."
        panels.append(stat_panel(title, desc, Q(expr, title.lower()), kind=kind, w=w))
    return panels


def _max(expr):
    return f"max by (platform, account) ({expr})"


def accounts_table(specs):
    """One row per platform·account, worst completion first; the account links to its
    platform's dashboard."""
    cols = [
        Col("State", _max("@awareness:source_sections_up:ratio"), mappings=STATE_MAPPING),
        Col("Data age", _max("@awareness:source_data_age:intervals"), kind="data_age",
            unit="none"),
        Col("Users", _max("@awareness:users:sum")),
        Col("Completion", _max("@awareness:training_completion:ratio"), kind="completion"),
        Col("vs threshold", _max("@awareness:training_completion:ratio") + " - on (platform, account) "
            + _max("@awareness:completion_threshold"), kind="completion_gap"),
        Col("Behind", _max("@awareness:users_overdue:sum")),
        Col("Click", _max("@awareness:phishing_click:ratio"), kind="click"),
        Col("Submit", _max("@awareness:phishing_submit:ratio"), kind="submit"),
    ]
    if any(s.reports for s in specs):
        cols.append(Col("Report", _max("@awareness:phishing_report:ratio"), kind="report"))
    desc = ("One row per platform and account, the lowest training completion first. State: "
            "the share of the source's sections whose last poll worked. Data age: time since "
            "the newest successful section, in poll intervals (AwarenessSourceDataStale at 4). "
            + " ".join(f"{s.title}: {v}." for s in specs for k, v in s.defines.items()
                       if k == "behind"))
    b = table_panel("Accounts", desc, cols, "Completion", desc_sort=False, h=8)
    return link_column(b, "account", "Open ${__data.fields.platform} · ${__data.fields.account}",
                       "/d/awareness-${__data.fields.platform}?${datasource:queryparam}"
                       "&var-account=${__data.fields.account}&${__url_time_range}")


def health_row():
    """Source state over time and the age of each source's data, worst first."""
    return [
        state_panel("Source state", "The share of each source's sections whose last poll "
                    "worked: OK all, DEGRADED some (AwarenessSectionDown), DOWN none "
                    "(AwarenessSourceDown).",
                    _max("@awareness:source_sections_up:ratio"), "{{platform}} · {{account}}",
                    STATE_MAPPING, w=16, h=6),
        bar_panel("Data age in poll intervals", "Time since the newest successful section of "
                  "each source, in its own poll intervals. AwarenessSourceDataStale fires at 4 "
                  "(and at least 1h).",
                  Q("sort_desc(" + _max("@awareness:source_data_age:intervals") + ")",
                    "{{platform}} · {{account}}"),
                  kind="data_age", unit="none", w=8, h=6, decimals=1, basic=True),
    ]


def trends_row(specs):
    """Completion against its threshold and the phishing rates, per platform·account."""
    legend = "{{platform}} · {{account}}"
    return [
        timeseries_panel("Training completion and threshold", _explain("completion", specs)
                         + " The dashed lines are the alert thresholds "
                         "(awareness:completion_threshold).",
                         Q(_max("@awareness:training_completion:ratio"), legend),
                         Q(_max("@awareness:completion_threshold"), "threshold · " + legend),
                         kind="completion", w=8, dashed=("B",)),
        timeseries_panel("Users behind on training", _explain("behind", specs),
                         Q(_max("@awareness:users_overdue:sum"), legend), w=8),
        timeseries_panel("Phishing click, submit and report rates", "Of the simulated phishing "
                         "emails sent: clicked, data submitted, reported.",
                         Q(_max("@awareness:phishing_click:ratio"), "clicked · " + legend),
                         Q(_max("@awareness:phishing_submit:ratio"), "submitted · " + legend),
                         Q(_max("@awareness:phishing_report:ratio"), "reported · " + legend),
                         kind="click", w=8),
    ]


ANNOTATIONS = [
    ("Sources down", "max by (platform, account) (@awareness_up == 0)",
     "{{platform}} · {{account}} down", "red"),
    ("Alerts", 'ALERTS{alertstate="firing", alertname=~"Awareness.*"}',
     "{{alertname}} {{platform}} {{account}}", "orange"),
]


# ---------------------------------------------------------------- the platform spec
@dataclasses.dataclass
class Group:
    """The label a platform breaks its users down by, and a series that has every value."""
    label: str
    users: str


@dataclasses.dataclass
class Row:
    title: str
    panels: list


@dataclasses.dataclass
class Platform:
    name: str  # the `platform` label, the dashboard's uid awareness-<name>
    title: str
    description: str
    group: Group
    group_panels: list  # the "By <group>" row: a table of every group and the worst 15
    rows: list = dataclasses.field(default_factory=list)  # collapsed, below
    defines: dict = dataclasses.field(default_factory=dict)  # users, completion, behind, ...
    reports: bool = False  # has awareness:phishing_report:ratio
    variables: list = dataclasses.field(default_factory=list)  # (name, label, series)
    overview_panels: list = dataclasses.field(default_factory=list)  # <= 3
    ops_panels: list = dataclasses.field(default_factory=list)
    # awareness-people: one table of its per-user series (metrics.per_user), sorted by the first
    people: list = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------- dashboards
def variable(name, label, query, all_value=".+", hide=False):
    v = (dashboard.QueryVariable(name).label(label).datasource(DS).query(query)
         .multi(True).include_all(True).all_value(all_value)
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC))
    return v.hide(dm.VariableHide.HIDE_VARIABLE) if hide else v


def base(uid, title, description, tags, scope, time_from="now-30d", refresh="5m",
         hide_instance=True, extra_variables=()):
    """A read-only dashboard with the datasource, job, instance (, platform) and account
    variables and the link to the other awareness dashboards."""
    sel = Scope(platform=scope.platform, variables=scope.variables)
    up = sel.expr("@awareness_up")
    d = (dashboard.Dashboard(title).uid(uid).description(description).tags(tags).readonly()
         .time(time_from, "now").refresh(refresh).timezone("").tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
         .with_variable(variable("job", "Job", "label_values(awareness_build_info, job)"))
         .with_variable(variable("instance", "Instance",
                                 'label_values(awareness_build_info{job=~"$job"}, instance)',
                                 hide=hide_instance)))
    if "platform" in scope.variables:
        d = d.with_variable(variable("platform", "Platform", f"label_values({up}, platform)"))
    d = d.with_variable(variable("account", "Account", f"label_values({up}, account)"))
    for v in extra_variables:
        d = d.with_variable(v)
    return d.link(dashboard.DashboardLink("Awareness dashboards").type(dm.DashboardLinkType.DASHBOARDS)
                  .tags(["awareness"]).as_dropdown(True).keep_time(True).include_vars(True)
                  .icon("external link"))


def add_rows(d, rows):
    """rows: (title, panels, collapsed)."""
    for title, panels, collapsed in rows:
        if not panels:
            continue
        if collapsed:
            row = dashboard.Row(title)
            for p in panels:
                row = row.with_panel(p)
            d = d.with_row(row)
        else:
            d = d.with_row(dashboard.Row(title))
            for p in panels:
                d = d.with_panel(p)
    return d


def annotations(scope):
    """Regions where a source is down and where an awareness alert fires."""
    return [{"datasource": {"type": "prometheus", "uid": "${datasource}"}, "enable": True,
             "hide": False, "iconColor": color, "name": name, "expr": scope.expr(expr),
             "step": "1m", "titleFormat": title, "tagKeys": "platform,account",
             "useValueForTime": False}
            for name, expr, title, color in ANNOTATIONS]


def platform_dashboard(spec):
    """awareness-<platform>: Data · Program · By <group>, then the spec's rows collapsed."""
    scope = Scope(platform=spec.name, group=spec.group.label)
    g = spec.group.label
    group_var = variable(g, g.capitalize(),
                         f"label_values({scope.expr('@' + spec.group.users)}, {g})", all_value=".*")
    extra = [group_var] + [variable(name, label, f"label_values({scope.expr('@' + series)}, {lbl})")
                           for name, label, series, lbl in spec.variables]
    d = base(f"awareness-{spec.name}", f"Awareness / {spec.title}", spec.description,
             ["awareness", "awareness-program", spec.name], scope, extra_variables=extra)
    d = add_rows(d, [("Data", health_row(), False),
                     ("Program", program_row([spec], reports=spec.reports), False),
                     (f"By {g}", spec.group_panels, False)]
                 + [(r.title, r.panels, True) for r in spec.rows]
                 + [("Operations", spec.ops_panels, True)])
    return d, scope

"""awareness-overview: the programme across platforms and accounts. Program · Accounts · Trends,
then one collapsed row per platform with its spec's overview panels."""
import lib


def dashboard(specs):
    scope = lib.Scope(variables=("job", "instance", "platform", "account"))
    d = lib.base("awareness-overview", "Awareness / Overview",
                 "Security awareness training across platforms and accounts: training completion, "
                 "users behind, phishing simulation results and the state of each source. Uses the "
                 "recording rules of deploy/prometheus/awareness.rules.yml.",
                 ["awareness", "awareness-program"], scope)
    d = lib.add_rows(d, [("Program", lib.program_row(specs), False),
                         ("Accounts", [lib.accounts_table(specs)], False),
                         ("Trends", lib.trends_row(specs), False)]
                     + [(s.title, [data_age(s)] + s.overview_panels, True) for s in specs])
    return d, scope


def data_age(spec):
    """The platform's row starts with how fresh its data is."""
    return lib.bar_panel(f"{spec.title} data age in poll intervals", "Time since the newest "
                         "successful section of each source, in its own poll intervals "
                         "(AwarenessSourceDataStale at 4).",
                         lib.Q("sort_desc(max by (platform, account) (@awareness:source_data_age:"
                               f'intervals{{platform="{spec.name}"}}))', "{{account}}"),
                         kind="data_age", unit="none", w=8, h=6, decimals=1, basic=True)

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
                     + [(s.title, s.overview_panels, True) for s in specs])
    return d, scope

"""awareness-people: the per-user tables, one per platform. Its series exist only with
metrics.per_user = true; it lives apart from the programme dashboards (deploy/kubernetes puts it
in its own Grafana folder) so that who may see names can be decided on its own."""
import lib


def dashboard(specs):
    scope = lib.Scope(variables=("job", "instance", "account"))
    d = lib.base("awareness-people", "Awareness / People",
                 "Per-user training and phishing figures (series with an `email` label, only "
                 "with metrics.per_user = true, at most metrics.max_users users a source). "
                 "Personal data: keep this dashboard in a folder only those who may see it can "
                 "open.", ["awareness", "awareness-per-user"], scope)
    rows = []
    for spec in specs:
        if spec.people:
            table = lib.table_panel(f"{spec.title} users", f"One row per {spec.title} user, the "
                                    f"highest {spec.people[0].name.lower()} first. Empty unless "
                                    "the account sets metrics.per_user = true.",
                                    spec.people, spec.people[0].name, w=24, h=10)
            rows.append((spec.title, [table], False))
    return lib.add_rows(d, rows), scope

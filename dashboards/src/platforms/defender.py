"""Microsoft Defender Attack Simulation Training (Microsoft Graph): attack simulations and their
events, assigned trainings, simulated, compromised and repeat-offending users."""
from lib import Col, Group, Platform, Q, Row, stat_panel, table_panel, timeseries_panel, \
    worst_panel

ACCOUNT = "{{account}}"
SIM = "{{simulation}} ({{account}})"
DELIVERED = 'event=~"SuccessfullyDelivered(E)?[Mm]ail"'


def per_sim(metric, extra="", agg="max"):
    return f"{agg} by (account, simulation_id, simulation) (@{metric}{extra})"


def events(extra):
    return per_sim("awareness_defender_simulation_events", f"{{{extra}}}", "sum")


TRAINING = "sum by (account, training) (@awareness_defender_training_assignments{})"

SPEC = Platform(
    name="defender",
    title="Microsoft Defender",
    description="Microsoft Defender Attack Simulation Training (Microsoft Graph): attack "
                "simulations and their events, assigned trainings, simulated, compromised and "
                "repeat-offending users.",
    group=Group("simulation", users="awareness_defender_simulation_targeted_users"),
    reports=True,
    defines={"users": "the users the simulation user coverage report lists (the tenant's users)",
             "completion": "training assignments completed, of all assignments (training user "
                           "coverage)",
             "behind": "users with at least one training in status overdue",
             "click": "users who clicked (EmailLinkClicked), of those delivered, over the "
                      "simulations launched within the lookback",
             "submit": "users who supplied credentials (CredSupplied), of those delivered",
             "report": "users who reported the message (ReportedEmail), of those delivered"},
    group_panels=[
        table_panel("Simulations", "The attack simulations launched within the lookback, the "
                    "newest first. Rates are % of delivered messages; compromised is Graph's "
                    "compromisedRate / 100 of the targeted users.", [
                        Col("Launched", per_sim("awareness_defender_simulation_launch_timestamp_"
                                                "seconds") + " * 1000", unit="dateTimeAsIso"),
                        Col("Targeted", per_sim("awareness_defender_simulation_targeted_users")),
                        Col("Delivered", events(DELIVERED)),
                        Col("Clicked", per_sim("awareness:defender_simulation_phishing_click:"
                                               "ratio"), kind="click"),
                        Col("Compromised", per_sim("awareness_defender_simulation_compromised_"
                                                   "ratio"), kind="submit"),
                        Col("Reported", per_sim("awareness:defender_simulation_phishing_report:"
                                                "ratio"), kind="report"),
                    ], "Launched", w=16, h=10),
        worst_panel("Which simulations compromise most", "Share of the targeted users who were "
                    "compromised, for the 15 simulations (of at least 10 targeted users) with "
                    "the most.",
                    "@awareness_defender_simulation_compromised_ratio and on (job, instance, "
                    "account, simulation_id) @awareness_defender_simulation_targeted_users >= 10",
                    "submit", SIM, w=8, h=10),
    ],
    rows=[
        Row("Simulation events", [
            timeseries_panel("Events by simulation", "Users with each simulation event, as "
                             "Graph names it (the delivered event is spelled "
                             "SuccessfullyDeliveredEmail or ...Mail).",
                             Q("sum by (account, simulation, event) "
                               "(@awareness_defender_simulation_events)",
                               "{{simulation}} · {{event}}")),
            timeseries_panel("Simulations by status", "Every simulation of the tenant by "
                             "status as Graph sends it (running, succeeded, scheduled, draft, "
                             "...; older tenants inProgress, completed).",
                             Q("sum by (account, status) (@awareness_defender_simulations)",
                               "{{account}} · {{status}}")),
            table_panel("Trainings assigned by simulations", "Users each simulation assigned a "
                        "training to, and who completed it.", [
                            Col("Assigned", "sum by (account, simulation, training) "
                                "(@awareness_defender_simulation_training_users"
                                '{state="assigned"})'),
                            Col("Completed", "sum by (account, simulation, training) "
                                "(@awareness_defender_simulation_training_users"
                                '{state="completed"})'),
                        ], "Assigned", h=8),
        ]),
        Row("Training", [
            stat_panel("Users with overdue training", "Users with at least one training in "
                       "status overdue (deleted users the report still lists count too).",
                       Q("sum(@awareness_defender_users_overdue)", "overdue"), w=6, h=8),
            timeseries_panel("Training assignments by status", "Training assignments of the "
                             "training user coverage report by status as Graph sends it.",
                             Q("sum by (account, status) "
                               "(@awareness_defender_training_assignments)",
                               "{{account}} · {{status}}"), w=18),
            table_panel("Assignments by training", "Training assignments per training; names "
                        "beyond metrics.max_label_values are summed into __other__.", [
                            Col("Assignments", TRAINING.format("")),
                            Col("Completed", TRAINING.format('{status="completed"}') + " or 0 * "
                                + TRAINING.format("")),
                            Col("Overdue", TRAINING.format('{status="overdue"}') + " or 0 * "
                                + TRAINING.format("")),
                        ], "Overdue", h=8),
        ]),
        Row("Users", [
            timeseries_panel("Simulated, compromised and repeat offenders", "Distinct users "
                             "ever included in a simulation, ever compromised, and compromised "
                             "more than once.",
                             Q("sum by (account) (@awareness_defender_users_simulated)",
                               "{{account}} · simulated"),
                             Q("sum by (account) (@awareness_defender_users_compromised)",
                               "{{account}} · compromised"),
                             Q("sum by (account) (@awareness_defender_repeat_offenders)",
                               "{{account}} · repeat offenders"), w=24),
        ]),
    ],
    overview_panels=[
        stat_panel("Defender newest simulation: compromised", "Share of the targeted users the "
                   "newest reported simulation of each tenant compromised "
                   "(AwarenessDefenderSimulationCompromiseHigh above 10%).",
                   Q("@awareness:defender_latest_simulation_compromised:ratio", SIM),
                   kind="submit", w=8, h=6),
        stat_panel("Defender repeat offenders", "Users who yielded to attack simulations more "
                   "than once.", Q("@awareness_defender_repeat_offenders", ACCOUNT), w=8, h=6),
    ],
    people=[
        Col("Compromised", "max by (account, email) (@awareness_defender_user_compromised)"),
        Col("Repeat offences", "max by (account, email) "
            "(@awareness_defender_user_repeat_offences)"),
    ],
)

"""Proofpoint Security Awareness (ZenGuide Results API): users by department, training
enrollments by assignment, phishing campaigns, PhishAlarm reports and knowledge assessments."""
from lib import Col, Group, Platform, Q, Row, bar_panel, stat_panel, table_panel, \
    timeseries_panel, worst_panel

ACCOUNT = "{{account}}"
DEPT = "{{department}} ({{account}})"
CAMPAIGN = 'campaign=~"$phishing_campaign"'


def per_dept(metric):
    return f"sum by (account, department) (@{metric})"


def recipients(outcome, by="account, campaign"):
    return (f"sum by ({by}) (@awareness_proofpoint_phishing_recipients"
            f'{{{CAMPAIGN}, outcome="{outcome}"}})')


def of_sent(outcome):
    return f"{recipients(outcome)} / ({recipients('sent')} > 0)"


BEHIND = (f"{per_dept('awareness_proofpoint_users_overdue')} / "
          f"({per_dept('awareness_proofpoint_users')} > 0)")
ASSIGNMENT = "sum by (account, assignment) (@awareness_proofpoint_enrollments{})"

SPEC = Platform(
    name="proofpoint",
    title="Proofpoint",
    description="Proofpoint Security Awareness (ZenGuide Results API): users by department, "
                "training enrollments by assignment, phishing campaigns, PhishAlarm reports and "
                "knowledge assessments.",
    group=Group("department", users="awareness_proofpoint_users"),
    variables=[("phishing_campaign", "Phishing campaign", "awareness_proofpoint_phishing_recipients",
                "campaign")],
    reports=True,
    defines={"users": "active users of /users, each e-mail address once, by the department "
                      "user tag",
             "completion": "training enrollments (user x module) Completed, of all enrollments",
             "behind": "active users with at least one enrollment Overdue",
             "click": "users who clicked, of the users each phishing campaign was sent to, over "
                      "the campaigns of the lookback",
             "submit": "users who submitted data, of the users sent",
             "report": "users who reported the simulated phish, of the users sent"},
    group_panels=[
        table_panel("Departments", "Every department (the configured user tag), the most users "
                    "behind first.", [
                        Col("Users", per_dept("awareness_proofpoint_users")),
                        Col("Users overdue", per_dept("awareness_proofpoint_users_overdue")),
                        Col("Behind", BEHIND, kind="behind"),
                    ], "Behind", w=12, h=10),
        worst_panel("Users behind by department", "Active users with an overdue enrollment, of "
                    "the department's users: the 15 departments (of at least 5 users) most "
                    "behind.", f"({BEHIND}) and {per_dept('awareness_proofpoint_users')} >= 5",
                    "behind", DEPT, h=10),
    ],
    rows=[
        Row("Training enrollments", [
            worst_panel("Completion by assignment", "Enrollments Completed, of the assignment's "
                        "enrollments: the 15 least completed assignments.",
                        "@awareness:proofpoint_assignment_training_completion:ratio",
                        "completion", "{{assignment}} ({{account}})", w=12),
            worst_panel("Overdue share by assignment", "Enrollments Overdue (not started or in "
                        "progress), of the assignment's enrollments: the 15 assignments with the "
                        "most (AwarenessProofpointEnrollmentsOverdue fires above 15%).",
                        "@awareness:proofpoint_assignment_overdue:ratio", "behind",
                        "{{assignment}} ({{account}})", w=12),
            table_panel("Assignments", "Training enrollments (user x module) per assignment.", [
                Col("Enrollments", ASSIGNMENT.format("")),
                Col("Completed", ASSIGNMENT.format('{status="completed"}')),
                Col("Overdue", ASSIGNMENT.format('{status=~"overdue_.+"}')),
                Col("Completion", "max by (account, assignment) "
                    "(@awareness:proofpoint_assignment_training_completion:ratio)",
                    kind="completion"),
            ], "Overdue", h=8),
            timeseries_panel("Enrollments by status", "Training enrollments by module status.",
                             Q("sum by (account, status) (@awareness_proofpoint_enrollments)",
                               "{{account}} · {{status}}"), w=24),
        ]),
        Row("Phishing campaigns", [
            table_panel("Phishing campaigns", "One row per campaign of the lookback, the most "
                        "users sent first. Rates are distinct users, of the users sent.", [
                            Col("Sent", recipients("sent")),
                            Col("Clicked", of_sent("clicked"), kind="click"),
                            Col("Submitted data", of_sent("data_submitted"), kind="submit"),
                            Col("Reported", of_sent("reported"), kind="report"),
                            Col("Failed", "max by (account, campaign) (@awareness_proofpoint_"
                                f"phishing_failure_ratio{{{CAMPAIGN}}})", kind="click"),
                        ], "Sent", w=16),
            bar_panel("Phishing funnel", "Distinct users of the selected campaigns by outcome.",
                      *[Q(recipients(o, "outcome"), o) for o in
                        ("sent", "viewed", "clicked", "data_submitted", "attachment_opened",
                         "reported")], w=8, h=9),
        ]),
        Row("PhishAlarm and assessments", [
            timeseries_panel("Reported e-mails by type", "E-mails users reported with the "
                             "PhishAlarm button: simulated phish, potential (real) phish, and "
                             "platform notifications.",
                             Q("sum by (account, email_type) (@awareness_proofpoint_reported_emails)",
                               "{{account}} · {{email_type}}")),
            bar_panel("Correct answers by assessment", "Correct, of the answered questions of "
                      "each knowledge assessment.",
                      Q("sort(@awareness_proofpoint_assessment_correct_ratio)",
                        "{{assessment}} ({{account}})"), kind="completion"),
        ]),
    ],
    people=[
        Col("Campaigns failed", "max by (account, email) "
            "(@awareness_proofpoint_user_phishing_failures)"),
        Col("Overdue enrollments", "max by (account, email) "
            "(@awareness_proofpoint_user_enrollments_overdue)"),
    ],
    overview_panels=[
        stat_panel("Proofpoint potential phish reported", "Real suspicious e-mails users "
                   "reported with PhishAlarm (rows of /phishalarm of type Potential Phish).",
                   Q('@awareness_proofpoint_reported_emails{email_type="potential_phish"}',
                     ACCOUNT), w=8, h=6),
        stat_panel("Proofpoint assessment correct answers", "Correct, of all answered "
                   "knowledge-assessment questions.",
                   Q("sum by (account) (@awareness_proofpoint_assessment_answers{result=\"correct\"}) / "
                     "(sum by (account) (@awareness_proofpoint_assessment_answers) > 0)", ACCOUNT),
                   kind="completion", w=8, h=6),
    ],
    ops_panels=[
        stat_panel("Proofpoint budget refusals (24h)", "HTTP 402 \"API Budget Empty\" answers in "
                   "the last 24 hours (AwarenessProofpointBudgetEmpty).",
                   Q('sum by (account) (increase(@awareness_api_request_failures_total'
                     '{reason="quota"}[1d])) or on (account) 0 * sum by (account) '
                     '(@awareness_up{platform="proofpoint"})', ACCOUNT), kind="any_is_bad", w=6, h=6),
    ],
)

"""KnowBe4 (KSAT Reporting API): training enrollments, phish-prone and risk scores, phishing
security tests, and the Reporting API quota."""
from lib import Col, Group, Platform, Q, Row, bar_panel, stat_panel, table_panel, \
    timeseries_panel, worst_panel

ACCOUNT = "{{account}}"


def or_zero(expr, total):
    return f"{expr} or 0 * {total}"


MODULE = "sum by (account, module) (@awareness_knowbe4_module_enrollments{})"
PHISH_PRONE = ("Mean of the active users' phish_prone_percentage / 100; not the console's "
               "test-based organization figure.")

SPEC = Platform(
    name="knowbe4",
    title="KnowBe4",
    description="KnowBe4 (KSAT Reporting API): training enrollments, phish-prone and risk "
                "scores, phishing security tests, and the Reporting API quota.",
    group=Group("department", users="awareness_knowbe4_users"),
    reports=True,
    defines={"users": "active users (/v1/users?status=active)",
             "completion": "enrollments Completed or Passed, of all enrollments",
             "behind": "users with at least one enrollment in status Past Due",
             "click": "recipients who clicked, of those delivered, over the published phishing "
                      "security tests",
             "submit": "recipients who entered data, of those delivered",
             "report": "recipients who reported the test with the Phish Alert Button, of those "
                       "delivered"},
    group_panels=[
        table_panel("Departments", "Every department, the most phish-prone first.", [
            Col("Users", "sum by (account, department) (@awareness_knowbe4_users)"),
            Col("Phish-prone", "max by (account, department) (@awareness_knowbe4_phish_prone_ratio)",
                kind="phish_prone"),
        ], "Phish-prone", w=12, h=10),
        worst_panel("Phish-prone by department", "Mean phish-prone ratio of the department's "
                    "active users: the 15 departments (of at least 5 users) most phish-prone.",
                    "@awareness_knowbe4_phish_prone_ratio and on (job, instance, account, "
                    "department) @awareness_knowbe4_users >= 5", "phish_prone",
                    "{{account}} · {{department}}", h=10),
    ],
    rows=[
        Row("Training", [
            stat_panel("Past Due enrollments", 'Enrollments in status "Past Due" (KnowBe4\'s '
                       "overdue signal).",
                       Q('sum(@awareness_knowbe4_enrollments{status="past_due"})', "past due"),
                       w=6, h=8),
            worst_panel("Completion by campaign", "Enrollments Completed or Passed, of the "
                        "campaign's enrollments: the 15 least completed campaigns.",
                        "@awareness:knowbe4_campaign_training_completion:ratio", "completion",
                        "{{account}} · {{campaign}}", w=9),
            worst_panel("Past Due share by campaign", 'Enrollments in status "Past Due", of the '
                        "campaign's enrollments: the 15 campaigns with the most.",
                        "@awareness:knowbe4_campaign_overdue:ratio", "behind",
                        "{{account}} · {{campaign}}", w=9),
            timeseries_panel("Enrollments by status", "Training enrollments by status.",
                             Q("sum by (account, status) (@awareness_knowbe4_enrollments)",
                               "{{account}} · {{status}}")),
            timeseries_panel("Training campaigns by status", "Training campaigns by status.",
                             Q("sum by (account, status) (@awareness_knowbe4_training_campaigns)",
                               "{{account}} · {{status}}")),
            table_panel("Enrollments by module", "Training enrollments per module (or policy).", [
                Col("Enrollments", MODULE.format("")),
                Col("Completed or passed", or_zero(MODULE.format('{status=~"completed|passed"}'),
                                                   MODULE.format(""))),
                Col("Past Due", or_zero(MODULE.format('{status="past_due"}'), MODULE.format(""))),
            ], "Past Due", h=8),
        ]),
        Row("Phish-prone and risk", [
            stat_panel("Phish-prone (users' mean)", PHISH_PRONE,
                       Q("avg(@awareness_knowbe4_account_phish_prone_ratio)", "phish-prone"),
                       kind="phish_prone", w=6, h=9),
            stat_panel("Risk score", "The organization's current risk score (1 least to 100 most "
                       "risky).", Q("max(@awareness_knowbe4_risk_score)", "risk score"),
                       kind="risk", unit="none", w=6, h=9),
            worst_panel("Phish-prone by group", "Mean phish-prone ratio of the group's active "
                        "users: the 15 most phish-prone groups.",
                        "@awareness_knowbe4_group_phish_prone_ratio", "phish_prone",
                        "{{account}} · {{group}}", w=6, h=9),
            bar_panel("Risk score by group", "The group's current risk score (1 least to 100 most "
                      "risky).", Q("sort_desc(@awareness_knowbe4_group_risk_score)",
                                   "{{account}} · {{group}}"),
                      kind="risk", unit="none", w=6, h=9),
            timeseries_panel("Users by department", "Active users by department.",
                             Q("sum by (account, department) (@awareness_knowbe4_users)",
                               "{{account}} · {{department}}")),
            timeseries_panel("Risk score and phish-prone", "The organization's risk score / 100 "
                             "beside the users' mean phish-prone ratio.",
                             Q("max by (account) (@awareness_knowbe4_risk_score) / 100",
                               "{{account}} · risk score / 100"),
                             Q("max by (account) (@awareness_knowbe4_account_phish_prone_ratio)",
                               "{{account}} · phish-prone"), kind="phish_prone"),
        ]),
        Row("Phishing security tests", [
            timeseries_panel("Phishing funnel (published tests)", "Recipients by outcome, summed "
                             "over the published tests.",
                             Q("sum by (account, outcome) (@awareness_knowbe4_security_test_recipients"
                               '{outcome=~"delivered|opened|clicked|data_entered|reported"})',
                               "{{account}} · {{outcome}}")),
            bar_panel("Click rate by target group", "Clicked of delivered, summed over the tests "
                      "aimed at the group (a test aimed at several groups counts in each).",
                      Q('sort_desc(sum by (account, group) (@awareness_knowbe4_group_security_test_'
                        'recipients{outcome="clicked"}) / (sum by (account, group) (@awareness_'
                        'knowbe4_group_security_test_recipients{outcome="delivered"}) > 0))',
                        "{{account}} · {{group}}"), kind="click"),
            table_panel("Phishing security tests", "The newest tests (at most "
                        "metrics.max_label_values). Recurring tests repeat their campaign's name: "
                        "test_id tells them apart. Rates are % of delivered.", [
                            Col("Delivered", "max by (account, test_id, test) (@awareness_knowbe4_"
                                'security_test_recipients{outcome="delivered"})'),
                            Col("Clicked", "max by (account, test_id, test) "
                                "(@awareness:knowbe4_test_phishing_click:ratio)", kind="click"),
                            Col("Reported", "max by (account, test_id, test) "
                                "(@awareness:knowbe4_test_phishing_report:ratio)", kind="report"),
                            Col("Phish-prone", "max by (account, test_id, test) "
                                "(@awareness_knowbe4_security_test_phish_prone_ratio)",
                                kind="phish_prone"),
                        ], "Clicked", w=16),
            timeseries_panel("Security tests by status", "Phishing security tests by status.",
                             Q("sum by (account, status) (@awareness_knowbe4_security_tests)",
                               "{{account}} · {{status}}"), w=8, h=9),
        ]),
    ],
    overview_panels=[
        stat_panel("KnowBe4 phish-prone (users' mean)", PHISH_PRONE,
                   Q("@awareness_knowbe4_account_phish_prone_ratio", ACCOUNT),
                   kind="phish_prone", w=8, h=6),
        stat_panel("KnowBe4 risk score", "The organization's current risk score (1 least to 100 "
                   "most risky).", Q("@awareness_knowbe4_risk_score", ACCOUNT), kind="risk",
                   unit="none", w=8, h=6),
    ],
    people=[
        Col("Phish-prone", "max by (account, email) (@awareness_knowbe4_user_phish_prone_ratio)",
            kind="phish_prone"),
        Col("Risk score", "max by (account, email) (@awareness_knowbe4_user_risk_score)",
            kind="risk"),
    ],
    ops_panels=[
        stat_panel("KnowBe4 Reporting API requests left today", "2,000 + licensed users a day, "
                   "minus the requests this exporter counted over the last 24 hours. "
                   "AwarenessKnowBe4QuotaLow fires below two polls' worth.",
                   Q("@awareness_knowbe4_api_quota_remaining", ACCOUNT), w=6, h=6),
        stat_panel("KnowBe4 licensed users", "Licensed seats of the account (absent for trial "
                   "accounts).", Q("@awareness_knowbe4_licensed_users", ACCOUNT), w=6, h=6),
        timeseries_panel("KnowBe4 quota: remaining and daily limit", "Reporting API requests left "
                         "of the daily quota, and the quota.",
                         Q("@awareness_knowbe4_api_quota_remaining", "{{account}} · remaining"),
                         Q("@awareness_knowbe4_api_quota_limit", "{{account}} · daily limit"),
                         h=6),
        timeseries_panel("KnowBe4 requests a poll and its budget", "When a poll needs more than "
                         "its budget, lengthen the account's interval "
                         "(AwarenessKnowBe4PollOverBudget).",
                         Q("@awareness_knowbe4_api_poll_requests",
                           "{{account}} · requests of the latest poll"),
                         Q("@awareness_knowbe4_api_poll_budget", "{{account}} · budget a poll"),
                         w=24, h=7),
    ],
)

"""CyberPilot: users, courses and phishing campaigns summed per branch."""
from lib import Col, Group, Platform, Q, Row, bar_panel, stat_panel, table_panel, \
    timeseries_panel, worst_panel

BRANCH = "{{account}} · {{branch}}"
OVERDUE = "CyberPilot's overdueCourses counts overdue or incomplete courses or materials."


def per_branch(metric):
    return f"sum by (account, branch) (@{metric})"


def enough_users(expr):
    """Branch ratios only for branches of at least 5 users (the alerts' floor)."""
    return f"{expr} and on (job, instance, account, branch) @awareness_cyberpilot_users >= 5"


def enough_emails(expr):
    """Phishing ratios only for branches sent at least 10 emails (the alerts' floor)."""
    return f"{expr} and on (job, instance, account, branch) @awareness_cyberpilot_phishing_emails_sent >= 10"


SCORE = ("sum by (account) (@awareness_cyberpilot_average_score * @awareness_cyberpilot_users) "
         "/ sum by (account) (@awareness_cyberpilot_users)")

SPEC = Platform(
    name="cyberpilot",
    title="CyberPilot",
    description="CyberPilot training and phishing simulation results by branch.",
    group=Group("branch", users="awareness_cyberpilot_users"),
    defines={"users": "users of all branches",
             "completion": "1 - not completed / enrolled courses",
             "behind": "users with at least one overdue course or material (overdueCourses > 0)",
             "click": "campaigns in which a user clicked, of the campaigns users were sent",
             "submit": "campaigns in which a user submitted data, of the campaigns users were sent"},
    group_panels=[
        table_panel("Branches", "Every branch, the lowest course completion first (sums over "
                    "the branch's users). " + OVERDUE, [
                        Col("Users", per_branch("awareness_cyberpilot_users")),
                        Col("Course completion", "max by (account, branch) "
                            "(@awareness:cyberpilot_branch_training_completion:ratio)",
                            kind="completion"),
                        Col("Users overdue", per_branch("awareness_cyberpilot_users_overdue")),
                        Col("Courses overdue", per_branch("awareness_cyberpilot_courses_overdue")),
                        Col("Click rate", "max by (account, branch) "
                            "(@awareness:cyberpilot_branch_phishing_click:ratio)", kind="click"),
                        Col("Submit rate", "max by (account, branch) "
                            "(@awareness:cyberpilot_branch_phishing_submit:ratio)", kind="submit"),
                        Col("Average score", "max by (account, branch) "
                            "(@awareness_cyberpilot_average_score)", unit="none"),
                        Col("Courses enrolled", per_branch("awareness_cyberpilot_courses_enrolled")),
                        Col("Courses not completed",
                            per_branch("awareness_cyberpilot_courses_not_completed")),
                        Col("Materials enrolled",
                            per_branch("awareness_cyberpilot_materials_enrolled")),
                        Col("Materials not completed",
                            per_branch("awareness_cyberpilot_materials_not_completed")),
                        Col("Phishing emails sent",
                            per_branch("awareness_cyberpilot_phishing_emails_sent")),
                        Col("Users who clicked", per_branch("awareness_cyberpilot_users_clicked")),
                    ], "Course completion", desc_sort=False, w=16, h=10),
        worst_panel("Course completion by branch", "The 15 branches (of at least 5 users) with "
                    "the lowest share of completed courses.",
                    enough_users("@awareness:cyberpilot_branch_training_completion:ratio"),
                    "completion", BRANCH, w=8, h=10),
    ],
    rows=[
        Row("Training by branch", [
            timeseries_panel("Overdue courses by branch", OVERDUE,
                             Q(per_branch("awareness_cyberpilot_courses_overdue"), BRANCH)),
            timeseries_panel("Users with overdue courses by branch", OVERDUE,
                             Q(per_branch("awareness_cyberpilot_users_overdue"), BRANCH)),
            timeseries_panel("Not-completed courses and materials by branch",
                             "Enrolled courses and materials not completed yet.",
                             Q(per_branch("awareness_cyberpilot_courses_not_completed"),
                               "courses · " + BRANCH),
                             Q(per_branch("awareness_cyberpilot_materials_not_completed"),
                               "materials · " + BRANCH)),
        ]),
        Row("Phishing simulations by branch", [
            timeseries_panel("Emails sent, links clicked, data submitted", "Sums over the "
                             "selected branches' users: campaigns each user was sent, clicked "
                             "in, submitted data in.",
                             Q("sum by (account) (@awareness_cyberpilot_phishing_emails_sent)",
                               "sent · {{account}}"),
                             Q("sum by (account) (@awareness_cyberpilot_phishing_links_clicked)",
                               "clicked · {{account}}"),
                             Q("sum by (account) (@awareness_cyberpilot_phishing_data_submitted)",
                               "submitted · {{account}}")),
            timeseries_panel("Users who clicked by branch", "Users who clicked at least one "
                             "phishing link.",
                             Q(per_branch("awareness_cyberpilot_users_clicked"), BRANCH), w=8),
            stat_panel("Active phishing campaign enrolments", "Sum over users of the active "
                       "phishing campaigns each is part of.",
                       Q("sum(@awareness_cyberpilot_phishing_campaigns_active)", "active"), h=8),
            worst_panel("Link-click rate by branch", "Links clicked / emails sent: the 15 "
                        "branches (sent at least 10 emails) that click most.",
                        enough_emails("@awareness:cyberpilot_branch_phishing_click:ratio"),
                        "click", BRANCH),
            worst_panel("Data-submission rate by branch", "Data submitted / emails sent: the 15 "
                        "branches (sent at least 10 emails) that submit most.",
                        enough_emails("@awareness:cyberpilot_branch_phishing_submit:ratio"),
                        "submit", BRANCH),
        ]),
        Row("Scores", [
            bar_panel("Average score by branch", "Users with no completed course (CyberPilot "
                      "sends them averageScore 0) are left out.",
                      Q("@awareness_cyberpilot_average_score", BRANCH), kind="score",
                      decimals=1),
            timeseries_panel("Average score", "Mean of the users' average scores (branch "
                             "averages weighted by users). Users with no completed course are "
                             "left out.", Q(SCORE, "{{account}}"), decimals=1),
        ]),
    ],
    people=[
        Col("Courses overdue", "max by (account, email) (@awareness_cyberpilot_user_courses_overdue)",
            kind="any_is_bad"),
        Col("Courses not completed",
            "max by (account, email) (@awareness_cyberpilot_user_courses_not_completed)"),
        Col("Phishing links clicked",
            "max by (account, email) (@awareness_cyberpilot_user_phishing_links_clicked)",
            kind="any_is_bad"),
        Col("Average score", "max by (account, email) (@awareness_cyberpilot_user_average_score)",
            unit="none"),
    ],
    overview_panels=[
        stat_panel("CyberPilot average score", "Mean of the users' average scores (branch "
                   "averages weighted by users); users with no completed course are left out.",
                   Q(SCORE, "{{account}}"), kind="score", w=8, h=6, decimals=1),
    ],
)

"""Mimecast Awareness Training: company summary, departments, SAFE score, training and phishing
campaigns, training modules."""
from lib import Col, Group, Platform, Q, Row, bar_panel, pie_panel, stat_panel, table_panel, \
    timeseries_panel, worst_panel

DEPT = "{{account}} · {{department}}"
CAMPAIGN = "{{campaign}} ({{account}})"
TRAINING = 'campaign=~"$training_campaign"'
PHISHING = 'campaign=~"$phishing_campaign"'
GRADES = {"A": "green", "B": "semi-dark-green", "C": "yellow", "D": "orange",
          "E": "semi-dark-orange", "F": "red"}


def per_dept(metric, extra=""):
    return f"sum by (account, department) (@{metric}{extra})"


def recipients(outcome):
    return per_dept("awareness_mimecast_phishing_department_recipients", f'{{outcome="{outcome}"}}')


def of_sent(outcome):
    return f"{recipients(outcome)} / ({recipients('sent')} > 0)"


CORRECT = (f"{per_dept('awareness_mimecast_answers_correct')} / (({per_dept('awareness_mimecast_answers_correct')} "
           f"+ {per_dept('awareness_mimecast_answers_incorrect')}) > 0)")


def per_campaign(metric, extra, agg="sum"):
    return f"{agg} by (account, campaign_id, campaign) (@{metric}{{{extra}}})"


def launched(metric, picker):
    """The campaign's launch time: Grafana's dates are in milliseconds."""
    return Col("Launched", per_campaign(metric, picker, "max") + " * 1000", unit="dateTimeAsIso")


SPEC = Platform(
    name="mimecast",
    title="Mimecast",
    description="Mimecast Awareness Training by department, SAFE score, training campaigns, "
                "phishing campaigns and training modules.",
    group=Group("department", users="awareness_mimecast_users"),
    variables=[("training_campaign", "Training campaign", "awareness_mimecast_campaign_users", "campaign"),
               ("phishing_campaign", "Phishing campaign", "awareness_mimecast_phishing_emails_sent",
                "campaign")],
    reports=True,
    defines={"users": "active users of the performance details",
             "completion": "users who completed / were sent training modules, over all training "
                           "campaigns (numCompleted / numSent)",
             "behind": "users on the watchlist (weekly reminders left unanswered)",
             "click": "links clicked per simulated phishing email sent",
             "submit": "data submissions per simulated phishing email sent",
             "report": "recipients who reported the email (timeReported of "
                       "phishing/campaign/get-user-data) per email sent"},
    group_panels=[
        table_panel("Departments", "Every department, the highest click rate first. Phishing "
                    "columns count recipients over all phishing campaigns (one per recipient and "
                    "campaign).", [
                        Col("Users", per_dept("awareness_mimecast_users")),
                        Col("Watchlist users", per_dept("awareness_mimecast_watchlist_users")),
                        Col("Watchlist entries", per_dept("awareness_mimecast_watchlist_entries")),
                        Col("Modules not watched", per_dept("awareness_mimecast_modules_not_watched")),
                        Col("Correct answers", CORRECT, kind="completion"),
                        Col("Phishing sent", recipients("sent")),
                        Col("Click rate", of_sent("clicked"), kind="click"),
                        Col("Submit rate", of_sent("submitted"), kind="submit"),
                        Col("Report rate", of_sent("reported"), kind="report"),
                    ], "Click rate", w=16, h=10),
        worst_panel("Which departments click", "Share of phishing emails whose recipient clicked "
                    "a link (or submitted data), for the 15 departments (sent at least 10 "
                    "emails) that click most.",
                    f"({of_sent('clicked')}) and {recipients('sent')} >= 10", "click",
                    "{{department}} ({{account}})", w=8, h=10),
    ],
    rows=[
        Row("Company", [
            stat_panel("Participating users", "Users participating in training "
                       "(company/get-performance-summary numParticipating, summed over its "
                       "department entries).",
                       Q("sum by (account) (@awareness_mimecast_participating_users)", "{{account}}")),
            stat_panel("Videos sent", "Training videos sent to users (numVideosSent).",
                       Q("sum by (account) (@awareness_mimecast_videos_sent)", "{{account}}")),
            stat_panel("Videos not watched", "Training videos sent but not yet watched "
                       "(numVideosNotWatched).",
                       Q("sum by (account) (@awareness_mimecast_videos_not_watched)", "{{account}}")),
            bar_panel("Users by incorrect answers", "Participating users by how many training "
                      "videos they answered incorrectly: 0, 1, 2, 3, 4 or more.",
                      Q("sum by (incorrect) (@awareness_mimecast_users_by_incorrect_answers)",
                        "{{incorrect}} incorrect"), w=12, h=5),
        ]),
        Row("Departments over time", [
            timeseries_panel("Modules not watched by department", "Training modules the "
                             "department's users have not watched.",
                             Q(per_dept("awareness_mimecast_modules_not_watched"), DEPT)),
            timeseries_panel("Watchlist by department", "Users with watchlist entries, and the "
                             "number of entries.",
                             Q(per_dept("awareness_mimecast_watchlist_users"), "users · " + DEPT),
                             Q(per_dept("awareness_mimecast_watchlist_entries"), "entries · " + DEPT)),
            bar_panel("Correct-answer rate by department", "Correct / (correct + incorrect) "
                      "answers in the training modules.", Q(CORRECT, DEPT), kind="completion"),
            timeseries_panel("Correct and incorrect answers", "Answers in the training modules.",
                             Q("sum by (account) (@awareness_mimecast_answers_correct)",
                               "correct · {{account}}"),
                             Q("sum by (account) (@awareness_mimecast_answers_incorrect)",
                               "incorrect · {{account}}")),
            stat_panel("API user needs engagement", "The needEngagement flag of the API user's own "
                       "training record (user/get-training-details describes the calling user, "
                       "not the company): 1 or 0 per account. Not a count of users.",
                       Q("sum(@awareness_mimecast_users_need_engagement)", "flag"),
                       kind="any_is_bad"),
        ]),
        Row("SAFE score", [
            pie_panel("SAFE score grades", "Users per SAFE score risk grade (A best, F worst).",
                      "sum by (grade) (@awareness_mimecast_safe_score_users)", "{{grade}}",
                      colors=GRADES),
            timeseries_panel("SAFE score grades over time", "Users per SAFE score risk grade.",
                             Q("sum by (grade) (@awareness_mimecast_safe_score_users)", "{{grade}}"),
                             w=16, h=9),
        ]),
        Row("Training campaigns", [
            table_panel("Training campaigns", "One row per training campaign, the newest launch "
                        "first. Completed is the vendor's numCompleted; Correct is correct of all "
                        "answered questions.", [
                            launched("awareness_mimecast_campaign_launch_timestamp_seconds", TRAINING),
                            Col("Users", per_campaign("awareness_mimecast_campaign_users", TRAINING)),
                            Col("Completed", per_campaign("awareness_mimecast_campaign_completed_users",
                                                          TRAINING)),
                            Col("Acknowledged", per_campaign(
                                "awareness_mimecast_campaign_acknowledged_users", TRAINING)),
                            Col("Correct", per_campaign("awareness_mimecast_campaign_correct_ratio",
                                                        TRAINING, "max"), kind="completion"),
                        ], "Launched", w=24),
            table_panel("Answers per question", "Per training campaign and question: users who "
                        "answered correctly, incorrectly, or were sent the question and did not "
                        "answer yet.", [
                            Col("Correct", "sum by (account, campaign, question) (@awareness_mimecast_"
                                f'campaign_answers{{{TRAINING}, result="correct"}})'),
                            Col("Incorrect", "sum by (account, campaign, question) (@awareness_mimecast_"
                                f'campaign_answers{{{TRAINING}, result="incorrect"}})'),
                            Col("Sent (not answered)", "sum by (account, campaign, question) "
                                f'(@awareness_mimecast_campaign_answers{{{TRAINING}, result="sent"}})'),
                        ], "Incorrect", w=24),
        ]),
        Row("Phishing campaigns", [
            bar_panel("Phishing funnel", "Sent → opened → clicked → submitted data, and reported, "
                      "over the selected phishing campaigns.",
                      Q(f"sum(@awareness_mimecast_phishing_emails_sent{{{PHISHING}}})", "Sent"),
                      Q(f"sum(@awareness_mimecast_phishing_emails_opened{{{PHISHING}}})", "Opened"),
                      Q(f"sum(@awareness_mimecast_phishing_links_clicked{{{PHISHING}}})", "Clicked"),
                      Q(f"sum(@awareness_mimecast_phishing_data_submitted{{{PHISHING}}})",
                        "Submitted data"),
                      Q(f"sum(@awareness_mimecast_phishing_reported_recipients{{{PHISHING}}})",
                        "Reported"), w=8, h=9),
            worst_panel("Link-click rate per campaign", "Links clicked per email sent: the 15 "
                        "campaigns that were clicked most.",
                        per_campaign("awareness:mimecast_campaign_phishing_click:ratio", PHISHING,
                                     "max"), "click", CAMPAIGN, w=8, h=9),
            worst_panel("Data-submission rate per campaign", "Data submissions per email sent: "
                        "the 15 campaigns with the most.",
                        per_campaign("awareness:mimecast_campaign_phishing_submit:ratio", PHISHING,
                                     "max"), "submit", CAMPAIGN, w=8, h=9),
            table_panel("Phishing campaigns", "One row per phishing campaign, the newest launch "
                        "first; rates are % of emails sent. Reported: recipients who reported the "
                        "email (timeReported of phishing/campaign/get-user-data).", [
                            launched("awareness_mimecast_phishing_launch_timestamp_seconds", PHISHING),
                            Col("Sent", per_campaign("awareness_mimecast_phishing_emails_sent", PHISHING)),
                            Col("Opened", per_campaign("awareness_mimecast_phishing_emails_opened",
                                                       PHISHING)),
                            Col("Clicked", per_campaign("awareness_mimecast_phishing_links_clicked",
                                                        PHISHING)),
                            Col("Submitted data", per_campaign("awareness_mimecast_phishing_data_submitted",
                                                               PHISHING)),
                            Col("Click rate", per_campaign("awareness:mimecast_campaign_phishing_click:ratio",
                                                           PHISHING, "max"), kind="click"),
                            Col("Submit rate", per_campaign(
                                "awareness:mimecast_campaign_phishing_submit:ratio", PHISHING, "max"),
                                kind="submit"),
                            Col("Report rate", per_campaign(
                                "awareness:mimecast_campaign_phishing_report:ratio", PHISHING, "max"),
                                kind="report"),
                        ], "Launched", w=24),
        ]),
        Row("Training modules", [
            worst_panel("Completion per module", "Completed / sent, per training module, over all "
                        "its training campaigns: the 15 least completed.",
                        "max by (account, module) (@awareness:mimecast_module_completion:ratio)",
                        "completion", "{{module}} ({{account}})", h=10),
            table_panel("Training modules", "Per training module (title of the campaigns' "
                        "module): users the module was sent to (Σ numSent) and who completed it "
                        "(Σ numCompleted), over all its campaigns.", [
                            Col("Assigned", "sum by (account, module) (@awareness_mimecast_module_assigned)"),
                            Col("Completed", "sum by (account, module) (@awareness_mimecast_module_watched)"),
                            Col("Completion", "max by (account, module) "
                                "(@awareness:mimecast_module_completion:ratio)", kind="completion"),
                        ], "Completion", desc_sort=False, w=12, h=10),
        ]),
    ],
    people=[
        Col("Modules not watched", "max by (account, email) (@awareness_mimecast_user_modules_not_watched)",
            kind="any_is_bad"),
        Col("Watchlist entries", "max by (account, email) (@awareness_mimecast_user_watchlist_entries)",
            kind="any_is_bad"),
        Col("Phishing clicked", "max by (account, email) (@awareness_mimecast_user_phishing_clicked)",
            kind="any_is_bad"),
        Col("Phishing reported", "max by (account, email) (@awareness_mimecast_user_phishing_reported)"),
    ],
    overview_panels=[
        stat_panel("Mimecast users on the watchlist", "Users with watchlist entries (a user lands "
                   "on the watchlist after unanswered weekly reminders).",
                   Q("sum by (account) (@awareness_mimecast_watchlist_users)", "{{account}}"),
                   kind="any_is_bad", w=8, h=6),
    ],
)

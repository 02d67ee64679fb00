"""awareness-exporter: is the exporter scraped, are its sources polling, what do the vendors
answer. Scrape · Sources · Sections · Vendor requests, then Polls and the specs' ops panels.
(No panel of awareness_label_values_folded_total yet: the demo folds nothing, and the
end-to-end test wants every queried series in the demo.)"""
import lib
from lib import Q, bar_panel, stat_panel, state_panel, table_panel, timeseries_panel, Col

SRC = "{{platform}} · {{account}}"


def _zero(label, by="platform, account"):
    """0 for every source, labelled `label`="none": the fallback of a counter that appears with
    its first increment."""
    return (f'or on ({by}) label_replace(0 * sum by ({by}) (@awareness_up), '
            f'"{label}", "none", "", "")')


def dashboard(specs):
    scope = lib.Scope(variables=("job", "instance", "platform", "account"))
    d = lib.base("awareness-exporter", "Awareness / Exporter",
                 "Health of awareness-exporter: scrapes, source state and data age, sections, "
                 "polls, vendor API requests and failures.",
                 ["awareness", "awareness-ops"], scope, time_from="now-24h", refresh="1m",
                 hide_instance=False)
    scrape = [
        stat_panel("Scraped", "Prometheus's `up` of each exporter instance: 1 when the last "
                   "scrape worked.", Q("@up", "{{instance}}"), kind="up", w=8, h=5, spark=False,
                   mappings=lib.UP_MAPPING, color_background=True),
        timeseries_panel("Scrape duration", "How long Prometheus took to scrape each instance.",
                         Q("@scrape_duration_seconds", "{{instance}}"), unit="s", w=10, h=5),
        stat_panel("Version", "awareness_build_info of each exporter instance.",
                   Q("@awareness_build_info", "{{version}}"), w=6, h=5, spark=False),
    ]
    sources = lib.health_row() + [
        timeseries_panel("Poll duration", "How long the last poll of each source took.",
                         Q("@awareness_poll_duration_seconds", SRC), unit="s", w=8, h=7),
        bar_panel("Poll interval", "awareness_poll_interval_seconds: the source's interval after "
                  "a success (failed sections retry sooner, with backoff). Data age is measured "
                  "in these.", Q("@awareness_poll_interval_seconds", SRC), unit="s", w=8, h=7,
                  basic=True),
        bar_panel("Rows read by the latest poll", "awareness_source_rows: what a source's memory "
                  "grows with; poll.max_rows bounds it.",
                  Q("sort_desc(@awareness_source_rows)", SRC), w=8, h=7, basic=True),
    ]
    sections = [
        state_panel("Section state", "awareness_section_up per section. One section down while "
                    "the others are up is AwarenessSectionDown (often an unlicensed endpoint: "
                    "drop it from `endpoints`).", "@awareness_section_up",
                    SRC + " · {{section}}", lib.UP_MAPPING, w=16, h=8),
        bar_panel("Time since each section last succeeded", "time() - "
                  "awareness_section_last_success_timestamp_seconds. AwarenessSourceDataStale "
                  "fires when no section of a source succeeded for four poll intervals.",
                  Q("sort_desc(time() - @awareness_section_last_success_timestamp_seconds)",
                    SRC + " · {{section}}"), unit="s", w=8, h=8, basic=True),
    ]
    requests = [
        timeseries_panel("Requests by endpoint", "Vendor API requests per second.",
                         Q("sum by (platform, account, endpoint) "
                           "(rate(@awareness_api_requests_total[$__rate_interval]))",
                           "{{endpoint}} · " + SRC), unit="reqps"),
        timeseries_panel("Failures by reason", "Failed vendor API requests per second by reason "
                         "(auth, rate_limited, timeout, connect, http, decode, api_error, "
                         "redirect, tls); reason=\"none\" at 0 while a source never failed.",
                         Q("sum by (platform, account, reason) (rate("
                           "@awareness_api_request_failures_total[$__rate_interval])) "
                           + _zero("reason"), "{{reason}} · " + SRC), unit="reqps"),
    ]
    in_range = "[$__range]"
    polls = [
        timeseries_panel("Polls per hour", "Finished polls in the last hour, by result.",
                         Q("sum by (platform, account, result) (increase(@awareness_polls_total[1h]))",
                           "{{result}} · " + SRC), w=8, decimals=1),
        timeseries_panel("Malformed vendor rows skipped per hour", "Rows of vendor answers that "
                         "could not be read and were skipped (0 with endpoint=\"none\" while "
                         "nothing was skipped).",
                         Q("sum by (platform, account, endpoint) (increase("
                           "@awareness_rows_skipped_total[1h])) " + _zero("endpoint"),
                           "{{endpoint}} · " + SRC), w=8, decimals=1),
        stat_panel("Failure ratio in the time range", "Failed of all vendor API requests over "
                   "the dashboard's time range.",
                   Q(f"sum by (platform, account) (increase(@awareness_api_request_failures_total{in_range})) "
                     f"/ sum by (platform, account) (increase(@awareness_api_requests_total{in_range})) "
                     "or on (platform, account) 0 * sum by (platform, account) (@awareness_up)",
                     SRC, instant=True), kind="failure", unit="percentunit", w=8, h=8,
                   spark=False, decimals=2),
        bar_panel("Failures by reason in the time range", "Failed vendor API requests over the "
                  "dashboard's time range, by reason.",
                  Q(f"sum by (reason) (increase(@awareness_api_request_failures_total{in_range})) "
                    "or on () label_replace(0 * sum(@awareness_up), \"reason\", \"none\", \"\", \"\")",
                    "{{reason}}"), kind="any_is_bad", w=8, decimals=0),
        table_panel("Requests and failures in the time range", "Counter increases over the "
                    "dashboard's time range.", [
                        Col("Requests", "sum by (platform, account, endpoint) (increase("
                            f"@awareness_api_requests_total{in_range}))"),
                        Col("Failures", "sum by (platform, account, endpoint) (increase("
                            f"@awareness_api_request_failures_total{in_range})) or on (platform, "
                            "account, endpoint) 0 * sum by (platform, account, endpoint) "
                            "(@awareness_api_requests_total)", kind="any_is_bad"),
                    ], "Failures", w=8, h=8),
    ]
    d = lib.add_rows(d, [("Scrape", scrape, False), ("Sources", sources, False),
                         ("Sections", sections, False), ("Vendor requests", requests, False),
                         ("Polls", polls, True)]
                     + [(f"{s.title} operations", s.ops_panels, True) for s in specs])
    return d, scope

#!/usr/bin/env python3
"""End-to-end test of the dashboards and rules against a real Prometheus.

Starts `awareness-exporter --demo` and a Prometheus that scrapes it every second with the
shipped recording and alerting rules, then checks that
  - the exporter becomes ready and its /metrics exposes every metric the dashboards and
    rules use (scripts/metrics-used.py --check --exposition);
  - the generated prometheus.yml passes `promtool check config`;
  - Prometheus scrapes the exporter (target up, no error) and evaluates every rule
    without error, and the demo sources are there;
  - every panel query of every dashboard (Grafana variables substituted), every query
    variable, and every recording rule returns a non-empty result.
Prints one line per check and `N passed, M failed`; exits 1 on any failure. Both processes
are always stopped. Python standard library only; normally run through
scripts/e2e-prometheus.sh.
"""
import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULE_FILES = [os.path.join(ROOT, "deploy", "prometheus", "awareness.rules.yml"),
              os.path.join(ROOT, "deploy", "prometheus", "awareness.alerts.yml")]

# No vendor is named here: the registered platforms come from `awareness-exporter
# --list-platforms`, and the demo's sources and sections from its own exposition
# (awareness_section_up{platform,account,section}) once it is ready.
SECTION_UP = re.compile(r'^awareness_section_up\{([^}]*)\}')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def registered_platforms(binary):
    out = subprocess.run([binary, "--list-platforms"], capture_output=True, text=True,
                         timeout=30)
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def demo_sections(exposition):
    """(platform, account, section) of every awareness_section_up series in the text."""
    found = set()
    for line in exposition.splitlines():
        m = SECTION_UP.match(line)
        if m:
            labels = dict(LABEL.findall(m.group(1)))
            found.add((labels.get("platform"), labels.get("account"), labels.get("section")))
    return found

# Grafana's built-in interval variables, replaced by values that work with a 1s scrape.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
            "__range": "5m", "__range_s": "300", "__range_ms": "300000"}

# Panel queries allowed to return nothing, keyed by (dashboard file, panel title, refId),
# each with the reason. Keep this empty if at all possible: queries on series that may be
# absent (failure counters) fall back to 0 instead.
ALLOW_EMPTY = {}

VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)\]\]")


def load_metrics_used():
    sys.dont_write_bytecode = True  # no __pycache__ in scripts/
    spec = importlib.util.spec_from_file_location(
        "metrics_used", os.path.join(ROOT, "scripts", "metrics-used.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def substitute(expr):
    """Grafana variables → values: built-in intervals get fixed durations, template
    variables (all used as label=~"$var") match everything."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return BUILTINS.get(name, ".*")
    return VAR.sub(repl, expr)


class Reporter:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def ok(self, what, detail=""):
        self.passed += 1
        print(f"PASS  {what}{(': ' + detail) if detail else ''}", flush=True)

    def fail(self, what, detail=""):
        self.failed += 1
        self.failures.append(what)
        print(f"FAIL  {what}{(': ' + detail) if detail else ''}", flush=True)

    def check(self, cond, what, detail=""):
        (self.ok if cond else self.fail)(what, detail)
        return cond


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0):
    """(status, body) of a GET; status 0 when the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_for(pred, timeout, interval=0.25, alive=None):
    """Polls pred() until it returns a true value or timeout passes; stops early when
    alive() turns false. Returns pred's last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if alive is not None and not alive():
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Processes:
    """Processes we started; stop() ends each of them (and only them)."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log_path, cwd, env=None):
        log = open(log_path, "wb")
        # own process group, so that stop() also reaches any child it forks
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             env=None if env is None else {**os.environ, **env})
        log.close()
        self.procs.append((name, p))
        return p

    @staticmethod
    def _signal(p, sig):
        try:
            os.killpg(p.pid, sig)  # the group this process leads (see start())
        except OSError:
            pass

    def stop(self):
        for _, p in self.procs:
            self._signal(p, signal.SIGTERM)
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self._signal(p, signal.SIGKILL)
            p.wait()
        self.procs = []


def prom_query(base, query):
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    status, body = http_get(url, timeout=10)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = {}
    if status != 200 or data.get("status") != "success":
        return None, data.get("error") or f"HTTP {status}"
    result = data["data"]["result"]
    if data["data"].get("resultType") == "scalar":
        result = [result]
    return result, None


def dashboard_checks(mu):
    """(label, expr) for every panel target and query variable of every dashboard."""
    checks = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json"))):
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
        fname = os.path.basename(path)
        for p in mu.iter_panels(dash.get("panels")):
            for t in p.get("targets") or []:
                if t.get("expr") and not t.get("hide"):
                    key = (fname, p.get("title", ""), t.get("refId", ""))
                    checks.append((key, f"{fname} / {p.get('title')} [{t.get('refId')}]",
                                   t["expr"]))
        for v in (dash.get("templating") or {}).get("list") or []:
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.match(r"^\s*label_values\s*\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$",
                         q or "", re.S)
            if m:
                expr = f"count by ({m.group(2)}) ({m.group(1)})"
                checks.append(((fname, "$" + v["name"], ""), f"{fname} / variable ${v['name']}",
                               expr))
    return checks


def exposition_names(text):
    """Every sample name of a text exposition (`_total` included for counters)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
            if m:
                names.add(m.group(0))
    return names


def used_metric_names(mu):
    """{metric name: where} for every metric (not recording rule) a dashboard or rule uses."""
    used = {}
    exprs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json"))):
        exprs.extend(mu.dashboard_exprs(path))
    for path in mu.rule_files():
        exprs.extend(mu.rule_exprs(path))
    for where, expr in exprs:
        for name in mu.promql_names(expr):
            if ":" not in name:
                used.setdefault(name, set()).add(where)
    return used


def run(args, rep, procs, tmp):
    mu = load_metrics_used()

    # ------------------------------------------------------------------ exporter
    port = free_port()
    exporter_url = f"http://127.0.0.1:{port}"
    exporter_log = os.path.join(tmp, "exporter.log")
    # The healthy demo has no failure to count: the simulated vendors' control makes each
    # tenant's first data request fail once (retried), so the failure counters the rules and
    # dashboards use show.
    exporter = procs.start("exporter", [args.bin, "--demo", "--web.listen-address",
                                        f"127.0.0.1:{port}"], exporter_log, cwd=tmp,
                           env={"DEMO_VENDOR_FAULTS": "1"})
    alive = lambda: exporter.poll() is None
    ready = wait_for(lambda: http_get(f"{exporter_url}/-/ready")[0] == 200,
                     args.ready_timeout, alive=alive)
    if not rep.check(ready, "exporter --demo becomes ready",
                     f"{exporter_url}/-/ready" if ready else
                     f"not ready after {args.ready_timeout}s (exit code {exporter.poll()})"):
        print(tail(exporter_log), file=sys.stderr)
        return
    rep.check(http_get(f"{exporter_url}/-/healthy")[0] == 200, "exporter /-/healthy answers 200")
    status, body = http_get(f"{exporter_url}/metrics", timeout=10)
    metrics_file = os.path.join(tmp, "metrics.txt")
    with open(metrics_file, "wb") as f:
        f.write(body)
    if not rep.check(status == 200 and body, "exporter /metrics answers",
                     f"HTTP {status}, {len(body)} bytes"):
        return
    platforms = registered_platforms(args.bin)
    rep.check(bool(platforms), "awareness-exporter --list-platforms names the platforms",
              ", ".join(sorted(platforms)))
    expected_sections = demo_sections(body.decode("utf-8", "replace"))
    demo_sources = {(p, a) for p, a, _ in expected_sections}
    for platform in sorted(platforms):
        accounts = sorted(a for p, a in demo_sources if p == platform)
        rep.check(bool(accounts), f"the demo has a {platform} tenant",
                  ", ".join(accounts) or f"sources seen: {sorted(demo_sources)}")
    mu_run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "metrics-used.py"),
                             "--check", "--exposition", metrics_file],
                            capture_output=True, text=True)
    rep.check(mu_run.returncode == 0, "every metric used by dashboards and rules is exposed",
              (mu_run.stdout + mu_run.stderr).strip().replace("\n", " | "))
    # Stricter than metrics-used.py: no metric may be "absent until its first event" in the
    # demo, so that a dashboard's `or ... 0 *` fallback cannot hide a renamed metric.
    exposed = exposition_names(body.decode("utf-8", "replace"))
    for name, wheres in sorted(used_metric_names(mu).items()):
        rep.check(name in exposed, f"metric {name} present in the demo's exposition",
                  "" if name in exposed else f"used in: {'; '.join(sorted(wheres)[:3])}")

    # ------------------------------------------------------------------ prometheus config
    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w", encoding="utf-8") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "  evaluation_interval: 1s\n")
        f.write("rule_files:\n" + "".join(f"  - {json.dumps(p)}\n" for p in RULE_FILES))
        f.write("scrape_configs:\n  - job_name: awareness-exporter\n    static_configs:\n"
                f"      - targets: [\"127.0.0.1:{port}\"]\n")
    pc = subprocess.run([args.promtool, "check", "config", config], capture_output=True,
                        text=True)
    if not rep.check(pc.returncode == 0, "promtool check config (generated prometheus.yml)",
                     "" if pc.returncode == 0 else (pc.stdout + pc.stderr).strip()):
        return

    # ------------------------------------------------------------------ prometheus
    prom_log = os.path.join(tmp, "prometheus.log")
    prom = procs.start("prometheus", [
        args.prometheus, f"--config.file={config}",
        f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
        f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], prom_log, cwd=tmp)
    prom_alive = lambda: prom.poll() is None
    if not rep.check(wait_for(lambda: http_get(f"{prom_url}/-/ready")[0] == 200, 60,
                              alive=prom_alive), "prometheus becomes ready", prom_url):
        print(tail(prom_log), file=sys.stderr)
        return

    def target_state():
        status, body = http_get(f"{prom_url}/api/v1/targets")
        if status != 200:
            return None
        active = json.loads(body)["data"]["activeTargets"]
        return [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in active]

    def targets_up():
        state = target_state()
        return bool(state) and all(h == "up" and not e for _, h, e in state)

    up = wait_for(targets_up, 60, alive=prom_alive)
    rep.check(up, "prometheus scrapes the exporter (health up, no error)", str(target_state()))
    if not up:
        print(tail(prom_log), file=sys.stderr)
        return

    def rules_state():
        status, body = http_get(f"{prom_url}/api/v1/rules")
        if status != 200:
            return []
        out = []
        for g in json.loads(body)["data"]["groups"]:
            for r in g["rules"]:
                out.append(r)
        return out

    def rules_evaluated():
        rules = rules_state()
        return rules and all(not str(r.get("lastEvaluation", "")).startswith("0001-")
                             for r in rules)

    wait_for(rules_evaluated, 30, alive=prom_alive)
    # let a few scrapes and evaluations happen, so that rate() has points to work with
    time.sleep(args.settle)
    loaded = rules_state()
    expected = []
    for path in RULE_FILES:
        with open(path, encoding="utf-8") as f:
            expected.extend(mu.parse_rules(f.read()))
    want, have = {}, {}
    for r in expected:
        key = ("recording", r["record"]) if "record" in r else ("alerting", r["alert"])
        want[key] = want.get(key, 0) + 1
    for r in loaded:
        key = (r.get("type"), r.get("name"))
        have[key] = have.get(key, 0) + 1
    for (kind, name), n in want.items():
        rep.check(have.get((kind, name), 0) == n, f"{kind} rule {name} loaded",
                  f"{have.get((kind, name), 0)} of {n}")
    seen = set()
    for r in loaded:
        key = (r.get("type"), r.get("name"), r.get("query"))
        if key in seen:
            continue
        seen.add(key)
        rep.check(r.get("health") == "ok", f"{r.get('type')} rule {r.get('name')} evaluates",
                  r.get("lastError") or r.get("health", ""))

    # ------------------------------------------------------------------ queries
    result, err = prom_query(prom_url, "awareness_up")
    sources = {(s["metric"].get("platform"), s["metric"].get("account")): s["value"][1]
               for s in (result or [])}
    for platform, account in sorted(demo_sources):
        value = sources.get((platform, account))
        rep.check(value == "1", f"demo source {platform}/{account} up",
                  f"awareness_up = {value}" if value is not None else
                  f"absent; sources seen: {sorted(sources)}")
    result, err = prom_query(prom_url, "awareness_section_up")
    sections = {(s["metric"].get("platform"), s["metric"].get("account"),
                 s["metric"].get("section")): s["value"][1] for s in (result or [])}
    for platform, account, section in sorted(expected_sections):
        value = sections.get((platform, account, section))
        rep.check(value == "1", f"demo section {platform}/{account}/{section} up",
                  f"awareness_section_up = {value}")

    checks = dashboard_checks(mu)
    for name in sorted({r["record"] for r in expected if "record" in r}):
        checks.append((("rules", name, ""), f"recording rule {name}", name))

    deadline = time.monotonic() + args.query_timeout
    for key, label, expr in checks:
        q = substitute(expr)
        while True:
            result, err = prom_query(prom_url, q)
            if result or err or time.monotonic() >= deadline:
                break
            time.sleep(1)
        if err:
            rep.fail(label, f"query error: {err}; query: {q}")
        elif result:
            rep.ok(label, f"{len(result)} series")
        elif key in ALLOW_EMPTY:
            rep.ok(label, f"empty, allowed: {ALLOW_EMPTY[key]}")
        else:
            rep.fail(label, f"empty result; query: {q}")

    if rep.failed:
        print("---- exporter log (tail)", file=sys.stderr)
        print(tail(exporter_log), file=sys.stderr)
        print("---- prometheus log (tail)", file=sys.stderr)
        print(tail(prom_log), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get(
        "AWARENESS_BIN", os.path.join(ROOT, "target", "release", "awareness-exporter")),
        help="the awareness-exporter binary (default: $AWARENESS_BIN or %(default)s)")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    ap.add_argument("--ready-timeout", type=float,
                    default=float(os.environ.get("E2E_READY_TIMEOUT", "120")),
                    help="seconds to wait for the exporter's /-/ready (default %(default)s)")
    ap.add_argument("--settle", type=float, default=float(os.environ.get("E2E_SETTLE", "5")),
                    help="seconds of scrapes and rule evaluations before querying")
    ap.add_argument("--query-timeout", type=float,
                    default=float(os.environ.get("E2E_QUERY_TIMEOUT", "30")),
                    help="seconds during which empty query results are retried")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    for tool in (args.bin, args.prometheus, args.promtool):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)) and not shutil.which(tool):
            print(f"e2e: {tool} not found or not executable", file=sys.stderr)
            return 2
    args.bin = os.path.abspath(args.bin) if os.path.isfile(args.bin) else shutil.which(args.bin)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    rep = Reporter()
    procs = Processes()
    tmp = tempfile.mkdtemp(prefix="awareness-e2e-")
    try:
        run(args, rep, procs, tmp)
    except KeyboardInterrupt as e:
        rep.fail("interrupted", str(e))
    finally:
        procs.stop()
    print(f"{rep.passed} passed, {rep.failed} failed")
    if rep.failed or args.keep:
        print(f"e2e: logs and data kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The noise test: a simulated day of a 2,000-interface VPC (model.py) through
the shipped rules (alerts/vpc-flow.rules.yml) on a real, backfilled
Prometheus, and the notifications the example Alertmanager configuration
(deploy/alertmanager.yml) would send for it, per severity.

1. model.py writes the counters of 3 days of history and the day itself;
   `promtool tsdb create-blocks-from openmetrics` backfills them.
2. A Prometheus on that data; `promtool tsdb create-blocks-from rules`
   evaluates the recording groups every minute over the whole span (the
   thresholds and counts, then the baselines that read them), as a running
   Prometheus would have.
3. Each alerting rule of vpc-flow-security is evaluated every minute of the
   day (query_range), its `for` and `keep_firing_for` applied: the ALERTS a
   Prometheus would have sent.
4. Alertmanager's routing, grouping (group_by, group_wait, group_interval,
   repeat_interval) and inhibitions, read from deploy/alertmanager.yml, turn
   them into notifications, counted per severity; the incidents' pages are
   checked (each paged within 2 minutes of its first record being scraped, no
   page outside them).

Prints the figures and exits non-zero when a goal is missed.
Usage: tests/alerts_noise/run.py [--keep DIR] [--rules FILE] [--alertmanager FILE]
  --keep DIR           work in DIR and keep it; a later run with the same DIR
                       reuses the backfilled data (steps 1 and 2) when the model
                       and the rules are unchanged
  --rules FILE         another rule file (default alerts/vpc-flow.rules.yml)
  --alertmanager FILE  another Alertmanager configuration (default
                       deploy/alertmanager.yml): e.g. an earlier version's, to
                       compare"""
import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(REPO, "alerts", "vpc-flow.rules.yml")
AM = os.path.join(REPO, "deploy", "alertmanager.yml")
HISTORY_DAYS = [-3, -2, -1]
MINUTE = 60


def log(msg):
    print("noise-test: " + msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, data, workdir):
        self.data, self.workdir, self.proc = data, workdir, None

    def start(self):
        self.port = free_port()
        cfg = os.path.join(self.workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1m\n")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + self.data,
             "--storage.tsdb.retention.time=10y", "--web.listen-address=127.0.0.1:%d" % self.port,
             "--query.max-samples=200000000"],
            stdout=open(os.path.join(self.workdir, "prometheus.log"), "a"), stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % self.port
        for _ in range(600):
            try:
                urllib.request.urlopen(self.url + "/-/ready", timeout=2)
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise SystemExit("prometheus exited; see " + self.workdir + "/prometheus.log")
                time.sleep(0.5)
        raise SystemExit("prometheus not ready")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def query_range(self, expr, start, end, step):
        q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        body = json.load(urllib.request.urlopen(self.url + "/api/v1/query_range?" + q, timeout=600))
        if body["status"] != "success":
            raise SystemExit("query failed: %s: %s" % (expr, body))
        return body["data"]["result"]


def backfill_rules(prom, groups, start, end, workdir, name):
    path = os.path.join(workdir, name + ".rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": groups}, f)
    out = os.path.join(workdir, name + "-blocks")
    logfile = os.path.join(workdir, name + "-backfill.log")
    with open(logfile, "w") as lf:
        done = subprocess.run(["promtool", "tsdb", "create-blocks-from", "rules", "--quiet", "--url", prom.url,
                               "--start", str(start), "--end", str(end), "--eval-interval", "60s",
                               "--output-dir", out, path], stdout=lf, stderr=subprocess.STDOUT)
    text = open(logfile).read()
    if done.returncode != 0 or "level=error" in text or "level=warn" in text:
        raise SystemExit("promtool create-blocks-from rules (%s) failed:\n%s" % (name, text[-4000:]))
    prom.stop()
    for b in os.listdir(out):
        shutil.move(os.path.join(out, b), os.path.join(prom.data, b))
    prom.start()


def alert_timelines(prom, rule, start, end):
    """Firing intervals per label set, as Prometheus would evaluate the rule
    every minute: `for` (pending) and `keep_firing_for` applied."""
    def dur(v):
        if not v:
            return 0
        units = {"s": 1, "m": 60, "h": 3600}
        return int(v[:-1]) * units[v[-1]]
    hold, keep = dur(rule.get("for")), dur(rule.get("keep_firing_for"))
    out = {}
    for series in prom.query_range(rule["expr"], start, end, MINUTE):
        labels = dict(series["metric"])
        labels.update(rule.get("labels", {}))
        labels["alertname"] = rule["alert"]
        times = {int(float(t)) for t, _ in series["values"]}
        intervals, active_since, last_true, firing_from = [], None, None, None
        for t in range(start, end + 1, MINUTE):
            true = t in times
            if true:
                if active_since is None:
                    active_since = t
                last_true = t
                if firing_from is None and t - active_since >= hold:
                    firing_from = t
            else:
                if firing_from is not None and t - last_true <= keep:
                    continue
                if firing_from is not None:
                    intervals.append((firing_from, t))
                active_since, firing_from = None, None
        if firing_from is not None:
            intervals.append((firing_from, end + MINUTE))
        if intervals:
            out[tuple(sorted(labels.items()))] = intervals
    return out


def dur_s(v):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(v[:-1]) * units[v[-1]]


def match(matchers, labels):
    for m in matchers:
        for op in ("!=", "=~", "!~", "="):
            if op in m:
                k, v = m.split(op, 1)
                v = v.strip('"')
                got = labels.get(k, "")
                ok = {"=": got == v, "!=": got != v, "=~": re.fullmatch(v, got) is not None,
                      "!~": re.fullmatch(v, got) is None}[op]
                if not ok:
                    return False
                break
    return True


def route_of(am, labels):
    root = am["route"]
    for r in root.get("routes", []):
        if match(r.get("matchers", []), labels):
            merged = dict(root)
            merged.update(r)
            return merged
    return root


def simulate_alertmanager(am, alerts, start, end):
    """Notifications per receiver: (time, group, firing alerts, new ones).
    Alertmanager receives every firing alert continuously; a group flushes
    group_wait after its first alert, then every group_interval: it notifies
    when an alert is new to it, or when repeat_interval has passed (a message
    with only resolved alerts is counted apart)."""
    inhibit = am.get("inhibit_rules", [])
    labelled = {k: dict(k) for k in alerts}
    changes = sorted({t for ivs in alerts.values() for a, b in ivs for t in (a, b)})

    def visible_groups(active):
        # Inhibition: a target is muted while a source with equal labels fires.
        muted = set()
        for rule in inhibit:
            eq = rule.get("equal", [])
            sources = {tuple(labelled[k].get(e, "") for e in eq)
                       for k in active if match(rule.get("source_matchers", []), labelled[k])}
            if not sources:
                continue
            for k in active:
                a = labelled[k]
                if match(rule.get("target_matchers", []), a) and \
                        not match(rule.get("source_matchers", []), a) and tuple(a.get(e, "") for e in eq) in sources:
                    muted.add(k)
        current = {}
        for k in active:
            if k in muted:
                continue
            r = route_of(am, labelled[k])
            key = (r["receiver"], tuple((g, labelled[k].get(g, "")) for g in r["group_by"]))
            current.setdefault(key, (r, set()))[1].add(k)
        return current

    groups, sent, current, ci = {}, [], {}, 0
    for t in range(start, end + 1, 10):
        if ci < len(changes) and changes[ci] <= t:
            while ci < len(changes) and changes[ci] <= t:
                ci += 1
            active = [k for k, ivs in alerts.items() if any(a <= t < b for a, b in ivs)]
            current = visible_groups(active)
        for key, (r, members) in current.items():
            if key not in groups:
                groups[key] = {"route": r, "next": t + dur_s(r["group_wait"]), "notified": set(), "last": None}
        for key, g in list(groups.items()):
            if t < g["next"]:
                continue
            r = g["route"]
            members = current.get(key, (r, set()))[1]
            new = members - g["notified"]
            resolved = g["notified"] - members
            repeat = g["last"] is not None and t - g["last"] >= dur_s(r["repeat_interval"])
            if new or (members and repeat):
                sent.append({"time": t, "receiver": key[0], "group": dict(key[1]), "firing": len(members), "new": len(new),
                             "alertnames": sorted({labelled[m]["alertname"] for m in new or members})})
                g["last"] = t
            elif resolved:
                sent.append({"time": t, "receiver": key[0], "group": dict(key[1]), "firing": len(members), "new": 0,
                             "resolved": len(resolved), "alertnames": sorted({labelled[m]["alertname"] for m in resolved})})
            g["notified"] = set(members)
            if not members:
                del groups[key]
            else:
                g["next"] = t + dur_s(r["group_interval"])
    return sent


def main():
    global RULES, AM
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep")
    ap.add_argument("--rules", default=RULES)
    ap.add_argument("--alertmanager", default=AM)
    args = ap.parse_args()
    keep, RULES, AM = args.keep, os.path.abspath(args.rules), os.path.abspath(args.alertmanager)
    work = keep or tempfile.mkdtemp(prefix="noise-test-")
    os.makedirs(work, exist_ok=True)
    day0 = (int(time.time()) // 86400 - 2) * 86400   # the simulated day: the day before yesterday (UTC)
    start = day0 + HISTORY_DAYS[0] * 86400
    end = day0 + 86400
    t0 = time.time()
    data = os.path.join(work, "data")
    ready = os.path.join(work, "ready")
    fingerprint = "%d %s" % (day0, hashlib.sha256(open(model.__file__, "rb").read() + open(RULES, "rb").read()).hexdigest())
    reuse = keep and os.path.exists(ready) and open(ready).read() == fingerprint
    series, ifaces = model.build(HISTORY_DAYS, day0)
    rules = yaml.safe_load(open(RULES))["groups"]
    by_name = {g["name"]: g for g in rules}
    prom = Prometheus(data, work)
    if reuse:
        log("reusing the backfilled data in " + data)
        prom.start()
    else:
        backfill(series, start, end, day0, work, data, prom, by_name, t0)
        with open(ready, "w") as f:
            f.write(fingerprint)
    try:
        alerts = {}
        for rule in by_name["vpc-flow-security"]["rules"]:
            alerts.update(alert_timelines(prom, rule, day0, end - MINUTE))
        log("alerts evaluated (%.0f s)" % (time.time() - t0))
    finally:
        prom.stop()
    return report(series, alerts, by_name, day0, end, work, keep, t0)


def backfill(series, start, end, day0, work, data, prom, by_name, t0):
    log("simulating %d interfaces, %d days of history and the day itself (samples every %d s)"
        % (model.N_PUBLIC + model.N_APP + model.N_IDLE, len(HISTORY_DAYS), model.STEP))
    om = os.path.join(work, "series.om")
    n = model.write_openmetrics(series, start, end, om)
    log("%d series, %d samples (%.0f s)" % (len(series), n, time.time() - t0))
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data],
                   check=True, stdout=subprocess.DEVNULL)
    os.remove(om)
    log("backfilled (%.0f s)" % (time.time() - t0))
    prom.start()
    try:
        backfill_rules(prom, [by_name["vpc-flow-thresholds"], by_name["vpc-flow-recording"]], start, end, work, "recording")
        log("recording rules backfilled (%.0f s)" % (time.time() - t0))
        # The baselines read the counts of earlier days; the alerts need them on the day only.
        backfill_rules(prom, [by_name["vpc-flow-baseline"]], day0 - 600, end, work, "baseline")
        log("baselines backfilled (%.0f s)" % (time.time() - t0))
    except BaseException:
        prom.stop()
        raise


def report(series, alerts, by_name, day0, end, work, keep, t0):
    am = yaml.safe_load(open(AM))
    sent = simulate_alertmanager(am, alerts, day0, end - MINUTE)

    # Report.
    severity_of = {r["alert"]: r["labels"]["severity"] for r in by_name["vpc-flow-security"]["rules"]}
    receivers = {"critical": "pager", "warning": "chat", "info": "digest"}
    incident_windows = [(day0 + t, day0 + t + 3600) for t in model.INCIDENTS.values()]
    in_incident = lambda t: any(a <= t < b for a, b in incident_windows)  # noqa: E731
    print()
    print("Alert series firing during the day (after for/keep_firing_for):")
    per_alert = {}
    for labels, ivs in alerts.items():
        name = dict(labels)["alertname"]
        per_alert.setdefault(name, [0, 0])
        per_alert[name][0] += 1
        per_alert[name][1] += len(ivs)
    for name in sorted(per_alert):
        print("  %-34s %-8s %5d series, %5d firing intervals" % (name, severity_of[name], *per_alert[name]))
    print()
    print("Notifications after Alertmanager grouping and inhibition (deploy/alertmanager.yml):")
    ok = True
    for sev in ("critical", "warning", "info"):
        mine = [s for s in sent if s["receiver"] == receivers[sev] and s.get("new", 0) + (s["firing"] if not s.get("resolved") else 0) > 0 and not s.get("resolved")]
        resolved = [s for s in sent if s["receiver"] == receivers[sev] and s.get("resolved")]
        outside = [s for s in mine if not in_incident(s["time"])]
        print("  %-8s -> %-6s %3d notifications (%d outside the incidents), %d resolved-only messages"
              % (sev, receivers[sev], len(mine), len(outside), len(resolved)))
        for s in mine:
            print("      %s  %-40s firing %4d, new %4d" % (time.strftime("%H:%M:%S", time.gmtime(s["time"])), ",".join(s["alertnames"]), s["firing"], s["new"]))
        if sev == "critical" and outside:
            ok = False
    print()
    print("Incidents (first record scraped -> first page):")
    for name, at in model.INCIDENTS.items():
        # The first sample that shows the incident's page-worthy record.
        first_scraped = None
        for (mname, labels), sr in series.items():
            if mname not in model.PAGE_WORTHY or "REJECT" in labels:
                continue
            for t in sr.events:
                if day0 + at <= t < day0 + at + 600:
                    sample = -(-t // model.STEP) * model.STEP
                    first_scraped = sample if first_scraped is None else min(first_scraped, sample)
        pages = [s for s in sent if s["receiver"] == "pager" and not s.get("resolved") and first_scraped and s["time"] >= first_scraped]
        page = pages[0]["time"] if pages else None
        delay = (page - first_scraped) if page is not None else None
        print("  %-48s scraped %s, paged %s: %s" % (
            name, time.strftime("%H:%M:%S", time.gmtime(first_scraped)) if first_scraped else "?",
            time.strftime("%H:%M:%S", time.gmtime(page)) if page else "never",
            "%d s" % delay if delay is not None else "MISSED"))
        if delay is None or delay > 120:
            ok = False
    print()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    log("done in %.0f s: %s" % (time.time() - t0, "goals met" if ok else "GOALS MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

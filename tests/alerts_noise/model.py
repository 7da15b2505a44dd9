"""The traffic model of the noise test: a VPC of 2,000 interfaces with realistic
internet background, simulated per 10-minute AWS capture window, and three
injected incidents on the last day. Writes the exporter's counters as an
OpenMetrics file (one sample every STEP seconds, as Prometheus would scrape
them) for `promtool tsdb create-blocks-from openmetrics`.

Deterministic: every random draw comes from a seeded generator."""
import math
import random

STEP = 120          # seconds between samples (scrape interval of the simulation)
HOLD = STEP + 60    # the new-series hold: longer than the scrape interval
WINDOW = 600        # AWS aggregation interval: each interface's records land every 10 minutes
JOB = 'job="vpc-flow-exporter",instance="exporter:10190"'

N_PUBLIC = 60       # internet-facing: load balancers, NAT gateways, bastions
N_APP = 1640        # application interfaces (20 of them appear during the last day)
N_IDLE = 300        # attached but idle: NODATA every capture window
N_NEW = 20          # app interfaces created during the last day (autoscaling): no history
N_BATCH = 100       # app interfaces running a nightly batch at 02:00
N_SCANNERS = 40     # internet port scanners a day
N_GOING_IDLE = 3    # app interfaces stopped at 16:00 on the last day (NODATA from then)

# Counters whose first record must page.
PAGE_WORTHY = ("vpc_flow_illegal_source_accepts_total", "vpc_flow_unapproved_destination_records_total",
               "vpc_flow_forbidden_port_records_total")

# The three incidents, in seconds after the start of the last day.
INCIDENTS = {
    "illegal source accepted": 9 * 3600 + 3 * 60,
    "NAT breach accepted and an internal port scan": 14 * 3600 + 7 * 60,
    "telnet accepted and a reject storm": 20 * 3600 + 11 * 60,
}


def iface(kind, i):
    return "eni-%s%05d" % (kind, i)


def daily(t):
    """Daytime shape in [0.3, 1]: low at night, high in the afternoon."""
    hour = (t % 86400) / 3600.0
    return 0.3 + 0.7 * max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.3


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    l, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= l:
            return k
        k += 1


class Series:
    """A counter (increments land at capture-window ends) or a gauge."""

    def __init__(self, name, labels, gauge=False):
        self.name, self.labels, self.gauge = name, labels, gauge
        self.events = {}     # time -> increment (counter) or value (gauge)
        self.start = None    # first time the exporter shows the series (at 0: the hold)
        self.stop = None     # time the series disappears (gauges)

    def add(self, t, n):
        if n <= 0 and not self.gauge:
            return
        if not self.gauge and self.start is None:
            # The exporter shows a new series at 0 first (--metrics.new-series-hold,
            # longer than the scrape interval): Prometheus scrapes the 0, then the count.
            self.start = t - HOLD
        self.events[t] = self.events.get(t, 0) + n


def build(days, day0):
    """Series of the whole simulation: history days (offsets in `days`, e.g.
    [-3, -2, -1]) and the last day 0; `day0` is the unix time of its start."""
    rng = random.Random(20261201)
    series = {}

    def s(name, labels, gauge=False):
        key = (name, labels)
        if key not in series:
            series[key] = Series(name, labels, gauge)
        return series[key]

    public = [iface("pub", i) for i in range(N_PUBLIC)]
    apps = [iface("app", i) for i in range(N_APP)]
    idle = [iface("idle", i) for i in range(N_IDLE)]
    new = set(apps[-N_NEW:])
    batch = set(apps[:N_BATCH])
    going_idle = set(apps[N_BATCH:N_BATCH + N_GOING_IDLE])
    base = {i: rng.uniform(50, 5000) for i in apps}
    internet = {i: rng.uniform(50, 800) for i in public}
    # Each interface's capture windows end at its own offset.
    offset = {i: rng.randrange(0, WINDOW, 60) for i in public + apps + idle}
    new_from = {i: rng.randrange(6 * 3600, 18 * 3600, 600) for i in sorted(new)}

    for d in days + [0]:
        day_rng = random.Random(1000 + d)
        scale = {i: day_rng.uniform(0.8, 1.2) for i in apps + public}
        t0 = day0 + d * 86400
        for w in range(0, 86400, WINDOW):
            for i in public:
                t = t0 + w + offset[i]
                shape = 0.7 + 0.3 * daily(t)
                s("vpc_flow_records_total", 'interface_id="%s",action="REJECT"' % i).add(t, poisson(day_rng, internet[i] * scale[i] * shape))
                s("vpc_flow_records_total", 'interface_id="%s",action="ACCEPT"' % i).add(t, poisson(day_rng, 3000 * scale[i] * daily(t)))
                s("vpc_flow_short_connections_total", 'interface_id="%s"' % i).add(t, poisson(day_rng, 600 * scale[i] * daily(t)))
                s("vpc_flow_forbidden_port_records_total", 'interface_id="%s",dstport="23",action="REJECT"' % i).add(t, poisson(day_rng, 2))
            for i in apps:
                t = t0 + w + offset[i]
                if i in new and (d < 0 or w < new_from[i]):
                    continue
                if d == 0 and i in going_idle and w >= 16 * 3600:
                    s("vpc_flow_log_status_total", 'interface_id="%s",log_status="NODATA"' % i).add(t, 1)
                    continue
                traffic = base[i] * scale[i] * daily(t)
                s("vpc_flow_records_total", 'interface_id="%s",action="ACCEPT"' % i).add(t, poisson(day_rng, traffic))
                s("vpc_flow_records_total", 'interface_id="%s",action="REJECT"' % i).add(t, poisson(day_rng, 1))
                short = 0.05 * traffic
                rejects = 0
                if i in batch and 2 * 3600 <= w < 2 * 3600 + 1200:
                    short *= 10   # the nightly batch: many short connections, and rejects
                    rejects = 300
                s("vpc_flow_short_connections_total", 'interface_id="%s"' % i).add(t, poisson(day_rng, short))
                s("vpc_flow_records_total", 'interface_id="%s",action="REJECT"' % i).add(t, poisson(day_rng, rejects))
            for i in idle:
                s("vpc_flow_log_status_total", 'interface_id="%s",log_status="NODATA"' % i).add(t0 + w + offset[i], 1)
        # Internet port scanners, every day: 25-60 ports each, seen for ~10-20 minutes.
        for k in range(N_SCANNERS):
            start = t0 + day_rng.randrange(0, 86400 - 1800, 60)
            addr = "198.18.%d.%d" % (day_rng.randrange(0, 256), day_rng.randrange(1, 255))
            g = s("vpc_flow_top_port_scanners", 'srcaddr="%s"' % addr, gauge=True)
            ports = day_rng.randrange(25, 61)
            for t in range(start, start + day_rng.randrange(600, 1200), 60):
                g.add(t, ports)
            g.stop = t + 60

    # The incidents, on day 0 (counts land at the capture window after them).
    t = day0 + INCIDENTS["illegal source accepted"]
    s("vpc_flow_illegal_source_accepts_total", 'interface_id="%s"' % apps[500]).add(t, 3)
    t = day0 + INCIDENTS["NAT breach accepted and an internal port scan"]
    s("vpc_flow_unapproved_destination_records_total", 'interface_id="%s",action="ACCEPT"' % public[0]).add(t, 12)
    g = s("vpc_flow_top_port_scanners", 'srcaddr="10.0.7.19"', gauge=True)
    for tt in range(t, t + 900, 60):
        g.add(tt, 44)
    g.stop = t + 900
    t = day0 + INCIDENTS["telnet accepted and a reject storm"]
    s("vpc_flow_forbidden_port_records_total", 'interface_id="%s",dstport="23",action="ACCEPT"' % apps[700]).add(t, 2)
    for k in range(3):
        s("vpc_flow_records_total", 'interface_id="%s",action="REJECT"' % apps[700]).add(t + k * 600, 900)
    return series, {"public": public, "apps": apps, "idle": idle}


def write_openmetrics(series, start, end, path):
    """Samples every STEP seconds from `start` to `end`, grouped by family."""
    by_name = {}
    for sr in series.values():
        by_name.setdefault(sr.name, []).append(sr)
    n = 0
    with open(path, "w") as out:
        for name in sorted(by_name):
            out.write("# TYPE %s unknown\n" % name)
            for sr in by_name[name]:
                labels = "{%s,%s}" % (JOB, sr.labels)
                lines = []
                if sr.gauge:
                    times = sorted(sr.events)
                    for t in range((times[0] // STEP) * STEP, sr.stop + STEP, STEP):
                        v = max((v for tt, v in sr.events.items() if t - 60 < tt <= t), default=None)
                        if v is not None:
                            lines.append("%s%s %d %d\n" % (name, labels, v, t))
                else:
                    events = sorted(sr.events.items())
                    first = max(start, -(-sr.start // STEP) * STEP) if sr.start else start
                    value, k = 0, 0
                    # Counts before the first sample (earlier simulated days in a gap) accumulate.
                    for t in range(first, end, STEP):
                        while k < len(events) and events[k][0] <= t:
                            value += events[k][1]
                            k += 1
                        lines.append("%s%s %d %d\n" % (name, labels, value, t))
                out.writelines(lines)
                n += len(lines)
        out.write("# EOF\n")
    return n

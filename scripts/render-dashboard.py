#!/usr/bin/env python3
"""Renders the first screen of the Security overview dashboard to an SVG for
the README, from the dashboard's own queries run against real data.

It starts `vpc-flow-exporter demo` and a real Prometheus (the Debian package's
binary) that scrapes it every 5 s with the shipped rules loaded, waits while
the demo plays its scenarios, runs every query of the first screen's panels
(those above the country map; template variables: every job, every
interface), and draws them where the dashboard's gridPos puts them: stats,
time series, the donut, the bar gauge and the tables. Each panel's title and
queries are written into the SVG (<title>, <desc>); `--check SVG` compares
them with the dashboard, without Prometheus, so that scripts/check-deploy.sh
can tell when the dashboard changed and the picture is stale.

    scripts/render-dashboard.py [--minutes 6] [--out docs/img/security-overview.svg]
    scripts/render-dashboard.py --check docs/img/security-overview.svg

Python standard library only; needs `prometheus` on PATH and a built binary.
"""

import argparse
import html
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "dashboards", "vpc-flow-security.json")
COL = 50  # pixels per grid column (24 columns)
ROW = 30  # pixels per grid row
PAD = 4
COLORS = ["#73BF69", "#F2CC0C", "#5794F2", "#FF9830", "#F2495C", "#B877D9", "#8AB8FF", "#FFB357", "#96D98D", "#CA95E5"]
NAMED = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#F2CC0C", "blue": "#5794F2"}
BG, PANEL, BORDER, TEXT, DIM = "#111217", "#181B1F", "#2C3235", "#CCCCDC", "#8E8E9E"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"render-dashboard: {url} did not answer within {timeout}s")


def substitute(expr, minutes):
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", f"{minutes}m")
        .replace('"$job"', '".*"')
        .replace('"$interface"', '".*"')
    )


class Prom:
    def __init__(self, base):
        self.base = base

    def get(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]["result"]

    def range(self, expr, start, end, step=15):
        return self.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)

    def instant(self, expr, at):
        return self.get("/api/v1/query", query=expr, time=at)


def legend(fmt, labels):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    # Labels the result does not have render empty, as in Grafana.
    while "{{" in out and "}}" in out:
        a = out.index("{{")
        b = out.index("}}", a)
        out = out[:a] + out[b + 2 :]
    return out.strip()


def si(v, unit=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "No data"
    a = abs(v)
    for factor, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if a >= factor:
            return f"{v / factor:.3g}{suffix}{unit}".replace("  ", " ")
    if a == 0 or a >= 100:
        return f"{v:.0f}{' ' + unit if unit else ''}"
    return f"{v:.3g}{' ' + unit if unit else ''}"


def fmt_value(v, unit):
    if v is None:
        return "No data"
    if unit and unit.startswith("suffix:"):
        return si(v, unit[len("suffix:") :].strip())
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "reqps":
        return si(v, "/s")
    if unit == "pps":
        return si(v, "p/s")
    if unit == "Bps":
        return si(v, "B/s")
    return si(v)


def threshold_color(panel, v):
    steps = (panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds") or {}).get("steps") or []
    color = "green"
    for s in steps:
        if s.get("value") is None or (v is not None and v >= s["value"]):
            color = s.get("color", color)
    return NAMED.get(color, color)


def t(x, y, text, size=12, fill=TEXT, anchor="start", weight="normal"):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}" '
        f'font-weight="{weight}">{html.escape(str(text))}</text>'
    )


def polyline(points, color, width=1.5, fill=None):
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    if fill:
        return f'<polygon points="{pts}" fill="{fill}" stroke="none"/>'
    return f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"/>'


def draw_stat(panel, box, series, out):
    x, y, w, h = box
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    values = [v for _, v in series[0]["points"]] if series else []
    last = values[-1] if values else None
    color = threshold_color(panel, last)
    if len(values) > 1:
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        pts = [(x + i * w / (len(values) - 1), y + h - 4 - (v - lo) / span * (h * 0.45)) for i, v in enumerate(values)]
        out.append(polyline([(x, y + h - 4)] + pts + [(x + w, y + h - 4)], color, fill=color + "33"))
        out.append(polyline(pts, color))
    text = fmt_value(last, unit)
    size = 30 if len(text) <= 8 else 24
    out.append(t(x + w / 2, y + h / 2 + 10, text, size=size, fill=color, anchor="middle", weight="bold"))


def draw_timeseries(panel, box, series, out):
    x, y, w, h = box
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    legend_right = panel.get("options", {}).get("legend", {}).get("placement") == "right"
    if not series:
        out.append(t(x + w / 2, y + h / 2, "No data", anchor="middle", fill=DIM))
        return
    # Series with their own unit go on a right axis (the bytes/s override).
    overrides = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        if o.get("matcher", {}).get("id") == "byName":
            for prop in o.get("properties", []):
                if prop["id"] == "unit":
                    overrides[o["matcher"]["options"]] = prop["value"]
    # Legends and axes leave out a custom suffix (`suffix:records/s`): the title says it.
    tick_unit = None if (unit or "").startswith("suffix:") else unit
    # The panel's unit on the left axis, overridden units on the right.
    axes = {unit: []}
    for s in series:
        axes.setdefault(overrides.get(s["name"], unit), []).append(s)
    axes = {k: v for k, v in axes.items() if v}
    lx = x + 52
    lw = w - 52 - (215 if legend_right else 8) - (52 if len(axes) > 1 else 0)
    lh = h - (8 if legend_right else 22 + 14 * math.ceil(len(series) / 3))
    t0 = min(p[0] for s in series for p in s["points"])
    t1 = max(p[0] for s in series for p in s["points"])
    tspan = (t1 - t0) or 1
    for i in range(4):
        gy = y + lh - i * lh / 3
        out.append(f'<line x1="{lx}" y1="{gy:.1f}" x2="{lx + lw}" y2="{gy:.1f}" stroke="{BORDER}" stroke-width="1"/>')
    for ai, (axis_unit, members) in enumerate(axes.items()):
        vals = [v for s in members for _, v in s["points"]]
        hi = max(vals) if vals else 1.0
        hi = hi if hi > 0 else 1.0
        axis_tick = None if (axis_unit or "").startswith("suffix:") else axis_unit
        for i in range(4):
            label = fmt_value(hi * i / 3, axis_tick)
            ax = lx - 4 if ai == 0 else lx + lw + 4
            out.append(t(ax, y + lh - i * lh / 3 + 4, label, size=10, fill=DIM, anchor="end" if ai == 0 else "start"))
        for s in members:
            pts = [(lx + (ts - t0) / tspan * lw, y + lh - v / hi * lh) for ts, v in s["points"]]
            if len(pts) > 1:
                out.append(polyline(pts, s["color"]))
    for i in range(3):
        ts = t0 + tspan * i / 2
        out.append(t(lx + lw * i / 2, y + lh + 13, time.strftime("%H:%M", time.gmtime(ts)), size=10, fill=DIM, anchor="middle"))
    if legend_right:
        for i, s in enumerate(series[:10]):
            ly = y + 12 + i * 15
            out.append(f'<rect x="{lx + lw + 10}" y="{ly - 8}" width="10" height="3" fill="{s["color"]}"/>')
            last = s["points"][-1][1] if s["points"] else None
            out.append(t(lx + lw + 24, ly, f'{s["name"][:22]}  {fmt_value(last, tick_unit)}', size=10))
    else:
        for i, s in enumerate(series):
            col, row = i % 3, i // 3
            lxx = x + 10 + col * (w - 20) / 3
            ly = y + lh + 30 + row * 14
            out.append(f'<rect x="{lxx}" y="{ly - 6}" width="10" height="3" fill="{s["color"]}"/>')
            out.append(t(lxx + 14, ly, s["name"][:30], size=10))


def draw_pie(panel, box, values, out):
    x, y, w, h = box
    total = sum(v for _, v, _ in values) or 1.0
    cx, cy, r = x + h / 2 + 6, y + h / 2, h / 2 - 6
    angle = -math.pi / 2
    for name, v, color in values:
        a2 = angle + v / total * 2 * math.pi
        if v / total > 0.999:
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{color}"/>')
        elif v > 0:
            large = 1 if a2 - angle > math.pi else 0
            x1, y1 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            x2, y2 = cx + r * math.cos(a2), cy + r * math.sin(a2)
            out.append(
                f'<path d="M{cx:.1f},{cy:.1f} L{x1:.1f},{y1:.1f} A{r:.1f},{r:.1f} 0 {large} 1 {x2:.1f},{y2:.1f} Z" fill="{color}"/>'
            )
        angle = a2
    out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r * 0.55:.1f}" fill="{PANEL}"/>')
    for i, (name, v, color) in enumerate(values[:10]):
        ly = y + 14 + i * 16
        lx = x + h + 20
        out.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        out.append(t(lx + 16, ly, f"{name}  {v / total * 100:.0f}%", size=11))


def draw_bars(panel, box, values, out):
    x, y, w, h = box
    hi = max((v for _, v, _ in values), default=1.0) or 1.0
    n = max(len(values), 1)
    bh = min(22, (h - 4) / n - 4)
    for i, (name, v, color) in enumerate(values):
        by = y + 2 + i * (bh + 4)
        out.append(t(x + 60, by + bh - 5, name, size=11, anchor="end"))
        out.append(f'<rect x="{x + 66}" y="{by:.1f}" width="{w - 120:.1f}" height="{bh:.1f}" fill="{BORDER}"/>')
        out.append(f'<rect x="{x + 66}" y="{by:.1f}" width="{(w - 120) * v / hi:.1f}" height="{bh:.1f}" fill="{color}"/>')
        out.append(t(x + w - 4, by + bh - 5, si(v), size=11, anchor="end", fill=color))


def draw_table(panel, box, rows, header, out):
    x, y, w, h = box
    out.append(t(x + 6, y + 12, header[0], size=11, fill=DIM, weight="bold"))
    out.append(t(x + w - 6, y + 12, header[1], size=11, fill=DIM, anchor="end", weight="bold"))
    out.append(f'<line x1="{x}" y1="{y + 18}" x2="{x + w}" y2="{y + 18}" stroke="{BORDER}"/>')
    for i, (name, v) in enumerate(rows[: int((h - 24) // 20)]):
        ry = y + 36 + i * 20
        out.append(t(x + 6, ry, name, size=11))
        out.append(t(x + w - 6, ry, si(v), size=11, anchor="end"))
    if not rows:
        out.append(t(x + w / 2, y + h / 2, "No data", anchor="middle", fill=DIM))


def first_screen(dashboard):
    """The panels above the first geomap (the country map, which this sketch
    does not draw): the overview, traffic, and top-N rows."""
    panels = dashboard["panels"]
    cut = min((p["gridPos"]["y"] for p in panels if p["type"] == "geomap"), default=None)
    return [p for p in panels if cut is None or p["gridPos"]["y"] < cut]


def signature(panels):
    return [(p.get("title", ""), [tg.get("expr") for tg in p.get("targets", [])]) for p in panels]


def check(svg_path, dashboard):
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    got = [
        (g.find(ns + "title").text or "", json.loads(g.find(ns + "desc").text))
        for g in ET.parse(svg_path).getroot().iter(ns + "g")
        if g.get("class") == "panel"
    ]
    want = signature(first_screen(dashboard))
    if got != want:
        stale = [w for w in want if w not in got] + [g for g in got if g not in want]
        sys.exit(f"{svg_path} is stale: scripts/render-dashboard.py redraws it. First differences: {stale[:3]}")
    print(f"{svg_path}: {len(got)} panels, the dashboard's current titles and queries")


def render(prom, dashboard, minutes, end):
    start = end - minutes * 60
    panels = first_screen(dashboard)
    width = 24 * COL
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) * ROW + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="Inter, Helvetica, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="{BG}"/>',
        t(12, 26, f'{dashboard["title"]}   ·   vpc-flow-exporter demo, last {minutes} minutes', size=16, weight="bold"),
    ]
    for p in panels:
        g = p["gridPos"]
        x, y, w, h = g["x"] * COL + PAD, 40 + g["y"] * ROW + PAD, g["w"] * COL - 2 * PAD, g["h"] * ROW - 2 * PAD
        exprs = [substitute(tg["expr"], minutes) for tg in p.get("targets", []) if tg.get("expr")]
        out.append(f'<g class="panel"><title>{html.escape(p.get("title", ""))}</title>')
        out.append(f"<desc>{html.escape(json.dumps([tg.get('expr') for tg in p.get('targets', [])]))}</desc>")
        if p["type"] == "row":
            out.append(t(x + 2, y + 18, p.get("title", ""), size=14, weight="bold"))
            out.append("</g>")
            continue
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="{PANEL}" stroke="{BORDER}"/>')
        out.append(t(x + 8, y + 18, p.get("title", ""), size=12, weight="bold"))
        body = (x + 8, y + 28, w - 16, h - 36)
        color_i = 0
        if p["type"] in ("stat", "timeseries"):
            series = []
            for tg in p.get("targets", []):
                if not tg.get("expr"):
                    continue
                for r in prom.range(substitute(tg["expr"], minutes), start, end):
                    series.append(
                        {
                            "name": legend(tg.get("legendFormat"), r["metric"]),
                            "points": [(float(ts), float(v)) for ts, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")],
                            "color": COLORS[color_i % len(COLORS)],
                        }
                    )
                    color_i += 1
            series.sort(key=lambda s: (s["name"] != "ACCEPT", s["name"]))
            for i, s in enumerate(series):
                s["color"] = {"ACCEPT": NAMED["green"], "REJECT": NAMED["red"]}.get(s["name"], COLORS[i % len(COLORS)])
            if p["type"] == "stat":
                draw_stat(p, body, series, out)
            else:
                draw_timeseries(p, body, series, out)
        else:
            values = []
            label_names = []
            for tg in p.get("targets", []):
                if tg.get("expr"):
                    for r in prom.instant(substitute(tg["expr"], minutes), end):
                        names = [k for k in r["metric"] if k not in ("__name__", "job", "instance")]
                        label_names = label_names or names
                        name = legend(tg.get("legendFormat"), r["metric"]) if tg.get("legendFormat") else ""
                        name = name or " ".join(r["metric"][k] for k in names)
                        values.append((name, float(r["value"][1])))
            values.sort(key=lambda nv: -nv[1])
            colored = [(n, v, COLORS[i % len(COLORS)]) for i, (n, v) in enumerate(values)]
            if p["type"] == "piechart":
                draw_pie(p, body, colored, out)
            elif p["type"] == "bargauge":
                draw_bars(p, body, colored, out)
            else:
                rename = {}
                for tr in p.get("transformations", []):
                    if tr.get("id") == "organize":
                        rename.update(tr.get("options", {}).get("renameByName", {}))
                first = " ".join(rename.get(k, k) for k in label_names) or "Series"
                draw_table(p, body, values, (first, rename.get("Value", "Value")), out)
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=6, help="how long to collect data before rendering")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img", "security-overview.svg"))
    ap.add_argument("--binary", default=None, help="vpc-flow-exporter binary (default: target/release, else target/debug)")
    ap.add_argument("--check", metavar="SVG", help="only check that SVG shows the dashboard's current panels and queries")
    args = ap.parse_args()
    if args.check:
        check(args.check, json.load(open(DASHBOARD)))
        return
    binary = args.binary or next(
        (b for b in (os.path.join(ROOT, "target", p, "vpc-flow-exporter") for p in ("release", "debug")) if os.path.exists(b)),
        None,
    )
    if not binary or not shutil.which("prometheus"):
        sys.exit("render-dashboard: needs a built vpc-flow-exporter (cargo build) and prometheus on PATH")
    dashboard = json.load(open(DASHBOARD))
    work = tempfile.mkdtemp(prefix="render-dashboard-")
    exporter_port, prom_port = free_port(), free_port()
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [binary, "demo", "--web.listen-address", f"127.0.0.1:{exporter_port}"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "exporter.log"), "w"),
            )
        )
        wait_http(f"http://127.0.0.1:{exporter_port}/-/ready")
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(
                "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
                f"rule_files: ['{os.path.join(ROOT, 'alerts', '*.yml')}']\n"
                "scrape_configs:\n"
                "  - job_name: vpc-flow-exporter\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
            )
        procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={os.path.join(work, 'prometheus.yml')}",
                    f"--storage.tsdb.path={os.path.join(work, 'data')}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(work, "prometheus.log"), "w"),
            )
        )
        base = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{base}/-/ready")
        # One minute more than shown: the first minute's rates are still ramping up.
        for remaining in range((args.minutes + 1) * 60, 0, -30):
            print(f"render-dashboard: collecting, {remaining} s left", flush=True)
            time.sleep(min(30, remaining))
        svg = render(Prom(base), dashboard, args.minutes, time.time())
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(svg)
    print(f"render-dashboard: wrote {args.out}")


if __name__ == "__main__":
    main()

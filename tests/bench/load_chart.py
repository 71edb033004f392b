#!/usr/bin/env python3
"""Draws load_gen's CSV rows as an SVG: collector and load_gen RSS, and the points per second the
collector took, over time. No dependencies beyond Python 3.

  tests/bench/load_chart.py --out docs/img/load.svg --title "500 k and 1 M series" \
      --run "500 k" a.csv --run "1 M" b.csv

Every run gets its own colour in both panels.
"""
import argparse
import csv
import html

WIDTH, PANEL_H, MARGIN_L, MARGIN_R, MARGIN_T, GAP = 760, 200, 70, 20, 60, 130
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def read_rows(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def nice_max(v):
    if v <= 0:
        return 1.0
    step = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * step:
            return m * step
    return 10 * step


def panel(out, top, title, series, y_label, t_max):
    """series: [(label, colour, dash, [(t, y)])]"""
    y_max = nice_max(max((y for _, _, _, pts in series for _, y in pts), default=1))
    plot_w = WIDTH - MARGIN_L - MARGIN_R

    def x(t):
        return MARGIN_L + plot_w * t / t_max

    def y(v):
        return top + PANEL_H - PANEL_H * v / y_max

    out.append(f'<text x="{MARGIN_L}" y="{top - 10}" font-size="13" font-weight="bold">'
               f"{html.escape(title)}</text>")
    out.append(f'<rect x="{MARGIN_L}" y="{top}" width="{plot_w}" height="{PANEL_H}" '
               'fill="none" stroke="#999"/>')
    for i in range(5):
        v = y_max * i / 4
        out.append(f'<line x1="{MARGIN_L}" x2="{MARGIN_L + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{MARGIN_L - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">'
                   f"{v:g}</text>")
    t_step = 60 if t_max > 180 else 30
    t = 0
    while t <= t_max:
        out.append(f'<text x="{x(t):.1f}" y="{top + PANEL_H + 15}" font-size="11" '
                   f'text-anchor="middle">{int(t)} s</text>')
        t += t_step
    out.append(f'<text x="14" y="{top + PANEL_H / 2}" font-size="11" '
               f'transform="rotate(-90 14 {top + PANEL_H / 2})" text-anchor="middle">'
               f"{html.escape(y_label)}</text>")
    for i, (label, colour, dash, pts) in enumerate(series):
        if not pts:
            continue
        d = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="1.6"{extra}/>')
        # The legend goes under the panel, in two columns, clear of the lines.
        lx = MARGIN_L + (i % 2) * (plot_w // 2)
        ly = top + PANEL_H + 36 + 15 * (i // 2)
        out.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{extra}/>')
        out.append(f'<text x="{lx + 25}" y="{ly}" font-size="11">{html.escape(label)}</text>')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="load_gen")
    ap.add_argument("--run", nargs=2, action="append", required=True, metavar=("LABEL", "CSV"))
    a = ap.parse_args()
    runs = [(label, read_rows(path)) for label, path in a.run]
    t_max = max(r["t_s"] for _, rows in runs for r in rows)
    rss, rate = [], []
    for i, (label, rows) in enumerate(runs):
        c = COLOURS[i % len(COLOURS)]
        rss.append((f"{label}: collector", c, "", [(r["t_s"], r["collector_rss_mib"]) for r in rows]))
        rss.append((f"{label}: load_gen (all clients)", c, "4 3",
                    [(r["t_s"], r["loadgen_rss_mib"]) for r in rows]))
        if "heap_in_use_mib" in rows[0]:
            rss.append((f"{label}: collector heap in use", c, "1 3",
                        [(r["t_s"], r["heap_in_use_mib"]) for r in rows]))
        rate.append((f"{label}: points taken per second", c, "",
                     [(r["t_s"], r["points_per_s"] / 1e6) for r in rows]))
    height = MARGIN_T + 2 * PANEL_H + GAP + 90
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           'font-family="sans-serif">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="22" font-size="15" text-anchor="middle">{html.escape(a.title)}</text>']
    panel(out, MARGIN_T, "Resident memory", rss, "MiB", t_max)
    panel(out, MARGIN_T + PANEL_H + GAP, "Ingest rate", rate, "M points/s", t_max)
    out.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

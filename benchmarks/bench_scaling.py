"""Benchmark: how cost grows with the city's size (issue 20, item 4).

For each size (default 0.8, 1.6, 3.2 and 6.4 million subscribers) on PostgreSQL, one after the other:

* ``bench_segmentation.py --db postgresql --subscribers N``: generates the data mart, the bare
  aggregation scan and segmentation (same database, and separate database);
* ``bench_targeting.py``: staging, targeting + arbitration, coverage, validation, the per-county
  split and the SMS rendered into the outbox, on that data mart;
* ``bench_receipts.py --receipts R``: applying R delivery receipts, R = the number of SMS the
  targeting run queued at that size (about 62% of subscribers).

Each bench appends its own figures to its own file in benchmarks/results/ as usual; this script
collects them into ``benchmarks/results/scaling.json`` (one object per run and size), writes the
table ``scaling.md`` and the plot ``scaling.png`` (an SVG drawn here, rendered by Chromium through
Playwright: no plotting library needed).

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 800000,1600000,3200000,6400000]
    .venv/bin/python benchmarks/bench_scaling.py --report-only     # table and plot from scaling.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PY = sys.executable


def _seconds(line: str) -> float:
    return float(re.search(r"\|\s*([0-9.]+) s\s*\|", line).group(1))


def run(args: list[str]) -> str:
    print("$", " ".join(args), flush=True)
    out = subprocess.run([PY, *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    print(out[-3000:], flush=True)
    return out


def measure(n: int) -> dict:
    row: dict = {"subscribers": n, "when": f"{dt.datetime.now():%Y-%m-%d %H:%M}"}
    out = run(["benchmarks/bench_segmentation.py", "--db", "postgresql", "--subscribers", str(n), "--reuse"])
    for line in out.splitlines():
        if line.startswith("| bare aggregation scan"):
            row["bare_scan_s"] = _seconds(line)
        elif line.startswith("| segmentation, marketing_db in the same database"):
            row["segmentation_s"] = _seconds(line)
        elif line.startswith("| segmentation, marketing_db in a separate database"):
            row["segmentation_separate_s"] = _seconds(line)
        elif line.startswith("usage_monthly:"):
            row["usage_rows"] = int(line.split(":")[1].strip().split()[0].replace(",", ""))
    out = run(["benchmarks/bench_targeting.py"])
    for line in out.splitlines():
        if line.startswith("| **total**"):
            row["targeting_s"] = float(re.search(r"\*\*([0-9.]+) s\*\*", line).group(1))
        elif line.startswith("| target list:"):
            row["target_list_s"] = _seconds(line)
            row["targets"] = int(line.split("|")[3].strip().replace(",", ""))
        elif line.startswith("| SMS rendered into the outbox"):
            row["sms_render_s"] = _seconds(line)
            row["sms"] = int(line.split("|")[3].strip().replace(",", ""))
    receipts = row.get("sms") or round(n * 0.62)
    out = run(["benchmarks/bench_receipts.py", "--receipts", str(receipts), "--batch", "100000", "--workers", "2"])
    for line in out.splitlines():
        if line.startswith("| 20"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            row["receipts"] = int(cells[1].replace(",", ""))
            row["receipts_s"] = float(cells[3].split()[0])
    return row


STAGES = [  # key, label, colour
    ("bare_scan_s", "bare scan of usage_monthly (floor)", "#888888"),
    ("segmentation_s", "segmentation (same database)", "#1f77b4"),
    ("targeting_s", "targeting, total of bench_targeting", "#d62728"),
    ("sms_render_s", "SMS rendered into the outbox", "#ff7f0e"),
    ("receipts_s", "receipts applied (one per SMS)", "#2ca02c"),
]


def slope(rows: list[dict], key: str) -> float | None:
    """Least-squares exponent b of seconds = a * subscribers^b (1 is linear)."""
    pts = [(math.log(r["subscribers"]), math.log(r[key])) for r in rows if r.get(key)]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def svg(rows: list[dict], title: str) -> str:
    w, h, left, right, top, bottom = 1040, 560, 80, 440, 50, 60
    xs = [r["subscribers"] / 1e6 for r in rows]
    ys = [r[k] for r in rows for k, _, _ in STAGES if r.get(k)]
    xmax = max(xs) * 1.05
    ymax = max(ys) * 1.1
    px = lambda x: left + (w - left - right) * x / xmax  # noqa: E731
    py = lambda y: h - bottom - (h - top - bottom) * y / ymax  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             f'font-size="13"><rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{left}" y="28" font-size="16" font-weight="bold">{title}</text>']
    step_y = 10 ** math.floor(math.log10(ymax / 2))
    step_y *= 2 if ymax / step_y > 10 else 1
    y = 0.0
    while y <= ymax:
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 8}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += step_y
    for x in xs:
        parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{h - bottom}" stroke="#f0f0f0"/>'
                     f'<text x="{px(x):.1f}" y="{h - bottom + 18}" text-anchor="middle">{x:g}</text>')
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{h - bottom}" y2="{h - bottom}" stroke="black"/>'
                 f'<line x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}" stroke="black"/>'
                 f'<text x="{(left + w - right) / 2}" y="{h - 15}" text-anchor="middle">million subscribers</text>'
                 f'<text x="20" y="{(top + h - bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 20 {(top + h - bottom) / 2})">seconds (wall, 2 shared cores)</text>')
    for i, (key, label, colour) in enumerate(STAGES):
        pts = [(px(r["subscribers"] / 1e6), py(r[key])) for r in rows if r.get(key)]
        if not pts:
            continue
        # the linear extrapolation from the smallest size, dashed: a line bending above it grows faster
        first = next(r for r in rows if r.get(key))
        k = first[key] / first["subscribers"]
        parts.append(f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(xmax):.1f}" '
                     f'y2="{py(min(ymax, k * xmax * 1e6)):.1f}" stroke="{colour}" stroke-dasharray="4 4" '
                     f'stroke-opacity="0.5"/>' if k * xmax * 1e6 <= ymax else
                     f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(ymax / k / 1e6):.1f}" y2="{py(ymax):.1f}" '
                     f'stroke="{colour}" stroke-dasharray="4 4" stroke-opacity="0.5"/>')
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>' for x, y in pts]
        b = slope(rows, key)
        ly = top + 20 + 22 * i
        parts.append(f'<line x1="{w - right + 15}" x2="{w - right + 40}" y1="{ly - 4}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2.5"/><text x="{w - right + 46}" y="{ly}">{label}'
                     + (f" (∝ n^{b:.2f})" if b is not None else "") + "</text>")
    parts.append(f'<text x="{w - right + 15}" y="{top + 20 + 22 * len(STAGES) + 10}" fill="#555">dashed: '
                 f'linear from the smallest size</text></svg>')
    return "\n".join(parts)


def render_png(svg_text: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    exe = os.environ.get("QZ_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe if Path(exe).exists() else None)
        page = browser.new_page(viewport={"width": 1040, "height": 560})
        page.set_content(f"<html><body style='margin:0'>{svg_text}</body></html>")
        page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1040, "height": 560})
        browser.close()


def report(runs: list[dict]) -> None:
    latest = max(r["run"] for r in runs)
    rows = sorted((r for r in runs if r["run"] == latest), key=lambda r: r["subscribers"])
    svg_text = svg(rows, f"Cost against city size, PostgreSQL, run {latest}")
    (RESULTS / "scaling.svg").write_text(svg_text, encoding="utf-8")
    render_png(svg_text, RESULTS / "scaling.png")
    lines = [f"\n## run {latest}: PostgreSQL, one size after the other",
             "`.venv/bin/python benchmarks/bench_scaling.py` (figures: benchmarks/results/scaling.json; "
             "plot: scaling.png)", "",
             "| subscribers | usage rows | bare scan | segmentation | ratio | targeting total | SMS rendered | "
             "SMS | receipts applied |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        def s(k):
            return f"{r[k]:.1f} s" if r.get(k) else "–"
        ratio = f"{r['segmentation_s'] / r['bare_scan_s']:.2f}×" if r.get("segmentation_s") else "–"
        lines.append(f"| {r['subscribers']:,} | {r.get('usage_rows', 0):,} | {s('bare_scan_s')} | "
                     f"{s('segmentation_s')} | {ratio} | {s('targeting_s')} | {s('sms_render_s')} | "
                     f"{r.get('sms', 0):,} | {s('receipts_s')} ({r.get('receipts', 0):,}) |")
    lines.append("")
    lines.append("| stage | exponent b of seconds ∝ subscribers^b (1 = linear) | seconds per million subscribers "
                 "at the largest size |")
    lines.append("| --- | --- | --- |")
    for key, label, _ in STAGES:
        b = slope(rows, key)
        big = [r for r in rows if r.get(key)]
        if b is not None:
            lines.append(f"| {label} | {b:.2f} | {big[-1][key] / big[-1]['subscribers'] * 1e6:.1f} s |")
    with (RESULTS / "scaling.md").open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="800000,1600000,3200000,6400000")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    store = RESULTS / "scaling.json"
    runs = json.loads(store.read_text()) if store.exists() else []
    if not args.report_only:
        run_id = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        for n in (int(s) for s in args.sizes.split(",")):
            row = measure(n)
            row["run"] = run_id
            runs.append(row)
            store.write_text(json.dumps(runs, indent=1) + "\n")  # kept as each size finishes
    report(runs)


if __name__ == "__main__":
    main()

"""Terminal tables, results.json and a short Markdown report with one SVG plot (no plotting
dependency: the chart is a few dozen lines of SVG)."""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence


def write_json(path: Path, data: Any) -> None:
    """Atomic write: a crash never leaves a half-written results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def clean_nan(obj: Any) -> Any:
    """NaN is not JSON; an undefined number becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nan(v) for v in obj]
    return obj


def _pct(x: float | None) -> str:
    return "   -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:6.2f}"


def _ci(ci: Sequence[float] | None) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def results_table(result: Mapping[str, Any], title: str = "") -> str:
    """One reward's results: a row per subset, then sections and the overall score."""
    rows = [("subset", "acc %", "95% CI", "n", "ties", "unscored", "truncated")]
    for name, s in result["subsets"].items():
        rows.append((name, _pct(s["accuracy"]), _ci(s["ci95"]), str(s["n"]), str(s["ties"]), str(s["unscored"]), str(s.get("truncated", "-"))))
    for name, s in result.get("sections", {}).items():
        rows.append((f"[section] {name}", _pct(s["accuracy"]), "", "", "", "", ""))
    rows.append(("OVERALL", _pct(result["overall"]), _ci(result["overall_ci95"]), str(result["n"]), str(result["ties"]),
                 str(result["unscored"]), str(result.get("truncated", "-"))))
    text = _grid(rows)
    head = f"{title}\n" if title else ""
    foot = f"overall = {result['overall_definition']}; ties count as wrong."
    if result.get("not_applicable"):
        foot += f" {result['not_applicable']} item(s) the reward does not apply to were left out (not_applicable)."
    if result.get("truncated"):
        foot += f" {result['truncated']} input(s) were truncated (per sample in scores.jsonl)."
    if result.get("judge"):
        foot += "\njudge: " + ", ".join(f"{k}={v}" for k, v in result["judge"].items())
    if result.get("attack_probes"):
        a = result["attack_probes"]
        foot += (f"\nattack probes ({a['items']} items x {len(a['probes'])} empty answers): false positives "
                 f"{100 * a['false_positive_rate_unhardened']:.1f}% unhardened, {100 * a['false_positive_rate']:.1f}% as configured")
    return head + text + "\n" + foot


def lineup_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(results)
    subsets = sorted({s for r in results.values() for s in r["subsets"]})
    rows = [("reward", *subsets, "overall", "95% CI", "n", "n/a", "ties", "trunc")]
    for name in names:
        r = results[name]
        rows.append((name, *[_pct(r["subsets"].get(s, {}).get("accuracy")) for s in subsets], _pct(r["overall"]), _ci(r["overall_ci95"]),
                     str(r["n"]), str(r.get("not_applicable", 0)), str(r["ties"]), str(r.get("truncated", 0))))
    text = _grid(rows)
    if any(r.get("not_applicable") for r in results.values()):
        text += "\n(n/a: items a reward does not apply to, e.g. a rule on rows without its gold column; its overall covers the rest)"
    return text


def _grid(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


_PALETTE = ["#3b6ea8", "#e08a2c", "#4d9a5b", "#b5474b", "#7d63a8", "#8c6d4f", "#c05fa0", "#6f6f6f"]


def bar_chart_svg(categories: Sequence[str], series: Mapping[str, Sequence[tuple[float | None, Sequence[float] | None]]], title: str) -> str:
    """Grouped horizontal bars (accuracy in %) with 95% interval whiskers and a 50% chance line."""
    names = list(series)
    bar_h, gap, left, width = 14, 10, 170, 420
    group_h = bar_h * len(names) + gap
    top = 56
    height = top + group_h * len(categories) + 30 + 18 * len(names)
    x = lambda v: left + width * v  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           '<text x="10" y="38" fill="#555">accuracy (%) with 95% bootstrap intervals; dashed line = 50%</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        dash = ' stroke-dasharray="4,3"' if tick == 0.5 else ""
        out.append(f'<line x1="{x(tick):.1f}" y1="{top - 5}" x2="{x(tick):.1f}" y2="{top + group_h * len(categories)}" stroke="#bbb"{dash}/>')
        out.append(f'<text x="{x(tick):.1f}" y="{top + group_h * len(categories) + 14}" text-anchor="middle" fill="#555">{int(tick * 100)}%</text>')
    for g, cat in enumerate(categories):
        y0 = top + g * group_h
        out.append(f'<text x="{left - 8}" y="{y0 + group_h / 2}" text-anchor="end" dominant-baseline="middle">{html.escape(cat)}</text>')
        for k, name in enumerate(names):
            value, ci = series[name][g]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            y = y0 + k * bar_h
            color = _PALETTE[k % len(_PALETTE)]
            out.append(f'<rect x="{left}" y="{y}" width="{width * value:.1f}" height="{bar_h - 2}" fill="{color}"><title>{html.escape(name)}: {100 * value:.1f}%</title></rect>')
            cy = y + (bar_h - 2) / 2
            end = value
            if ci and ci[0] is not None:
                out.append(f'<line x1="{x(ci[0]):.1f}" y1="{cy}" x2="{x(ci[1]):.1f}" y2="{cy}" stroke="#222"/>')
                end = max(value, ci[1])
            out.append(f'<text x="{x(end) + 4:.1f}" y="{cy}" dominant-baseline="middle" font-size="10" fill="#333">{100 * value:.1f}</text>')
    ly = top + group_h * len(categories) + 30
    for k, name in enumerate(names):
        out.append(f'<rect x="{left}" y="{ly + 18 * k - 10}" width="12" height="12" fill="{_PALETTE[k % len(_PALETTE)]}"/>')
        out.append(f'<text x="{left + 18}" y="{ly + 18 * k}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_report(out_dir: Path, results: Mapping[str, Mapping[str, Any]], *, title: str, command: str = "") -> Path:
    """``report.md`` + ``plot.svg`` for one or several rewards evaluated on the same data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    categories = sorted({s for r in results.values() for s in r["subsets"]}) + ["OVERALL"]
    series = {}
    for name, r in results.items():
        points = [(r["subsets"][c]["accuracy"], r["subsets"][c]["ci95"]) if c in r["subsets"] else (None, None) for c in categories[:-1]]
        points.append((r["overall"], r["overall_ci95"]))
        series[name] = points
    (out_dir / "plot.svg").write_text(bar_chart_svg(categories, series, title), encoding="utf-8")
    first = next(iter(results.values()))
    lines = [f"# {title}", ""]
    if command:
        lines += ["Produced by:", "", f"    {command}", ""]
    lines += [f"Data: `{first.get('data', '')}`, {first['n']} items; metric: {first.get('metric', 'pairwise')} accuracy "
              f"(strict: ties count as wrong); overall = {first['overall_definition']}.", "", "![accuracy per subset](plot.svg)", ""]
    lines += ["## Lineup" if len(results) > 1 else "## Results", "", "```", lineup_table(results) if len(results) > 1 else results_table(first), "```", ""]
    if len(results) > 1:
        for name, r in results.items():
            lines += [f"### {name}", "", "```", results_table(r), "```", ""]
    lines += ["Intervals: percentile bootstrap (1000 resamples, stratified by subset, seeded) — they show",
              "sampling noise of the benchmark items, not variation across training runs.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def scatter_svg(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, subtitle: str = "",
                x_label: str = "", y_label: str = "", log_x: bool = False) -> str:
    """Points of one or several series (x, y), half transparent so dense regions show; ``log_x`` plots
    x on a log10 axis (response lengths span orders of magnitude)."""
    left, top, width, height = 70, 60, 460, 300
    pts = [(x, y) for s in series.values() for x, y in s if not (log_x and x <= 0)]
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)  # noqa: E731
    xs, ys = [fx(x) for x, _ in pts] or [0.0], [y for _, y in pts] or [0.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    x0, x1 = x0 - (x1 - x0) * 0.03, x1 + (x1 - x0) * 0.03  # no point on the frame
    y0, y1 = y0 - (y1 - y0) * 0.05, y1 + (y1 - y0) * 0.05
    px = lambda v: left + width * (fx(v) - x0) / (x1 - x0)  # noqa: E731
    py = lambda v: top + height * (1 - (v - y0) / (y1 - y0))  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 30}" height="{top + height + 50 + 18 * len(series)}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           f'<text x="10" y="38" fill="#555">{html.escape(subtitle)}</text>',
           f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#bbb"/>']
    if log_x:  # decades, and 2x / 5x between them when the range spans fewer than three decades
        steps = (1, 2, 5) if x1 - x0 < 3 else (1,)
        xticks = [m * 10.0 ** k for k in range(math.floor(x0), math.ceil(x1) + 1) for m in steps if x0 <= math.log10(m * 10.0 ** k) <= x1]
    else:
        xticks = _ticks(x0, x1)
    for t in xticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{top + height}" stroke="#eee"/>')
        label = f"{t:g}" if not log_x or t < 1e5 else f"1e{round(math.log10(t))}"
        out.append(f'<text x="{px(t):.1f}" y="{top + height + 14}" text-anchor="middle" fill="#555">{label}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + width}" y2="{py(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{py(t):.1f}" text-anchor="end" dominant-baseline="middle" fill="#555">{t:.4g}</text>')
    out.append(f'<text x="{left + width / 2}" y="{top + height + 32}" text-anchor="middle">{html.escape(x_label)}</text>')
    out.append(f'<text transform="translate(16,{top + height / 2}) rotate(-90)" text-anchor="middle">{html.escape(y_label)}</text>')
    for k, (name, points) in enumerate(series.items()):
        color = _PALETTE[k % len(_PALETTE)]
        for x, y in points:
            if log_x and x <= 0:
                continue
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.2" fill="{color}" fill-opacity="0.45"/>')
        ly = top + height + 50 + 18 * k
        out.append(f'<circle cx="{left + 6}" cy="{ly - 4}" r="5" fill="{color}"/>')
        out.append(f'<text x="{left + 18}" y="{ly}">{html.escape(name)} ({len(points)})</text>')
    out.append("</svg>")
    return "\n".join(out)


def _shade(value: float) -> str:
    """0 -> red, 0.5 -> white, 1 -> green (accuracy against the 50% of chance)."""
    red, green = (181, 71, 75), (77, 154, 91)
    end, t = (red, 1 - 2 * value) if value < 0.5 else (green, 2 * value - 1)
    t = min(1.0, max(0.0, t))
    return "#" + "".join(f"{round(255 + (c - 255) * t):02x}" for c in end)


def heatmap_svg(panels: Mapping[str, Sequence[Sequence[tuple[float | None, int]]]], *, rows: Sequence[str], cols: Sequence[str],
                title: str, subtitle: str = "", row_label: str = "", col_label: str = "") -> str:
    """One accuracy matrix per panel (cells: (accuracy or None, n)), side by side, coloured from red
    (0%) through white (50%) to green (100%)."""
    cell, left, top = 110, 130, 92
    panel_w = cell * len(cols) + 40
    width = left + panel_w * len(panels)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + cell * len(rows) + 40}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           f'<text x="10" y="38" fill="#555">{html.escape(subtitle)}</text>',
           f'<text transform="translate(14,{top + cell * len(rows) / 2}) rotate(-90)" text-anchor="middle">{html.escape(row_label)}</text>']
    for i, r in enumerate(rows):
        out.append(f'<text x="{left - 6}" y="{top + cell * (i + 0.5)}" text-anchor="end" dominant-baseline="middle">{html.escape(r)}</text>')
    for p, (name, matrix) in enumerate(panels.items()):
        x0 = left + p * panel_w
        out.append(f'<text x="{x0 + cell * len(cols) / 2}" y="{top - 34}" text-anchor="middle" font-weight="bold">{html.escape(name)}</text>')
        out.append(f'<text x="{x0 + cell * len(cols) / 2}" y="{top + cell * len(rows) + 20}" text-anchor="middle" fill="#555">{html.escape(col_label)}</text>')
        for j, c in enumerate(cols):
            out.append(f'<text x="{x0 + cell * (j + 0.5)}" y="{top - 8}" text-anchor="middle" font-size="10">{html.escape(c)}</text>')
        for i in range(len(rows)):
            for j in range(len(cols)):
                value, n = matrix[i][j]
                fill = "#eee" if value is None else _shade(value)
                x, y = x0 + cell * j, top + cell * i
                out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="white"/>')
                text = "-" if value is None else f"{100 * value:.1f}%"
                ink = "white" if value is not None and abs(value - 0.5) > 0.3 else "#222"  # readable on the dark ends
                out.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 - 4}" text-anchor="middle" font-weight="bold" fill="{ink}">{text}</text>')
                out.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 12}" text-anchor="middle" font-size="10" fill="{ink}">n={n}</text>')
    out.append("</svg>")
    return "\n".join(out)

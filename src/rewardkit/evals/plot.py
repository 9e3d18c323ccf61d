"""Line charts with shaded bands, laid out once as drawing primitives and written as SVG (always, no
dependency) or PNG (when Pillow is installed: ``pip install 'rewardkit[images]'``), so both files show
the same picture."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

PALETTE = ["#3b6ea8", "#e08a2c", "#4d9a5b", "#b5474b", "#7d63a8", "#6f6f6f"]


@dataclass
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float | None]
    lo: Sequence[float | None] | None = None  # band (e.g. a 95% interval), drawn shaded
    hi: Sequence[float | None] | None = None


@dataclass
class Panel:
    y_label: str
    series: list[Series]
    x_ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, label) under the axis
    top_ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, label) above the plot area


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for m in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * m) <= count:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + k * step for k in range(int(math.ceil((hi - start) / step)) + 1)]


def _label(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


class Drawing:
    """Primitives in pixel coordinates: ("line", x1, y1, x2, y2, color, width, dashed), ("poly", points,
    color, width), ("band", points, color), ("dot", x, y, r, color), ("text", x, y, text, size, anchor, color, bold)."""

    def __init__(self, width: int, height: int):
        self.width, self.height, self.items = width, height, []

    def add(self, *item: Any) -> None:
        self.items.append(item)

    def svg(self) -> str:
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" font-family="sans-serif">',
               '<rect width="100%" height="100%" fill="white"/>']
        for kind, *a in self.items:
            if kind == "line":
                x1, y1, x2, y2, color, width, dashed = a
                dash = ' stroke-dasharray="4,3"' if dashed else ""
                out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" stroke-width="{width}"{dash}/>')
            elif kind in ("poly", "band"):
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in a[0])
                if kind == "poly":
                    out.append(f'<polyline points="{pts}" fill="none" stroke="{a[1]}" stroke-width="{a[2]}"/>')
                else:
                    out.append(f'<polygon points="{pts}" fill="{a[1]}" fill-opacity="0.2" stroke="none"/>')
            elif kind == "dot":
                x, y, r, color = a
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>')
            elif kind == "text":
                x, y, text, size, anchor, color, bold = a
                weight = ' font-weight="bold"' if bold else ""
                out.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}"{weight}>{html.escape(text)}</text>')
        out.append("</svg>")
        return "\n".join(out)

    def png(self, path: Path) -> bool:
        """Write a PNG with Pillow; False (nothing written) when Pillow is not installed."""
        try:
            from PIL import Image, ImageDraw, ImageFont
        except ImportError:
            return False
        scale = 2  # drawn at twice the size for smooth lines, then halved
        img = Image.new("RGBA", (self.width * scale, self.height * scale), "white")
        fonts: dict[int, Any] = {}

        def font(size: int) -> Any:
            if size not in fonts:
                try:
                    fonts[size] = ImageFont.load_default(size=size * scale)
                except TypeError:  # Pillow < 10.1: one bitmap size
                    fonts[size] = ImageFont.load_default()
            return fonts[size]

        def rgb(color: str, alpha: int = 255) -> tuple[int, int, int, int]:
            return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16), alpha

        for kind, *a in self.items:
            draw = ImageDraw.Draw(img)
            if kind == "line":
                x1, y1, x2, y2, color, width, dashed = a
                if dashed:
                    length = math.hypot(x2 - x1, y2 - y1) or 1
                    for t in range(0, int(length), 7):
                        f0, f1 = t / length, min(t + 4, length) / length
                        draw.line([((x1 + (x2 - x1) * f0) * scale, (y1 + (y2 - y1) * f0) * scale),
                                   ((x1 + (x2 - x1) * f1) * scale, (y1 + (y2 - y1) * f1) * scale)], fill=rgb(color), width=int(width * scale))
                else:
                    draw.line([(x1 * scale, y1 * scale), (x2 * scale, y2 * scale)], fill=rgb(color), width=int(width * scale))
            elif kind == "poly":
                draw.line([(x * scale, y * scale) for x, y in a[0]], fill=rgb(a[1]), width=int(a[2] * scale), joint="curve")
            elif kind == "band":
                layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
                ImageDraw.Draw(layer).polygon([(x * scale, y * scale) for x, y in a[0]], fill=rgb(a[1], 51))
                img = Image.alpha_composite(img, layer)
            elif kind == "dot":
                x, y, r, color = a
                draw.ellipse([(x - r) * scale, (y - r) * scale, (x + r) * scale, (y + r) * scale], fill=rgb(color))
            elif kind == "text":
                x, y, text, size, anchor, color, bold = a
                f = font(size)
                left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
                w = right - left
                dx = {"start": 0, "middle": -w / 2, "end": -w}[anchor]
                draw.text((x * scale + dx, y * scale - bottom), text, fill=rgb(color), font=f,
                          stroke_width=1 if bold else 0, stroke_fill=rgb(color) if bold else None)
        img.convert("RGB").resize((self.width, self.height), Image.LANCZOS).save(path, "PNG")
        return True


def line_chart(panels: Sequence[Panel], *, title: str, subtitle: str = "", x_label: str = "", panel_w: int = 360, panel_h: int = 240) -> Drawing:
    """Panels side by side sharing the x axis; each series a line with dots and its band shaded."""
    left, gap, top, bottom = 64, 80, 84, 54
    d = Drawing(left + len(panels) * (panel_w + gap) - gap + 30, top + panel_h + bottom)
    d.add("text", 10, 20, title, 14, "start", "#000000", True)
    if subtitle:
        d.add("text", 10, 38, subtitle, 11, "start", "#555555", False)
    for k, panel in enumerate(panels):
        x0 = left + k * (panel_w + gap)
        xs = [x for s in panel.series for x in s.x]
        ys = [v for s in panel.series for v in [*s.y, *(s.lo or []), *(s.hi or [])] if v is not None and math.isfinite(v)]
        xlo, xhi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if xhi == xlo:
            xhi = xlo + 1.0
        yticks = _nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
        ylo, yhi = yticks[0], yticks[-1]
        px = lambda x: x0 + 8 + (panel_w - 16) * (x - xlo) / (xhi - xlo)  # noqa: E731
        py = lambda y: top + panel_h - panel_h * (y - ylo) / (yhi - ylo)  # noqa: E731
        for t in yticks:
            d.add("line", x0, py(t), x0 + panel_w, py(t), "#e2e2e2", 1, False)
            d.add("text", x0 - 6, py(t) + 4, _label(t), 10, "end", "#555555", False)
        d.add("line", x0, top + panel_h, x0 + panel_w, top + panel_h, "#888888", 1, False)
        d.add("line", x0, top, x0, top + panel_h, "#888888", 1, False)
        for x, text in panel.x_ticks:
            d.add("line", px(x), top + panel_h, px(x), top + panel_h + 4, "#888888", 1, False)
            d.add("text", px(x), top + panel_h + 16, text, 10, "middle", "#555555", False)
        for x, text in panel.top_ticks:
            d.add("line", px(x), top, px(x), top + panel_h, "#f0f0f0", 1, True)
            d.add("text", px(x), top - 6, text, 10, "middle", "#555555", False)
        d.add("text", x0 + panel_w / 2, top + panel_h + 34, x_label, 11, "middle", "#333333", False)
        d.add("text", x0, top - 22, panel.y_label, 12, "start", "#333333", True)
        for j, s in enumerate(panel.series):
            color = PALETTE[j % len(PALETTE)]
            if s.lo is not None and s.hi is not None:
                upper = [(px(x), py(h)) for x, h in zip(s.x, s.hi) if h is not None]
                lower = [(px(x), py(lo)) for x, lo in zip(s.x, s.lo) if lo is not None]
                if len(upper) > 1 and len(lower) > 1:
                    d.add("band", upper + lower[::-1], color)
            pts = [(px(x), py(y)) for x, y in zip(s.x, s.y) if y is not None]
            if len(pts) > 1:
                d.add("poly", pts, color, 2)
            for x, y in pts:
                d.add("dot", x, y, 3, color)
    return d

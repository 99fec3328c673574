"""A tiny server-side SVG line chart for the dashboard: no JavaScript, no chart library, no CDN."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe


@dataclass
class Series:
    label: str
    css: str  # a class name: the colour lives in the stylesheet
    points: list[tuple[datetime, float]]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(series: Series, *, width: int = 560, height: int = 140, pad_left: int = 44) -> SafeString:
    """One series as an SVG polyline with a y axis (0, half, max) and start/end time labels."""
    pad_top, pad_bottom, pad_right = 8, 18, 6
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    pts = series.points
    t0, t1 = pts[0][0].timestamp(), pts[-1][0].timestamp()
    span = max(t1 - t0, 1)
    ymax = _nice_max(max(v for _, v in pts))

    def xy(t: datetime, v: float) -> str:
        x = pad_left + (t.timestamp() - t0) / span * plot_w
        y = pad_top + plot_h - (v / ymax) * plot_h
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(t, v) for t, v in pts)
    area = f"{pad_left},{pad_top + plot_h} {line} {pad_left + plot_w},{pad_top + plot_h}"
    grid = format_html_join(
        "",
        '<line class="grid" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/><text class="axis" x="{3}" y="{4}" '
        'text-anchor="end">{5}</text>',
        (
            (
                pad_left,
                pad_left + plot_w,
                f"{pad_top + plot_h - frac * plot_h:.1f}",
                pad_left - 4,
                f"{pad_top + plot_h - frac * plot_h + 3:.1f}",
                f"{ymax * frac:,.0f}",
            )
            for frac in (0, 0.5, 1)
        ),
    )
    fmt = "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    start = timezone.localtime(pts[0][0]).strftime(fmt)
    end = timezone.localtime(pts[-1][0]).strftime(fmt)
    return format_html(
        '<svg class="chart {css}" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{label}">'
        "{grid}"
        '<polygon class="area" points="{area}"/>'
        '<polyline class="line" points="{line}"/>'
        '<text class="axis" x="{x0}" y="{ty}">{start}</text>'
        '<text class="axis" x="{x1}" y="{ty}" text-anchor="end">{end}</text>'
        "</svg>",
        css=series.css,
        w=width,
        h=height,
        label=series.label,
        grid=grid,
        area=mark_safe(area),
        line=mark_safe(line),
        x0=pad_left,
        x1=pad_left + plot_w,
        ty=height - 4,
        start=start,
        end=end,
    )

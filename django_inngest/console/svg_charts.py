"""Line charts drawn on the server as inline SVG: no JavaScript library, no CDN.

The admin must work offline and behind strict Content Security Policies, and the numbers are
already aggregated by the database, so a chart is a few dozen points: drawing them here costs
less than shipping (and auditing) a charting library. Each point carries a ``<title>``, which
browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from django_inngest.console.timefmt import iso

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 34


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    colour: str
    dashed: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


#: Round steps for an axis of seconds: 1 s, 2 s, 5 s, 10 s, 15 s, 30 s, 1 min, ... 1 day.
DURATION_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
                  60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)  # fmt: skip


def nice_duration_step(seconds: float) -> float:
    """The smallest round duration at or above ``seconds`` (whole days beyond a day)."""
    for step in DURATION_STEPS:
        if seconds <= step:
            return float(step)
    return float(86400 * math.ceil(seconds / 86400))


def plain_number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


def line_chart(
    *,
    title: str,
    buckets: Sequence[datetime],
    series: Sequence[Series],
    format_value: Callable[[float], str] = plain_number,
    nice_step: Callable[[float], float] | None = None,
    chart_id: str = "",
) -> SafeString:
    count = len(buckets)
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    # Four gridline steps of a round size, so every label is a round number.
    top = 4 * (nice_step or nice_ceiling)(float(peak) / 4)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (count - 1) if count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid" stroke="#e2e8f0"/>'
        '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>',
        (
            (
                LEFT,
                WIDTH - RIGHT,
                f"{y(top * f):.1f}",
                f"{y(top * f):.1f}",
                LEFT - 6,
                f"{y(top * f) + 3:.1f}",
                format_value(top * f),
            )
            for f in (0, 0.25, 0.5, 0.75, 1)
        ),
    )
    labelled = sorted({0, count // 2, count - 1}) if count else []
    x_labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="{}" class="tick">{}</text>',
        (
            (
                f"{x(i):.1f}",
                HEIGHT - 12,
                "start" if i == 0 else "end" if i == count - 1 else "middle",
                iso(buckets[i]),
            )
            for i in labelled
        ),
    )
    lines = mark_safe("".join(_series_svg(s, buckets, x, y, format_value) for s in series))
    legend = format_html_join(
        "",
        '<span class="inngest-legend-item"><i style="background:{}"></i>{}</span>',
        ((s.colour, s.name) for s in series),
    )
    return format_html(
        '<figure class="inngest-chart"{}><figcaption>{}<span class="inngest-chart-legend">{}'
        '</span></figcaption><svg viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'xmlns="http://www.w3.org/2000/svg">'
        "<title>{}</title>{}{}{}</svg></figure>",
        format_html(' id="{}"', chart_id) if chart_id else "",
        title,
        legend,
        WIDTH,
        HEIGHT,
        title,
        title,
        grid,
        x_labels,
        lines,
    )


def _series_svg(
    series: Series,
    buckets: Sequence[datetime],
    x: Callable[[int], float],
    y: Callable[[float], float],
    format_value: Callable[[float], str],
) -> str:
    # A missing value (no run ended in that bucket) breaks the line rather than dropping to 0.
    path: list[str] = []
    pen_down = False
    dots = []
    for index, value in enumerate(series.values):
        if value is None:
            pen_down = False
            continue
        px, py = f"{x(index):.1f}", f"{y(float(value)):.1f}"
        path.append(f"{'L' if pen_down else 'M'}{px},{py}")
        pen_down = True
        dots.append(
            format_html(
                '<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{} at {}: {}</title></circle>',
                px,
                py,
                series.colour,
                series.name,
                iso(buckets[index]),
                format_value(float(value)),
            )
        )
    dash = ' stroke-dasharray="5 3"' if series.dashed else ""
    line = format_html(
        '<path d="{}" fill="none" stroke="{}" stroke-width="2"{} data-series="{}"/>',
        " ".join(path),
        series.colour,
        mark_safe(dash),
        series.name,
    )
    return str(line) + "".join(str(dot) for dot in dots)

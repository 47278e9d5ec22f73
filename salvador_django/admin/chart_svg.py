"""The overview's charts as inline SVG markup (see :mod:`salvador_django.admin.charts`
for their geometry).

Written in Python, not in a template: a chart is about two hundred elements, and the
template engine took some 10 ms a chart to render them, 40 workflows 0.4 s.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from salvador_django.admin.charts import Chart


def _axes(chart: Chart, id_: str, kind: str) -> list[str]:
    """The opening tag, title, description and axes of ``chart``."""
    ticks = "".join(
        f'<text x="{tick.x:.1f}" y="{chart.label_y}">{escape(tick.label)}</text>'
        for tick in chart.ticks
    )
    label_x = chart.left - 4
    return [
        f'<svg class="salvador-chart salvador-{kind}-chart" role="img" '
        f'aria-labelledby="{id_}-title {id_}-desc" width="{chart.width}" '
        f'height="{chart.height}" viewBox="0 0 {chart.width} {chart.height}">',
        f'<title id="{id_}-title">{escape(chart.title)}</title>',
        f'<desc id="{id_}-desc">{escape(chart.description)}</desc>',
        '<g class="salvador-chart-axis" aria-hidden="true">',
        f'<line x1="{chart.left}" x2="{chart.plot_right}" y1="{chart.plot_top}" '
        f'y2="{chart.plot_top}"/>',
        f'<line class="salvador-chart-base" x1="{chart.left}" x2="{chart.plot_right}" '
        f'y1="{chart.plot_bottom}" y2="{chart.plot_bottom}"/>',
        f'<text x="{label_x}" y="{chart.plot_top + 4}" text-anchor="end">'
        f"{escape(chart.top_label)}</text>",
        f'<text x="{label_x}" y="{chart.plot_bottom}" text-anchor="end">'
        f"{escape(chart.bottom_label)}</text>",
        ticks,
        "</g>",
    ]


def tasks_svg(chart: Chart, id_: str) -> SafeString:
    """Completed and failed tasks per hour: a stacked bar an hour, a stub for an hour
    not rolled up yet; each hour's ``<title>`` says its numbers."""
    parts = _axes(chart, id_, "tasks")
    width, top, height = chart.bar_width, chart.plot_top, chart.plot_height
    for bar in chart.bars:
        x = f"{bar.x:.1f}"
        missing = " salvador-chart-missing" if bar.missing else ""
        parts.append(f'<g class="salvador-chart-hour{missing}"><title>{escape(bar.title)}</title>')
        parts.append(
            f'<rect class="salvador-chart-hit" x="{x}" y="{top}" width="{width}" '
            f'height="{height}"/>'
        )
        if bar.missing:
            parts.append(
                f'<rect class="salvador-chart-gap" x="{x}" y="{chart.plot_bottom - 6}" '
                f'width="{width}" height="6"/>'
            )
        for kind, y, tall in (
            ("completed", bar.completed_y, bar.completed_height),
            ("failed", bar.failed_y, bar.failed_height),
        ):
            if tall:
                parts.append(
                    f'<rect class="salvador-chart-{kind}" x="{x}" y="{y:.1f}" '
                    f'width="{width}" height="{tall:.1f}"/>'
                )
        parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped


def durations_svg(chart: Chart, id_: str) -> SafeString:
    """The p95 and p50 of the step durations per hour: a line each, a dot an hour with
    its ``<title>``."""
    parts = _axes(chart, id_, "durations")
    lines = (("p95", chart.p95, chart.p95_path), ("p50", chart.p50, chart.p50_path))
    for name, points, path in lines:
        parts.append(f'<polyline class="salvador-chart-{name}" points="{path}"/>')
        parts.extend(
            f'<circle class="salvador-chart-{name}" cx="{point.x:.1f}" cy="{point.y:.1f}" r="3">'
            f"<title>{escape(point.title)}</title></circle>"
            for point in points
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped

"""The overview's 24 h throughput chart as inline SVG (no script, no library: it is a few rects)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from gateway.operator import HourCount

WIDTH, HEIGHT = 480, 120
TOP, BOTTOM = 4, 119  # plot area, in viewBox units
SLOT = WIDTH / 24


def throughput_svg(hours: Sequence[HourCount]) -> Markup:
    """Parts sent (blue, failed stacked in red) and messages received (green), per hour."""
    peak = max([1, *(h.sent + h.failed for h in hours), *(h.received for h in hours)])
    scale = (BOTTOM - TOP) / peak
    # The bars stretch with the page (preserveAspectRatio none); the labels are HTML around
    # the SVG, so they keep their size on a phone and on a wide screen alike.
    out = [
        f'<div class="chart-wrap"><span class="peak">{peak} / h</span>',
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        ' aria-label="SMS per hour, last 24 hours" preserveAspectRatio="none">',
        f'<line x1="0" y1="{BOTTOM}" x2="{WIDTH}" y2="{BOTTOM}" class="axis"/>',
    ]
    for i, hour in enumerate(hours):
        x = i * SLOT
        local = hour.start.astimezone()
        sent_h, failed_h, recv_h = hour.sent * scale, hour.failed * scale, hour.received * scale
        title = escape(
            f"{local:%H}:00 - {hour.sent} sent, {hour.failed} failed, {hour.received} received"
        )
        out.append(f"<g><title>{title}</title>")
        out.append(
            f'<rect x="{x:.1f}" y="{TOP}" width="{SLOT:.1f}" height="{BOTTOM - TOP}" class="slot"/>'
        )
        if hour.sent:
            out.append(
                f'<rect x="{x + 2:.1f}" y="{BOTTOM - sent_h:.1f}" width="{SLOT / 2 - 2:.1f}"'
                f' height="{sent_h:.1f}" class="sent"/>'
            )
        if hour.failed:
            out.append(
                f'<rect x="{x + 2:.1f}" y="{BOTTOM - sent_h - failed_h:.1f}"'
                f' width="{SLOT / 2 - 2:.1f}" height="{failed_h:.1f}" class="failed"/>'
            )
        if hour.received:
            out.append(
                f'<rect x="{x + SLOT / 2:.1f}" y="{BOTTOM - recv_h:.1f}"'
                f' width="{SLOT / 2 - 2:.1f}" height="{recv_h:.1f}" class="received"/>'
            )
        out.append("</g>")
    out.append('</svg><div class="ticks">')
    for hour in hours[::6]:
        out.append(f"<span>{hour.start.astimezone():%H}:00</span>")
    out.append("<span>now</span></div></div>")
    return Markup("".join(out))
